"""Who acts: the caller of a request, as bound by their launch (platform, deployment, user, course, role)."""
from __future__ import annotations

from dataclasses import dataclass

from flask import current_app


@dataclass(frozen=True)
class Principal:
    """The caller of a request, as bound by their launch."""

    registration_id: int
    deployment_pk: int
    user_id: int
    course_id: int | None
    role: str
    is_admin: bool
    via: str  # "token" or "session"
    expires_at: float | None = None  # Unix time the launch token or session stops working

    @classmethod
    def from_claims(cls, claims: dict, via: str) -> "Principal":
        """Build the principal of verified launch claims (with `issued_at`, as the token reader returns them)."""
        issued = claims.get("issued_at")
        expires = float(issued) + current_app.config["LAUNCH_TOKEN_TTL"] if isinstance(issued, (int, float)) else None
        return cls(claims["registration"], claims["deployment"], claims["user"], claims.get("course"),
                   claims["role"], bool(claims.get("admin")), via, expires)
