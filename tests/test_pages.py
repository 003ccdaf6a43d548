"""The HTML pages: each renders for the roles it serves and refuses the others, loads nothing from
another host, and labels every form control."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.support.api import launch_as
from tests.support.launch import TOOL, body_attr, meta, register_platform
from tests.support.platform import LTI, Platform

ROOT = Path(__file__).resolve().parent.parent


class Page(HTMLParser):
    """The parts of a page the checks below need: URLs, form controls, labels, ids."""

    def __init__(self, html: str):
        super().__init__()
        self.urls: list[tuple[str, str, str]] = []  # (tag, attribute, value)
        self.controls: list[dict] = []
        self.label_for: set[str] = set()
        self.ids: set[str] = set()
        self._label_depth = 0
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        for name in ("src", "href", "action", "formaction", "poster", "data"):
            if attrs.get(name):
                self.urls.append((tag, name, attrs[name]))
        if tag == "label":
            self._label_depth += 1
            if attrs.get("for"):
                self.label_for.add(attrs["for"])
        if tag in ("input", "select", "textarea") and attrs.get("type") != "hidden":
            self.controls.append({"tag": tag, "wrapped": self._label_depth > 0, **attrs})

    def handle_endtag(self, tag):
        if tag == "label" and self._label_depth:
            self._label_depth -= 1


def assert_no_outside_urls(html: str) -> None:
    """Every URL the page loads or links to is relative or on the tool's own origin."""
    for tag, attr, value in Page(html).urls:
        parts = urlsplit(value)
        if parts.scheme in ("", "blob", "data") and not value.startswith("//"):
            continue
        assert f"{parts.scheme}://{parts.netloc}" == TOOL, f"<{tag} {attr}={value!r}> points to another host"


def assert_controls_labelled(html: str) -> None:
    page = Page(html)
    for control in page.controls:
        labelled = (control["wrapped"] or control.get("id") in page.label_for
                    or control.get("aria-label") or control.get("aria-labelledby"))
        assert labelled, f"<{control['tag']} id={control.get('id')!r}> has no label"


def html_of(response) -> str:
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return response.get_data(as_text=True)


# -- launched pages ------------------------------------------------------------------------------
def test_teacher_lands_on_the_dashboard(launcher, moodle):
    html = html_of(launcher.launch(moodle, "instructor"))
    assert body_attr(html, "data-role") == "teacher" and body_attr(html, "data-admin") == "false"
    assert meta(html, "launch-token") and meta(html, "csrf-token")
    page = Page(html)
    for element in ("sessions", "create-session-form", "session-panel", "current-code", "submissions", "start-checkin",
                    "stop-checkin", "projector-link", "run-risk", "close-session", "close-dialog", "missing-students",
                    "justifications", "document-viewer", "settings-form", "use-location", "bulk-status", "bulk-apply"):
        assert element in page.ids, element
    assert 'src="/static/teacher.js"' in html
    assert "admin-link" not in page.ids
    assert 'aria-live="polite"' in html
    assert_no_outside_urls(html)
    assert_controls_labelled(html)


def test_teacher_with_admin_rights_gets_a_link_to_the_admin_page(launcher, moodle):
    html = html_of(launcher.launch(moodle, "site_admin"))
    assert body_attr(html, "data-role") == "teacher" and body_attr(html, "data-admin") == "true"
    assert "admin-link" in Page(html).ids
    form = re.search(r'<form method="post" action="([^"]+)" target="_blank"[^>]*>\s*<input type="hidden" name="token" value="([^"]+)"', html)
    assert form and form.group(1) == "/admin/overview" and form.group(2) == meta(html, "launch-token")


def test_student_lands_on_the_check_in_page(launcher, moodle):
    html = html_of(launcher.launch(moodle, "learner"))
    assert body_attr(html, "data-role") == "student"
    page = Page(html)
    for element in ("checkin-form", "attendance-code", "checkin-result", "current-classes", "today-classes",
                    "week-classes", "history", "summary", "justification-form", "justification-document"):
        assert element in page.ids, element
    code = next(c for c in page.controls if c.get("id") == "attendance-code")
    assert code["autocomplete"] == "off" and code["inputmode"] == "text" and code["autocapitalize"] == "characters"
    document = next(c for c in page.controls if c.get("id") == "justification-document")
    assert document["type"] == "file" and ".pdf" in document["accept"] and ".png" in document["accept"]
    assert 'src="/static/student.js"' in html and "teacher.js" not in html
    assert_no_outside_urls(html)
    assert_controls_labelled(html)


def test_account_admin_lands_on_the_overview_of_their_platform(launcher, moodle, app):
    teacher = launch_as(launcher, moodle, "instructor", sub="t1")
    student = launch_as(launcher, moodle, "learner", sub="s1", name="Grace Hopper")
    now = datetime.now(timezone.utc)
    session_id = teacher.post("/api/class-sessions/", json={
        "title": "Lecture 1", "starts_at": now.isoformat(), "ends_at": (now + timedelta(hours=1)).isoformat(),
    }).get_json()["class_session"]["id"]
    code = teacher.post("/api/generate-code/", json={"class_session_id": session_id}).get_json()["code"]
    record = student.post("/api/submit-attendance/", json={"attendance_code": code}).get_json()["attendance"]
    teacher.post("/api/validate-attendance/", json={"attendance_id": record["id"], "status": "late"})

    html = html_of(launcher.launch(moodle, "account_admin", sub="admin-1"))
    assert body_attr(html, "data-role") == "admin" and body_attr(html, "data-admin") == "true"
    assert moodle.issuer in html and moodle.client_id in html
    assert re.search(r'<tr data-course-id="\d+"><th scope="row">Physics 101</th>', html)
    courses = re.search(r'<table class="data" id="courses">.*?</table>', html, re.S).group(0)
    assert re.search(r'<td class="num">1</td><td class="num">1</td>', courses)  # one session, one student
    activity = re.search(r'<table class="data" id="activity">.*?</table>', html, re.S).group(0)
    assert "changed a status" in activity and "Grace Hopper" in activity and "present → late" in activity
    assert "opened check-in" in activity
    assert_no_outside_urls(html)


# -- /admin/overview -----------------------------------------------------------------------------
def test_admin_overview_accepts_an_admin_token_in_a_form_a_header_or_the_session(launcher, moodle, client):
    admin = launch_as(launcher, moodle, "account_admin", sub="admin-1")
    html = html_of(client.get("/admin/overview"))  # the launch's session cookie
    assert body_attr(html, "data-role") == "admin" and moodle.issuer in html
    assert html_of(client.post("/admin/overview", data={"token": admin.token})).count(moodle.issuer) == 1
    response = client.get("/admin/overview")
    assert response.headers["Cache-Control"] == "no-store" and response.headers["Referrer-Policy"] == "no-referrer"
    site_admin = launch_as(launcher, moodle, "site_admin", sub="teacher-admin")
    assert moodle.issuer in html_of(client.get("/admin/overview", headers={"Authorization": f"Bearer {site_admin.token}"}))


def test_admin_overview_shows_only_the_admins_own_platform(app, launcher, moodle, client):
    other = Platform(issuer="https://other.example.edu", client_id="other-client", product="canvas")
    try:
        register_platform(app, other)
        launch_as(launcher, other, "instructor", sub="other-teacher",
                  claims={LTI + "context": {"id": "chem", "label": "CHEM", "title": "Chemistry 200"}})
        launch_as(launcher, moodle, "instructor", sub="t1")
        admin = launch_as(launcher, moodle, "account_admin", sub="admin-1")
        html = html_of(client.post("/admin/overview", data={"token": admin.token}))
        assert "Physics 101" in html
        assert "Chemistry 200" not in html and other.issuer not in html and "other-client" not in html
    finally:
        other.stop()


@pytest.mark.parametrize("who", ["instructor", "learner"])
def test_admin_overview_refuses_non_admins_with_a_clear_page(launcher, moodle, client, who):
    user = launch_as(launcher, moodle, who, sub=f"{who}-1")
    response = client.post("/admin/overview", data={"token": user.token})
    assert response.status_code == 403
    html = response.get_data(as_text=True)
    assert body_attr(html, "data-error") == "permission_denied" and "Only administrators" in html
    assert moodle.issuer not in html


@pytest.mark.parametrize("token", [None, "not-a-token"])
def test_admin_overview_without_a_valid_launch_is_401(client, token):
    response = client.post("/admin/overview", data={"token": token} if token else None)
    assert response.status_code == 401
    assert body_attr(response.get_data(as_text=True), "data-error") == "authentication_required"


# -- projector -----------------------------------------------------------------------------------
def _session(teacher, title="Lecture 1", **extra) -> int:
    now = datetime.now(timezone.utc)
    response = teacher.post("/api/class-sessions/", json={
        "title": title, "starts_at": now.isoformat(), "ends_at": (now + timedelta(hours=1)).isoformat(), **extra})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["class_session"]["id"]


def test_projector_page_carries_no_credentials_and_loads_its_script(launcher, moodle, client):
    teacher = launch_as(launcher, moodle, "instructor", sub="t1")
    session_id = _session(teacher)
    response = client.get(f"/projector/{session_id}")
    html = html_of(response)
    assert body_attr(html, "data-class-session-id") == str(session_id)
    assert "launch-token" not in html and teacher.token not in html
    assert 'src="/static/projector.js"' in html
    assert {"projector-code", "projector-qr", "checkin-count", "projector-course", "projector-title"} <= Page(html).ids
    assert response.headers["Cache-Control"] == "no-store" and response.headers["Referrer-Policy"] == "no-referrer"
    assert_no_outside_urls(html)


# What static/projector.js reads from each session it gets from GET /api/class-sessions/.
PROJECTOR_FIELDS = {"id", "course_title", "title", "starts_at", "ends_at", "timezone", "closed", "checkin_open",
                    "checkin_opened_at", "present_until", "late_until"}


def test_projector_reads_its_session_from_the_api(app, launcher, moodle, client):
    """The projector shows the session and its course from the teacher's session list: no page route of its own."""
    teacher = launch_as(launcher, moodle, "instructor", sub="t1")
    session_id = _session(teacher, "Thermodynamics")
    listed = teacher.get("/api/class-sessions/")
    assert listed.status_code == 200
    row = next(r for r in listed.get_json()["class_sessions"] if r["id"] == session_id)
    assert PROJECTOR_FIELDS <= row.keys()
    assert row["course_title"] == "Physics 101" and row["title"] == "Thermodynamics"
    assert teacher.get(f"/projector/{session_id}/context").status_code == 404  # the former context route is gone

    # A teacher of another course does not see it (the projector says so) and gets no code for it.
    elsewhere = launch_as(launcher, moodle, "instructor", sub="t2",
                          claims={LTI + "context": {"id": "other", "label": "OTH", "title": "Other course"}})
    assert session_id not in [r["id"] for r in elsewhere.get("/api/class-sessions/").get_json()["class_sessions"]]
    refused = elsewhere.post("/api/generate-code/", json={"class_session_id": session_id})
    assert refused.status_code == 404 and refused.get_json()["error"]["code"] == "not_found"
    student = launch_as(launcher, moodle, "learner", sub="s1")
    assert student.post("/api/generate-code/", json={"class_session_id": session_id}).status_code == 403
    assert app.test_client().get("/api/class-sessions/").status_code == 401  # no token, no cookie


def test_projector_script_calls_only_existing_routes(app):
    script = (ROOT / "static" / "projector.js").read_text()
    called = set(re.findall(r'"(/api/[a-z0-9/_-]+)"', script))
    assert {"/api/class-sessions/", "/api/generate-code/", "/api/qr-code/", "/api/get-session-submissions/"} <= called
    routes = {rule.rule for rule in app.url_map.iter_rules()}
    assert called <= routes
    assert "/context" not in script


# -- QR landing page -----------------------------------------------------------------------------
def test_checkin_landing_explains_how_to_check_in(client):
    html = html_of(client.get("/checkin/12345?code=abc234"))
    assert "your code is" in html and "ABC234" in html
    assert "landing-form" not in html and "csrf-token" not in html
    assert_no_outside_urls(html)


@pytest.mark.parametrize("code", ['"><script>alert(1)</script>', "../../etc", "A" * 40])
def test_checkin_landing_never_echoes_what_is_not_a_code(client, code):
    html = html_of(client.get("/checkin/1", query_string={"code": code}))
    assert "your code is" not in html and "<script>alert" not in html and "etc" not in html.split("<main", 1)[1]


def test_checkin_landing_checks_in_with_a_student_launch_session(launcher, moodle, client, app):
    teacher = launch_as(launcher, moodle, "instructor", sub="t1")
    session_id = _session(teacher, "Optics", latitude=41.5, longitude=-8.4, radius_m=200)
    code = teacher.post("/api/generate-code/", json={"class_session_id": session_id}).get_json()["code"]
    launcher.launch(moodle, "learner", sub="s1")  # the browser now holds the student's launch session

    response = client.get(f"/checkin/{session_id}", query_string={"code": code})
    html = html_of(response)
    assert "landing-form" in html and "Optics" in html and "Physics 101" in html
    assert re.search(r'id="landing-code"[^>]*value="' + code + '"', html)
    csrf_token = meta(html, "csrf-token")
    assert csrf_token and 'src="/static/checkin-landing.js"' in html
    assert_controls_labelled(html)
    checked = client.post("/api/submit-attendance/", json={"attendance_code": code, "class_session_id": session_id},
                          headers={"X-CSRFToken": csrf_token})
    assert checked.status_code == 201, checked.get_json()
    assert checked.get_json()["attendance"]["location_flag"] == "missing"

    # Another session id, or a teacher's session, gets the explanation only.
    assert "landing-form" not in html_of(client.get(f"/checkin/{session_id + 1}", query_string={"code": code}))
    launcher.launch(moodle, "instructor", sub="t1")
    assert "landing-form" not in html_of(client.get(f"/checkin/{session_id}", query_string={"code": code}))


# -- everywhere ----------------------------------------------------------------------------------
def test_static_assets_load_nothing_from_other_hosts():
    for path in sorted((ROOT / "static").rglob("*")):
        if path.suffix not in (".js", ".css"):
            continue
        text = path.read_text()
        name = path.relative_to(ROOT / "static")
        assert not re.search(r"https?://", text), f"{name} names an outside URL"
        assert "@import" not in text and "innerHTML" not in text, name


@pytest.mark.parametrize("role", ["instructor", "learner", "account_admin", "mentor"])
def test_every_launched_page_is_self_contained_and_labelled(launcher, moodle, role):
    html = html_of(launcher.launch(moodle, role))
    assert '<meta name="viewport"' in html and '<html lang="en">' in html
    assert_no_outside_urls(html)
    assert_controls_labelled(html)
