"""Platform registrations, their deployments, and the expiring key-value store's table."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import JSON, Boolean, Float, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from extensions import UTCDateTime, db


def utcnow() -> datetime:
    """Return the current time, timezone-aware in UTC."""
    return datetime.now(timezone.utc)


class Registration(db.Model):
    """One tool registration on a platform: (issuer, client_id), never issuer alone."""

    __tablename__ = "lti_registration"
    __table_args__ = (UniqueConstraint("issuer", "client_id", name="uq_lti_registration_issuer_client"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    issuer: Mapped[str] = mapped_column(String(255))
    client_id: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(255), default="")
    product_family: Mapped[str] = mapped_column(String(64), default="")  # "moodle", "canvas", ...
    auth_login_url: Mapped[str] = mapped_column(String(1024))
    auth_token_url: Mapped[str] = mapped_column(String(1024), default="")
    auth_audience: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    key_set_url: Mapped[str] = mapped_column(String(1024))
    id_token_algs: Mapped[list] = mapped_column(JSON, default=lambda: ["RS256"])
    scopes: Mapped[list] = mapped_column(JSON, default=list)  # granted by the platform at registration
    # Hosts besides the issuer's and the token URL's where this platform's services (AGS, NRPS) and
    # pages live: Canvas Cloud's issuer is canvas.instructure.com, its courses are on the school's host.
    service_hosts: Mapped[list] = mapped_column(JSON, default=list)
    auto_onboard_deployments: Mapped[bool] = mapped_column(Boolean, default=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Registered through open dynamic registration: inactive until an admin approves it.
    pending_approval: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    deployments: Mapped[list[Deployment]] = relationship(
        back_populates="registration", cascade="all, delete-orphan", order_by="Deployment.id"
    )

    def __repr__(self) -> str:
        return f"<Registration {self.id} {self.issuer} {self.client_id}>"


class Deployment(db.Model):
    """A deployment id of a registration; launches from inactive deployments are refused."""

    __tablename__ = "lti_deployment"
    __table_args__ = (
        UniqueConstraint("registration_id", "deployment_id", name="uq_lti_deployment_registration_deployment"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    registration_id: Mapped[int] = mapped_column(ForeignKey("lti_registration.id", ondelete="CASCADE"), index=True)
    deployment_id: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    onboarded_by_launch: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    registration: Mapped[Registration] = relationship(back_populates="deployments")


class RegistrationInvite(db.Model):
    """A single-use, expiring grant to register one platform by LTI Dynamic Registration.

    Only a hash of the token is kept, so a database reader cannot register a platform.
    """

    __tablename__ = "lti_registration_invite"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    note: Mapped[str] = mapped_column(String(255), default="")
    created_by: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    registration_id: Mapped[int | None] = mapped_column(
        ForeignKey("lti_registration.id", ondelete="SET NULL"), nullable=True)


class StoreEntry(db.Model):
    """A row of the expiring key-value store (OIDC state, nonces, counters) when Redis is not used."""

    __tablename__ = "kv_store"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[float] = mapped_column(Float, index=True)  # Unix time: compares alike on every database
