"""Who is calling: a launch token (Bearer) or the session a launch opened (cookie + X-CSRFToken)."""
from __future__ import annotations

import threading
import time
from functools import wraps

from flask import current_app, g, request, session
from flask_wtf.csrf import validate_csrf
from wtforms.validators import ValidationError

from attendance.errors import ApiError
from attendance.models import Enrollment
from attendance.principal import Principal
from extensions import db
from lti.exceptions import LaunchTokenError
from lti.models import Deployment, Registration
from lti.roles import NONE, TEACHER
from lti.tokens import read_launch_token

SESSION_KEY = "launch"
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


class ActiveCache:
    """Whether a (registration, deployment) may still be used, cached briefly per process.

    Deactivating a platform or deployment then stops its tokens, sessions and sockets within
    ACTIVE_CHECK_SECONDS, without a database query on every check-in.
    """

    def __init__(self):
        self._seen: dict[tuple[int, int], tuple[float, bool]] = {}
        self._lock = threading.Lock()

    def is_active(self, registration_id: int, deployment_pk: int, ttl: float) -> bool:
        """Answer from the cache, or read both rows when the cached answer is older than ttl."""
        key = (registration_id, deployment_pk)
        now = time.monotonic()
        cached = self._seen.get(key)
        if cached is not None and now - cached[0] < ttl:
            return cached[1]
        active = db.session.execute(
            db.select(Registration.active, Deployment.active)
            .join(Deployment, Deployment.registration_id == Registration.id)
            .where(Registration.id == registration_id, Deployment.id == deployment_pk)).first()
        answer = bool(active and active[0] and active[1])
        with self._lock:
            if len(self._seen) > 10_000:
                self._seen.clear()
            self._seen[key] = (now, answer)
        return answer

    def forget(self) -> None:
        """Drop every cached answer (after an admin changed a registration in this process)."""
        with self._lock:
            self._seen.clear()


class RoleCache:
    """A user's current role in a course (None when not an active member), cached briefly per process."""

    def __init__(self):
        self._seen: dict[tuple[int, int], tuple[float, str | None]] = {}
        self._lock = threading.Lock()

    def role(self, course_id: int, user_id: int, ttl: float) -> str | None:
        """Answer from the cache, or read the enrollment when the cached answer is older than ttl."""
        key, now = (course_id, user_id), time.monotonic()
        cached = self._seen.get(key)
        if cached is not None and now - cached[0] < ttl:
            return cached[1]
        row = db.session.execute(db.select(Enrollment.role, Enrollment.active).where(
            Enrollment.course_id == course_id, Enrollment.user_id == user_id)).first()
        answer = row.role if row is not None and row.active else None
        with self._lock:
            if len(self._seen) > 50_000:
                self._seen.clear()
            self._seen[key] = (now, answer)
        return answer


def ensure_current_role(principal: Principal) -> None:
    """Refuse a write by a teacher whose course role changed since the launch (e.g. the roster says Learner now)."""
    if principal.role != TEACHER or principal.course_id is None:
        return
    cache: RoleCache = current_app.extensions.setdefault("attendance_role_cache", RoleCache())
    if cache.role(principal.course_id, principal.user_id, current_app.config["ACTIVE_CHECK_SECONDS"]) != TEACHER:
        raise ApiError("permission_denied", "Your role in this course has changed; open the tool again from the "
                       "course.", 403)


def ensure_active(principal: Principal) -> None:
    """Refuse a principal whose launch expired or whose platform or deployment has been deactivated."""
    if principal.expires_at is not None and time.time() >= principal.expires_at:
        raise ApiError("authentication_required", "Your launch has expired; open the tool again from the course.", 401)
    cache: ActiveCache = current_app.extensions.setdefault("lti_active_cache", ActiveCache())
    if not cache.is_active(principal.registration_id, principal.deployment_pk, current_app.config["ACTIVE_CHECK_SECONDS"]):
        raise ApiError("authentication_required",
                       "This platform or deployment is no longer active in the tool; ask your LMS administrator.", 401)


ANONYMOUS = Principal(registration_id=0, deployment_pk=0, user_id=0, course_id=None, role=NONE, is_admin=False,
                      via="none")  # the null principal: no launch behind the request

# Where a launch token may come from. A socket handshake never takes the cookie session: a WebSocket
# is not bound by the same-origin policy, so another site could open one with the user's cookie.
API_SOURCES = ("bearer", "session")
PAGE_SOURCES = ("form", "bearer", "session")  # a page opened by a form post carrying the launch token
SOCKET_SOURCES = ("query",)  # API clients' `?token=`; the pages use single-use tickets instead


def load_principal(sources: tuple[str, ...] = API_SOURCES) -> Principal:
    """The one loader of who is calling: a launch token (Bearer, posted form, ?token=) or the launch's session.

    Raise a 401/403 ApiError when no allowed source proves a live launch.
    """
    if "principal" in g:
        return g.principal
    token, via = _offered_token(sources)
    if token is not None:
        try:
            principal = Principal.from_claims(read_launch_token(token), via)
        except LaunchTokenError as exc:
            raise ApiError("authentication_required", exc.message, 401) from exc
    elif "session" in sources:
        principal = _session_principal()
    else:
        raise ApiError("authentication_required", "A launch token is required.", 401)
    ensure_active(principal)
    g.principal = principal
    return principal


def _offered_token(sources: tuple[str, ...]) -> tuple[str | None, str]:
    header = request.headers.get("Authorization", "")
    if "bearer" in sources and header.lower().startswith("bearer "):
        return header[7:].strip(), "token"
    if "form" in sources and request.method == "POST" and request.form.get("token"):
        return request.form["token"], "token"
    if "query" in sources:
        return request.args.get("token", ""), "token"
    return None, "session"


def _session_principal() -> Principal:
    claims = session.get(SESSION_KEY)
    if not claims:
        raise ApiError("authentication_required", "Open the tool from your course first (no launch token or session).", 401)
    if not isinstance(claims.get("issued_at"), (int, float)):
        raise ApiError("authentication_required", "Your session has expired; open the tool again from the course.", 401)
    if request.method in UNSAFE:
        token = request.headers.get("X-CSRFToken") or request.headers.get("X-CSRF-Token") or request.form.get("csrf_token")
        if not token:
            raise ApiError("csrf_missing", "The X-CSRFToken header is missing.", 403)
        try:
            validate_csrf(token)
        except ValidationError as exc:
            raise ApiError("csrf_missing", "The CSRF token is missing, invalid or expired.", 403) from exc
    return Principal.from_claims(claims, "session")


def current_principal() -> Principal:
    """The caller of an API request (Bearer token or session + CSRF), or a 401/403 ApiError."""
    return load_principal(API_SOURCES)


def optional_principal(sources: tuple[str, ...] = API_SOURCES) -> Principal:
    """The caller if a live launch is behind the request, else the null principal (ANONYMOUS)."""
    try:
        return load_principal(sources)
    except ApiError:
        return ANONYMOUS


def require_role(*roles: str, admin: bool = False):
    """Let through callers whose launch role is one of roles (or who hold admin rights when admin=True)."""

    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            principal = current_principal()
            if not (principal.role in roles or (admin and principal.is_admin)):
                raise ApiError("permission_denied", "Your role in this course may not do this.", 403)
            if request.method in UNSAFE and principal.role in roles:
                ensure_current_role(principal)  # a launch token outlives a demotion in the LMS
            return view(*args, **kwargs)

        return wrapper

    return decorate
