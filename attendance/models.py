"""People and courses as the LMS describes them, kept in step by every launch."""
from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from extensions import UTCDateTime, db
from lti.models import Registration, utcnow


def display_name(name: str | None, email: str | None, sub: str) -> str:
    """How a person is shown: their name, else their e-mail, else a stable pseudonym (no PII sent)."""
    return name or email or f"User {sub[:12]}"


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
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_launch_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    registration: Mapped[Registration] = relationship()

    @property
    def display_name(self) -> str:
        """The name to show: the LMS name, else the email, else the LMS user id."""
        return display_name(self.name, self.email, self.sub)


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
    roster_synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    roster_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    registration: Mapped[Registration] = relationship()

    @property
    def display_title(self) -> str:
        """The title to show: the LMS title, else its label, else the context id."""
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
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    course: Mapped[Course] = relationship()
    user: Mapped[User] = relationship()


class EnrollmentPeriod(db.Model):
    """A stretch of time a user was an active student of a course: joined, left, came back.

    Grades count a session without a record as an absence only when it started inside one of these.
    """

    __tablename__ = "enrollment_period"
    __table_args__ = (Index("ix_enrollment_period_course_user", "course_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("course.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ResourceLink(db.Model):
    """A placement of the tool in a course; AGS line items hang off it."""

    __tablename__ = "resource_link"
    __table_args__ = (UniqueConstraint("course_id", "resource_link_id", name="uq_resource_link_course_link"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("course.id", ondelete="CASCADE"), index=True)
    resource_link_id: Mapped[str] = mapped_column(String(255))
    title: Mapped[str] = mapped_column(String(512), default="")
    ags_lineitem_url: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    course: Mapped[Course] = relationship()


class Status(StrEnum):
    """An attendance record's status."""

    PRESENT = "present"
    LATE = "late"
    EXCUSED = "excused"
    ABSENT = "absent"


class Source(StrEnum):
    """Who wrote an attendance record."""

    CHECKIN = "checkin"
    TEACHER = "teacher"
    CLOSE = "close"
    JUSTIFICATION = "justification"


class DeliveryState(StrEnum):
    """Where a grade is on its way to the LMS."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


PRESENT, LATE, EXCUSED, ABSENT = Status.PRESENT, Status.LATE, Status.EXCUSED, Status.ABSENT
STATUSES = tuple(Status)


class CoursePolicy(db.Model):
    """A course's attendance rules: points per status and the check-in window. Absent rows use defaults."""

    __tablename__ = "course_policy"

    course_id: Mapped[int] = mapped_column(ForeignKey("course.id", ondelete="CASCADE"), primary_key=True)
    # Every rule is NULL until the course sets it: NULL means "the site's default", which follows the
    # operator's settings (POINTS_*, CHECKIN_*_MINUTES, CODE_ROTATION_SECONDS) instead of freezing them.
    points_present: Mapped[float | None] = mapped_column(Float, nullable=True)
    points_late: Mapped[float | None] = mapped_column(Float, nullable=True)
    points_absent: Mapped[float | None] = mapped_column(Float, nullable=True)
    present_minutes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    late_minutes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    code_rotation_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    campus_networks: Mapped[list | None] = mapped_column(JSON, nullable=True)  # None: the site's CAMPUS_NETWORKS
    drop_lowest: Mapped[int | None] = mapped_column(Integer, nullable=True)  # the N lowest sessions do not count
    denominator: Mapped[str | None] = mapped_column(String(16), nullable=True)  # closed sessions so far, or all scheduled


class ClassSession(db.Model):
    """One class meeting of a course. Times are UTC; pages show them in the course's timezone."""

    __tablename__ = "class_session"
    __table_args__ = (Index("ix_class_session_course_starts", "course_id", "starts_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("course.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(255))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    latitude: Mapped[float | None] = mapped_column(Float, nullable=True)
    longitude: Mapped[float | None] = mapped_column(Float, nullable=True)
    radius_m: Mapped[float | None] = mapped_column(Float, nullable=True)
    present_minutes: Mapped[int | None] = mapped_column(Integer, nullable=True)  # None: the course's policy
    late_minutes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    series_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)  # weekly repeats share it
    is_adhoc: Mapped[bool] = mapped_column(Boolean, default=False)
    code_secret: Mapped[str] = mapped_column(String(64))  # never leaves the server
    checkin_opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    checkin_closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The course's rotation when check-in opened: a settings change mid-class leaves the projected code valid.
    code_rotation_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)  # None: the course's policy
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    course: Mapped[Course] = relationship()


class AttendanceRecord(db.Model):
    """A student's attendance at one class session: one row per (session, student), enforced here."""

    __tablename__ = "attendance_record"
    __table_args__ = (
        UniqueConstraint("class_session_id", "student_id", name="uq_attendance_record_session_student"),
        Index("ix_attendance_record_student", "student_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    class_session_id: Mapped[int] = mapped_column(ForeignKey("class_session.id", ondelete="CASCADE"))
    student_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16), default="checkin")  # checkin, teacher, close, justification
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    latitude: Mapped[float | None] = mapped_column(Float, nullable=True)
    longitude: Mapped[float | None] = mapped_column(Float, nullable=True)
    accuracy_m: Mapped[float | None] = mapped_column(Float, nullable=True)
    distance_m: Mapped[float | None] = mapped_column(Float, nullable=True)
    location_flag: Mapped[str | None] = mapped_column(String(16), nullable=True)  # inside, outside, missing, inaccurate, no_geofence
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_agent_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    device_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    risk_score: Mapped[int | None] = mapped_column(Integer, nullable=True)
    risk_level: Mapped[str | None] = mapped_column(String(8), nullable=True)
    risk_reasons: Mapped[list | None] = mapped_column(JSON, nullable=True)
    remark: Mapped[str] = mapped_column(Text, default="")
    validated_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"), nullable=True)
    validated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    class_session: Mapped[ClassSession] = relationship()
    student: Mapped[User] = relationship(foreign_keys=[student_id])


class Justification(db.Model):
    """A student's reason for missing a class session, with an optional document, reviewed by a teacher."""

    __tablename__ = "justification"
    __table_args__ = (
        # One live justification per student and session, even when two are sent at the same moment.
        Index("uq_justification_live", "class_session_id", "student_id", unique=True,
              sqlite_where=text("status IN ('pending', 'approved')"),
              postgresql_where=text("status IN ('pending', 'approved')")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    class_session_id: Mapped[int] = mapped_column(ForeignKey("class_session.id", ondelete="CASCADE"), index=True)
    student_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), index=True)
    reason: Mapped[str] = mapped_column(Text)
    document_name: Mapped[str | None] = mapped_column(String(255), nullable=True)  # the student's file name, cleaned
    document_path: Mapped[str | None] = mapped_column(String(255), nullable=True)  # random name under uploads/
    document_type: Mapped[str | None] = mapped_column(String(64), nullable=True)
    document_size: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending, approved, rejected
    reviewed_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"), nullable=True)
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    class_session: Mapped[ClassSession] = relationship()
    student: Mapped[User] = relationship(foreign_keys=[student_id])


class AuditEntry(db.Model):
    """Who changed which attendance record, when, from what to what."""

    __tablename__ = "audit_entry"

    id: Mapped[int] = mapped_column(primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("course.id", ondelete="CASCADE"), index=True)
    record_id: Mapped[int | None] = mapped_column(ForeignKey("attendance_record.id", ondelete="SET NULL"), nullable=True, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"), nullable=True)
    action: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    to_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    detail: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class GradeDelivery(db.Model):
    """The grade outbox: one row per (course, student); every change bumps `version` in the same transaction.

    A worker posts the student's grade as it is when delivered, so many changes collapse into one post of
    the latest value; `delivered_version` tells which change the LMS has seen.
    """

    __tablename__ = "grade_delivery"
    __table_args__ = (
        UniqueConstraint("course_id", "student_id", name="uq_grade_delivery_course_student"),
        Index("ix_grade_delivery_due", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("course.id", ondelete="CASCADE"))
    student_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer, default=1)
    delivered_version: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(16), default="pending")  # pending, delivered, failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    claimed_by: Mapped[str | None] = mapped_column(String(128), nullable=True)  # host:pid of the leasing worker
    last_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_timestamp: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    student: Mapped[User] = relationship()
