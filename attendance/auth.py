"""Who is calling: a launch token (Bearer) or the session a launch opened (cookie + X-CSRFToken)."""
from __future__ import annotations

from dataclasses import dataclass
from functools import wraps

from flask import g, request, session
from flask_wtf.csrf import validate_csrf
from wtforms.validators import ValidationError

from attendance.errors import ApiError
from lti.exceptions import LaunchTokenError
from lti.tokens import read_launch_token

SESSION_KEY = "launch"
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


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

    @classmethod
    def from_claims(cls, claims: dict, via: str) -> "Principal":
        return cls(claims["registration"], claims["deployment"], claims["user"], claims.get("course"),
                   claims["role"], bool(claims.get("admin")), via)


def current_principal() -> Principal:
    """Authenticate the request or raise a 401/403 ApiError."""
    if "principal" in g:
        return g.principal
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        try:
            claims = read_launch_token(header[7:].strip())
        except LaunchTokenError as exc:
            raise ApiError("authentication_required", exc.message, 401) from exc
        g.principal = Principal.from_claims(claims, "token")
        return g.principal
    claims = session.get(SESSION_KEY)
    if not claims:
        raise ApiError("authentication_required", "Open the tool from your course first (no launch token or session).", 401)
    if request.method in UNSAFE:
        token = request.headers.get("X-CSRFToken") or request.headers.get("X-CSRF-Token") or request.form.get("csrf_token")
        if not token:
            raise ApiError("csrf_missing", "The X-CSRFToken header is missing.", 403)
        try:
            validate_csrf(token)
        except ValidationError as exc:
            raise ApiError("csrf_missing", "The CSRF token is missing, invalid or expired.", 403) from exc
    g.principal = Principal.from_claims(claims, "session")
    return g.principal


def require_role(*roles: str, admin: bool = False):
    """Let through callers whose launch role is one of roles (or who hold admin rights when admin=True)."""

    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            principal = current_principal()
            if not (principal.role in roles or (admin and principal.is_admin)):
                raise ApiError("permission_denied", "Your role in this course may not do this.", 403)
            return view(*args, **kwargs)

        return wrapper

    return decorate
