"""The grade outbox: every change that moves a grade queues it, in the same transaction."""
from __future__ import annotations

from collections import defaultdict

from sqlalchemy import event, inspect, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from attendance import clock
from attendance.models import (
    AttendanceRecord,
    ClassSession,
    Course,
    CoursePolicy,
    DeliveryState,
    Enrollment,
    GradeDelivery,
    ResourceLink,
)
from extensions import db
from lti.roles import STUDENT


# -- the outbox --------------------------------------------------------------------------------
def course_has_ags(course: Course) -> bool:
    """Whether grades of this course can reach an LMS line item."""
    if course.ags_lineitems_url:
        return True
    return db.session.scalar(select(ResourceLink.id).where(
        ResourceLink.course_id == course.id, ResourceLink.ags_lineitem_url.is_not(None)).limit(1)) is not None


def queue_grades(course_id: int, student_ids=None, *, connection=None) -> int:
    """Mark students' grades as changed, in the caller's transaction; None means every active student.

    One INSERT … ON CONFLICT DO UPDATE: the outbox row is created or its version bumped, so concurrent
    changes never fail on the unique (course, student) row and never lose a bump. Runs on the given
    connection (the flush hook's) or the session's.
    """
    conn = connection if connection is not None else db.session.connection()
    has_ags = conn.execute(select(Course.id).where(Course.id == course_id, or_(
        Course.ags_lineitems_url.is_not(None),
        select(ResourceLink.id).where(ResourceLink.course_id == course_id,
                                      ResourceLink.ags_lineitem_url.is_not(None)).exists()))).first()
    if has_ags is None:
        return 0
    if student_ids is None:
        student_ids = conn.execute(select(Enrollment.user_id).where(
            Enrollment.course_id == course_id, Enrollment.role == STUDENT, Enrollment.active.is_(True))).scalars().all()
    student_ids = list(dict.fromkeys(student_ids))
    if not student_ids:
        return 0
    now = clock.now()
    table = GradeDelivery.__table__
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    statement = insert(table).on_conflict_do_update(
        index_elements=["course_id", "student_id"],
        set_={"version": table.c.version + 1, "state": DeliveryState.PENDING, "next_attempt_at": now, "attempts": 0,
              "updated_at": now})
    for start in range(0, len(student_ids), 500):
        conn.execute(statement, [{"course_id": course_id, "student_id": student_id, "version": 1,
                                  "delivered_version": 0, "state": DeliveryState.PENDING, "attempts": 0, "next_attempt_at": now,
                                  "updated_at": now} for student_id in student_ids[start:start + 500]])
    return len(student_ids)


# -- what moves a grade ------------------------------------------------------------------------
# Every ORM change below queues the grades it moves, in the flush that writes it: no endpoint has to
# remember. The few Core statements on attendance records (the check-in hot path, racing inserts)
# call `records_changed` themselves.
GRADE_POLICY_FIELDS = ("points_present", "points_late", "points_absent", "drop_lowest", "denominator")


EVERYONE = None


def _changed(obj, *names: str) -> bool:
    state = inspect(obj)
    return any(state.attrs[name].history.has_changes() for name in names)


def _moved_by(session) -> tuple[dict, set]:
    """(course id -> student ids or EVERYONE, class session ids whose course is still to find) of a flush."""
    moved: dict[int, set | None] = {}
    record_sessions: dict[int, set] = defaultdict(set)
    scheduled_sessions: set[int] = set()
    for obj in session.new | session.dirty | session.deleted:
        if isinstance(obj, AttendanceRecord):
            if obj in session.dirty and not _changed(obj, "status"):
                continue
            record_sessions[obj.class_session_id].add(obj.student_id)
        elif isinstance(obj, ClassSession):
            if obj in session.deleted or (obj in session.dirty and _changed(obj, "closed_at", "starts_at")):
                moved[obj.course_id] = EVERYONE  # its records go with it; closing or moving it changes who counts
            elif obj in session.new:  # a new session counts at once when every scheduled session does
                scheduled_sessions.add(obj.course_id)
        elif isinstance(obj, CoursePolicy):
            if obj in session.new or obj in session.deleted or _changed(obj, *GRADE_POLICY_FIELDS):
                moved[obj.course_id] = EVERYONE
    return moved, (record_sessions, scheduled_sessions)


@event.listens_for(Session, "after_flush")
def _queue_moved_grades(session, _context) -> None:
    """Queue the grades this flush moved, on the flush's own connection (same transaction)."""
    moved, (record_sessions, scheduled_courses) = _moved_by(session)
    if not (moved or record_sessions or scheduled_courses):
        return
    conn = session.connection()
    if record_sessions:
        for session_id, course_id in conn.execute(select(ClassSession.id, ClassSession.course_id).where(
                ClassSession.id.in_(list(record_sessions)))):
            if course_id in moved and moved[course_id] is EVERYONE:
                continue
            moved.setdefault(course_id, set()).update(record_sessions[session_id])
    for course_id in scheduled_courses - {c for c, who in moved.items() if who is EVERYONE}:
        denominator = conn.execute(select(CoursePolicy.denominator).where(CoursePolicy.course_id == course_id)).scalar()
        if denominator == "scheduled":
            moved[course_id] = EVERYONE
    for course_id, who in moved.items():
        queue_grades(course_id, None if who is EVERYONE else sorted(who), connection=conn)


def records_changed(course_id: int, student_ids: list[int]) -> None:
    """Queue the grades moved by attendance records written with Core statements (no flush hook sees them)."""
    queue_grades(course_id, student_ids)
