"""Out-of-range dates, over-long LMS text and odd claim types end in a 4xx or are stored cut, never in a 500."""
from sqlalchemy import select

from attendance.models import ClassSession, User
from extensions import db
from tests.support.api import assert_error, launch_as

DL = "https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings"


def test_dates_beyond_arithmetic_are_refused_and_store_nothing(app, launcher, moodle):
    teacher = launch_as(launcher, moodle, "instructor")
    for starts, ends in (("9999-12-31T23:50:00", "9999-12-31T23:59:00"), ("0001-01-01T00:10:00+05:00", "2030-01-01T00:00:00")):
        assert_error(teacher.post("/api/class-sessions/", json={"title": "x", "starts_at": starts, "ends_at": ends}),
                     422, "validation_error", "starts_at")
    assert teacher.get("/api/class-sessions/").status_code == 200
    with app.app_context():
        assert db.session.scalar(select(ClassSession)) is None
    student = launch_as(launcher, moodle, "learner")
    assert_error(student.get("/api/student/attendance-history/", to="9999-12-31"), 422, "validation_error", "to")


def test_over_long_names_from_the_lms_are_cut_to_their_column(app, launcher, moodle):
    launch_as(launcher, moodle, "learner", sub="long", claims={"name": "N" * 400, "email": "e" * 400 + "@x.edu"})
    with app.app_context():
        user = db.session.scalar(select(User).filter_by(sub="long"))
        assert (len(user.name), len(user.email)) == (255, 320)


def test_deep_linking_lists_of_the_wrong_type_are_ignored(launcher, moodle):
    settings = dict(moodle.claims("instructor", message_type="LtiDeepLinkingRequest")[DL],
                    accept_presentation_document_targets=5)
    response = launcher.launch(moodle, "instructor", message_type="LtiDeepLinkingRequest", claims={DL: settings})
    assert response.status_code < 500
