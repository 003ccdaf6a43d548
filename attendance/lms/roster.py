"""The course roster from the LMS (NRPS): users and enrollments upserted, members who left made inactive."""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import timedelta

from flask import Flask
from sqlalchemy import insert, select, update

from attendance import clock
from attendance.enrolment import record_membership
from attendance.lms.client import service_client
from attendance.models import Course, Enrollment, User
from extensions import db
from lti.constants import Scope
from lti.models import Registration
from lti.roles import STUDENT, map_roles
from lti.services import ServiceError
from lti.store import get_store

log = logging.getLogger(__name__)
NRPS_SCOPES = (Scope.NRPS.value,)
CHUNK = 500


@dataclass(frozen=True)
class RosterResult:
    members: int
    added: int
    updated: int
    deactivated: int


def _member_name(member: dict) -> str:
    def text(key):
        value = member.get(key)
        return value.strip() if isinstance(value, str) else ""

    return text("name") or " ".join(p for p in (text("given_name"), text("family_name")) if p)


def sync_roster(course: Course) -> RosterResult:  # noqa: C901 - the bulk upsert of users, enrollments and periods stays in one transaction
    """Read every page of the course's memberships and bring users and enrollments in line with it."""
    if not course.nrps_url:
        raise ServiceError("This course has no roster service (the LMS did not grant NRPS).", 400)
    registration = db.session.get(Registration, course.registration_id)
    members = {}
    try:
        for member in service_client(registration).memberships(course.nrps_url, NRPS_SCOPES):
            sub = member.get("user_id")
            if isinstance(sub, str) and sub and len(sub) <= 255:
                members[sub] = member
    except ServiceError as exc:
        course.roster_error = exc.message
        db.session.commit()
        raise
    # Bulk statements rather than one ORM object per member: a lecture course has thousands of them.
    fields = ("name", "given_name", "family_name", "email", "picture")
    existing = {}
    subs = list(members)
    for start in range(0, len(subs), CHUNK):
        existing.update({row.sub: row for row in db.session.execute(select(User.id, User.sub, *(
            getattr(User, f) for f in fields)).where(User.registration_id == course.registration_id,
                                                     User.sub.in_(subs[start:start + CHUNK])))})
    limits = {f: getattr(User, f).type.length for f in fields}
    wanted = {sub: {f: v[:limits[f]] for f, v in (("name", _member_name(m)), *((f, m.get(f)) for f in fields[1:]))
                    if isinstance(v, str) and v} for sub, m in members.items()}
    new_users = [dict({f: "" for f in fields}, registration_id=course.registration_id, sub=sub, **wanted[sub])
                 for sub in subs if sub not in existing]
    if new_users:
        db.session.execute(insert(User), new_users)
    changed_users = [dict(id=existing[sub].id, **values) for sub, values in wanted.items() if sub in existing
                     and any(getattr(existing[sub], f) != v for f, v in values.items())]
    for row in changed_users:  # few, and each may change different columns
        db.session.execute(update(User).where(User.id == row.pop("id")).values(**row))
    user_ids = {}
    for start in range(0, len(subs), CHUNK):
        user_ids.update(db.session.execute(select(User.sub, User.id).where(
            User.registration_id == course.registration_id, User.sub.in_(subs[start:start + CHUNK]))).all())

    enrollments = {row.user_id: row for row in db.session.execute(select(
        Enrollment.id, Enrollment.user_id, Enrollment.role, Enrollment.active, Enrollment.source)
        .where(Enrollment.course_id == course.id))}
    new_enrollments, changed, seen, membership = [], [], set(), {}
    for sub, member in members.items():
        user_id = user_ids[sub]
        seen.add(user_id)
        roles = [r for r in member.get("roles") or [] if isinstance(r, str)]
        role = map_roles(roles).role
        active = (member.get("status") or "Active") == "Active"
        membership[user_id] = role == STUDENT and active
        enrollment = enrollments.get(user_id)
        if enrollment is None:
            new_enrollments.append({"course_id": course.id, "user_id": user_id, "role": role, "lti_roles": roles,
                                    "active": active, "source": "roster"})
        elif (enrollment.role, enrollment.active) != (role, active):
            changed.append({"id": enrollment.id, "role": role, "active": active, "lti_roles": roles})
    if new_enrollments:
        db.session.execute(insert(Enrollment), new_enrollments)
    if changed:
        db.session.execute(update(Enrollment), changed)
    # An empty roster is a platform fault (a course has at least its teacher), not everyone leaving.
    left = [row.id for user_id, row in enrollments.items()
            if members and user_id not in seen and row.active and row.source != "admin"]
    if left:
        db.session.execute(update(Enrollment).where(Enrollment.id.in_(left)).values(active=False))
    # Who is a student now, by the LMS: joins, departures and returns become enrolment periods.
    gone = set(left)
    membership.update({user_id: False for user_id, row in enrollments.items() if row.id in gone})
    record_membership(course.id, membership)
    added, updated, deactivated = len(new_enrollments), len(changed), len(left)
    course.roster_synced_at = clock.now()
    course.roster_error = None
    db.session.commit()
    return RosterResult(len(members), added, updated, deactivated)


def sync_if_stale(app: Flask, course_id: int) -> None:
    """On a teacher launch: read the roster in the background when the last read is old enough."""
    course = db.session.get(Course, course_id)
    if course is None or not course.nrps_url or not app.config["ROSTER_SYNC_ON_LAUNCH"]:
        return
    interval = timedelta(seconds=app.config["ROSTER_SYNC_INTERVAL"])
    if course.roster_synced_at is not None and clock.now() - course.roster_synced_at < interval:
        return
    # One sync at a time per course across every process, however many teachers launch at once;
    # roster_synced_at then spaces the next one by the interval.
    if not get_store().add(f"roster_sync:{course_id}", "1", max(1, min(60, int(interval.total_seconds())))):
        return

    def run():
        with app.app_context():
            try:
                sync_roster(db.session.get(Course, course_id))
            except ServiceError as exc:
                log.warning("roster sync of course %s failed: %s", course_id, exc.message)
            except Exception:
                log.exception("roster sync of course %s crashed", course_id)
            finally:
                db.session.remove()

    threading.Thread(target=run, name=f"roster-{course_id}", daemon=True).start()


def roster_state(course: Course) -> dict:
    """Describe, for the dashboard, where the student list comes from."""
    return {"source": "nrps" if course.nrps_url else "launches", "synced_at":
            course.roster_synced_at.isoformat().replace("+00:00", "Z") if course.roster_synced_at else None,
            "error": course.roster_error}
