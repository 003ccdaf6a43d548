"""Per-address limits on the LTI entry points and on the login states one address may leave pending.

`/lti/login`, `/lti/launch` and `/lti/register` need no login, and each login stores a state row:
without a bound, one client could fill the store or keep the workers busy. The limits are
generous (a whole campus can sit behind one NAT address) and counted with the `limits` library in
the same storage as the other rate limits: Redis when `REDIS_URL` is set (shared by every
process), process memory otherwise. Past a limit the client gets 429 with `Retry-After`, as an
HTML page or, when it asks for JSON, in the API's error shape (the app's HTTP error handler).
"""
from __future__ import annotations

import ipaddress
import time

from flask import Flask, current_app, request
from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter
from werkzeug.exceptions import TooManyRequests

LIMITED_ENDPOINTS = frozenset({"lti.login", "lti.launch", "lti.register"})
EXTENSION = "lti_rate_limits"


class LtiRateLimiter:
    """Fixed-window counters per client address: one for the entry points, one for pending login states."""

    def __init__(self, storage_uri: str, prefix: str, request_limit: str, pending_limit: str):
        self.strategy = FixedWindowRateLimiter(storage_from_string(storage_uri))
        self.prefix = prefix
        self.request_limit = parse(request_limit)  # parsed at start: a bad setting fails there, not per request
        self.pending_limit = parse(pending_limit)

    def _hit(self, limit: RateLimitItem, key: str, message: str) -> None:
        if not self.strategy.hit(limit, key):
            reset = self.strategy.get_window_stats(limit, key).reset_time
            raise TooManyRequests(message, retry_after=max(1, int(reset - time.time() + 0.999)))

    def count_request(self, address: str) -> None:
        """Count one entry-point request of this address; raise 429 past LTI_RATE_LIMIT."""
        self._hit(self.request_limit, f"{self.prefix}lti:{address}",
                  "Too many LTI requests from this network address. Wait a moment, then try again.")

    def count_pending_state(self, address: str) -> None:
        """Count one stored login state of this address; raise 429 past LTI_PENDING_STATES_PER_ADDRESS."""
        self._hit(self.pending_limit, f"{self.prefix}lti_state:{address}",
                  "Too many logins were started from this network address. Wait a moment, then try again.")


def client_key() -> str:
    """Return the client's address as a counter key; an IPv6 client is counted by its /64, which it can fill at will."""
    raw = request.remote_addr or "-"  # ProxyFix has already applied TRUSTED_PROXIES
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        return raw
    if address.version == 6:
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def limiter() -> LtiRateLimiter:
    """Return the current app's LTI rate limiter."""
    return current_app.extensions[EXTENSION]


def count_pending_state() -> None:
    """Count a login state about to be stored for this request's client; raise 429 past the bound."""
    limiter().count_pending_state(client_key())


def _limit_entry_points() -> None:
    if request.endpoint in LIMITED_ENDPOINTS:
        limiter().count_request(client_key())


def init_rate_limits(app: Flask) -> None:
    """Create the app's LTI limiter and check every request to the LTI entry points against it."""
    cfg = app.config
    app.extensions[EXTENSION] = LtiRateLimiter(cfg["RATELIMIT_STORAGE_URI"], cfg["REDIS_PREFIX"] + "limits:",
                                               cfg["LTI_RATE_LIMIT"], cfg["LTI_PENDING_STATES_PER_ADDRESS"])
    app.before_request(_limit_entry_points)
