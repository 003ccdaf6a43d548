"""Platforms' public key sets, cached per URL and refetched once when an unknown kid shows up.

Fetches are single-flight per URL: concurrent launches needing the same key set share one call, and
a slow platform's key set never holds up another platform's launches (no lock is held across HTTP
but a flight's own).
"""
from __future__ import annotations

import threading
import time

from jwt import PyJWK
from jwt.exceptions import PyJWKError

from lti.exceptions import KeySetError
from lti.outbound import USER_AGENT, OutboundClient, OutboundError

__all__ = ["PlatformKeyCache", "USER_AGENT"]


class _Flight:
    """One key set fetch in progress, whose outcome every waiting launch shares."""

    def __init__(self):
        self.done = threading.Event()
        self.key_set: dict | None = None
        self.error: KeySetError | None = None


class PlatformKeyCache:
    """Key sets by URL. A kid not in the cached set triggers at most one refetch per interval."""

    def __init__(self, client: OutboundClient, ttl: float, min_refetch_interval: float):
        self.client = client
        self.ttl = ttl
        self.min_refetch_interval = min_refetch_interval
        self._sets: dict[str, tuple[float, dict]] = {}
        self._last_fetch: dict[str, float] = {}
        self._flights: dict[str, _Flight] = {}
        self._guard = threading.Lock()  # guards the dicts above, never held across HTTP
        self.fetches = 0  # how many times a key set was requested from a platform

    def _fetch(self, url: str) -> dict:
        try:
            key_set = self.client.get(url, headers={"Accept": "application/json"}).raise_for_status().json()
        except OutboundError as exc:
            raise KeySetError(f"The platform's key set could not be read: {exc.reason}.", status=502) from exc
        if not isinstance(key_set, dict) or not isinstance(key_set.get("keys"), list):
            raise KeySetError("The platform's key set is not a JWKS document.", status=502)
        with self._guard:
            self._sets[url] = (time.monotonic(), key_set)
        return key_set

    def _shared_fetch(self, url: str) -> dict:
        """Fetch url's key set, or wait for the fetch another thread has in flight and share its outcome."""
        with self._guard:
            flight = self._flights.get(url)
            leader = flight is None
            if leader:
                flight = self._flights[url] = _Flight()
                self._last_fetch[url] = time.monotonic()
                self.fetches += 1
        if leader:
            try:
                flight.key_set = self._fetch(url)
            except KeySetError as exc:
                flight.error = exc
            finally:
                with self._guard:
                    self._flights.pop(url, None)
                flight.done.set()
        elif not flight.done.wait(self.client.timeout + 1):
            raise KeySetError("The platform's key set could not be read: deadline exceeded.", status=502)
        if flight.error is not None:
            raise flight.error
        return flight.key_set

    @staticmethod
    def _find(key_set: dict, kid: str) -> dict | None:
        for key in key_set.get("keys", []):
            if isinstance(key, dict) and key.get("kid") == kid:
                return key
        return None

    def key_for(self, url: str, kid: str, alg: str) -> PyJWK:
        """Return the platform key with this kid, usable for alg."""
        with self._guard:
            cached = self._sets.get(url)
        key_set = cached[1] if cached and time.monotonic() - cached[0] < self.ttl else None
        if key_set is None:
            key_set = self._shared_fetch(url)
        jwk = self._find(key_set, kid)
        if jwk is None:
            with self._guard:
                refetch = url in self._flights or \
                    time.monotonic() - self._last_fetch.get(url, 0.0) >= self.min_refetch_interval
                latest = self._sets.get(url)
            if refetch:
                jwk = self._find(self._shared_fetch(url), kid)
            elif latest is not None:  # another launch may have refetched since this one read the cache
                jwk = self._find(latest[1], kid)
        if jwk is None:
            raise KeySetError(f'No key with kid "{kid}" in the platform\'s key set.')
        if jwk.get("alg") and jwk["alg"] != alg:
            raise KeySetError(f'The platform key "{kid}" is for {jwk["alg"]}, the token says {alg}.')
        if jwk.get("use") not in (None, "sig"):
            raise KeySetError(f'The platform key "{kid}" is not a signing key.')
        try:
            return PyJWK(jwk, algorithm=alg)
        except PyJWKError as exc:
            raise KeySetError(f'The platform key "{kid}" cannot be used: {exc}') from exc
