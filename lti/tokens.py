"""Launch tokens: signed, expiring bearer tokens that let a launched page call the API without cookies."""
from __future__ import annotations

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from lti.exceptions import LaunchTokenError

SALT = "lti-launch-token-v1"
REQUIRED = ("registration", "deployment", "user", "role")


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=SALT)


def issue_launch_token(claims: dict) -> str:
    """Sign claims binding platform, deployment, user, course and role."""
    missing = [k for k in REQUIRED if k not in claims]
    if missing:
        raise ValueError(f"launch token claims lack {missing}")
    return _serializer().dumps(claims)


def read_launch_token(token: str, max_age: int | None = None) -> dict:
    """Verify a launch token and return its claims, or raise LaunchTokenError.

    The claims come back with `issued_at` (Unix time of signing), so callers know when it expires.
    """
    if not token:
        raise LaunchTokenError("A launch token is required.")
    try:
        claims, signed = _serializer().loads(token, max_age=max_age or current_app.config["LAUNCH_TOKEN_TTL"],
                                             return_timestamp=True)
    except SignatureExpired as exc:
        raise LaunchTokenError("The launch token has expired; open the tool again from the course.") from exc
    except BadSignature as exc:
        raise LaunchTokenError("The launch token is not valid.") from exc
    if not isinstance(claims, dict) or any(k not in claims for k in REQUIRED):
        raise LaunchTokenError("The launch token is not valid.")
    return {**claims, "issued_at": signed.timestamp()}
