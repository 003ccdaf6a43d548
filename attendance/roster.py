"""The course roster from the LMS (NRPS): users and enrollments upserted, members who left made inactive."""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import timedelta

from flask import Flask
from sqlalchemy import select

from attendance import clock
from attendance.grades import service_client
from attendance.models import Course, Enrollment, User
from extensions import db
from lti.constants import Scope
from lti.models import Registration
from lti.roles import map_roles
from lti.store import get_store
from lti.services import ServiceError

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
    name = (member.get("name") or "").strip()
    if name:
        return name
    return " ".join(p for p in ((member.get("given_name") or "").strip(), (member.get("family_name") or "").strip()) if p)


def sync_roster(course: Course) -> RosterResult:
    """Read every page of the course's memberships and bring users and enrollments in line with it."""
    if not course.nrps_url:
        raise ServiceError("This course has no roster service (the LMS did not grant NRPS).", 400)
    registration = db.session.get(Registration, course.registration_id)
    members = {}
    try:
        for member in service_client(registration).memberships(course.nrps_url, NRPS_SCOPES):
            sub = member.get("user_id")
            if isinstance(sub, str) and sub:
                members[sub] = member
    except ServiceError as exc:
        course.roster_error = exc.message
        db.session.commit()
        raise
    users = {}
    subs = list(members)
    for start in range(0, len(subs), CHUNK):
        users.update({u.sub: u for u in db.session.scalars(select(User).where(
            User.registration_id == course.registration_id, User.sub.in_(subs[start:start + CHUNK])))})
    added = updated = 0
    new_users = []
    for sub, member in members.items():
        user = users.get(sub)
        if user is None:
            user = User(registration_id=course.registration_id, sub=sub)
            users[sub] = user
            new_users.append(user)
        for attr, value in (("name", _member_name(member)), ("given_name", member.get("given_name")),
                            ("family_name", member.get("family_name")), ("email", member.get("email")),
                            ("picture", member.get("picture"))):
            if isinstance(value, str) and value and getattr(user, attr) != value:
                setattr(user, attr, value)
    db.session.add_all(new_users)
    db.session.flush()
    enrollments = {e.user_id: e for e in db.session.scalars(select(Enrollment).where(Enrollment.course_id == course.id))}
    seen = set()
    for sub, member in members.items():
        user = users[sub]
        seen.add(user.id)
        roles = [r for r in member.get("roles") or [] if isinstance(r, str)]
        role = map_roles(roles).role
        active = (member.get("status") or "Active") == "Active"
        enrollment = enrollments.get(user.id)
        if enrollment is None:
            db.session.add(Enrollment(course_id=course.id, user_id=user.id, role=role, lti_roles=roles,
                                      active=active, source="roster"))
            added += 1
        elif (enrollment.role, enrollment.active) != (role, active):
            enrollment.role, enrollment.active, enrollment.lti_roles = role, active, roles
            updated += 1
    deactivated = 0
    for user_id, enrollment in enrollments.items():
        # An empty roster is a platform fault (a course has at least its teacher), not everyone leaving.
        if members and user_id not in seen and enrollment.active and enrollment.source != "admin":
            enrollment.active = False  # left the course in the LMS
            deactivated += 1
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
    """What the dashboard says about where the student list comes from."""
    return {"source": "nrps" if course.nrps_url else "launches", "synced_at":
            course.roster_synced_at.isoformat().replace("+00:00", "Z") if course.roster_synced_at else None,
            "error": course.roster_error}
