"""Security headers on every response: a nonce-based CSP, framing limited to the registered platforms,
nosniff, no referrer, no caching of launch pages, HSTS over HTTPS.

Pages get `default-src 'self'` with scripts and styles allowed by a per-request nonce only, so an
injected inline script or a `javascript:` URL (a registration's login URL, a deep-link return URL
stored before URLs were checked) cannot run. `frame-ancestors` names the origins of the active
registrations (cached per process for `CSP_ORIGINS_CACHE_SECONDS`, refreshed at once when this
process commits a change to a registration): on an LTI login, launch or launched page, only those
of the platform the request is about, so the header stays short however many schools use the tool.
A template may add the origin of a URL it uses with `{{ csp_allow("form-action", url) }}` (only
http and https URLs count).
"""
from __future__ import annotations

import re
import secrets
import threading
import time
from itertools import chain
from urllib.parse import urlsplit

import jwt
from flask import Flask, current_app, g, request, template_rendered
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from extensions import db
from lti.exceptions import LtiError
from lti.models import Registration
from lti.tokens import read_launch_token

# Paths whose answers carry launch state (id_token, state, launch token): never stored by any cache.
PRIVATE_ENDPOINTS = {"lti.login", "lti.launch", "lti.register", "pages.deep_link_confirm"}
# Template context names that mean the rendered page carries a token.
TOKEN_CONTEXT_NAMES = ("launch_token", "id_token", "jwt")
DIRECTIVES_TEMPLATES_MAY_WIDEN = ("frame-ancestors", "form-action")
NON_HTML_CSP = "default-src 'none'; frame-ancestors 'none'"
HSTS = "max-age=31536000"

_HOST = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
                   r"|\[[0-9a-f:.]+\]")
_HOST_PORT = re.compile(rf"(?:{_HOST.pattern})(?::[0-9]{{1,5}})?")
_DEFAULT_PORTS = {"http": 80, "https": 443}

# Bumped after any commit that touched a registration, in this process: caches reload on next use.
_generation = 0
_listening = False


def register_security_headers(app: Flask) -> None:
    """Set the security headers on every response of the app and give templates `csp_nonce` and `csp_allow`."""
    app.extensions["platform_origins"] = PlatformOrigins(app.config["CSP_ORIGINS_CACHE_SECONDS"])
    app.after_request(set_security_headers)
    app.context_processor(lambda: {"csp_nonce": csp_nonce(), "csp_allow": csp_allow})
    template_rendered.connect(_note_token_pages, app)
    _listen_for_registration_changes()


def csp_nonce() -> str:
    """Answer this request's CSP nonce, made on first use."""
    nonce = g.get("csp_nonce")
    if nonce is None:
        nonce = g.csp_nonce = secrets.token_urlsafe(18)
    return nonce


def csp_allow(directive: str, source) -> str:
    """Add an http(s) URL's origin, or a registration's, to this response's frame-ancestors or form-action."""
    if directive not in DIRECTIVES_TEMPLATES_MAY_WIDEN:
        raise ValueError(f"templates may not widen {directive}")
    extra = g.setdefault("csp_extra", {}).setdefault(directive, set())
    extra.update(registration_sources(source) if isinstance(source, Registration)
                 else {s for s in [url_origin(source)] if s})
    return ""  # called from templates as {{ csp_allow(...) }}: renders nothing


def url_origin(url) -> str | None:
    """Answer the CSP source of an http(s) URL's origin, or None for any other URL (javascript:, data:, junk)."""
    if not isinstance(url, str):
        return None
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    host = parts.hostname.lower()
    host = f"[{host}]" if ":" in host else host
    if not _HOST.fullmatch(host):
        return None
    return f"{scheme}://{host}" + (f":{port}" if port and port != _DEFAULT_PORTS[scheme] else "")


def host_source(host) -> str | None:
    """Answer a bare `host[:port]` (as in Registration.service_hosts) as a CSP source, or None when malformed."""
    if not isinstance(host, str):
        return None
    host = host.strip().lower()
    return host if _HOST_PORT.fullmatch(host) else None


def _sources_of(values) -> set[str]:
    sources = set()
    for value in values:
        source = url_origin(value) if isinstance(value, str) and "://" in value else host_source(value)
        if source:
            sources.add(source)
    return sources


def registration_sources(row) -> set[str]:
    """Answer the CSP sources of a registration: its issuer, login and token URLs and its service hosts."""
    return ({s for s in (url_origin(row.issuer), url_origin(row.auth_login_url), url_origin(row.auth_token_url)) if s}
            | {s for s in map(host_source, row.service_hosts or []) if s})


class PlatformOrigins:
    """The CSP sources of every active registration, read at most once per `ttl` seconds per process."""

    def __init__(self, ttl: float):
        self.ttl = ttl
        self._lock = threading.Lock()
        self._loaded: tuple[dict, tuple[str, ...]] | None = None  # ({(issuer, client_id, id): sources}, all)
        self._loaded_at = 0.0
        self._generation = -1

    def get(self) -> tuple[str, ...]:
        """Answer the sources of every active registration."""
        return self._rows()[1]

    def of(self, ids=None, issuer=None, client_ids=None) -> tuple[str, ...] | None:
        """Answer the sources of the active registrations with these ids or this issuer (and client ids), or None."""
        matches = [sources for (iss, client_id, row_id), sources in self._rows()[0].items()
                   if (ids is not None and row_id in ids)
                   or (issuer is not None and iss == issuer and (not client_ids or client_id in client_ids))]
        return tuple(sorted(set(chain.from_iterable(matches)))) if matches else None

    def _rows(self) -> tuple[dict, tuple[str, ...]]:
        if self._fresh():
            return self._loaded
        with self._lock:
            if not self._fresh():
                self._loaded, self._loaded_at, self._generation = self._load(), time.monotonic(), _generation
            return self._loaded

    def _fresh(self) -> bool:
        return (self._loaded is not None and self._generation == _generation
                and time.monotonic() - self._loaded_at < self.ttl)

    @staticmethod
    def _load() -> tuple[dict, tuple[str, ...]]:
        # A session of its own: the request's session may be mid-transaction or failed (a 500 page).
        with Session(db.engine) as session:
            rows = session.scalars(select(Registration).where(Registration.active.is_(True))).all()
            by_row = {(r.issuer, r.client_id, r.id): frozenset(registration_sources(r))
                      for r in rows if not getattr(r, "pending_approval", False)}
        return by_row, tuple(sorted(set(chain.from_iterable(by_row.values()))))


def _listen_for_registration_changes() -> None:
    global _listening
    if _listening:
        return
    _listening = True

    @event.listens_for(Session, "after_flush")
    def _mark(session, _context):
        if any(isinstance(o, Registration) for o in chain(session.new, session.dirty, session.deleted)):
            session.info["registrations_changed"] = True

    @event.listens_for(Session, "do_orm_execute")
    def _mark_bulk(state):
        mapper = state.bind_mapper
        if (state.is_update or state.is_delete) and mapper is not None and mapper.class_ is Registration:
            state.session.info["registrations_changed"] = True

    @event.listens_for(Session, "after_commit")
    def _bump(session):
        global _generation
        if session.info.pop("registrations_changed", False):
            _generation += 1

    @event.listens_for(Session, "after_rollback")
    def _forget(session):
        session.info.pop("registrations_changed", None)


def _note_token_pages(_app, template, context, **_extra) -> None:
    if any(context.get(name) for name in TOKEN_CONTEXT_NAMES):
        g.csp_private = True
    if isinstance(context.get("launch_token"), str):
        g.csp_launch_token = context["launch_token"]


def _platform_sources() -> tuple[str, ...]:
    """Return the sources of the platform an LTI request is about (login, launch, launch token), else of all platforms.

    Which platform is read from the request without trusting it: it only picks among the active
    registrations, every one of which could frame the tool anyway.
    """
    origins = current_app.extensions["platform_origins"]
    token = g.get("csp_launch_token") or request.form.get("launch_token")
    if token:
        try:
            return origins.of(ids={int(read_launch_token(token)["registration"])}) or origins.get()
        except (LtiError, KeyError, TypeError, ValueError):
            pass
    if request.endpoint == "lti.login" and request.values.get("iss"):
        client_id = request.values.get("client_id")
        return origins.of(issuer=request.values["iss"], client_ids={client_id} if client_id else None) or origins.get()
    if request.endpoint == "lti.launch" and request.form.get("id_token"):
        try:
            claims = jwt.decode(request.form["id_token"], options={"verify_signature": False})
        except jwt.PyJWTError:
            return origins.get()
        audience = claims.get("aud")
        audiences = {a for a in (audience if isinstance(audience, list) else [audience]) if isinstance(a, str)}
        if isinstance(claims.get("iss"), str) and audiences:
            return origins.of(issuer=claims["iss"], client_ids=audiences) or origins.get()
    return origins.get()


def _html_policy(nonce: str) -> str:
    config = current_app.config
    extra = g.get("csp_extra", {})
    platforms = _platform_sources()
    ancestors = ["'self'", *platforms, *_sources_of(config["CSP_EXTRA_FRAME_ANCESTORS"]),
                 *sorted(extra.get("frame-ancestors", ()))]
    form_action = ["'self'", *platforms, *sorted(extra.get("form-action", ()))]
    connect = ["'self'", *_sources_of(config["CSP_EXTRA_CONNECT_SRC"])]
    host = host_source(request.host)  # the Host header is the client's: only a well-formed one goes in
    if host:
        connect.append(f"{'wss' if request.is_secure else 'ws'}://{host}")
    directives = {
        "default-src": ["'self'"],
        "script-src": [f"'nonce-{nonce}'", "'self'"],
        "style-src": ["'self'", f"'nonce-{nonce}'"],
        "img-src": ["'self'", "data:", "blob:"],  # QR codes and documents are shown from blob: URLs
        "connect-src": connect,
        "frame-src": ["'self'", "blob:"],  # the justification document viewer
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": form_action,  # does not fall back to default-src
        "frame-ancestors": ancestors,
    }
    return "; ".join(f"{name} {' '.join(dict.fromkeys(values))}" for name, values in directives.items())


def set_security_headers(response):
    """Add the security headers to a response (after_request)."""
    headers = response.headers
    headers["X-Content-Type-Options"] = "nosniff"
    headers.setdefault("Referrer-Policy", "no-referrer")
    if request.is_secure:
        headers.setdefault("Strict-Transport-Security", HSTS)
    if request.environ.get("HTTP_UPGRADE", "").lower() == "websocket":
        return response  # the end of a WebSocket: no page, no body
    if request.endpoint in PRIVATE_ENDPOINTS or g.get("csp_private"):
        headers["Cache-Control"] = "no-store"
        headers["Referrer-Policy"] = "no-referrer"
    if "Content-Security-Policy" not in headers:
        html = response.mimetype == "text/html"
        headers["Content-Security-Policy"] = _html_policy(csp_nonce()) if html else NON_HTML_CSP
    return response
