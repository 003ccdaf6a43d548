"""Attendance domain services: class sessions, codes, check-in, validation and closing.

Views parse input and call these; these check scope, change rows in one transaction, and publish
real-time messages after the commit.
"""
from __future__ import annotations

import functools
import hashlib
import ipaddress
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import current_app
from sqlalchemy import and_, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import aliased, contains_eager, selectinload

from attendance import clock, codes, geo, realtime
from attendance.auth import Principal
from attendance.errors import ApiError
from attendance.models import (
    ABSENT, EXCUSED, LATE, PRESENT, AttendanceRecord, AuditEntry, ClassSession, Course, CoursePolicy, Enrollment, User,
    display_name,
)
from attendance.grades import records_changed
from attendance.policy import Policy, policy_for, window_errors
from attendance.risk import RiskSignals, score_check_in
from attendance.roster import sync_roster
from extensions import db
from lti.services import ServiceError


# -- scoping -----------------------------------------------------------------------------------
def course_of(principal: Principal) -> Course:
    """The course the caller launched from; a launch outside a course has none."""
    course = db.session.get(Course, principal.course_id) if principal.course_id else None
    if course is None:
        raise ApiError("not_found", "This launch is not inside a course.", 404)
    return course


def zone_of(course: Course) -> ZoneInfo:
    """The course's timezone (UTC when it has none, or one this machine does not know)."""
    try:
        return ZoneInfo(course.timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def scoped_session(principal: Principal, class_session_id: int) -> ClassSession:
    """A class session of the caller's course, or 404 (another course's ids look like missing ones)."""
    session = db.session.get(ClassSession, class_session_id)
    if session is None or session.course_id != principal.course_id:
        raise ApiError("not_found", "No such class session in this course.", 404)
    return session


def scoped_record(principal: Principal, attendance_id: int) -> AttendanceRecord:
    record = db.session.scalar(
        select(AttendanceRecord).join(ClassSession).where(
            AttendanceRecord.id == attendance_id, ClassSession.course_id == principal.course_id))
    if record is None:
        raise ApiError("not_found", "No such attendance record in this course.", 404)
    return record


# -- class sessions ----------------------------------------------------------------------------
def create_class_sessions(course: Course, actor_id: int | None, *, title: str, starts_at: datetime, ends_at: datetime,
                          latitude: float | None = None, longitude: float | None = None, radius_m: float | None = None,
                          present_minutes: int | None = None, late_minutes: int | None = None,
                          repeat_weekly_until: datetime | None = None) -> list[ClassSession]:
    """Create a class session, or one per week until a date, in one transaction."""
    fields = {}
    if ends_at <= starts_at:
        fields["ends_at"] = ["Must be after starts_at."]
    if (latitude is None) != (longitude is None):
        fields["latitude" if latitude is None else "longitude"] = ["Give both latitude and longitude, or neither."]
    if radius_m is not None and latitude is None:
        fields["radius_m"] = ["A radius needs latitude and longitude."]
    if present_minutes is not None or late_minutes is not None:  # judged with the course's value of the other
        policy = policy_for(course.id)
        fields.update(window_errors(policy.present_minutes if present_minutes is None else present_minutes,
                                    policy.late_minutes if late_minutes is None else late_minutes))
    occurrences = 1
    if repeat_weekly_until is not None:
        if repeat_weekly_until < starts_at:
            fields["repeat_weekly_until"] = ["Must not be before starts_at."]
        else:
            occurrences = int((repeat_weekly_until - starts_at) / timedelta(weeks=1)) + 1
            if occurrences > current_app.config["MAX_REPEAT_OCCURRENCES"]:
                fields["repeat_weekly_until"] = [f"At most {current_app.config['MAX_REPEAT_OCCURRENCES']} weekly sessions."]
    if fields:
        raise ApiError("validation_error", "Some fields are not valid.", 422, fields)
    series = str(uuid.uuid4()) if occurrences > 1 else None
    if latitude is not None and radius_m is None:
        radius_m = 100.0
    created = []
    for week in range(occurrences):
        shift = timedelta(weeks=week)
        created.append(ClassSession(
            course_id=course.id, title=title, starts_at=starts_at + shift, ends_at=ends_at + shift,
            latitude=latitude, longitude=longitude, radius_m=radius_m, present_minutes=present_minutes,
            late_minutes=late_minutes, series_id=series, code_secret=codes.new_secret(), created_by_id=actor_id))
    db.session.add_all(created)
    db.session.commit()
    return created


def list_class_sessions(course_id: int) -> list[ClassSession]:
    return db.session.scalars(
        select(ClassSession).where(ClassSession.course_id == course_id).order_by(ClassSession.starts_at)).all()


def window_of(session: ClassSession, policy: Policy) -> tuple[datetime, datetime]:
    """(present until, late until). A teacher who opens check-in after the start moves the window with it."""
    base = max(session.starts_at, session.checkin_opened_at or session.starts_at)
    present = session.present_minutes if session.present_minutes is not None else policy.present_minutes
    late = session.late_minutes if session.late_minutes is not None else policy.late_minutes
    return base + timedelta(minutes=present), base + timedelta(minutes=max(late, present))


def checkin_opens_at(session: ClassSession) -> datetime:
    """The earliest moment check-in may open or take a student: CHECKIN_EARLY_MINUTES before the start."""
    return session.starts_at - timedelta(minutes=current_app.config["CHECKIN_EARLY_MINUTES"])


def is_checkin_open(session: ClassSession, policy: Policy, now: datetime) -> bool:
    """Whether check-in takes students now: opened, not stopped nor closed, and inside its window.

    The one definition generate-code, the session list, the students' pages and check-in share.
    """
    return (session.checkin_opened_at is not None and session.checkin_closed_at is None
            and session.closed_at is None and checkin_opens_at(session) <= now <= window_of(session, policy)[1])


def rotation_of(session: ClassSession, policy: Policy) -> int:
    """Seconds between codes: the rotation taken when check-in opened, else the course's (sessions opened before)."""
    return session.code_rotation_seconds or policy.code_rotation_seconds


def _adhoc_session(course: Course, actor_id: int, now: datetime) -> ClassSession:
    """Reuse the course's open ad-hoc session, or start one now."""
    recent = db.session.scalar(
        select(ClassSession).where(ClassSession.course_id == course.id, ClassSession.is_adhoc.is_(True),
                                   ClassSession.closed_at.is_(None), ClassSession.ends_at > now)
        .order_by(ClassSession.starts_at.desc()).limit(1))
    if recent is not None:
        return recent
    session = ClassSession(
        course_id=course.id, title=f"Class of {now.astimezone(zone_of(course)):%Y-%m-%d %H:%M}", starts_at=now,
        ends_at=now + timedelta(minutes=current_app.config["ADHOC_SESSION_MINUTES"]), is_adhoc=True,
        code_secret=codes.new_secret(), created_by_id=actor_id)
    db.session.add(session)
    db.session.flush()  # its id goes into the audit entry of the opening
    return session


def generate_code(principal: Principal, class_session_id: int | None,
                  reopen: bool = True) -> tuple[ClassSession, codes.IssuedCode]:
    """Open check-in if it is not open (unless reopen is False) and answer the code valid now."""
    now = clock.now()
    course = course_of(principal)
    session = scoped_session(principal, class_session_id) if class_session_id else _adhoc_session(course, principal.user_id, now)
    if session.closed_at is not None:
        raise ApiError("session_closed", "This class session is closed.", 409)
    policy = policy_for(course.id)
    if not is_checkin_open(session, policy, now):
        if not reopen:
            raise ApiError("checkin_not_open", "Check-in is not open for this class.", 409)
        if now < checkin_opens_at(session):
            raise ApiError("checkin_too_early", f"Check-in opens {current_app.config['CHECKIN_EARLY_MINUTES']} "
                           "minutes before the class starts, not earlier.", 409)
        if session.checkin_opened_at is None or now > window_of(session, policy)[1]:
            # A window that is over starts again from now; a pause inside a running window keeps its anchor,
            # so a stop and restart never hands latecomers a fresh "present" window.
            session.checkin_opened_at = now
        session.checkin_closed_at = None
        session.code_rotation_seconds = policy.code_rotation_seconds  # later settings changes leave this class alone
        _audit(course.id, None, principal.user_id, "checkin_opened",
               detail={"class_session_id": session.id, "anchored_at": iso(session.checkin_opened_at)})
    db.session.commit()
    issued = codes.current_code(session.code_secret, now, rotation_of(session, policy))
    realtime.broker().publish(realtime.session_channel(session.id), {
        "type": "code_generated", "class_session_id": session.id, "code": issued.code,
        "expires_at": iso(issued.expires_at)})
    return session, issued


def stop_checkin(principal: Principal, class_session_id: int) -> ClassSession:
    """Stop accepting check-ins (the session stays open for validation)."""
    session = scoped_session(principal, class_session_id)
    if session.checkin_opened_at is not None and session.checkin_closed_at is None:
        session.checkin_closed_at = clock.now()
        _audit(session.course_id, None, principal.user_id, "checkin_stopped", detail={"class_session_id": session.id})
        db.session.commit()
        realtime.broker().publish(realtime.session_channel(session.id),
                                  {"type": "checkin_stopped", "class_session_id": session.id})
    return session


# -- check-in (the hot path) -------------------------------------------------------------------
@dataclass(frozen=True)
class Where:
    latitude: float | None
    longitude: float | None
    accuracy_m: float | None


@dataclass(frozen=True)
class Client:
    ip: str | None
    user_agent: str
    device_id: str | None


def _digest(value: str | None) -> str | None:
    return hashlib.sha256(value.encode()).hexdigest()[:32] if value else None


def on_campus(ip: str | None, networks: tuple[str, ...]) -> bool | None:
    """Whether ip is inside the campus networks; None when none are configured or ip is unusable."""
    if not networks or not ip:
        return None
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    for cidr in networks:
        try:
            if address in ipaddress.ip_network(cidr, strict=False):
                return True
        except ValueError:
            continue
    return False


# What a check-in needs of the course policy; a Policy built from these rows has default points (unused here).
CHECKIN_POLICY_COLUMNS = ("present_minutes", "late_minutes", "code_rotation_seconds", "campus_networks", "denominator")


@functools.cache
def _checkin_query(one_session: bool):
    """The hot path's SELECT, built once: open sessions of the course with their policy, the student's
    active enrollment and name, and how many other students share the device or the address."""
    peer_device, peer_ip = aliased(AttendanceRecord), aliased(AttendanceRecord)
    same_device = select(func.count()).where(
        peer_device.class_session_id == ClassSession.id, peer_device.device_hash == bindparam("device_hash"),
        peer_device.student_id != bindparam("student_id")).scalar_subquery()
    same_ip = select(func.count()).where(
        peer_ip.class_session_id == ClassSession.id, peer_ip.ip == bindparam("ip"),
        peer_ip.student_id != bindparam("student_id")).scalar_subquery()
    # Plain columns, not ORM entities: the hot path skips identity-map bookkeeping for rows it only reads.
    session_columns = [ClassSession.id, ClassSession.code_secret, ClassSession.starts_at,
                       ClassSession.checkin_opened_at, ClassSession.latitude, ClassSession.longitude,
                       ClassSession.radius_m, ClassSession.present_minutes.label("session_present_minutes"),
                       ClassSession.late_minutes.label("session_late_minutes"),
                       ClassSession.code_rotation_seconds.label("session_rotation_seconds")]
    policy_columns = [getattr(CoursePolicy, name) for name in CHECKIN_POLICY_COLUMNS]
    student_columns = [User.name.label("student_name"), User.email.label("student_email"),
                       User.sub.label("student_sub")]
    query = (select(*session_columns, *policy_columns, *student_columns, same_device.label("same_device"),
                    same_ip.label("same_ip"))
             .outerjoin(CoursePolicy, CoursePolicy.course_id == ClassSession.course_id)
             .join(Enrollment, and_(Enrollment.course_id == ClassSession.course_id,  # enrolled and active only
                                    Enrollment.user_id == bindparam("student_id"), Enrollment.active.is_(True),
                                    Enrollment.role == "student"))
             .join(User, User.id == Enrollment.user_id)
             .where(ClassSession.course_id == bindparam("course_id"), ClassSession.checkin_opened_at.is_not(None),
                    ClassSession.checkin_closed_at.is_(None), ClassSession.closed_at.is_(None)))
    if one_session:
        query = query.where(ClassSession.id == bindparam("class_session_id"))
    return query


# What a check-in writes over an excuse given in advance (the remark a teacher may have left stays).
CHECKIN_REPLACES = ("status", "source", "submitted_at", "latitude", "longitude", "accuracy_m", "distance_m",
                    "location_flag", "ip", "user_agent_hash", "device_hash", "risk_score", "risk_level",
                    "risk_reasons", "updated_at")


def _insert_for(dialect: str):
    return pg_insert if dialect == "postgresql" else sqlite_insert


@functools.cache
def _checkin_insert(dialect: str):
    """INSERT … ON CONFLICT … RETURNING id: a duplicate check-in costs no exception and no rollback.

    The one record a check-in may replace is an excuse given in advance (an approved justification): the
    student came after all. Any other record stays, and no id comes back.
    """
    table = AttendanceRecord.__table__  # Core, not the ORM's bulk-insert machinery
    statement = _insert_for(dialect)(table)
    return (statement.on_conflict_do_update(
        index_elements=["class_session_id", "student_id"],
        set_={**{name: statement.excluded[name] for name in CHECKIN_REPLACES},
              "validated_by_id": None, "validated_at": None},
        where=and_(table.c.status == EXCUSED, table.c.source == "justification"))
        .returning(table.c.id))


def _check_in_refusal(class_session_id: int, student_id: int) -> ApiError:
    """Why a check-in found a record already there (the cold path: read only after a conflict)."""
    source = db.session.scalar(select(AttendanceRecord.source).where(
        AttendanceRecord.class_session_id == class_session_id, AttendanceRecord.student_id == student_id))
    if source == "close":
        return ApiError("checkin_closed", "This class was closed before your check-in arrived; you were recorded "
                        "absent. Talk to your teacher if you were there.", 409)
    if source in ("teacher", "justification"):
        return ApiError("already_recorded", "Your teacher has already recorded your attendance for this class.", 409)
    return ApiError("already_submitted", "You have already checked in to this class.", 409)


def insert_new_records(course_id: int, rows: list[dict]) -> dict[int, int]:
    """Insert the records that do not exist yet; answer {student id: new record id} for those inserted.

    INSERT … ON CONFLICT DO NOTHING: a record someone wrote meanwhile (a check-in, another teacher) is
    skipped, never an IntegrityError, whichever database. The grades they move are queued with them.
    """
    if not rows:
        return {}
    table = AttendanceRecord.__table__
    statement = (_insert_for(db.engine.dialect.name)(table)
                 .on_conflict_do_nothing(index_elements=["class_session_id", "student_id"])
                 .returning(table.c.student_id, table.c.id))
    inserted = dict(db.session.execute(statement, rows).all())
    records_changed(course_id, list(inserted))  # Core, not the ORM: the flush hook does not see these
    return inserted


def record_check_in(principal: Principal, code: str, where: Where, client: Client,
                    class_session_id: int | None = None) -> SimpleNamespace:
    """Check a student in with the code on the screen.

    The hot path: one SELECT (open sessions, the course policy, the student's active enrollment and
    name, and the peers sharing their device or address), one INSERT, one COMMIT — whatever the class
    size — and the real-time publish after the commit.
    """
    now = clock.now()
    if principal.course_id is None:
        raise ApiError("not_found", "This launch is not inside a course.", 404)
    device_hash, ua_hash = _digest(client.device_id), _digest(client.user_agent)
    params = {"course_id": principal.course_id, "student_id": principal.user_id, "device_hash": device_hash,
              "ip": client.ip, "class_session_id": class_session_id}
    query = _checkin_query(class_session_id is not None)
    grace = current_app.config["CODE_GRACE_SECONDS"]
    match = policy = None
    for row in db.session.execute(query, params).all():
        row_policy = Policy.of(row)
        rotation = row.session_rotation_seconds or row_policy.code_rotation_seconds  # as in rotation_of
        if codes.matches(row.code_secret, code, now, rotation, grace):
            match, policy = row, row_policy
            break
    if match is None:
        raise ApiError("invalid_attendance_code", "The code is wrong or has expired.", 400)
    if now < checkin_opens_at(match):
        raise ApiError("checkin_too_early", "Check-in for this class has not started yet.", 409)
    session = SimpleNamespace(id=match.id, starts_at=match.starts_at, checkin_opened_at=match.checkin_opened_at,
                              present_minutes=match.session_present_minutes, late_minutes=match.session_late_minutes,
                              latitude=match.latitude, longitude=match.longitude, radius_m=match.radius_m)
    student = SimpleNamespace(id=principal.user_id, display_name=display_name(
        match.student_name, match.student_email, match.student_sub))
    same_device, same_ip = int(match.same_device or 0), int(match.same_ip or 0)
    present_until, late_until = window_of(session, policy)
    if now > late_until:
        raise ApiError("checkin_closed", "Check-in for this class has closed.", 409)

    room = (session.latitude, session.longitude, session.radius_m) if session.latitude is not None else None
    cfg = current_app.config
    verdict = geo.judge(where.latitude, where.longitude, where.accuracy_m, room,
                        cfg["GEOFENCE_ACCURACY_CAP_M"], cfg["GEOFENCE_POOR_ACCURACY_M"])
    risk = score_check_in(RiskSignals(
        location_flag=verdict.flag, distance_m=verdict.distance_m, accuracy_m=where.accuracy_m,
        same_device_count=same_device, same_ip_count=same_ip, on_campus=on_campus(client.ip, policy.campus_networks),
        seconds_before_window_end=(late_until - now).total_seconds()))
    values = dict(
        class_session_id=session.id, student_id=principal.user_id, status=PRESENT if now <= present_until else LATE,
        source="checkin", submitted_at=now, latitude=where.latitude, longitude=where.longitude,
        accuracy_m=where.accuracy_m, distance_m=verdict.distance_m, location_flag=verdict.flag, ip=client.ip,
        user_agent_hash=ua_hash, device_hash=device_hash, risk_score=risk.score, risk_level=risk.level,
        risk_reasons=risk.reasons, remark="", updated_at=now)
    new_id = db.session.execute(_checkin_insert(db.engine.dialect.name), values).scalar()
    if new_id is None:
        db.session.rollback()
        raise _check_in_refusal(session.id, principal.user_id)
    if policy.denominator == "scheduled":  # every scheduled session counts: this one moves the grade now
        records_changed(principal.course_id, [principal.user_id])
    record = SimpleNamespace(id=new_id, validated_at=None, **values)  # plain values: nothing to reload
    message = submission_json(record, student)
    db.session.commit()
    publish_payload(record, message, "student_submission")
    return record


# -- teacher actions ---------------------------------------------------------------------------
def validate_attendance(principal: Principal, attendance_ids: list[int], status: str,
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
            _audit(principal.course_id, record.id, principal.user_id, "validated", record.status, status)
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
        Enrollment.course_id == session.course_id, Enrollment.user_id == student_id, Enrollment.role == "student"))
    if enrolled is None:
        raise ApiError("not_found", "No such student in this course.", 404)
    now = clock.now()
    inserted = insert_new_records(session.course_id, [dict(
        class_session_id=session.id, student_id=student_id, status=status, source="teacher",
        validated_by_id=principal.user_id, validated_at=now, remark=remark or "", updated_at=now)])
    if not inserted:
        # A record exists (maybe a check-in that just arrived): the teacher's mark changes it.
        record_id = db.session.scalar(select(AttendanceRecord.id).filter_by(class_session_id=session.id,
                                                                            student_id=student_id))
        return validate_attendance(principal, [record_id], status, remark)[0]
    _audit(session.course_id, inserted[student_id], principal.user_id, "marked", None, status)
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
        Enrollment.course_id == session.course_id, Enrollment.role == "student", Enrollment.active.is_(True),
        Enrollment.user_id.not_in(recorded))).all()
    rows = [dict(class_session_id=session.id, student_id=user_id, status=ABSENT, source="close",
                 validated_by_id=principal.user_id, validated_at=now, remark="", updated_at=now) for user_id in missing]
    inserted = insert_new_records(session.course_id, rows)  # a check-in that got in meanwhile keeps its record
    absences = [SimpleNamespace(id=inserted[row["student_id"]], submitted_at=None, risk_score=None, location_flag=None,
                                distance_m=None, accuracy_m=None, **row)
                for row in rows if row["student_id"] in inserted]
    for record in absences:
        _audit(session.course_id, record.id, principal.user_id, "closed_absent", None, ABSENT)
    _audit(session.course_id, None, principal.user_id, "session_closed",
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
    session = scoped_session(principal, class_session_id)
    return db.session.scalars(
        select(AttendanceRecord).where(AttendanceRecord.class_session_id == session.id)
        .join(User, User.id == AttendanceRecord.student_id).options(contains_eager(AttendanceRecord.student))
        .order_by(AttendanceRecord.submitted_at.is_(None), AttendanceRecord.submitted_at, User.name)).all()


# -- helpers -----------------------------------------------------------------------------------
def _audit(course_id: int, record_id: int | None, actor_id: int | None, action: str,
           from_status: str | None = None, to_status: str | None = None, detail: dict | None = None) -> None:
    db.session.add(AuditEntry(course_id=course_id, record_id=record_id, actor_id=actor_id, action=action,
                              from_status=from_status, to_status=to_status, detail=detail))


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def risk_of(record: AttendanceRecord) -> dict | None:
    if record.risk_score is None:
        return None
    return {"score": record.risk_score, "level": record.risk_level, "reasons": list(record.risk_reasons or [])}


def submission_json(record: AttendanceRecord, student: User) -> dict:
    """A record as teachers see it (get-session-submissions, WebSocket messages)."""
    return {
        "id": record.id,
        "class_session_id": record.class_session_id,
        "student": {"id": student.id, "name": student.display_name},
        "submitted_at": iso(record.submitted_at),
        "status": record.status,
        "source": record.source,
        "risk": risk_of(record),
        "location_flag": record.location_flag,
        "distance_m": round(record.distance_m, 1) if record.distance_m is not None else None,
        "accuracy_m": record.accuracy_m,
        "remark": record.remark or "",
        "validated_at": iso(record.validated_at),
    }


def publish_record(record: AttendanceRecord, student: User, kind: str) -> None:
    """Tell the session's teachers, and the student, about a record (after the commit)."""
    publish_payload(record, submission_json(record, student), kind)


def publish_payload(record: AttendanceRecord, payload: dict, kind: str) -> None:
    realtime.broker().publish_many([
        (realtime.session_channel(record.class_session_id), {"type": kind, "attendance": payload}),
        (realtime.student_channel(record.class_session_id, record.student_id), {
            "type": kind, "attendance": {"id": record.id, "class_session_id": record.class_session_id,
                                         "status": record.status}}),
    ])


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


def session_json(session: ClassSession, policy: Policy, course: Course, now: datetime | None = None,
                 counts: dict | None = None) -> dict:
    now = now or clock.now()
    present_until, late_until = window_of(session, policy)
    out = {
        "id": session.id, "course_id": session.course_id, "course_title": course.display_title, "title": session.title,
        "starts_at": iso(session.starts_at), "ends_at": iso(session.ends_at), "timezone": course.timezone or "UTC",
        "latitude": session.latitude, "longitude": session.longitude, "radius_m": session.radius_m,
        "present_until": iso(present_until), "late_until": iso(late_until),
        "checkin_open": is_checkin_open(session, policy, now), "checkin_opened_at": iso(session.checkin_opened_at),
        "closed": session.closed_at is not None, "closed_at": iso(session.closed_at),
        "is_adhoc": session.is_adhoc, "series_id": session.series_id,
    }
    if counts is not None:
        out["submission_count"] = counts.get(session.id, 0)
    return out
