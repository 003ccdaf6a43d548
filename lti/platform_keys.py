"""Platforms' public key sets, cached per URL and refetched once when an unknown kid shows up."""
from __future__ import annotations

import threading
import time

import requests
from jwt import PyJWK
from jwt.exceptions import PyJWKError

from lti.exceptions import KeySetError

USER_AGENT = "lti-attendance/0.1 (+LTI 1.3 tool)"


class PlatformKeyCache:
    """Key sets by URL. A kid not in the cached set triggers at most one refetch per interval."""

    def __init__(self, ttl: float, min_refetch_interval: float, timeout: float, session: requests.Session | None = None):
        self.ttl = ttl
        self.min_refetch_interval = min_refetch_interval
        self.timeout = timeout
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        self._sets: dict[str, tuple[float, dict]] = {}
        self._last_fetch: dict[str, float] = {}
        self._lock = threading.Lock()
        self.fetches = 0  # how many times a key set was requested from a platform

    def _fetch(self, url: str) -> dict:
        self._last_fetch[url] = time.monotonic()
        self.fetches += 1
        try:
            response = self.session.get(url, timeout=self.timeout, headers={"Accept": "application/json"})
            response.raise_for_status()
            key_set = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise KeySetError(f"The platform's key set at {url} could not be read: {exc}", status=502) from exc
        if not isinstance(key_set, dict) or not isinstance(key_set.get("keys"), list):
            raise KeySetError(f"The platform's key set at {url} is not a JWKS document.", status=502)
        self._sets[url] = (time.monotonic(), key_set)
        return key_set

    @staticmethod
    def _find(key_set: dict, kid: str) -> dict | None:
        for key in key_set.get("keys", []):
            if isinstance(key, dict) and key.get("kid") == kid:
                return key
        return None

    def key_for(self, url: str, kid: str, alg: str) -> PyJWK:
        """Return the platform key with this kid, usable for alg."""
        with self._lock:
            cached = self._sets.get(url)
            key_set = cached[1] if cached and time.monotonic() - cached[0] < self.ttl else None
            if key_set is None:
                key_set = self._fetch(url)
            jwk = self._find(key_set, kid)
            if jwk is None:
                last = self._last_fetch.get(url, 0.0)
                if time.monotonic() - last >= self.min_refetch_interval:
                    jwk = self._find(self._fetch(url), kid)
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
