"""Keep users, courses, enrollments and resource links in step with each launch; idempotent."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from attendance.enrolment import record_membership
from attendance.models import Course, Enrollment, ResourceLink, User
from extensions import db
from lti.launch import Launch
from lti.models import utcnow
from lti.roles import STUDENT


@dataclass
class Provisioned:
    user: User
    course: Course | None
    enrollment: Enrollment | None
    resource_link: ResourceLink | None


def _get_or_create(model, lookup: dict):
    """Find a row by its unique key or insert it; a concurrent insert of the same key is absorbed."""
    query = select(model).filter_by(**lookup)
    row = db.session.scalar(query)
    if row is not None:
        return row
    try:
        with db.session.begin_nested():
            row = model(**lookup)
            db.session.add(row)
    except IntegrityError:
        row = db.session.scalar(query)
    return row


def provision(launch: Launch) -> Provisioned:  # noqa: C901 - one upsert per claim kind, in order
    """Upsert the launch's user, course, enrollment and resource link, and remember its service endpoints."""
    user = _get_or_create(User, {"registration_id": launch.registration_id, "sub": launch.sub})
    # Update only what the platform sent: a launch without PII must not erase names we know.
    for field in ("name", "given_name", "family_name", "email", "picture"):
        value = getattr(launch, field)
        if value:
            setattr(user, field, value)
    user.is_test_user = launch.is_test_user
    user.last_launch_at = utcnow()

    course = enrollment = link = None
    context = launch.context
    if context is not None:
        course = _get_or_create(Course, {"registration_id": launch.registration_id, "context_id": context.id})
        course.deployment_id = launch.deployment_pk
        if context.title:
            course.title = context.title
        if context.label:
            course.label = context.label
        if launch.ags is not None:
            course.ags_scopes = list(launch.ags.scopes)
            if launch.ags.lineitems_url:
                course.ags_lineitems_url = launch.ags.lineitems_url
        if launch.nrps is not None:
            course.nrps_url = launch.nrps.context_memberships_url
        db.session.flush()
        enrollment = _get_or_create(Enrollment, {"course_id": course.id, "user_id": user.id})
        enrollment.role = launch.role
        enrollment.lti_roles = list(launch.roles)
        enrollment.active = True
        enrollment.source = "launch"
        record_membership(course.id, {user.id: launch.role == STUDENT})
        if launch.resource_link is not None:
            link = _get_or_create(ResourceLink, {"course_id": course.id, "resource_link_id": launch.resource_link.id})
            if launch.resource_link.title:
                link.title = launch.resource_link.title
            if launch.ags is not None and launch.ags.lineitem_url:
                link.ags_lineitem_url = launch.ags.lineitem_url
    db.session.commit()
    return Provisioned(user, course, enrollment, link)
