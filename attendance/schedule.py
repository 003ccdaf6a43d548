"""What a student sees: classes now, today and this week across their courses, and their history."""
from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, or_, select

from attendance import clock
from attendance.errors import ApiError
from attendance.grading import compute_grades
from attendance.models import ABSENT, EXCUSED, LATE, PRESENT, AttendanceRecord, ClassSession, Course, Enrollment
from attendance.policy import Policy, policy_for
from attendance.principal import Principal
from attendance.records import iso
from attendance.sessions import is_checkin_open, zone_of
from extensions import db
from lti.roles import STUDENT

SOON = timedelta(minutes=15)


def zone(course: Course) -> ZoneInfo:
    """Return the course's timezone (one definition: sessions.zone_of)."""
    return zone_of(course)


def local_day(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """[start, end) of a calendar day in a timezone."""
    return datetime.combine(day, time.min, tzinfo=tz), datetime.combine(day + timedelta(days=1), time.min, tzinfo=tz)


def _student_courses(principal: Principal) -> list[Course]:
    return db.session.scalars(select(Course).join(Enrollment, Enrollment.course_id == Course.id).where(
        Enrollment.user_id == principal.user_id, Enrollment.role == STUDENT, Enrollment.active.is_(True))).all()


def _class_json(session: ClassSession, course: Course, policy: Policy, record: AttendanceRecord | None,
                now: datetime) -> dict:
    return {
        "class_session_id": session.id,
        "course_id": course.id,
        "course_title": course.display_title,
        "title": session.title,
        "starts_at": iso(session.starts_at),
        "ends_at": iso(session.ends_at),
        "timezone": course.timezone or "UTC",
        "checkin_open": is_checkin_open(session, policy, now),
        "has_location": session.latitude is not None,
        "my_status": record.status if record else None,
        "closed": session.closed_at is not None,
    }


def classes(principal: Principal, scope: str) -> list[dict]:
    """scope: current (open or about to start), today, week — in each course's timezone."""
    now = clock.now()
    courses = {c.id: c for c in _student_courses(principal)}
    if not courses:
        return []
    sessions = db.session.scalars(select(ClassSession).where(
        ClassSession.course_id.in_(courses), ClassSession.starts_at < now + timedelta(days=8),
        ClassSession.ends_at > now - timedelta(days=8)).order_by(ClassSession.starts_at)).all()
    records = {r.class_session_id: r for r in db.session.scalars(select(AttendanceRecord).where(
        AttendanceRecord.student_id == principal.user_id,
        AttendanceRecord.class_session_id.in_([s.id for s in sessions] or [0])))}
    policies = {cid: policy_for(cid) for cid in courses}
    out = []
    for session in sessions:
        course = courses[session.course_id]
        tz = zone(course)
        local_today = now.astimezone(tz).date()
        if scope == "current":
            keep = is_checkin_open(session, policies[course.id], now) or (
                session.starts_at - SOON <= now <= session.ends_at and session.closed_at is None)
        elif scope == "today":  # every class that runs at some point of the local day, even one begun yesterday
            day_start, day_end = local_day(local_today, tz)
            keep = session.starts_at < day_end and session.ends_at > day_start
        else:
            monday = local_today - timedelta(days=local_today.weekday())
            keep = monday <= session.starts_at.astimezone(tz).date() < monday + timedelta(days=7)
        if keep:
            out.append(_class_json(session, course, policies[course.id], records.get(session.id), now))
    return out


def history(principal: Principal, course_id: int | None, start: date | None, end: date | None) -> tuple[list, list]:
    """Return the student's records (newest first) and a summary per course."""
    courses = {c.id: c for c in _student_courses(principal)}
    if course_id is not None and course_id not in courses:
        raise ApiError("not_found", "No such course among yours.", 404)
    query = (select(AttendanceRecord, ClassSession).join(ClassSession)
             .where(AttendanceRecord.student_id == principal.user_id, ClassSession.course_id.in_(courses or [0])))
    if course_id is not None:
        query = query.where(ClassSession.course_id == course_id)
    if (start is not None or end is not None) and courses:
        # Days are each course's own: a 23:30 New York class on 7 January belongs to 7 January.
        per_course = []
        for cid, course in courses.items():
            tz, bounds = zone(course), [ClassSession.course_id == cid]
            if start is not None:
                bounds.append(ClassSession.starts_at >= local_day(start, tz)[0])
            if end is not None:
                bounds.append(ClassSession.starts_at < local_day(end, tz)[1])
            per_course.append(and_(*bounds))
        query = query.where(or_(*per_course))
    rows = db.session.execute(query.order_by(ClassSession.starts_at.desc())).all()
    items, counts = [], defaultdict(lambda: {PRESENT: 0, LATE: 0, EXCUSED: 0, ABSENT: 0})
    for record, session in rows:
        course = courses[session.course_id]
        items.append({
            "attendance_id": record.id, "class_session_id": session.id, "course_id": course.id,
            "course_title": course.display_title, "title": session.title, "starts_at": iso(session.starts_at),
            "status": record.status, "submitted_at": iso(record.submitted_at), "remark": record.remark or "",
        })
        counts[course.id][record.status] += 1
    summary = []
    for cid, tally in counts.items():
        # The same grade the LMS gets: drop-lowest, the denominator and enrolment periods included.
        grade = compute_grades(cid, [principal.user_id])[principal.user_id]
        summary.append({
            "course_id": cid, "course_title": courses[cid].display_title, "attended": tally[PRESENT],
            "late": tally[LATE], "excused": tally[EXCUSED], "absent": tally[ABSENT], "total": sum(tally.values()),
            "percentage": round(grade.score, 1) if grade.score is not None else None,
        })
    return items, summary
