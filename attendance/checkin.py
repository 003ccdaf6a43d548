"""The check-in hot path: one SELECT, one INSERT, one COMMIT, then the live message."""
from __future__ import annotations

import functools
import hashlib
import ipaddress
from dataclasses import dataclass
from types import SimpleNamespace

from flask import current_app
from sqlalchemy import and_, bindparam, func, select
from sqlalchemy.orm import aliased

from attendance import clock, codes, geo
from attendance.errors import ApiError
from attendance.lms.outbox import records_changed
from attendance.models import (
    EXCUSED,
    LATE,
    PRESENT,
    AttendanceRecord,
    ClassSession,
    CoursePolicy,
    Enrollment,
    Source,
    User,
    display_name,
)
from attendance.policy import Policy
from attendance.principal import Principal
from attendance.records import _insert_for, publish_payload, submission_json
from attendance.risk import RiskSignals, score_check_in
from attendance.sessions import checkin_opens_at, window_of
from extensions import db
from lti.roles import STUDENT


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
    """Build the hot path's SELECT once: open sessions of the course with their policy, the student's
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
                                    Enrollment.role == STUDENT))
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
    if source in (Source.TEACHER, Source.JUSTIFICATION):
        return ApiError("already_recorded", "Your teacher has already recorded your attendance for this class.", 409)
    return ApiError("already_submitted", "You have already checked in to this class.", 409)


def record_check_in(principal: Principal, code: str, where: Where, client: Client,  # long: the hot path reads as one story, one SELECT to one COMMIT
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
