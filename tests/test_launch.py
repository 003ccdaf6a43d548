"""Valid launches: Moodle- and Canvas-shaped, every role, the 1EdTech certification's valid cases."""
import pytest
from sqlalchemy import select

from attendance.models import Course, Enrollment, ResourceLink, User
from extensions import db
from lti.tokens import read_launch_token
from tests.support.launch import body_attr, meta
from tests.support.platform import LTI, ROLE


@pytest.mark.parametrize("product", ["moodle", "canvas"])
@pytest.mark.parametrize("role, expected, admin", [
    ("instructor", "teacher", "false"),
    ("learner", "student", "false"),
    ("ta", "teacher", "false"),
    ("test_user", "student", "false"),
    ("site_admin", "teacher", "true"),
    ("account_admin", "admin", "true"),
])
def test_roles_land_on_their_home_page(request, launcher, app, product, role, expected, admin):
    platform = request.getfixturevalue(product)
    response = launcher.launch(platform, role)
    html = response.get_data(as_text=True)
    assert response.status_code == 200, html[:800]
    assert body_attr(html, "data-role") == expected
    assert body_attr(html, "data-admin") == admin
    with app.app_context():
        claims = read_launch_token(meta(html, "launch-token"))
    assert claims["role"] == expected
    assert meta(html, "csrf-token")


def test_provisioning_is_idempotent_and_keeps_known_names(app, launcher, moodle):
    assert launcher.launch(moodle, "learner", sub="s-1").status_code == 200
    no_pii = {k: "" for k in ("name", "given_name", "family_name", "email")}
    assert launcher.launch(moodle, "learner", sub="s-1", claims=no_pii).status_code == 200
    with app.app_context():
        users = db.session.scalars(select(User)).all()
        assert [(u.sub, u.name, u.email) for u in users] == [("s-1", "Ada Lovelace", "ada@example.edu")]
        course = db.session.scalar(select(Course))
        assert (course.context_id, course.title) == ("course-1", "Physics 101")
        assert course.nrps_url.endswith("/memberships")
        assert "type_id=1" in course.ags_lineitems_url
        assert db.session.scalar(select(Enrollment)).role == "student"
        assert db.session.scalar(select(ResourceLink)).resource_link_id == "link-1"


def test_role_change_updates_enrollment(app, launcher, moodle):
    launcher.launch(moodle, "learner", sub="s-2")
    launcher.launch(moodle, "instructor", sub="s-2")
    with app.app_context():
        assert [e.role for e in db.session.scalars(select(Enrollment))] == ["teacher"]


@pytest.mark.parametrize("roles, expected", [
    ([ROLE["learner"], ROLE["instructor"]], "teacher"),         # multiple roles
    (["Instructor"], "teacher"),                               # short role
    (["Learner"], "student"),
    (["http://purl.imsglobal.org/vocab/lis/v2/membership#Unknown"], "none"),  # unknown role
    (["urn:made:up"], "none"),
    ([], "none"),                                              # no role at all (empty claim)
    ([ROLE["system_user"]], "none"),                           # Canvas's everyone-role means nothing
    ([ROLE["mentor"]], "none"),
])
def test_certification_role_cases(launcher, moodle, roles, expected):
    response = launcher.launch(moodle, roles)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert body_attr(html, "data-role") == expected
    if expected == "none":
        assert "No access to attendance in this course" in html


@pytest.mark.parametrize("remove, present", [
    (("name", "given_name", "family_name"), "ada@example.edu"),   # email only
    (("email",), "Ada Lovelace"),                                 # names only
    (("name", "given_name", "family_name", "email"), None),       # no PII
])
def test_certification_pii_cases(app, launcher, moodle, remove, present):
    response = launcher.launch(moodle, "learner", remove=remove)
    assert response.status_code == 200
    with app.app_context():
        user = db.session.scalar(select(User))
        assert user.display_name == (present or f"User {user.sub[:12]}")


def test_launch_without_context(app, launcher, moodle):
    response = launcher.launch(moodle, "learner", remove=(LTI + "context", "name", "given_name", "family_name"))
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert body_attr(html, "data-role") == "student"
    assert "not opened from inside a course" in html
    with app.app_context():
        assert db.session.scalar(select(Course)) is None
        assert read_launch_token(meta(html, "launch-token"))["course"] is None


def test_launch_token_binds_platform_deployment_user_course(app, launcher, moodle):
    html = launcher.launch(moodle, "learner", sub="bound").get_data(as_text=True)
    with app.app_context():
        claims = read_launch_token(meta(html, "launch-token"))
        user = db.session.scalar(select(User).filter_by(sub="bound"))
        course = db.session.scalar(select(Course))
    assert claims["user"] == user.id and claims["course"] == course.id
    assert claims["registration"] == user.registration_id
    assert isinstance(claims["deployment"], int)


def test_cookies_are_partitioned_cross_site(launcher, moodle):
    login = launcher.login(moodle)
    cookie = login.headers["Set-Cookie"]
    for flag in ("Secure", "HttpOnly", "SameSite=None", "Partitioned"):
        assert flag in cookie
    auth = launcher.auth_request(login)
    launch = launcher.post(moodle.id_token(nonce=auth["nonce"]), auth["state"])
    session_cookie = [c for c in launch.headers.getlist("Set-Cookie") if c.startswith("attendance_session=")]
    assert session_cookie and all(f in session_cookie[0] for f in ("Secure", "HttpOnly", "SameSite=None", "Partitioned"))
