"""Enrolment history: when each student was an active member of a course.

Launches, roster reads and admins say who is a student *now*; this module turns each change of
that into periods (joined, left, came back), so grades never charge a student for sessions held
before they joined or while they were away. Every change also queues the student's grade.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy import insert, select, update

from attendance import clock
from attendance.models import EnrollmentPeriod
from attendance.policy import policy_for
from extensions import db

CHUNK = 500


def record_membership(course_id: int, members: dict[int, bool], at: datetime | None = None) -> list[int]:
    """Open or close periods for users now members (True) or not (False); answer whose membership changed.

    In the caller's transaction; when the change moves grades, they are queued with it.
    """
    if not members:
        return []
    at = at or clock.now()
    open_periods: dict[int, int] = {}
    ids = list(members)
    for start in range(0, len(ids), CHUNK):
        open_periods.update(db.session.execute(select(EnrollmentPeriod.user_id, EnrollmentPeriod.id).where(
            EnrollmentPeriod.course_id == course_id, EnrollmentPeriod.user_id.in_(ids[start:start + CHUNK]),
            EnrollmentPeriod.ended_at.is_(None))).all())
    joined = [user_id for user_id, member in members.items() if member and user_id not in open_periods]
    left = [open_periods[user_id] for user_id, member in members.items() if not member and user_id in open_periods]
    if joined:
        db.session.execute(insert(EnrollmentPeriod), [
            {"course_id": course_id, "user_id": user_id, "started_at": at, "ended_at": None} for user_id in joined])
    if left:
        db.session.execute(update(EnrollmentPeriod).where(EnrollmentPeriod.id.in_(left)).values(ended_at=at))
    changed = joined + [user_id for user_id, member in members.items() if not member and user_id in open_periods]
    if changed and policy_for(course_id).denominator == "scheduled":
        # A change now only concerns sessions starting from now on: under "closed" none of them counts yet;
        # under "scheduled" the planned sessions do, so these grades move.
        from attendance.lms.outbox import queue_grades

        queue_grades(course_id, changed)
    return changed


def periods_of(course_id: int, user_ids: list[int]) -> dict[int, list[tuple[datetime, datetime | None]]]:
    """Every period of these users in the course, oldest first."""
    found: dict[int, list[tuple[datetime, datetime | None]]] = defaultdict(list)
    for start in range(0, len(user_ids), CHUNK):
        for row in db.session.execute(select(EnrollmentPeriod.user_id, EnrollmentPeriod.started_at,
                                             EnrollmentPeriod.ended_at).where(
                EnrollmentPeriod.course_id == course_id, EnrollmentPeriod.user_id.in_(user_ids[start:start + CHUNK]))
                .order_by(EnrollmentPeriod.started_at)):
            found[row.user_id].append((row.started_at, row.ended_at))
    return found


def enrolled_at(periods: list[tuple[datetime, datetime | None]] | None, moment: datetime) -> bool:
    """Whether the periods cover moment; a student with no recorded history counts as always enrolled."""
    if not periods:
        return True
    return any(start <= moment and (end is None or moment < end) for start, end in periods)
