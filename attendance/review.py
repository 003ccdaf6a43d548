"""What teachers do with records: validate, mark, close a session, review risk."""
from __future__ import annotations

from types import SimpleNamespace

from sqlalchemy import select, update
from sqlalchemy.orm import contains_eager, selectinload

from attendance import clock, realtime
from attendance.audit import record_audit
from attendance.checkin import on_campus
from attendance.errors import ApiError
from attendance.lms.roster import sync_roster
from attendance.models import ABSENT, AttendanceRecord, ClassSession, Enrollment, Source, User
from attendance.policy import policy_for
from attendance.principal import Principal
from attendance.records import insert_new_records, publish_payload, submission_json
from attendance.risk import RiskSignals, score_check_in
from attendance.sessions import scoped_session, window_of
from extensions import db
from lti.roles import STUDENT
from lti.services import ServiceError


def scoped_record(principal: Principal, attendance_id: int) -> AttendanceRecord:
    """Return an attendance record of the caller's course, or answer 404."""
    record = db.session.scalar(
        select(AttendanceRecord).join(ClassSession).where(
            AttendanceRecord.id == attendance_id, ClassSession.course_id == principal.course_id))
    if record is None:
        raise ApiError("not_found", "No such attendance record in this course.", 404)
    return record


# -- teacher actions ---------------------------------------------------------------------------
def validate_attendance(principal: Principal, attendance_ids: list[int], status: str,  # long: the stale-status guard, the audit and the live messages share one transaction
                        remark: str | None = None, if_status: str | None = None) -> list[AttendanceRecord]:
    """Set the status (and remark) of records of the caller's course; every change is audited.

    With if_status, only while every record still has that status (the one the teacher's page showed);
    otherwise 409 stale_status and nothing changes.
    """
    wanted = list(dict.fromkeys(attendance_ids))
    seen = None
    if if_status is not None:
        # Compare-and-set as a no-op write: it counts the rows still showing if_status and keeps them locked
        # (PostgreSQL: those rows; SQLite: the database) until this transaction ends, so nobody changes them
        # between this check and the update below.
        table = AttendanceRecord.__table__
        seen = db.session.execute(
            update(table).where(table.c.id.in_(wanted), table.c.status == if_status)
            .values(status=table.c.status, updated_at=table.c.updated_at)).rowcount
    records = db.session.scalars(
        select(AttendanceRecord).join(ClassSession).options(selectinload(AttendanceRecord.student))
        .where(AttendanceRecord.id.in_(wanted), ClassSession.course_id == principal.course_id)).all()
    if len(records) != len(wanted):  # one id of another course, or unknown: nothing changes
        raise ApiError("not_found", "No such attendance record in this course.", 404)
    if seen is not None and seen != len(records):
        db.session.rollback()
        raise ApiError("stale_status", "Someone changed this attendance meanwhile; nothing was saved. Look at "
                       "the new status and try again.", 409)
    position = {record_id: i for i, record_id in enumerate(wanted)}  # a dict, not list.index: O(n log n) in all
    records.sort(key=lambda r: position[r.id])
    now = clock.now()
    for record in records:
        if record.status != status:
            record_audit(principal.course_id, record.id, principal.user_id, "validated", record.status, status)
        record.status = status
        record.validated_by_id = principal.user_id
        record.validated_at = now
        if remark is not None:
            record.remark = remark
    messages = [(record, submission_json(record, record.student)) for record in records]
    db.session.commit()
    for record, message in messages:
        publish_payload(record, message, "attendance_validated")
    return records


def mark_attendance(principal: Principal, class_session_id: int, student_id: int, status: str,
                    remark: str | None = None) -> AttendanceRecord:
    """Record a status for an enrolled student, with or without a check-in (e.g. a forgotten phone)."""
    session = scoped_session(principal, class_session_id)
    enrolled = db.session.scalar(select(Enrollment).where(
        Enrollment.course_id == session.course_id, Enrollment.user_id == student_id, Enrollment.role == STUDENT))
    if enrolled is None:
        raise ApiError("not_found", "No such student in this course.", 404)
    now = clock.now()
    inserted = insert_new_records(session.course_id, [dict(
        class_session_id=session.id, student_id=student_id, status=status, source=Source.TEACHER,
        validated_by_id=principal.user_id, validated_at=now, remark=remark or "", updated_at=now)])
    if not inserted:
        # A record exists (maybe a check-in that just arrived): the teacher's mark changes it.
        record_id = db.session.scalar(select(AttendanceRecord.id).filter_by(class_session_id=session.id,
                                                                            student_id=student_id))
        return validate_attendance(principal, [record_id], status, remark)[0]
    record_audit(session.course_id, inserted[student_id], principal.user_id, "marked", None, status)
    record = db.session.get(AttendanceRecord, inserted[student_id])
    message = submission_json(record, record.student)
    db.session.commit()
    publish_payload(record, message, "attendance_validated")
    return record


def close_session(principal: Principal, class_session_id: int) -> tuple[ClassSession, int, str | None]:
    """Close a session: check-in stops and every enrolled student without a record is recorded absent."""
    session = scoped_session(principal, class_session_id)
    roster_error = None
    if session.course.nrps_url:  # the roster first, so students who never launched count too
        try:
            sync_roster(session.course)
        except ServiceError as exc:
            roster_error = exc.message
    now = clock.now()
    if session.closed_at is None:
        session.closed_at = now
        if session.checkin_opened_at is not None and session.checkin_closed_at is None:
            session.checkin_closed_at = now
    recorded = select(AttendanceRecord.student_id).where(AttendanceRecord.class_session_id == session.id)
    missing = db.session.scalars(select(Enrollment.user_id).where(
        Enrollment.course_id == session.course_id, Enrollment.role == STUDENT, Enrollment.active.is_(True),
        Enrollment.user_id.not_in(recorded))).all()
    rows = [dict(class_session_id=session.id, student_id=user_id, status=ABSENT, source="close",
                 validated_by_id=principal.user_id, validated_at=now, remark="", updated_at=now) for user_id in missing]
    inserted = insert_new_records(session.course_id, rows)  # a check-in that got in meanwhile keeps its record
    absences = [SimpleNamespace(id=inserted[row["student_id"]], submitted_at=None, risk_score=None, location_flag=None,
                                distance_m=None, accuracy_m=None, **row)
                for row in rows if row["student_id"] in inserted]
    for record in absences:
        record_audit(session.course_id, record.id, principal.user_id, "closed_absent", None, ABSENT)
    record_audit(session.course_id, None, principal.user_id, "session_closed",
           detail={"class_session_id": session.id, "absent_count": len(absences)})
    students = {u.id: u for u in db.session.scalars(select(User).where(User.id.in_(list(inserted) or [0])))}
    messages = [(record, submission_json(record, students[record.student_id])) for record in absences]
    db.session.commit()  # messages are built first: reading them after would reload every row
    for record, message in messages:
        publish_payload(record, message, "attendance_validated")
    realtime.broker().publish(realtime.session_channel(session.id), {
        "type": "session_closed", "class_session_id": session.id, "absent_count": len(absences)})
    return session, len(absences), roster_error


def session_submissions(principal: Principal, class_session_id: int) -> list[AttendanceRecord]:
    """List a class session's records, submitted ones first in submission order."""
    session = scoped_session(principal, class_session_id)
    return db.session.scalars(
        select(AttendanceRecord).where(AttendanceRecord.class_session_id == session.id)
        .join(User, User.id == AttendanceRecord.student_id).options(contains_eager(AttendanceRecord.student))
        .order_by(AttendanceRecord.submitted_at.is_(None), AttendanceRecord.submitted_at, User.name)).all()


# -- risk review -------------------------------------------------------------------------------
def run_ai_validation(principal: Principal, attendance_id: int | None, class_session_id: int | None) -> list[dict]:
    """Score records again with everything known now (later check-ins from the same device count too)."""
    if attendance_id is not None:
        records = [scoped_record(principal, attendance_id)]
        session = records[0].class_session
    else:
        session = scoped_session(principal, class_session_id)
        records = db.session.scalars(select(AttendanceRecord).where(
            AttendanceRecord.class_session_id == session.id, AttendanceRecord.source == "checkin")).all()
    policy = policy_for(session.course_id)
    late_until = window_of(session, policy)[1]
    peers = db.session.execute(select(AttendanceRecord.student_id, AttendanceRecord.ip, AttendanceRecord.device_hash)
                               .where(AttendanceRecord.class_session_id == session.id)).all()
    results = []
    for record in records:
        if record.source != "checkin":
            continue
        others = [p for p in peers if p.student_id != record.student_id]
        risk = score_check_in(RiskSignals(
            location_flag=record.location_flag, distance_m=record.distance_m, accuracy_m=record.accuracy_m,
            same_device_count=sum(1 for p in others if record.device_hash and p.device_hash == record.device_hash),
            same_ip_count=sum(1 for p in others if record.ip and p.ip == record.ip),
            on_campus=on_campus(record.ip, policy.campus_networks),
            seconds_before_window_end=(late_until - record.submitted_at).total_seconds() if record.submitted_at else None))
        record.risk_score, record.risk_level, record.risk_reasons = risk.score, risk.level, risk.reasons
        results.append({"attendance_id": record.id, "score": risk.score, "level": risk.level,
                        "reasons": list(risk.reasons)})
    db.session.commit()
    bus = realtime.broker()
    for result in results:
        bus.publish(realtime.session_channel(session.id), {"type": "ai_validation_result", "result": result})
    return results
