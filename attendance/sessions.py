"""Class sessions: creating them, their check-in window, opening and stopping check-in, codes."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import current_app
from sqlalchemy import select

from attendance import clock, codes, realtime
from attendance.audit import record_audit
from attendance.errors import ApiError
from attendance.models import ClassSession, Course
from attendance.policy import Policy, policy_for, window_errors
from attendance.principal import Principal
from attendance.records import iso
from extensions import db


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


# -- class sessions ----------------------------------------------------------------------------
def create_class_sessions(  # noqa: C901 - field checks that report together
        course: Course, actor_id: int | None, *, title: str, starts_at: datetime, ends_at: datetime,
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
    """Every class session of a course, oldest first."""
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
        record_audit(course.id, None, principal.user_id, "checkin_opened",
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
        record_audit(session.course_id, None, principal.user_id, "checkin_stopped", detail={"class_session_id": session.id})
        db.session.commit()
        realtime.broker().publish(realtime.session_channel(session.id),
                                  {"type": "checkin_stopped", "class_session_id": session.id})
    return session


def session_json(session: ClassSession, policy: Policy, course: Course, now: datetime | None = None,
                 counts: dict | None = None) -> dict:
    """A session and what the course's rules make of it, for the API's ClassSessionOut (which formats the times)."""
    now = now or clock.now()
    present_until, late_until = window_of(session, policy)
    out = {
        "id": session.id, "course_id": session.course_id, "course_title": course.display_title, "title": session.title,
        "starts_at": session.starts_at, "ends_at": session.ends_at, "timezone": course.timezone or "UTC",
        "latitude": session.latitude, "longitude": session.longitude, "radius_m": session.radius_m,
        "present_until": present_until, "late_until": late_until,
        "checkin_open": is_checkin_open(session, policy, now), "checkin_opened_at": session.checkin_opened_at,
        "closed": session.closed_at is not None, "closed_at": session.closed_at,
        "is_adhoc": session.is_adhoc, "series_id": session.series_id,
    }
    if counts is not None:
        out["submission_count"] = counts.get(session.id, 0)
    return out
