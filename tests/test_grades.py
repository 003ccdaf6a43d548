"""Grades reach the LMS gradebook through AGS, from a loopback LMS that checks what Moodle and Canvas check."""
from datetime import datetime, timedelta, timezone

import pytest

from attendance.lms.grade_worker import deliver_due
from tests.support.api import launch_as
from tests.support.lms_services import LmsServices


@pytest.fixture
def lms(request, app, client):
    product = getattr(request, "param", "moodle")
    platform = request.getfixturevalue(product)
    return LmsServices(platform, tool_jwks=lambda: client.get("/lti/jwks").get_json())


def _class(teacher, students, statuses):
    now = datetime.now(timezone.utc)
    session = teacher.post("/api/class-sessions/", json={
        "title": "L", "starts_at": (now - timedelta(minutes=1)).isoformat(),
        "ends_at": (now + timedelta(hours=1)).isoformat()}).get_json()["class_session"]["id"]
    code = teacher.post("/api/generate-code/", json={"class_session_id": session}).get_json()["code"]
    for student, status in zip(students, statuses):
        if status is not None:
            assert student.post("/api/submit-attendance/", json={"attendance_code": code}).status_code == 201
    return session


@pytest.mark.parametrize("lms", ["moodle", "canvas"], indirect=True)
def test_close_delivers_every_grade(app, launcher, lms):
    platform = lms.platform
    claims = lms.claims()
    for sub in ("s0", "s1", "s2"):
        lms.add_member(sub)
    lms.add_member("t", "Instructor")
    teacher = launch_as(launcher, platform, "instructor", sub="t", claims=claims)
    students = [launch_as(launcher, platform, "learner", sub=f"s{i}", claims=claims) for i in range(3)]
    session = _class(teacher, students, ["present", "present", None])
    assert teacher.post("/api/close-session/", json={"class_session_id": session}).get_json()["absent_count"] == 1
    with app.app_context():
        assert deliver_due() == 3
    assert lms.final_scores() == {"s0": 100.0, "s1": 100.0, "s2": 0.0}
    [item] = lms.line_items.values()
    assert (item["label"], item["tag"], item["scoreMaximum"], item["resourceLinkId"]) == ("Attendance", "attendance", 100, "link-1")
    assert {s["userId"]: s["comment"] for s in lms.scores} == {
        "s0": "1 of 1 sessions attended", "s1": "1 of 1 sessions attended", "s2": "0 of 1 sessions attended"}
    for score in lms.scores:
        assert score["activityProgress"] == "Completed" and score["gradingProgress"] == "FullyGraded"
        assert "." in score["timestamp"] and score["timestamp"].endswith("Z")
    assert [r["scope"].count("lti-ags") for r in lms.token_requests].count(2) == 1  # one AGS token, reused
    grades = teacher.get("/api/grades/").get_json()
    assert [g["sync"]["state"] for g in grades["grades"]] == ["delivered"] * 3
    # A later validation moves one grade and sends only that one, with a newer timestamp.
    subs = teacher.get("/api/get-session-submissions/", class_session_id=session).get_json()["submissions"]
    absent = next(s for s in subs if s["status"] == "absent")
    teacher.post("/api/validate-attendance/", json={"attendance_id": absent["id"], "status": "late"})
    with app.app_context():
        assert deliver_due() == 1
    assert lms.final_scores()["s2"] == 50.0
    assert not lms.refused
