"""LTI Advantage service clients: OAuth2 client-credentials tokens, AGS (line items, scores) and NRPS.

Tokens are cached per (issuer, client_id, scopes) — never per issuer alone, since one Canvas
issuer hosts many client ids — until shortly before they expire. Service URLs are used exactly as
the platform gave them (Moodle's `?type_id=` stays), and NRPS paging follows `Link: rel="next"`
on the same host only, without touching the URL's case.
"""
from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Iterator
from urllib.parse import urlsplit, urlunsplit

import jwt
import requests

from lti.keys import KeyRing
from lti.platform_keys import USER_AGENT

LINEITEM = "application/vnd.ims.lis.v2.lineitem+json"
LINEITEM_CONTAINER = "application/vnd.ims.lis.v2.lineitemcontainer+json"
SCORE = "application/vnd.ims.lis.v1.score+json"
RESULT_CONTAINER = "application/vnd.ims.lis.v2.resultcontainer+json"
MEMBERSHIP_CONTAINER = "application/vnd.ims.lti-nrps.v2.membershipcontainer+json"
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TOKEN_MARGIN = 60  # renew a token this many seconds before it expires


class ServiceError(Exception):
    """A platform service answered with an error or could not be reached."""

    def __init__(self, message: str, status: int | None = None, body: str = "", retry_after: float | None = None):
        super().__init__(message)
        self.message, self.status, self.body, self.retry_after = message, status, body[:2000], retry_after

    @property
    def transient(self) -> bool:
        """Worth retrying: no answer, throttled, or a server error."""
        return self.status is None or self.status == 429 or self.status >= 500


@dataclass(frozen=True)
class PlatformAccount:
    """What a service call needs to know of a registration."""

    issuer: str
    client_id: str
    token_url: str
    audience: str | None = None


def _retry_after(response: requests.Response) -> float | None:
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
    """Access tokens per (issuer, client_id, scopes), shared by the threads of a process."""

    def __init__(self):
        self._tokens: dict[tuple, tuple[str, float]] = {}
        self._locks: dict[tuple, threading.Lock] = {}
        self._guard = threading.Lock()
        self.requests = 0  # tokens requested from platforms, for tests and benchmarks

    def _lock_for(self, key: tuple) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def get(self, key: tuple, fetch) -> str:
        cached = self._tokens.get(key)
        if cached and cached[1] > time.time():
            return cached[0]
        with self._lock_for(key):  # one request per key even when many threads need a token at once
            cached = self._tokens.get(key)
            if cached and cached[1] > time.time():
                return cached[0]
            token, lifetime = fetch()
            self.requests += 1
            self._tokens[key] = (token, time.time() + max(0, lifetime - TOKEN_MARGIN))
            return token

    def forget(self, key: tuple) -> None:
        self._tokens.pop(key, None)


class ServiceClient:
    """Calls a platform's LTI Advantage services on behalf of one registration."""

    def __init__(self, account: PlatformAccount, keys: KeyRing, cache: TokenCache, session: requests.Session,
                 timeout: float = 10):
        self.account, self.keys, self.cache, self.session, self.timeout = account, keys, cache, session, timeout

    # -- OAuth2 ---------------------------------------------------------------------------
    def _fetch_token(self, scopes: tuple[str, ...]) -> tuple[str, float]:
        key = self.keys.current()
        now = int(time.time())
        assertion = jwt.encode({
            "iss": self.account.client_id, "sub": self.account.client_id,
            "aud": self.account.audience or self.account.token_url,
            "iat": now, "exp": now + 300, "jti": str(uuid.uuid4()),
        }, key.private_pem, algorithm="RS256", headers={"kid": key.kid})
        try:
            response = self.session.post(self.account.token_url, timeout=self.timeout, data={
                "grant_type": "client_credentials", "client_assertion_type": CLIENT_ASSERTION_TYPE,
                "client_assertion": assertion, "scope": " ".join(scopes)},
                headers={"Accept": "application/json", "User-Agent": USER_AGENT})
        except requests.RequestException as exc:
            raise ServiceError(f"token endpoint unreachable: {exc}") from exc
        if not response.ok:
            raise ServiceError(f"token endpoint answered {response.status_code}", response.status_code,
                               response.text, _retry_after(response))
        try:
            body = response.json()
            return body["access_token"], float(body.get("expires_in", 3600))
        except (ValueError, KeyError, TypeError) as exc:
            raise ServiceError("token endpoint answered without an access_token", response.status_code,
                               response.text) from exc

    def token(self, scopes: tuple[str, ...]) -> str:
        scopes = tuple(sorted(set(scopes)))
        key = (self.account.issuer, self.account.client_id, scopes)
        return self.cache.get(key, lambda: self._fetch_token(scopes))

    def request(self, method: str, url: str, scopes: tuple[str, ...], *, accept: str,
                json_body: dict | None = None, content_type: str | None = None) -> requests.Response:
        """One authorised call; a 401 renews the token once (it may have been revoked early)."""
        for attempt in (1, 2):
            headers = {"Authorization": f"Bearer {self.token(scopes)}", "Accept": accept, "User-Agent": USER_AGENT}
            if content_type:
                headers["Content-Type"] = content_type
            try:
                response = self.session.request(method, url, headers=headers, timeout=self.timeout,
                                                data=None if json_body is None else _dumps(json_body))
            except requests.RequestException as exc:
                raise ServiceError(f"{method} {url} failed: {exc}") from exc
            if response.status_code == 401 and attempt == 1:
                self.cache.forget((self.account.issuer, self.account.client_id, tuple(sorted(set(scopes)))))
                continue
            if not response.ok:
                raise ServiceError(f"{method} {url} answered {response.status_code}", response.status_code,
                                   response.text, _retry_after(response))
            return response
        raise AssertionError("unreachable")

    # -- AGS ------------------------------------------------------------------------------
    def find_line_items(self, lineitems_url: str, *, resource_link_id: str | None = None, tag: str | None = None,
                        scopes: tuple[str, ...]) -> list[dict]:
        url = lineitems_url
        params = [(k, v) for k, v in (("resource_link_id", resource_link_id), ("tag", tag)) if v]
        if params:
            url = _add_query(url, params)
        body = _json(self.request("GET", url, scopes, accept=LINEITEM_CONTAINER))
        return [item for item in body if isinstance(item, dict)] if isinstance(body, list) else []

    def create_line_item(self, lineitems_url: str, line_item: dict, scopes: tuple[str, ...]) -> dict:
        body = _json(self.request("POST", lineitems_url, scopes, accept=LINEITEM, json_body=line_item,
                                  content_type=LINEITEM))
        if not isinstance(body, dict):
            raise ServiceError("The LMS answered the new line item with something else than a JSON object.", 502)
        return body

    def post_score(self, lineitem_url: str, score: dict, scopes: tuple[str, ...]) -> requests.Response:
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
                raise ServiceError(f"NRPS next page on another host refused: {next_url}")
            url = next_url
        raise ServiceError("NRPS paging did not end")


def _json(response: requests.Response):
    """The JSON body of a successful answer; an unreadable one is the platform's fault, not a crash."""
    try:
        return response.json()
    except ValueError as exc:
        raise ServiceError(f"{response.request.method} {response.url} answered {response.status_code} without JSON",
                           502, response.text) from exc


def scores_url(lineitem_url: str) -> str:
    """The scores endpoint of a line item: `/scores` after the path, the query string kept."""
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
