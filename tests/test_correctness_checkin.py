"""Check-in windows, codes, justifications and races that must come out right (issue 8): each test names
the bug it shows. Time is under the test's control (attendance.clock.now); races run on real threads,
on SQLite and on PostgreSQL, with a gate that holds one thread's INSERT so the losing interleaving
happens every time instead of once in a while.
"""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from io import BytesIO
from pathlib import Path

import pytest
from sqlalchemy import event, select

from attendance import codes
from attendance.models import AttendanceRecord, ClassSession, Justification
from extensions import db
from tests.support.api import ApiUser, assert_error
from tests.support.checkin import T0, Course, clock, course, iso, platform, status_of, submit  # noqa: F401 - fixtures
from tests.support.launch import register_platform

UTC = timezone.utc



def listed(course: Course, session_id: int) -> dict:
    sessions = course.teacher.get("/api/class-sessions/").get_json()["class_sessions"]
    return next(s for s in sessions if s["id"] == session_id)


def student_id(course: Course, n: int) -> int:
    course.student(n)
    students = course.teacher.get("/api/students/").get_json()["students"]
    return next(s["id"] for s in students if s["name"] == f"Student {n}")


def record_of(app, session_id: int, user_id: int) -> AttendanceRecord | None:
    with app.app_context():
        row = db.session.scalar(select(AttendanceRecord).filter_by(class_session_id=session_id, student_id=user_id))
        if row is not None:
            db.session.expunge(row)
        db.session.remove()
    return row


def justify(student: ApiUser, session_id: int, reason: str = "Doctor's appointment"):
    return student.post("/api/submit-justification/", json={"class_session_id": session_id, "reason": reason})


def review(teacher: ApiUser, justification_id: int, decision: str = "approve"):
    return teacher.post("/api/review-justification/", json={"justification_id": justification_id,
                                                                    "decision": decision})


def on_postgres(app) -> bool:
    return app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql")


# -- the race harness --------------------------------------------------------------------------
class InsertGate:
    """Hold one thread's first INSERT into a table until released: the interleaving a race needs, every time."""

    def __init__(self, app, table: str, thread_name: str):
        self.prefix, self.thread_name = f"INSERT INTO {table.upper()} ", thread_name
        self.reached, self.release = threading.Event(), threading.Event()
        with app.app_context():
            self.engine = db.engine
        event.listen(self.engine, "before_cursor_execute", self._hold)

    def _hold(self, _conn, _cursor, statement, _params, _context, _many):
        if (threading.current_thread().name == self.thread_name and not self.reached.is_set()
                and statement.lstrip().upper().startswith(self.prefix)):
            self.reached.set()
            self.release.wait(30)  # a safety net only: the other side releases as soon as it is done

    def close(self) -> None:
        self.release.set()
        event.remove(self.engine, "before_cursor_execute", self._hold)


def race(app, first, second, gate_table: str | None = None) -> tuple:
    """Run first and second on two threads released by one barrier.

    With gate_table, first is held at its INSERT into that table until second has finished: second
    slips in between first's check and first's write. Without it, the two run freely.
    """
    gate = InsertGate(app, gate_table, "first") if gate_table else None
    barrier, results, errors = threading.Barrier(2), {}, []

    def run(name, call):
        try:
            barrier.wait(10)
            if name == "second" and gate is not None:
                gate.reached.wait(30)
            results[name] = call()
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)
        finally:
            if name == "second" and gate is not None:
                gate.release.set()

    threads = [threading.Thread(target=run, args=(name, call), name=name)
               for name, call in (("first", first), ("second", second))]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        if gate is not None:
            gate.close()
    assert not errors, errors
    if gate is not None:
        assert gate.reached.is_set(), "the first thread never reached its INSERT"
    return results["first"], results["second"]


def own_client(user: ApiUser, app) -> ApiUser:
    """The same caller on a test client of its own (one per thread)."""
    return ApiUser(app.test_client(), user.token)


# -- 8: restarting check-in after the window ---------------------------------------------------
@pytest.mark.parametrize("stopped", [True, False], ids=["stopped-then-restarted", "never-stopped"])
def test_restarting_check_in_after_its_window_gives_a_code_students_can_use(course, clock, stopped):
    """Bug 8: the window stayed anchored to the first opening, so the restarted check-in's code was refused."""
    session_id = course.new_session(minutes=180)
    clock.at(T0)
    course.generate(session_id)
    if stopped:
        course.teacher.post("/api/stop-checkin/", json={"class_session_id": session_id})
    restart = T0 + timedelta(minutes=60)  # the first window (30 minutes) is long over
    clock.at(restart)
    refresh = course.teacher.post("/api/generate-code/", json={"class_session_id": session_id, "reopen": False})
    assert_error(refresh, 409, "checkin_not_open")  # a projector refresh never reopens
    assert listed(course, session_id)["checkin_open"] is False
    code = course.generate(session_id)["code"]
    session = listed(course, session_id)
    assert session["checkin_open"] is True and session["checkin_opened_at"] == iso(restart)
    assert session["present_until"] == iso(restart + timedelta(minutes=10))
    assert status_of(submit(course.student(1), code)) == "present"
    clock.at(restart + timedelta(minutes=15))
    assert status_of(submit(course.student(2), course.generate(session_id)["code"])) == "late"
    clock.at(restart + timedelta(minutes=30, seconds=1))  # the new window is over too (no one pressed Start again)
    code = course.code_of_period(session_id, codes.period_of(clock.now, 15))
    assert_error(submit(course.student(3), code), 409, "checkin_closed")


def test_a_stop_and_restart_while_the_window_runs_keeps_the_anchor(course, clock):
    """Restarting a paused check-in must not hand latecomers a fresh "present" window."""
    session_id = course.new_session()
    clock.at(T0)
    course.generate(session_id)
    clock.at(T0 + timedelta(minutes=5))
    course.teacher.post("/api/stop-checkin/", json={"class_session_id": session_id})
    clock.at(T0 + timedelta(minutes=12))
    code = course.generate(session_id)["code"]
    assert listed(course, session_id)["checkin_opened_at"] == iso(T0)
    assert status_of(submit(course.student(1), code)) == "late"


# -- 9: check-in for a future class ------------------------------------------------------------
def test_check_in_cannot_be_opened_for_a_class_next_week(course, clock):
    """Bug 9: check-in opened for next week's session recorded students "present" a week early."""
    starts = T0 + timedelta(weeks=1)
    session_id = course.new_session(starts_at=starts)
    clock.at(T0)
    assert_error(course.teacher.post("/api/generate-code/", json={"class_session_id": session_id}), 409,
                 "checkin_too_early")
    clock.at(starts - timedelta(minutes=15, seconds=1))
    assert_error(course.teacher.post("/api/generate-code/", json={"class_session_id": session_id}), 409,
                 "checkin_too_early")
    session = listed(course, session_id)
    assert session["checkin_open"] is False and session["checkin_opened_at"] is None
    clock.at(starts - timedelta(minutes=15))  # CHECKIN_EARLY_MINUTES before the start: the doors open
    code = course.generate(session_id)["code"]
    assert status_of(submit(course.student(1), code)) == "present"


def test_a_check_in_before_the_early_margin_is_refused_even_if_check_in_was_opened(course, clock):
    """Bug 9, defense in depth: a session opened early (before this rule existed) records nobody early."""
    starts = T0 + timedelta(weeks=1)
    session_id = course.new_session(starts_at=starts)
    with course.app.app_context():  # opened by a version of the tool that let anyone open any session
        db.session.get(ClassSession, session_id).checkin_opened_at = T0
        db.session.commit()
        db.session.remove()
    clock.at(T0 + timedelta(seconds=1))
    code = course.code_of_period(session_id, codes.period_of(clock.now, 15))
    assert_error(submit(course.student(1), code), 409, "checkin_too_early")
    assert course.records(session_id) == 0
    assert listed(course, session_id)["checkin_open"] is False


def test_the_early_margin_is_a_setting(make_app, platform, clock):
    """CHECKIN_EARLY_MINUTES widens (or narrows) how early check-in may open."""
    app = make_app(CHECKIN_EARLY_MINUTES=60)
    register_platform(app, platform)
    course = Course(app, platform)
    session_id = course.new_session(starts_at=T0 + timedelta(minutes=45))
    clock.at(T0)
    assert course.generate(session_id)["class_session_id"] == session_id


# -- 12: the code rotation changes mid-session -------------------------------------------------
def test_changing_the_code_rotation_mid_session_keeps_the_projected_code_valid(make_app, platform, clock):
    """Bug 12: a new code_rotation_seconds invalidated the projector's code at once, and each refusal
    counted toward the wrong-code limit."""
    app = make_app(WRONG_CODE_LIMIT_STUDENT="1 per minute")
    register_platform(app, platform)
    course = Course(app, platform)
    session_id = course.new_session()
    clock.at(T0 + timedelta(seconds=1))
    projected = course.generate(session_id)
    assert projected["rotation_seconds"] == 15
    changed = course.teacher.post("/api/course-settings/", json={"code_rotation_seconds": 60})
    assert changed.status_code == 200
    clock.at(T0 + timedelta(seconds=10))
    refresh = course.teacher.post("/api/generate-code/", json={"class_session_id": session_id, "reopen": False})
    assert refresh.status_code == 200
    assert (refresh.get_json()["code"], refresh.get_json()["rotation_seconds"]) == (projected["code"], 15)
    assert refresh.get_json()["expires_at"] == "2030-01-07T09:00:15Z"
    for n in (1, 2):
        assert status_of(submit(course.student(n), projected["code"])) == "present"
    # The next session opened takes the new rotation.
    later = course.new_session()
    assert course.generate(later)["rotation_seconds"] == 60


# -- 13: history by the course's days ----------------------------------------------------------
def test_history_dates_are_the_course_days_not_utc_days(course, clock):
    """Bug 13: a 23:30 New York class on 7 January was listed under 8 January (UTC days)."""
    course.teacher.post("/api/course-settings/", json={"timezone": "America/New_York"})
    response = course.teacher.post("/api/class-sessions/", json={
        "title": "Night class", "starts_at": "2030-01-07T23:30:00", "ends_at": "2030-01-08T00:30:00"})
    session = response.get_json()["class_session"]
    assert session["starts_at"] == "2030-01-08T04:30:00Z"
    marked = course.teacher.post("/api/mark-attendance/", json={
        "class_session_id": session["id"], "student_id": student_id(course, 1), "status": "present"})
    assert marked.status_code == 200
    student = course.student(1)

    def days(start, end):
        body = student.get("/api/student/attendance-history/", **{"from": start, "to": end}).get_json()
        return [item["class_session_id"] for item in body["history"]]

    assert days("2030-01-07", "2030-01-07") == [session["id"]]
    assert days("2030-01-08", "2030-01-08") == []
    assert days("2030-01-01", "2030-01-07") == [session["id"]]
    assert days("2030-01-08", "2030-01-31") == []


# -- today's classes and ad-hoc titles ---------------------------------------------------------
def test_a_class_that_started_yesterday_and_still_runs_is_in_today(course, clock):
    """A class from 22:00 yesterday to 10:00 today was missing from "today" (only the start day counted)."""
    course.teacher.post("/api/class-sessions/", json={
        "title": "Overnight lab", "starts_at": iso(T0 - timedelta(hours=11)), "ends_at": iso(T0 + timedelta(hours=1))})
    course.teacher.post("/api/class-sessions/", json={
        "title": "Yesterday", "starts_at": iso(T0 - timedelta(hours=20)), "ends_at": iso(T0 - timedelta(hours=19))})
    today = course.student(1).get("/api/student/today-classes/").get_json()["classes"]
    assert [c["title"] for c in today] == ["Overnight lab"]


def test_ad_hoc_session_titles_use_the_course_timezone(course, clock):
    """Ad-hoc sessions were titled with the UTC date and time, not the course's."""
    course.teacher.post("/api/course-settings/", json={"timezone": "America/New_York"})
    clock.at(datetime(2030, 1, 8, 3, 0, tzinfo=UTC))  # 22:00 on 7 January in New York
    session_id = course.generate()["class_session_id"]
    assert listed(course, session_id)["title"] == "Class of 2030-01-07 22:00"


# -- 14 and 5: justifications and attendance ---------------------------------------------------
def test_a_student_excused_in_advance_who_attends_can_check_in(course, clock):
    """Bug 14: an approved justification's `excused` record made the student's check-in "already checked in"."""
    session_id = course.new_session()
    clock.at(T0 - timedelta(days=2))
    justification = justify(course.student(1), session_id).get_json()["justification"]
    assert review(course.teacher, justification["id"]).status_code == 200
    assert [s["status"] for s in course.submissions(session_id)] == ["excused"]
    clock.at(T0 + timedelta(minutes=2))
    assert status_of(submit(course.student(1), course.generate(session_id)["code"])) == "present"
    [record] = course.submissions(session_id)
    assert (record["status"], record["source"]) == ("present", "checkin")
    assert_error(submit(course.student(1), course.generate(session_id)["code"]), 409, "already_submitted")


def test_a_justification_for_an_attended_class_is_refused(course, clock):
    """Bug 5: a student who attended could send a justification, and its approval turned present into excused."""
    session_id = course.new_session()
    clock.at(T0 + timedelta(minutes=1))
    assert status_of(submit(course.student(1), course.generate(session_id)["code"])) == "present"
    body = assert_error(justify(course.student(1), session_id), 409, "already_attended")
    assert "attended" in body["error"]["message"]


def test_approving_a_justification_never_lowers_an_attendance(course, clock):
    """Bug 5: approving turned a record that had since become late into excused (the grade fell 50 -> 0)."""
    session_id = course.new_session()
    clock.at(T0 - timedelta(hours=1))
    justification = justify(course.student(1), session_id).get_json()["justification"]
    clock.at(T0)
    course.generate(session_id)
    clock.at(T0 + timedelta(minutes=20))
    assert status_of(submit(course.student(1), course.generate(session_id)["code"])) == "late"
    approved = review(course.teacher, justification["id"])
    assert approved.status_code == 200 and approved.get_json()["justification"]["status"] == "approved"
    assert [s["status"] for s in course.submissions(session_id)] == ["late"]


# -- 15: a refused check-in says why -----------------------------------------------------------
def test_a_check_in_after_the_teacher_recorded_the_student_says_so(course, clock):
    """Bug 15: every conflict said "You have already checked in", even for a teacher's mark."""
    session_id = course.new_session()
    clock.at(T0 + timedelta(minutes=1))
    code = course.generate(session_id)["code"]
    course.teacher.post("/api/mark-attendance/", json={
        "class_session_id": session_id, "student_id": student_id(course, 1), "status": "absent"})
    body = assert_error(submit(course.student(1), code), 409, "already_recorded")
    assert "teacher" in body["error"]["message"].lower()


def test_a_check_in_racing_a_close_is_told_the_class_closed(course, clock):
    """Bug 15: a check-in that lost to the close was told "You have already checked in" while recorded absent."""
    session_id = course.new_session()
    clock.at(T0 + timedelta(minutes=1))
    code = course.generate(session_id)["code"]
    app, student = course.app, own_client(course.student(1), course.app)
    teacher = own_client(course.teacher, app)
    checked_in, closed = race(
        app, lambda: submit(student, code),
        lambda: teacher.post("/api/close-session/", json={"class_session_id": session_id}),
        gate_table="attendance_record")
    assert closed.status_code == 200 and closed.get_json()["absent_count"] == 1
    body = assert_error(checked_in, 409, "checkin_closed")
    assert "closed" in body["error"]["message"]
    assert [s["status"] for s in course.submissions(session_id)] == ["absent"]


# -- 16: a teacher's write racing a check-in ---------------------------------------------------
def test_a_teachers_mark_racing_a_check_in_is_no_500_and_the_mark_wins(course, clock):
    """Bug 16: mark-attendance checked, then inserted: a check-in in between made it a 500 (IntegrityError)."""
    session_id = course.new_session()
    clock.at(T0 + timedelta(minutes=1))
    code = course.generate(session_id)["code"]
    app, sid = course.app, student_id(course, 1)
    teacher, student = own_client(course.teacher, app), own_client(course.student(1), app)
    marked, checked_in = race(
        app, lambda: teacher.post("/api/mark-attendance/", json={
            "class_session_id": session_id, "student_id": sid, "status": "excused", "remark": "medical"}),
        lambda: submit(student, code), gate_table="attendance_record")
    assert checked_in.status_code == 201, checked_in.get_json()
    assert marked.status_code == 200, marked.get_json()
    assert marked.get_json()["attendance"]["status"] == "excused"
    record = record_of(app, session_id, sid)
    assert (record.status, record.remark, record.source) == ("excused", "medical", "checkin")


def test_approving_a_justification_racing_a_check_in_is_no_500(course, clock):
    """Bug 16: approval checked, then inserted an excused record: a check-in in between made it a 500."""
    session_id = course.new_session()
    clock.at(T0 - timedelta(hours=1))
    justification = justify(course.student(1), session_id).get_json()["justification"]
    clock.at(T0 + timedelta(minutes=1))
    code = course.generate(session_id)["code"]
    app, sid = course.app, student_id(course, 1)
    teacher, student = own_client(course.teacher, app), own_client(course.student(1), app)
    # On SQLite the approval holds the write lock before its INSERT: there the two simply race.
    approved, checked_in = race(app, lambda: review(teacher, justification["id"]),
                                lambda: submit(student, code),
                                gate_table="attendance_record" if on_postgres(app) else None)
    assert approved.status_code == 200, approved.get_json()
    assert checked_in.status_code == 201, checked_in.get_json()
    assert record_of(app, session_id, sid).status == "present"  # attended: never lowered to excused
    with app.app_context():
        assert db.session.get(Justification, justification["id"]).status == "approved"
        db.session.remove()


def test_closing_racing_check_ins_never_fails(course, clock):
    """Bug 16: close-session checked for missing records, then inserted: a check-in in between failed the close."""
    session_id = course.new_session()
    clock.at(T0 + timedelta(minutes=1))
    code = course.generate(session_id)["code"]
    app, sid, other = course.app, student_id(course, 1), student_id(course, 2)
    teacher, student = own_client(course.teacher, app), own_client(course.student(1), app)
    # On SQLite the close holds the write lock from its first UPDATE: there the two simply race.
    closed, checked_in = race(
        app, lambda: teacher.post("/api/close-session/", json={"class_session_id": session_id}),
        lambda: submit(student, code), gate_table="attendance_record" if on_postgres(app) else None)
    assert closed.status_code == 200, closed.get_json()
    assert checked_in.status_code in (201, 409), checked_in.get_json()
    record = record_of(app, session_id, sid)
    if checked_in.status_code == 201:
        assert record.status == "present" and closed.get_json()["absent_count"] == 1
    else:
        assert_error(checked_in, 409, "checkin_closed")
        assert record.status == "absent" and closed.get_json()["absent_count"] == 2
    assert record_of(app, session_id, other).status == "absent"
    statuses = sorted(s["status"] for s in course.submissions(session_id))
    assert statuses == sorted([record.status, "absent"])


# -- justifications sent twice at once ---------------------------------------------------------
def test_two_justifications_sent_at_once_store_one(course, clock):
    """Two justifications for one session submitted at the same moment were both stored."""
    session_id = course.new_session()
    clock.at(T0 - timedelta(hours=1))
    app = course.app
    first, second = own_client(course.student(1), app), own_client(course.student(1), app)
    png = b"\x89PNG\r\n\x1a\n" + bytes(32)

    def with_document():
        return first.post("/api/submit-justification/", content_type="multipart/form-data", data={
            "class_session_id": str(session_id), "reason": "Ill", "document": (BytesIO(png), "note.png")})

    held, won = race(app, with_document, lambda: justify(second, session_id, "Ill too"), gate_table="justification")
    assert won.status_code == 201, won.get_json()
    assert_error(held, 409, "already_submitted")
    with app.app_context():
        rows = db.session.scalars(select(Justification).filter_by(class_session_id=session_id)).all()
        assert [r.reason for r in rows] == ["Ill too"]
        db.session.remove()
    upload_dir = Path(app.config["UPLOAD_DIR"])
    assert not upload_dir.exists() or not any(upload_dir.iterdir())  # the loser's document is not left behind


# -- the remark editor never reverts a status --------------------------------------------------
def test_a_remark_saved_with_a_stale_status_changes_nothing(course, clock):
    """The remark editor resent the status it showed and could revert another teacher's change."""
    session_id = course.new_session()
    clock.at(T0 + timedelta(minutes=1))
    record_id = submit(course.student(1), course.generate(session_id)["code"]).get_json()["attendance"]["id"]
    other = course.teacher.post("/api/validate-attendance/", json={"attendance_id": record_id, "status": "late"})
    assert other.status_code == 200
    stale = course.teacher.post("/api/validate-attendance/", json={
        "attendance_id": record_id, "status": "present", "if_status": "present", "remark": "seen at the door"})
    assert_error(stale, 409, "stale_status")
    [record] = course.submissions(session_id)
    assert (record["status"], record["remark"]) == ("late", "")
    fresh = course.teacher.post("/api/validate-attendance/", json={
        "attendance_id": record_id, "status": "late", "if_status": "late", "remark": "seen at the door"})
    assert fresh.status_code == 200
    [record] = course.submissions(session_id)
    assert (record["status"], record["remark"]) == ("late", "seen at the door")
