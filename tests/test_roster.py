"""The course roster from the LMS (NRPS), against a real loopback LMS: paging, leavers, roles, absences, fallbacks."""
from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from attendance.lms.grade_worker import deliver_due
from attendance.lms.roster import sync_if_stale
from attendance.models import Course, Enrollment, User
from extensions import db
from lti.store import get_store
from tests.support.api import launch_as
from tests.support.clock import MovableClock, store_time
from tests.support.lms import close, sync
from tests.support.platform import Platform

AGS = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
NRPS = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"


def teacher_of(launcher, lms, *, nrps_url: str | None = None, **kwargs):
    claims = lms.claims()
    if nrps_url:
        claims[NRPS] = dict(claims[NRPS], context_memberships_url=nrps_url)
    return launch_as(launcher, lms.platform, "instructor", sub="t", claims=claims, **kwargs)


def student_of(launcher, lms, sub: str):
    return launch_as(launcher, lms.platform, "learner", sub=sub, name=f"Member {sub}", claims=lms.claims())


def roster_requests(lms) -> list[str]:
    """The path + query of every NRPS request the LMS received, in order."""
    path = lms.base + "/memberships"
    return [r[1] for r in lms.platform.requests if r[1].split("?")[0] == path]


def enrollments(app) -> dict[str, tuple[str, bool, str]]:
    """sub -> (role, active, source)."""
    with app.app_context():
        rows = db.session.execute(select(User.sub, Enrollment.role, Enrollment.active, Enrollment.source)
                                  .join(Enrollment, Enrollment.user_id == User.id)).all()
        return {r.sub: (r.role, r.active, r.source) for r in rows}


def students(teacher) -> dict[str, dict]:
    listed = teacher.get("/api/students/").get_json()["students"]
    return {s["name"].removeprefix("Member "): s for s in listed}


def new_session(teacher, days_ago: float = 1.0) -> int:
    start = datetime.now(timezone.utc) - timedelta(days=days_ago)
    response = teacher.post("/api/class-sessions/", json={
        "title": "Lecture", "starts_at": start.isoformat(), "ends_at": (start + timedelta(hours=1)).isoformat()})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["class_session"]["id"]


def absentees(teacher, session: int) -> set[str]:
    subs = teacher.get("/api/get-session-submissions/", class_session_id=session).get_json()["submissions"]
    return {s["student"]["name"].removeprefix("Member ") for s in subs if s["status"] == "absent"}


def deliver_all(app) -> int:
    total = 0
    with app.app_context():
        while handled := deliver_due():
            total += handled
            db.session.remove()
    return total


def _wait_for(predicate, seconds: float) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


# -- paging ------------------------------------------------------------------------------------
@pytest.mark.parametrize("lms", ["moodle", "canvas"], indirect=True)
def test_paging_over_four_pages_keeps_the_mixed_case_cursor(app, launcher, lms):
    lms.add_member("t", "Instructor", name="Member t")
    for i in range(9):
        lms.add_member(f"m{i}", email=f"m{i}@example.edu")
    lms.page_size = 3
    # Moodle puts its own parameters in the memberships URL: they must survive too.
    teacher = teacher_of(launcher, lms, nrps_url=lms.memberships_url + "?rlid=Link-1")
    body = sync(teacher)
    assert (body["members"], body["added"], body["deactivated"]) == (10, 9, 0)
    assert body["roster"]["source"] == "nrps" and body["roster"]["error"] is None and body["roster"]["synced_at"]
    path = lms.base + "/memberships"
    assert roster_requests(lms) == [path + "?rlid=Link-1", path + "?cursor=Pg3", path + "?cursor=Pg6",
                                    path + "?cursor=Pg9"]
    listed = students(teacher)
    assert sorted(listed) == [f"m{i}" for i in range(9)]
    assert listed["m4"]["email"] == "m4@example.edu" and listed["m4"]["active"] is True
    # Every page carried the NRPS media type and a bearer token with the NRPS scope (else the LMS answers 406/403).
    for method, _, headers, _ in (r for r in lms.platform.requests if r[1].split("?")[0] == path):
        assert method == "GET" and headers["Authorization"].startswith("Bearer ")
    # A second sync changes nothing.
    again = sync(teacher)
    assert (again["members"], again["added"], again["updated"], again["deactivated"]) == (10, 0, 0, 0)


def test_link_header_with_several_relations_is_followed_by_next_only(app, launcher, lms):
    for i in range(7):
        lms.add_member(f"m{i}")
    lms.page_size = 2
    serve_page = lms.platform.handlers[lms.base + "/memberships"]

    def canvas_style(request):  # Canvas sends current, next, first and last in one header
        response = serve_page(request)
        links = [f'<{lms.memberships_url}?cursor=Pg0>; rel="first"', f'<{lms.memberships_url}?cursor=Pg6>; rel="last"',
                 f'<{request.url}>; rel="current"']
        if "Link" in response.headers:
            links.insert(1, response.headers["Link"])
        response.headers["Link"] = ", ".join(links)
        return response

    lms.platform.handlers[lms.base + "/memberships"] = canvas_style
    teacher = teacher_of(launcher, lms)
    assert sync(teacher)["members"] == 7
    assert [q.split("?")[-1] for q in roster_requests(lms)] == [
        roster_requests(lms)[0].split("?")[-1], "cursor=Pg2", "cursor=Pg4", "cursor=Pg6"]


def test_a_next_page_on_another_host_is_refused_and_nothing_changes(app, launcher, lms):
    lms.add_member("t", "Instructor")
    for sub in ("m0", "m1", "m2"):
        lms.add_member(sub)
    teacher = teacher_of(launcher, lms)
    sync(teacher)
    before = enrollments(app)
    elsewhere = Platform(product="moodle")  # a server on another host that must never see the bearer token
    try:
        for sub in ("m3", "m4"):
            lms.add_member(sub)
        lms.members = [m for m in lms.members if m["user_id"] != "m0"]  # would be deactivated if the sync went through
        lms.page_size = 2
        serve_page = lms.platform.handlers[lms.base + "/memberships"]

        def hijacked(request):
            response = serve_page(request)
            if "Link" in response.headers:
                response.headers["Link"] = f'<http://localhost:{elsewhere.port}/memberships?cursor=Pg2>; rel="next"'
            return response

        lms.platform.handlers[lms.base + "/memberships"] = hijacked
        body = sync(teacher, 502)
        assert body["success"] is False and body["error"]["code"] == "roster_unavailable"
        assert "another host" in body["error"]["message"]
        assert elsewhere.requests == []
        assert enrollments(app) == before
        roster = teacher.get("/api/grades/").get_json()["roster"]
        assert roster["source"] == "nrps" and "another host" in roster["error"]
        # Closing a session goes on with the roster it has, and says why it could not refresh it.
        session = new_session(teacher)
        closed = close(teacher, session)
        assert "another host" in closed["roster_error"]
        assert absentees(teacher, session) == {"m0", "m1", "m2"}
        assert elsewhere.requests == []
        # The LMS is fixed: the next sync goes through and clears the error.
        lms.platform.handlers[lms.base + "/memberships"] = serve_page
        body = sync(teacher)
        assert (body["added"], body["deactivated"]) == (2, 1) and body["roster"]["error"] is None
    finally:
        elsewhere.stop()


# -- who is in the course ----------------------------------------------------------------------
def test_members_removed_between_syncs_become_inactive_and_may_come_back(app, launcher, lms):
    lms.add_member("t", "Instructor")
    for sub in ("m0", "m1", "m2"):
        lms.add_member(sub)
    teacher = teacher_of(launcher, lms)
    student_of(launcher, lms, "m1")  # launched once: a launch enrollment, still the roster's to end
    assert sync(teacher)["added"] == 2
    lms.members = [m for m in lms.members if m["user_id"] not in ("m1", "m2")]
    body = sync(teacher)
    assert (body["members"], body["deactivated"]) == (2, 2)
    state = enrollments(app)
    assert state["m0"][1] is True and state["m1"][1] is False and state["m2"][1] is False
    assert {s: v["active"] for s, v in students(teacher).items()} == {"m0": True, "m1": False, "m2": False}
    session = new_session(teacher)
    assert close(teacher, session)["absent_count"] == 1
    assert absentees(teacher, session) == {"m0"}
    # m2 is enrolled again in the LMS.
    lms.add_member("m2")
    body = sync(teacher)
    assert (body["updated"], body["deactivated"]) == (1, 0)
    assert enrollments(app)["m2"][1] is True


def test_an_empty_roster_deactivates_nobody(app, launcher, lms):
    lms.add_member("t", "Instructor")
    lms.add_member("m0")
    teacher = teacher_of(launcher, lms)
    sync(teacher)
    lms.members = []  # a platform fault: a course always has its teacher
    assert sync(teacher)["deactivated"] == 0
    assert enrollments(app)["m0"][1] is True


def test_inactive_status_and_roles_are_mapped(app, launcher, lms):
    lms.add_member("t", "Instructor")
    lms.add_member("t2", "Instructor", name="Co-teacher")
    lms.add_member("ta", name="Assistant", roles=[
        "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor",
        "http://purl.imsglobal.org/vocab/lis/v2/membership/Instructor#TeachingAssistant"])
    lms.add_member("m0")
    lms.add_member("m1", status="Inactive")
    lms.add_member("short", name="Member short", roles=["Learner"])  # short role names, as some platforms send
    teacher = teacher_of(launcher, lms)
    sync(teacher)
    state = enrollments(app)
    assert state["t2"][:2] == ("teacher", True) and state["ta"][:2] == ("teacher", True)
    assert state["m0"] == ("student", True, "roster")
    assert state["m1"] == ("student", False, "roster")
    assert state["short"][:2] == ("student", True)
    assert set(students(teacher)) == {"m0", "m1", "short"}  # teachers are not students
    session = new_session(teacher)
    close(teacher, session)
    assert absentees(teacher, session) == {"m0", "short"}  # not the inactive member, not the teachers
    # The member is active again in the LMS.
    for member in lms.members:
        if member["user_id"] == "m1":
            member["status"] = "Active"
    assert sync(teacher)["updated"] == 1
    assert enrollments(app)["m1"][:2] == ("student", True)
    with app.app_context():
        user = db.session.scalar(select(User).filter_by(sub="t2"))
        assert user.name == "Co-teacher"


@pytest.mark.parametrize("lms", ["moodle", "canvas"], indirect=True)
def test_close_marks_absent_every_rostered_student_who_never_launched_and_grades_them(app, launcher, lms):
    lms.add_member("t", "Instructor")
    for sub in ("s0", "m1", "m2"):
        lms.add_member(sub, name=f"Member {sub}")
    lms.add_member("gone", status="Inactive", name="Member gone")
    teacher = teacher_of(launcher, lms)
    s0 = student_of(launcher, lms, "s0")
    now = datetime.now(timezone.utc)
    session = teacher.post("/api/class-sessions/", json={
        "title": "L", "starts_at": (now - timedelta(minutes=1)).isoformat(),
        "ends_at": (now + timedelta(hours=1)).isoformat()}).get_json()["class_session"]["id"]
    code = teacher.post("/api/generate-code/", json={"class_session_id": session}).get_json()["code"]
    assert s0.post("/api/submit-attendance/", json={"attendance_code": code}).status_code == 201
    assert roster_requests(lms) == []  # nobody read the roster yet: close-session must
    closed = close(teacher, session)
    assert closed["absent_count"] == 2 and closed["roster_error"] is None
    assert len(roster_requests(lms)) == 1
    assert absentees(teacher, session) == {"m1", "m2"}
    deliver_all(app)
    scores = lms.final_scores()
    assert {k: scores[k] for k in ("s0", "m1", "m2")} == {"s0": 100.0, "m1": 0.0, "m2": 0.0}
    assert not lms.refused
    graded = {g["student"]["name"].removeprefix("Member "): g for g in teacher.get("/api/grades/").get_json()["grades"]}
    assert graded["m1"]["grade"]["comment"] == "0 of 1 sessions attended"
    assert graded["m1"]["sync"]["state"] == "delivered"


def test_a_member_who_left_gets_no_new_absence_and_no_lowered_grade(app, launcher, lms):
    lms.add_member("t", "Instructor")
    for sub in ("m0", "m1"):
        lms.add_member(sub, name=f"Member {sub}")
    teacher = teacher_of(launcher, lms)
    sync(teacher)
    first = new_session(teacher, 2)
    for student in students(teacher).values():
        assert teacher.post("/api/mark-attendance/", json={"class_session_id": first, "student_id": student["id"],
                                                          "status": "present"}).status_code == 200
    close(teacher, first)
    deliver_all(app)
    assert lms.final_scores() == {"m0": 100.0, "m1": 100.0}
    lms.members = [m for m in lms.members if m["user_id"] != "m1"]  # m1 dropped the course
    second = new_session(teacher, 1)
    close(teacher, second)
    assert absentees(teacher, second) == {"m0"}
    deliver_all(app)
    assert lms.final_scores() == {"m0": 50.0, "m1": 100.0}  # m1's grade stays what it was when they left


# -- without NRPS ------------------------------------------------------------------------------
def test_without_nrps_close_falls_back_to_students_who_launched(app, launcher, lms):
    lms.add_member("never", name="Member never")  # in the LMS, but the tool may not read the roster
    claims = {AGS: lms.claims()[AGS]}
    teacher = launch_as(launcher, lms.platform, "instructor", sub="t", claims=claims, nrps=False)
    for sub in ("s0", "s1"):
        launch_as(launcher, lms.platform, "learner", sub=sub, name=f"Member {sub}", claims=claims, nrps=False)
    session = new_session(teacher)
    s0 = students(teacher)["s0"]["id"]
    teacher.post("/api/mark-attendance/", json={"class_session_id": session, "student_id": s0, "status": "late"})
    closed = close(teacher, session)
    assert closed["absent_count"] == 1 and closed["roster_error"] is None
    assert absentees(teacher, session) == {"s1"}
    assert roster_requests(lms) == []
    body = teacher.get("/api/grades/").get_json()
    assert body["roster"]["source"] == "launches" and body["roster"]["synced_at"] is None
    assert {g["student"]["name"] for g in body["grades"]} == {"Member s0", "Member s1"}
    refused = teacher.post("/api/roster/sync/")
    assert refused.status_code >= 400 and refused.get_json()["success"] is False
    assert roster_requests(lms) == []
    deliver_all(app)
    assert lms.final_scores() == {"s0": 50.0, "s1": 0.0}


def test_roster_sync_endpoint_is_for_teachers_only(app, launcher, lms):
    lms.add_member("m0")
    teacher = teacher_of(launcher, lms)
    student = student_of(launcher, lms, "s9")
    response = student.post("/api/roster/sync/")
    assert response.status_code == 403 and response.get_json()["error"]["code"] == "permission_denied"
    assert roster_requests(lms) == []
    assert sync(teacher)["members"] == 1


def test_roster_outage_is_reported_not_a_crash(app, launcher, lms):
    lms.add_member("m0")
    teacher = teacher_of(launcher, lms)
    sync(teacher)
    lms.outage = 503
    body = sync(teacher, 502)
    assert body["error"]["code"] == "roster_unavailable"
    assert enrollments(app)["m0"][1] is True
    closed = close(teacher, new_session(teacher))
    assert closed["roster_error"] and closed["absent_count"] == 1  # the roster it had still counts


# -- on teacher launch, throttled --------------------------------------------------------------
INTERVAL = 3  # seconds: ROSTER_SYNC_INTERVAL for these tests (moved past with `pass_interval`, not slept)


def _synced_at(app):
    with app.app_context():
        return db.session.scalar(select(Course.roster_synced_at))


@pytest.fixture
def pass_interval(app, monkeypatch):
    """Move time past the sync interval: `attendance.clock.now`, and the store that holds the per-course lock."""
    moving = MovableClock(monkeypatch)
    with app.app_context():
        let_pass = store_time(get_store(), monkeypatch)  # Redis expires the lock in real time: that one sleeps

    def past_interval():
        moving.advance(INTERVAL + 0.3)
        let_pass(INTERVAL + 0.3)
    return past_interval


def test_sync_if_stale_reads_at_most_once_per_interval_and_one_at_a_time(app, launcher, lms, pass_interval):
    lms.add_member("t", "Instructor")
    lms.add_member("m0")
    teacher_of(launcher, lms)
    app.config.update(ROSTER_SYNC_ON_LAUNCH=True, ROSTER_SYNC_INTERVAL=INTERVAL)
    with app.app_context():
        course_id = db.session.scalar(select(Course.id))
    assert roster_requests(lms) == []

    def stale_check():
        with app.app_context():
            sync_if_stale(app, course_id)

    # Many teachers open the tool at the same moment: one roster read.
    threads = [threading.Thread(target=stale_check) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert _wait_for(lambda: "m0" in enrollments(app) and _synced_at(app) is not None, 10)
    time.sleep(0.3)
    assert len(roster_requests(lms)) == 1
    # Within the interval: nothing more.
    stale_check()
    stale_check()
    time.sleep(0.5)
    assert len(roster_requests(lms)) == 1
    # After it: one more read, which sees the new member.
    lms.add_member("m1")
    pass_interval()
    stale_check()
    assert _wait_for(lambda: "m1" in enrollments(app), 10)
    assert len(roster_requests(lms)) == 2
    # Turned off: never.
    app.config["ROSTER_SYNC_ON_LAUNCH"] = False
    pass_interval()
    stale_check()
    time.sleep(0.5)
    assert len(roster_requests(lms)) == 2


def test_teacher_launch_reads_the_roster_in_the_background_throttled(app, launcher, lms, pass_interval):
    app.config.update(ROSTER_SYNC_ON_LAUNCH=True, ROSTER_SYNC_INTERVAL=INTERVAL)
    lms.add_member("t", "Instructor")
    lms.add_member("m0", name="Member m0")
    started = time.time()
    teacher = teacher_of(launcher, lms)
    assert time.time() - started < 5  # the launch page does not wait for the roster
    assert _wait_for(lambda: len(roster_requests(lms)) == 1 and "m0" in enrollments(app), 10)
    assert "m0" in students(teacher)
    # More launches within the interval, by the teacher and by a student, read nothing more.
    teacher_of(launcher, lms)
    student_of(launcher, lms, "m0")
    time.sleep(0.5)
    assert len(roster_requests(lms)) == 1
    # A student's launch never reads the roster, even when it is stale.
    pass_interval()
    student_of(launcher, lms, "m0")
    time.sleep(0.5)
    assert len(roster_requests(lms)) == 1
    lms.add_member("m1", name="Member m1")
    teacher_of(launcher, lms)
    assert _wait_for(lambda: "m1" in enrollments(app), 10)
    assert len(roster_requests(lms)) == 2
    time.sleep(0.3)  # let the background thread end before the database goes
