"""LTI Advantage service clients: OAuth2 client-credentials tokens, AGS (line items, scores) and NRPS.

Tokens are cached per (issuer, client_id, scopes) — never per issuer alone, since one Canvas
issuer hosts many client ids — until shortly before they expire. Service URLs are used exactly as
the platform gave them (Moodle's `?type_id=` stays), only on the registration's own hosts (issuer,
token endpoint, and those it lists), and NRPS paging follows `Link: rel="next"` on the same host
only, without touching the URL's case. Every call goes through the guarded `OutboundClient`;
error messages are short typed reasons, the platform's own words go to the log.
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

import jwt

from lti.keys import KeyRing
from lti.outbound import OutboundClient, OutboundError, OutboundResponse, url_host

log = logging.getLogger(__name__)

LINEITEM = "application/vnd.ims.lis.v2.lineitem+json"
LINEITEM_CONTAINER = "application/vnd.ims.lis.v2.lineitemcontainer+json"
SCORE = "application/vnd.ims.lis.v1.score+json"
RESULT_CONTAINER = "application/vnd.ims.lis.v2.resultcontainer+json"
MEMBERSHIP_CONTAINER = "application/vnd.ims.lti-nrps.v2.membershipcontainer+json"
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
REFUSED_TOKEN = (401, 403)  # answers that may mean "this bearer token is no longer valid"
TOKEN_MARGIN = 60  # renew a token this many seconds before it expires


class ServiceError(Exception):
    """A platform service answered with an error or could not be reached.

    `message` is a short typed reason fit to show a teacher; `body` (the platform's answer) is for
    decisions and logs only.
    """

    def __init__(self, message: str, status: int | None = None, body: str = "", retry_after: float | None = None,
                 *, transient: bool | None = None):
        super().__init__(message)
        self.message, self.status, self.body, self.retry_after = message, status, body[:2000], retry_after
        self._transient = transient

    @property
    def transient(self) -> bool:
        """Worth retrying: no answer, throttled, or a server error; never a refused URL."""
        if self._transient is not None:
            return self._transient
        return self.status is None or self.status == 429 or self.status >= 500

    @classmethod
    def from_outbound(cls, exc: OutboundError, prefix: str = "") -> "ServiceError":
        """Build a ServiceError from a failed call's typed reason and transience."""
        return cls(prefix + exc.reason, exc.status, transient=exc.transient)


@dataclass(frozen=True)
class PlatformAccount:
    """What a service call needs to know of a registration."""

    issuer: str
    client_id: str
    token_url: str
    audience: str | None = None
    # Hosts (lowercase, ":port" when not the default) where this platform's services may live.
    service_hosts: frozenset[str] = frozenset()


def _retry_after(response: OutboundResponse) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


class TokenCache:
    """Access tokens per (issuer, client_id, scopes), shared by the threads of a process.

    `clock` answers Unix time (`time.time` by default); tests pass a fake one to move time.
    """

    def __init__(self, clock: Callable[[], float] = time.time):
        self.clock = clock
        self._tokens: dict[tuple, tuple[str, float]] = {}
        self._locks: dict[tuple, threading.Lock] = {}
        self._guard = threading.Lock()
        self.requests = 0  # tokens requested from platforms, for tests and benchmarks

    def _lock_for(self, key: tuple) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def get(self, key: tuple, fetch) -> str:
        """Return the cached token for key, fetching one (once across threads) when it is missing or expiring."""
        cached = self._tokens.get(key)
        if cached and cached[1] > self.clock():
            return cached[0]
        with self._lock_for(key):  # one request per key even when many threads need a token at once
            cached = self._tokens.get(key)
            if cached and cached[1] > self.clock():
                return cached[0]
            token, lifetime = fetch()
            self.requests += 1
            self._tokens[key] = (token, self.clock() + max(0, lifetime - TOKEN_MARGIN))
            return token

    def forget(self, key: tuple) -> None:
        """Drop the cached token for key."""
        self._tokens.pop(key, None)


class ServiceClient:
    """Calls a platform's LTI Advantage services on behalf of one registration."""

    def __init__(self, account: PlatformAccount, keys: KeyRing, cache: TokenCache, http: OutboundClient):
        self.account, self.keys, self.cache, self.http = account, keys, cache, http

    def _audience(self) -> str:
        """Return the platform's named audience only on the token endpoint's own host, else the token URL.

        Otherwise a platform could make the tool sign a client assertion valid at someone else's LMS.
        """
        audience, token_url = self.account.audience, self.account.token_url
        if audience and url_host(audience) and url_host(audience) == url_host(token_url):
            return audience
        return token_url

    # -- OAuth2 ---------------------------------------------------------------------------
    def _fetch_token(self, scopes: tuple[str, ...]) -> tuple[str, float]:
        key = self.keys.current()
        now = int(time.time())
        assertion = jwt.encode({
            "iss": self.account.client_id, "sub": self.account.client_id,
            "aud": self._audience(),
            "iat": now, "exp": now + 300, "jti": str(uuid.uuid4()),
        }, key.private_pem, algorithm="RS256", headers={"kid": key.kid})
        try:
            response = self.http.post(self.account.token_url, data={
                "grant_type": "client_credentials", "client_assertion_type": CLIENT_ASSERTION_TYPE,
                "client_assertion": assertion, "scope": " ".join(scopes)},
                headers={"Accept": "application/json"})
        except OutboundError as exc:
            raise ServiceError.from_outbound(exc, "token endpoint: ") from exc
        if not response.ok:
            log.warning("token endpoint %s answered %s: %s", url_host(self.account.token_url), response.status_code,
                        response.text[:500])
            raise ServiceError(f"token endpoint: HTTP {response.status_code}", response.status_code,
                               response.text, _retry_after(response))
        try:
            body = response.json()
            return body["access_token"], float(body.get("expires_in", 3600))
        except (OutboundError, KeyError, TypeError, ValueError) as exc:
            log.warning("token endpoint %s answered without an access_token: %s", url_host(self.account.token_url),
                        response.text[:500])
            raise ServiceError("token endpoint: no access_token in the answer", response.status_code,
                               response.text) from exc

    def token(self, scopes: tuple[str, ...]) -> str:
        """Return an access token for the given scopes."""
        scopes = tuple(sorted(set(scopes)))
        key = (self.account.issuer, self.account.client_id, scopes)
        return self.cache.get(key, lambda: self._fetch_token(scopes))

    def request(self, method: str, url: str, scopes: tuple[str, ...], *, accept: str,
                json_body: dict | None = None, content_type: str | None = None) -> OutboundResponse:
        """Make one authorised call; a 401 or 403 renews the token once (it may have been revoked early).

        A URL off the platform's hosts is refused before anything, the token included, is sent.
        """
        if url_host(url) not in self.account.service_hosts:
            log.warning("service URL on another host than the platform's %s refused: %s",
                        sorted(self.account.service_hosts), url)
            raise ServiceError("service URL on another host than the platform's", transient=False)
        for attempt in (1, 2):
            headers = {"Authorization": f"Bearer {self.token(scopes)}", "Accept": accept}
            if content_type:
                headers["Content-Type"] = content_type
            try:
                response = self.http.request(method, url, headers=headers,
                                             data=None if json_body is None else _dumps(json_body))
            except OutboundError as exc:
                raise ServiceError.from_outbound(exc) from exc
            if response.status_code in REFUSED_TOKEN:
                # The token may have been revoked, or the platform's keys changed. Open edX answers such a
                # token with 403, not RFC 6750's 401: renew once on either, and never keep a refused token
                # for the next call (a later retry must not reuse it until it expires).
                self.cache.forget((self.account.issuer, self.account.client_id, tuple(sorted(set(scopes)))))
                if attempt == 1:
                    continue
            if not response.ok:
                log.warning("%s %s answered %s: %s", method, url, response.status_code, response.text[:500])
                raise ServiceError(f"HTTP {response.status_code}", response.status_code,
                                   response.text, _retry_after(response))
            return response
        raise AssertionError("unreachable")

    # -- AGS ------------------------------------------------------------------------------
    def find_line_items(self, lineitems_url: str, *, resource_link_id: str | None = None, tag: str | None = None,
                        scopes: tuple[str, ...]) -> list[dict]:
        """List the line items, filtered by resource link and tag when given."""
        url = lineitems_url
        params = [(k, v) for k, v in (("resource_link_id", resource_link_id), ("tag", tag)) if v]
        if params:
            url = _add_query(url, params)
        body = _json(self.request("GET", url, scopes, accept=LINEITEM_CONTAINER))
        return [item for item in body if isinstance(item, dict)] if isinstance(body, list) else []

    def create_line_item(self, lineitems_url: str, line_item: dict, scopes: tuple[str, ...]) -> dict:
        """Create a line item and return the platform's copy of it."""
        body = _json(self.request("POST", lineitems_url, scopes, accept=LINEITEM, json_body=line_item,
                                  content_type=LINEITEM))
        if not isinstance(body, dict):
            raise ServiceError("The LMS answered the new line item with something else than a JSON object.", 502)
        return body

    def post_score(self, lineitem_url: str, score: dict, scopes: tuple[str, ...]) -> OutboundResponse:
        """Post a score to a line item."""
        return self.request("POST", scores_url(lineitem_url), scopes, accept="application/json",
                            json_body=score, content_type=SCORE)

    # -- NRPS -----------------------------------------------------------------------------
    def memberships(self, url: str, scopes: tuple[str, ...], max_pages: int = 1000) -> Iterator[dict]:
        """Every member, page after page; `next` links are followed on the same host only."""
        origin = urlsplit(url)[:2]
        for _ in range(max_pages):
            response = self.request("GET", url, scopes, accept=MEMBERSHIP_CONTAINER)
            body = _json(response)
            for member in body.get("members", []) if isinstance(body, dict) else []:
                if isinstance(member, dict):
                    yield member
            next_url = response.links.get("next", {}).get("url")
            if not next_url:
                return
            if urlsplit(next_url)[:2] != origin:
                log.warning("NRPS next page on another host refused: %s", next_url)
                raise ServiceError("NRPS next page on another host refused", transient=False)
            url = next_url
        raise ServiceError("NRPS paging did not end")


def _json(response: OutboundResponse):
    """Return the JSON body of a successful answer; an unreadable one is the platform's fault, not a crash."""
    try:
        return response.json()
    except OutboundError as exc:
        raise ServiceError(f"HTTP {response.status_code} without JSON", 502, response.text) from exc


def scores_url(lineitem_url: str) -> str:
    """Return the scores endpoint of a line item: `/scores` after the path, the query string kept."""
    parts = urlsplit(lineitem_url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/") + "/scores", parts.query, parts.fragment))


def _add_query(url: str, params: list[tuple[str, str]]) -> str:
    from urllib.parse import urlencode

    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def _dumps(body: dict) -> bytes:
    import json

    return json.dumps(body).encode()
