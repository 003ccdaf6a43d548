"""Grades that are right in every corner (issue 8, items 1–4, 6, 7, 17, 18 and the grade lease).

Each test failed on the code before its fix. Everything runs against the loopback LMS of
tests/support/lms_services.py over real HTTP; time moves through `attendance.clock.now` only.
"""
from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from attendance.lms.grade_worker import deliver_due
from attendance.models import EnrollmentPeriod, GradeDelivery
from extensions import db
from tests.support.api import assert_error, launch_as
from tests.support.clock import MovableClock
from tests.support.lms import (
    ags_token_requests,
    close,
    deliver_all,
    deliveries,
    mark,
    new_session,
    posts_by_user,
    start_course,
    sync,
)


def session_at(teacher, start: datetime) -> int:
    response = teacher.post("/api/class-sessions/", json={
        "title": f"Lecture {start:%d %H%M}", "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(hours=1)).isoformat()})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["class_session"]["id"]


def students_by_name(teacher) -> dict[str, int]:
    return {s["name"].removeprefix("Student ").removeprefix("Member "): s["id"]
            for s in teacher.get("/api/students/").get_json()["students"]}


# -- 1. a grade that becomes "nothing counted" -------------------------------------------------------
def test_grade_that_becomes_nothing_counted_is_cleared_in_the_lms(app, launcher, lms):
    teacher, ids, _ = start_course(launcher, lms, ["s0"])
    session = new_session(teacher)
    close(teacher, session)  # s0 absent: 0 / 100 in the gradebook
    deliver_all(app)
    assert lms.final_scores() == {"s0": 0.0}
    mark(teacher, session, ids["s0"], "excused")  # the only absence excused: nothing counts any more
    deliver_all(app)
    last = posts_by_user(lms)["s0"][-1]
    assert "scoreGiven" not in last and last["gradingProgress"] == "NotReady"
    row = deliveries(app)[ids["s0"]]
    assert row.state == "delivered" and row.last_score is None


# -- 2. points_late through the course settings --------------------------------------------------------
def test_points_late_changed_in_course_settings_is_sent_again(app, launcher, lms):
    teacher, ids, _ = start_course(launcher, lms, ["s0"])
    session = new_session(teacher)
    mark(teacher, session, ids["s0"], "late")
    close(teacher, session)
    deliver_all(app)
    assert lms.final_scores() == {"s0": 50.0}
    assert teacher.post("/api/course-settings/", json={"points_late": 0.25}).status_code == 200
    assert deliveries(app)[ids["s0"]].state == "pending"
    deliver_all(app)
    assert lms.final_scores() == {"s0": 25.0}


# -- 3. denominator "scheduled" ------------------------------------------------------------------------
def test_scheduled_denominator_sends_grades_again_when_a_session_is_added(app, launcher, lms):
    teacher, ids, _ = start_course(launcher, lms, ["s0"])
    first = new_session(teacher, days_ago=2)
    mark(teacher, first, ids["s0"], "present")
    assert teacher.post("/api/grade-policy/", json={"denominator": "scheduled"}).status_code == 200
    deliver_all(app)
    assert lms.final_scores() == {"s0": 100.0}
    new_session(teacher, days_ago=1, future=True)  # one more scheduled session, not attended: the grade halves
    assert deliveries(app)[ids["s0"]].state == "pending"
    deliver_all(app)
    assert lms.final_scores() == {"s0": 50.0}


# -- 4. enrolment periods ------------------------------------------------------------------------------
def test_student_who_joined_mid_term_is_not_charged_for_earlier_sessions(app, launcher, lms):
    teacher, ids, _ = start_course(launcher, lms, ["early"])
    now = datetime.now(timezone.utc)
    for days in (20, 13):  # two sessions held and closed before the newcomer's first launch
        close(teacher, session_at(teacher, now - timedelta(days=days)))
    newcomer = launch_as(launcher, lms.platform, "learner", sub="newcomer", name="Student newcomer",
                         claims=lms.claims(), nrps=False)
    assert newcomer.get("/api/student/attendance-history/").status_code == 200
    ids = students_by_name(teacher)
    third = session_at(teacher, now - timedelta(hours=2))
    mark(teacher, third, ids["newcomer"], "present")
    mark(teacher, third, ids["early"], "present")
    close(teacher, third)
    grades = {g["student"]["id"]: g["grade"] for g in teacher.get("/api/grades/").get_json()["grades"]}
    assert grades[ids["newcomer"]]["score"] == 100.0 and grades[ids["newcomer"]]["counted"] == 1
    assert grades[ids["early"]]["score"] == pytest.approx(33.33)  # enrolled all along: absent twice


def test_student_who_left_and_came_back_is_not_charged_for_the_time_away(app, launcher, lms, monkeypatch):
    clock = MovableClock(monkeypatch)
    lms.add_member("t", "Instructor")
    lms.add_member("s1", name="Member s1")
    lms.add_member("s2", name="Member s2")
    teacher = launch_as(launcher, lms.platform, "instructor", sub="t", claims=lms.claims())
    sync(teacher)
    ids = students_by_name(teacher)
    base = clock.now()
    before = session_at(teacher, base - timedelta(hours=5))
    for sub in ("s1", "s2"):
        mark(teacher, before, ids[sub], "present")
    close(teacher, before)
    lms.members = [m for m in lms.members if m["user_id"] != "s1"]  # s1 leaves the course
    sync(teacher)
    away = session_at(teacher, base + timedelta(hours=1))
    clock.advance(2 * 3600)
    mark(teacher, away, ids["s2"], "present")
    assert close(teacher, away)["absent_count"] == 0  # s1 is not in the course: not recorded absent
    lms.add_member("s1", name="Member s1")  # ...and comes back
    sync(teacher)
    after = session_at(teacher, base + timedelta(hours=3))
    mark(teacher, after, ids["s1"], "present")
    close(teacher, after)
    grades = {g["student"]["id"]: g["grade"] for g in teacher.get("/api/grades/").get_json()["grades"]}
    assert grades[ids["s1"]]["score"] == 100.0 and grades[ids["s1"]]["counted"] == 2
    with app.app_context():
        periods = db.session.scalars(select(EnrollmentPeriod).where(EnrollmentPeriod.user_id == ids["s1"])
                                     .order_by(EnrollmentPeriod.started_at)).all()
        assert [(p.ended_at is None) for p in periods] == [False, True]


# -- 6, 11. one validator for the policy ---------------------------------------------------------------
@pytest.mark.parametrize("path, body, field", [
    ("/api/grade-policy/", {"points_late": 2}, "points_late"),                 # late above present (1)
    ("/api/grade-policy/", {"points_present": 0.5}, "points_late"),           # present below the stored late (0.5 ok)
    ("/api/grade-policy/", {"points_absent": 0.75}, "points_absent"),
    ("/api/course-settings/", {"late_minutes": 5}, "late_minutes"),            # shorter than present (10)
    ("/api/course-settings/", {"present_minutes": 45}, "late_minutes"),        # longer than the stored late (30)
])
def test_policy_fields_are_validated_together_and_nothing_changes(app, launcher, lms, path, body, field):
    teacher, _, _ = start_course(launcher, lms, ["s0"])
    if body == {"points_present": 0.5}:
        assert teacher.post(path, json={"points_late": 0.75}).status_code == 200
        body = {"points_present": 0.5}
    before = (teacher.get("/api/grade-policy/").get_json()["policy"],
              teacher.get("/api/course-settings/").get_json()["settings"])
    assert_error(teacher.post(path, json=body), 422, "validation_error", field)
    after = (teacher.get("/api/grade-policy/").get_json()["policy"],
             teacher.get("/api/course-settings/").get_json()["settings"])
    assert after == before


# -- 7. scoreGiven on the line item's scale ------------------------------------------------------------
def test_score_given_uses_the_score_maximum(own_lms):
    app, launcher, services = own_lms(GRADE_SCORE_MAXIMUM=10)
    teacher, ids, _ = start_course(launcher, services, ["s0", "s1"])
    session = new_session(teacher)
    mark(teacher, session, ids["s0"], "present")
    mark(teacher, session, ids["s1"], "late")
    close(teacher, session)
    deliver_all(app)
    sent = {user: scores[-1] for user, scores in posts_by_user(services).items()}
    assert (sent["s0"]["scoreGiven"], sent["s0"]["scoreMaximum"]) == (10, 10)
    assert (sent["s1"]["scoreGiven"], sent["s1"]["scoreMaximum"]) == (5, 10)


# -- 17. a demoted teacher ------------------------------------------------------------------------------
def test_teacher_demoted_in_the_lms_loses_write_powers_before_the_token_expires(own_lms):
    app, launcher, services = own_lms(ACTIVE_CHECK_SECONDS=0)
    services.add_member("t", "Instructor")
    services.add_member("t2", "Instructor")
    boss = launch_as(launcher, services.platform, "instructor", sub="t2", claims=services.claims())
    demoted = launch_as(launcher, services.platform, "instructor", sub="t", claims=services.claims())
    assert new_session(demoted)
    services.members = [m for m in services.members if m["user_id"] != "t"]
    services.add_member("t", "Learner")  # the LMS now says Learner
    sync(boss)
    now = datetime.now(timezone.utc)
    response = demoted.post("/api/class-sessions/", json={
        "title": "x", "starts_at": now.isoformat(), "ends_at": (now + timedelta(hours=1)).isoformat()})
    assert_error(response, 403, "permission_denied")
    assert new_session(boss)  # the teacher who still is one keeps working


# -- 18. a 403 for a no-longer-valid token (Open edX) --------------------------------------------------
def test_a_403_for_a_revoked_token_renews_it_once_and_retry_uses_a_new_one(app, launcher, lms):
    lms.invalid_token_status = 403
    teacher, ids, _ = start_course(launcher, lms, ["s0"])
    session = new_session(teacher)
    close(teacher, session)
    deliver_all(app)
    assert len(ags_token_requests(lms)) == 1
    lms.tokens.clear()  # the LMS changed its keys: the cached token is refused with 403
    mark(teacher, session, ids["s0"], "present")
    deliver_all(app)
    assert len(ags_token_requests(lms)) == 2 and lms.final_scores() == {"s0": 100.0}
    # Refused every time: the row fails, and "retry" later does not reuse the refused token.
    lms.revoke_tokens_on_scores()
    mark(teacher, session, ids["s0"], "late")
    deliver_all(app)
    assert deliveries(app)[ids["s0"]].last_status == 403
    lms.revoke_tokens_on_scores(False)
    tokens = len(ags_token_requests(lms))
    assert teacher.post("/api/grades/retry/", json={}).status_code == 200
    deliver_all(app)
    assert len(ags_token_requests(lms)) == tokens + 1
    assert lms.final_scores() == {"s0": 50.0}


# -- the grade lease during one slow post ----------------------------------------------------------------
def test_lease_is_renewed_while_one_slow_post_is_in_flight(own_lms):
    app, launcher, services = own_lms(GRADE_CLAIM_SECONDS=0.6)
    teacher, ids, _ = start_course(launcher, services, ["s0"])
    close(teacher, new_session(teacher))
    original = services._lineitem
    in_flight, release = threading.Event(), threading.Event()

    def slow(request):
        in_flight.set()
        release.wait(5)
        return original(request)

    services._lineitem = slow
    worker = threading.Thread(target=deliver_all, args=(app,))
    worker.start()
    try:
        assert in_flight.wait(5)
        time.sleep(1.5)  # more than twice the lease: it must have been renewed meanwhile
        with app.app_context():
            row = db.session.scalar(select(GradeDelivery).where(GradeDelivery.student_id == ids["s0"]))
            assert row.claimed_until is not None and row.claimed_until > datetime.now(timezone.utc)
            assert deliver_due() == 0  # a second worker finds nothing to take
            db.session.remove()
    finally:
        release.set()
        worker.join(10)
    assert len(posts_by_user(services)["s0"]) == 1


def test_scheduled_denominator_sends_the_grade_again_after_a_check_in(app, launcher, lms):
    teacher, ids, students = start_course(launcher, lms, ["s0"])
    assert teacher.post("/api/grade-policy/", json={"denominator": "scheduled"}).status_code == 200
    now = datetime.now(timezone.utc)
    session = session_at(teacher, now + timedelta(minutes=1))
    deliver_all(app)
    assert lms.final_scores() == {"s0": 0.0}  # one scheduled session, not attended yet
    code = teacher.post("/api/generate-code/", json={"class_session_id": session}).get_json()["code"]
    checked = students["s0"].post("/api/submit-attendance/", json={"attendance_code": code})
    assert checked.status_code == 201, checked.get_json()
    assert deliveries(app)[ids["s0"]].state == "pending"
    deliver_all(app)
    assert lms.final_scores() == {"s0": 100.0}


# -- 10. a session's late window judged with the course's present window --------------------------------
def test_session_late_window_shorter_than_the_course_present_window_is_refused(app, launcher, lms):
    teacher, _, _ = start_course(launcher, lms, ["s0"])
    now = datetime.now(timezone.utc)
    before = teacher.get("/api/class-sessions/").get_json()["class_sessions"]
    response = teacher.post("/api/class-sessions/", json={
        "title": "Short", "starts_at": now.isoformat(), "ends_at": (now + timedelta(hours=1)).isoformat(),
        "late_minutes": 5})  # the course's present window is 10 minutes
    assert_error(response, 422, "validation_error", "late_minutes")
    assert teacher.get("/api/class-sessions/").get_json()["class_sessions"] == before
