"""People and courses as the LMS describes them, kept in step by every launch."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from extensions import db
from lti.models import Registration, utcnow


class User(db.Model):
    """A person on one platform: (registration, sub). Names and e-mail only when the platform sends them."""

    __tablename__ = "user"
    __table_args__ = (UniqueConstraint("registration_id", "sub", name="uq_user_registration_sub"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    registration_id: Mapped[int] = mapped_column(ForeignKey("lti_registration.id", ondelete="CASCADE"), index=True)
    sub: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(255), default="")
    given_name: Mapped[str] = mapped_column(String(255), default="")
    family_name: Mapped[str] = mapped_column(String(255), default="")
    email: Mapped[str] = mapped_column(String(320), default="")
    picture: Mapped[str] = mapped_column(String(1024), default="")
    is_test_user: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_launch_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    registration: Mapped[Registration] = relationship()

    @property
    def display_name(self) -> str:
        return self.name or self.email or f"User {self.sub[:12]}"


class Course(db.Model):
    """An LMS context: (registration, context id), reached through any of the registration's deployments."""

    __tablename__ = "course"
    __table_args__ = (UniqueConstraint("registration_id", "context_id", name="uq_course_registration_context"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    registration_id: Mapped[int] = mapped_column(ForeignKey("lti_registration.id", ondelete="CASCADE"), index=True)
    deployment_id: Mapped[int | None] = mapped_column(ForeignKey("lti_deployment.id", ondelete="SET NULL"), nullable=True)
    context_id: Mapped[str] = mapped_column(String(255))
    title: Mapped[str] = mapped_column(String(512), default="")
    label: Mapped[str] = mapped_column(String(255), default="")
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    ags_lineitems_url: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    ags_scopes: Mapped[list] = mapped_column(JSON, default=list)
    nrps_url: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    registration: Mapped[Registration] = relationship()

    @property
    def display_title(self) -> str:
        return self.title or self.label or f"Course {self.context_id}"


class Enrollment(db.Model):
    """A user's role in a course, as of their latest launch or roster sync."""

    __tablename__ = "enrollment"
    __table_args__ = (UniqueConstraint("course_id", "user_id", name="uq_enrollment_course_user"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("course.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16), default="none")  # teacher, student, admin, none
    lti_roles: Mapped[list] = mapped_column(JSON, default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    source: Mapped[str] = mapped_column(String(16), default="launch")  # launch or roster
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    course: Mapped[Course] = relationship()
    user: Mapped[User] = relationship()


class ResourceLink(db.Model):
    """A placement of the tool in a course; AGS line items hang off it."""

    __tablename__ = "resource_link"
    __table_args__ = (UniqueConstraint("course_id", "resource_link_id", name="uq_resource_link_course_link"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("course.id", ondelete="CASCADE"), index=True)
    resource_link_id: Mapped[str] = mapped_column(String(255))
    title: Mapped[str] = mapped_column(String(512), default="")
    ags_lineitem_url: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    course: Mapped[Course] = relationship()
