"""The live WebSocket: /ws/attendance/<class_session_id>?ticket=<ticket>, or ?token=<launch token>.

The tool's pages authenticate with a ticket from POST /api/ws-ticket/ (single use, valid a minute),
so the 8-hour launch token stays out of URLs and access logs; API clients may still send the token.
Teachers of the session's course receive every message of the session; a student receives the
changes to their own records (of every session, so one socket serves a whole page). Anyone else is
refused with HTTP 403 before the upgrade.

Open sockets must never take every request slot from HTTP, so each server process caps them per user,
per class session and in all. Past the session or process cap the handshake answers 429; past the
user's cap the newest socket wins and the user's oldest closes with 4429, so a reload never locks a
user out. A socket closes with 4401 when its launch expires or its platform or deployment is
deactivated (re-checked every WS_PING_SECONDS).
"""
from __future__ import annotations

import hashlib
import json
import logging
import secrets
import sys
import threading
import time
from collections import Counter

from flask import Blueprint, current_app, g, request
from simple_websocket import ConnectionClosed

from attendance import realtime
from attendance.errors import ApiError
from attendance.models import ClassSession
from attendance.principal import Principal
from attendance.web.auth import SOCKET_SOURCES, ensure_active, load_principal
from extensions import db, sock
from lti.roles import STUDENT, TEACHER
from lti.store import get_store

log = logging.getLogger(__name__)
bp = Blueprint("sockets", __name__)
TICKET_PREFIX = "ws-ticket:"
CLOSE_EXPIRED = 4401  # the launch expired, or its platform or deployment was deactivated
CLOSE_REPLACED = 4429  # the same user opened a newer socket past WS_MAX_PER_USER
REGISTRY_KEY = "attendance_sockets"


# -- tickets -----------------------------------------------------------------------------------
def _ticket_key(ticket: str) -> str:
    # Only a hash is stored: whoever reads the store (or Redis) cannot open sockets with what they see.
    return TICKET_PREFIX + hashlib.sha256(ticket.encode()).hexdigest()


def issue_ticket(principal: Principal, class_session_id: int) -> tuple[str, int]:
    """Store a single-use ticket that opens this session's socket as principal; answer it and its lifetime."""
    ttl = int(current_app.config["WS_TICKET_TTL"])
    if principal.expires_at is not None:  # a ticket never outlives the launch it stands for
        ttl = max(1, min(ttl, int(principal.expires_at - time.time())))
    ticket = secrets.token_urlsafe(32)
    claims = {"registration": principal.registration_id, "deployment": principal.deployment_pk,
              "user": principal.user_id, "course": principal.course_id, "role": principal.role,
              "admin": principal.is_admin, "expires_at": principal.expires_at, "class_session_id": class_session_id}
    get_store().put(_ticket_key(ticket), json.dumps(claims), ttl)
    return ticket, ttl


def _redeem_ticket(ticket: str, class_session_id: int) -> Principal:
    """Consume a ticket and return the principal it stands for; a used, expired or unknown ticket is a 401."""
    raw = get_store().pop(_ticket_key(ticket)) if 0 < len(ticket) <= 128 else None
    if raw is None:
        raise ApiError("authentication_required", "The socket ticket is unknown, used or expired; ask for a new one.",
                       401)
    claims = json.loads(raw)
    if claims["class_session_id"] != class_session_id:
        raise ApiError("permission_denied", "This ticket opens another class session's socket.", 403)
    return Principal(registration_id=claims["registration"], deployment_pk=claims["deployment"],
                     user_id=claims["user"], course_id=claims["course"], role=claims["role"],
                     is_admin=bool(claims["admin"]), via="ticket", expires_at=claims["expires_at"])


def _authenticate(class_session_id: int) -> Principal:
    """Find the caller by ?ticket= (the tool's pages) or ?token= (API clients), or a 401."""
    if "ticket" in request.args:
        return _redeem_ticket(request.args["ticket"], class_session_id)
    return load_principal(SOCKET_SOURCES)


# -- caps --------------------------------------------------------------------------------------
class Slot:
    """One open socket's place in its process's counts."""

    def __init__(self, user_id: int, class_session_id: int):
        self.user_id, self.class_session_id = user_id, class_session_id
        self.replaced = False
        self.subscription: realtime.Subscription | None = None

    def replace(self) -> None:
        """Ask the socket to close: a newer socket of the same user takes its place."""
        self.replaced = True
        if self.subscription is not None:
            self.subscription.interrupt()


class SocketRegistry:
    """The sockets of this process, counted per user, per class session and in all."""

    def __init__(self):
        self._lock = threading.Lock()
        self._by_user: dict[int, list[Slot]] = {}
        self._by_session: Counter = Counter()
        self._total = 0

    def admit(self, user_id: int, class_session_id: int, per_user: int, per_session: int, per_process: int) -> Slot:
        """Take a place for a new socket, closing the user's oldest past per_user, or raise a 429 ApiError."""
        if per_user < 1:
            raise _refused("Live updates are turned off on this server.")
        with self._lock:
            live = [s for s in self._by_user.get(user_id, ()) if not s.replaced]
            oldest = live[:max(0, len(live) + 1 - per_user)]
            # Replaced sockets still count until they have closed, a moment later; the places they free
            # are counted as free here, so that a reload at a full server still gets in.
            if self._total - len(oldest) >= per_process:
                raise _refused("This server holds as many live connections as it may; try again in a minute.")
            freed_here = sum(1 for s in oldest if s.class_session_id == class_session_id)
            if self._by_session[class_session_id] - freed_here >= per_session:
                raise _refused("This class session has as many live connections as it may.")
            for slot in oldest:
                slot.replace()
            slot = Slot(user_id, class_session_id)
            self._by_user.setdefault(user_id, []).append(slot)
            self._by_session[class_session_id] += 1
            self._total += 1
            return slot

    def release(self, slot: Slot) -> None:
        """Give back a closed socket's place."""
        with self._lock:
            slots = self._by_user.get(slot.user_id, [])
            if slot not in slots:
                return
            slots.remove(slot)
            if not slots:
                del self._by_user[slot.user_id]
            self._by_session[slot.class_session_id] -= 1
            if self._by_session[slot.class_session_id] <= 0:
                del self._by_session[slot.class_session_id]
            self._total -= 1

    def counts(self) -> dict:
        """Open sockets in all, per user and per session (for tests and logs)."""
        with self._lock:
            return {"total": self._total, "users": {u: len(s) for u, s in self._by_user.items()},
                    "sessions": dict(self._by_session)}


def _refused(message: str) -> ApiError:
    return ApiError("rate_limited", message, 429, headers={"Retry-After": "30"})


_registry_lock = threading.Lock()


def registry() -> SocketRegistry:
    """Return this app's socket counts in this process."""
    found = current_app.extensions.get(REGISTRY_KEY)
    if found is None:
        with _registry_lock:
            found = current_app.extensions.setdefault(REGISTRY_KEY, SocketRegistry())
    return found


def cooperative() -> bool:
    """Whether gevent patched this process (gunicorn -k gevent): an open socket then costs a greenlet, not a thread."""
    if "gevent" not in sys.modules:
        return False
    from gevent import monkey

    return monkey.is_module_patched("socket")


def _pool_threads() -> int | None:
    """How many threads serve requests in this process, when it can be told (1: only the main thread)."""
    current = threading.current_thread()
    if current is threading.main_thread():
        return 1  # one request at a time (gunicorn's sync worker)
    try:
        # gunicorn's gthread worker serves from a ThreadPoolExecutor, whose threads hold a weak reference to it.
        return int(current._args[0]()._max_workers)
    except Exception:  # noqa: BLE001 - another server, another layout: not knowable
        return None


def process_cap(environ: dict) -> int:
    """Return the most sockets this process may hold: WS_MAX_PER_PROCESS, else a default that suits the server."""
    configured = current_app.config.get("WS_MAX_PER_PROCESS")
    if configured is not None:
        return int(configured)
    if cooperative():
        return 800  # below gunicorn's 1000 --worker-connections, so HTTP always finds a connection left
    if environ.get("wsgi.multithread") and environ.get("SERVER_SOFTWARE", "").startswith("Werkzeug/"):
        return 100  # `python app.py` starts a thread per connection: sockets take no thread from HTTP
    threads = _pool_threads()
    if threads is None:
        return 1
    return threads // 2  # a fixed pool (gunicorn --threads N): half for sockets, the rest kept for HTTP; sync: 0


# -- the socket --------------------------------------------------------------------------------
@bp.before_request
def authorize_socket():
    """Refuse before the upgrade: 401 bad credentials, 403 a caller who may not watch this session, 429 caps."""
    session_id = (request.view_args or {}).get("class_session_id")
    principal = _authenticate(session_id)
    ensure_active(principal)
    session = db.session.get(ClassSession, session_id) if session_id else None
    if session is None or session.course_id != principal.course_id or principal.role not in (TEACHER, STUDENT):
        raise ApiError("permission_denied", "You may not watch this class session.", 403)
    config = current_app.config
    g.socket_slot = registry().admit(principal.user_id, session_id, int(config["WS_MAX_PER_USER"]),
                                     int(config["WS_MAX_PER_SESSION"]), process_cap(request.environ))
    g.socket_principal = principal
    db.session.remove()  # a socket lives long: do not hold a database connection


@bp.teardown_request
def release_socket(_exc=None):
    """Give the socket's place back however it ended."""
    slot = g.pop("socket_slot", None)
    if slot is not None:
        registry().release(slot)


class _Wake:
    """Stands in for simple-websocket's receive event, which its reader thread sets when the client closes
    or sends: that must wake the sending loop at once (it never calls receive()), so a closed socket gives
    its place back now rather than at the next ping."""

    def __init__(self, subscription: realtime.Subscription):
        self.subscription = subscription

    def set(self) -> None:
        """Wake the sending loop."""
        self.subscription.interrupt()

    def clear(self) -> None:
        """Nothing to clear: the loop reads the socket's state itself."""

    def wait(self, timeout=None) -> bool:
        """Never used: nothing calls receive() on these sockets."""
        return False


class _Discard(list):
    """Inbound messages, dropped as they arrive: clients only listen, and a flood must not pile up in memory."""

    def append(self, _item) -> None:
        """Drop the message."""


def _still_active(principal: Principal) -> bool:
    """Re-check the launch (expiry, deactivated platform or deployment) without holding a database connection."""
    try:
        ensure_active(principal)
        return True
    except ApiError:
        return False
    except Exception:  # noqa: BLE001 - a database hiccup must not drop every socket at once
        log.warning("could not re-check a socket's registration; keeping it open", exc_info=True)
        return True
    finally:
        db.session.remove()


@sock.route("/ws/attendance/<int:class_session_id>", bp=bp)
def attendance_socket(ws, class_session_id: int):  # long: the socket's whole life: subscribe, send, re-check, close
    """Send the session's messages (a student's: their own records) until the client leaves or the launch ends."""
    principal: Principal = g.socket_principal
    slot: Slot = g.socket_slot
    channel = (realtime.session_channel(class_session_id) if principal.role == TEACHER
               else realtime.own_records_channel(principal.user_id))
    broker = realtime.broker()
    subscription = broker.subscribe(channel)
    slot.subscription = subscription
    if hasattr(ws, "event") and hasattr(ws, "input_buffer"):
        ws.event, ws.input_buffer = _Wake(subscription), _Discard()
    every = float(current_app.config["WS_PING_SECONDS"])
    try:
        ws.send(json.dumps({"type": "connected", "class_session_id": class_session_id, "role": principal.role}))
        next_check = next_ping = time.monotonic() + every
        while ws.connected:
            if slot.replaced:
                ws.close(CLOSE_REPLACED, "A newer connection of the same user took this one's place.")
                break
            left = None if principal.expires_at is None else principal.expires_at - time.time()
            if left is not None and left <= 0:
                ws.close(CLOSE_EXPIRED, "The launch has expired; open the tool again from the course.")
                break
            now = time.monotonic()
            if now >= next_check:
                if not _still_active(principal):
                    ws.close(CLOSE_EXPIRED, "This platform or deployment is no longer active in the tool.")
                    break
                next_check = now + every
            if now >= next_ping:
                ws.send(json.dumps({"type": "ping"}))
                next_ping = now + every
            wait = min(next_check, next_ping) - time.monotonic()
            message = subscription.get(timeout=wait if left is None else min(wait, left))
            if message is not None:
                ws.send(json.dumps(message))
                next_ping = time.monotonic() + every
    except (ConnectionClosed, OSError):
        pass  # the client went away (a send to a dropped connection raises OSError)
    finally:
        broker.unsubscribe(subscription)
