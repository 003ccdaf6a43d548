"""The whole class: teacher opens check-in, students check in, teacher validates and closes."""
from datetime import datetime, timedelta, timezone

from tests.support.api import launch_as


def test_class_from_start_to_close(launcher, moodle):
    teacher = launch_as(launcher, moodle, "instructor", sub="t1")
    students = [launch_as(launcher, moodle, "learner", sub=f"s{i}") for i in range(3)]
    now = datetime.now(timezone.utc)
    created = teacher.post("/api/class-sessions/", json={
        "title": "Lecture 1", "starts_at": (now - timedelta(minutes=2)).isoformat(),
        "ends_at": (now + timedelta(hours=1)).isoformat(), "latitude": 41.5369, "longitude": -8.4239, "radius_m": 80})
    assert created.status_code == 201, created.get_json()
    session_id = created.get_json()["class_session"]["id"]
    code = teacher.post("/api/generate-code/", json={"class_session_id": session_id}).get_json()
    assert len(code["code"]) == 6
    first = students[0].post("/api/submit-attendance/", data={
        "attendance_code": code["code"], "simulated_latitude": "41.5369", "simulated_longitude": "-8.4239"})
    assert first.status_code == 201, first.get_json()
    assert first.get_json()["attendance"]["status"] == "present"
    far = students[1].post("/api/submit-attendance/", json={
        "attendance_code": code["code"].lower(), "latitude": 41.6, "longitude": -8.4, "accuracy_m": 20})
    assert far.status_code == 201
    again = students[0].post("/api/submit-attendance/", json={"attendance_code": code["code"]})
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "already_submitted"
    wrong = students[2].post("/api/submit-attendance/", json={"attendance_code": "AAAAAA"})
    assert wrong.status_code == 400 and wrong.get_json()["error"]["code"] == "invalid_attendance_code"

    subs = teacher.get("/api/get-session-submissions/", class_session_id=session_id).get_json()["submissions"]
    assert [s["location_flag"] for s in subs] == ["inside", "outside"]
    assert subs[1]["risk"]["level"] in ("medium", "high")
    validated = teacher.post("/api/validate-attendance/", json={"attendance_id": subs[1]["id"], "status": "late"})
    assert validated.get_json()["attendance"]["status"] == "late"
    ai = teacher.post("/api/run-ai-validation/", json={"class_session_id": session_id}).get_json()
    assert {r["attendance_id"] for r in ai["results"]} == {s["id"] for s in subs}
    closed = teacher.post("/api/close-session/", json={"class_session_id": session_id}).get_json()
    assert closed["absent_count"] == 1
    history = students[2].get("/api/student/attendance-history/").get_json()
    assert [h["status"] for h in history["history"]] == ["absent"]
    assert history["summary"][0]["percentage"] == 0.0
    assert students[0].get("/api/student/attendance-history/").get_json()["summary"][0]["percentage"] == 100.0


def test_code_refresh_never_reopens_a_stopped_checkin(launcher, moodle):
    teacher = launch_as(launcher, moodle, "instructor", sub="t1")
    session_id = teacher.post("/api/generate-code/", json={}).get_json()["class_session_id"]  # ad-hoc, opened
    assert teacher.post("/api/generate-code/", json={"class_session_id": session_id, "reopen": False}).status_code == 200
    teacher.post("/api/stop-checkin/", json={"class_session_id": session_id})
    refused = teacher.post("/api/generate-code/", json={"class_session_id": session_id, "reopen": False})
    assert refused.status_code == 409 and refused.get_json()["error"]["code"] == "checkin_not_open"
    sessions = teacher.get("/api/class-sessions/").get_json()["class_sessions"]
    assert [s["checkin_open"] for s in sessions] == [False]
    assert teacher.post("/api/generate-code/", json={"class_session_id": session_id}).status_code == 200
    assert [s["checkin_open"] for s in teacher.get("/api/class-sessions/").get_json()["class_sessions"]] == [True]
