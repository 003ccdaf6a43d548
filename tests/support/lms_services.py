"""The LMS side of LTI Advantage on a real loopback server: token endpoint, AGS and NRPS.

It checks what Moodle and Canvas check: the client assertion is signed by a key from the tool's
JWKS, bearer tokens are valid and carry the scope a call needs, media types are right, scores
have the required fields, and score timestamps only move forward (Moodle: 409 unless newer to the
second; Canvas: 400 when older). Tests can make it fail on purpose (`outage`), delete line items,
and page the roster.
"""
from __future__ import annotations

import json
import secrets
import threading
import time
from datetime import datetime
from urllib.parse import parse_qs

import jwt
from werkzeug.wrappers import Request, Response

from tests.support.platform import Platform

SCORE_TYPE = "application/vnd.ims.lis.v1.score+json"
LINEITEM_TYPE = "application/vnd.ims.lis.v2.lineitem+json"
CONTAINER_TYPE = "application/vnd.ims.lis.v2.lineitemcontainer+json"
NRPS_TYPE = "application/vnd.ims.lti-nrps.v2.membershipcontainer+json"
SCOPE_LINEITEM = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem"
SCOPE_SCORE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
SCOPE_NRPS = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"


def _json(body, status=200, mimetype="application/json", headers=None):
    return Response(json.dumps(body), status=status, mimetype=mimetype, headers=headers)


class LmsServices:
    """Installs AGS, NRPS and token handlers on a Platform; state is inspectable by tests."""

    def __init__(self, platform: Platform, tool_jwks_url: str | None = None, tool_jwks: callable = None,
                 flavour: str | None = None, token_lifetime: int = 3600):
        self.platform = platform
        self.flavour = flavour or platform.product  # "moodle" or "canvas"
        self.tool_jwks = tool_jwks  # callable returning the tool's JWKS dict
        self.token_lifetime = token_lifetime
        self.lock = threading.Lock()
        self.tokens: dict[str, dict] = {}  # access token -> {client_id, scopes}
        self.token_requests: list[dict] = []
        self.line_items: dict[str, dict] = {}  # id (URL) -> line item
        self.scores: list[dict] = []  # every accepted score, with its line item id
        self.refused: list[tuple[int, dict]] = []
        self.members: list[dict] = []
        self.page_size = 0  # 0: one page
        self.outage: int | None = None  # answer this status to every service call while set
        self.outage_retry_after: str | None = None
        self.invalid_token_status = 401  # Open edX answers a no-longer-valid bearer token with 403
        self.base = "/mod/lti/services.php/2" if self.flavour == "moodle" else "/api/lti/courses/2"
        self.query = "?type_id=1" if self.flavour == "moodle" else ""
        platform.handlers["/token"] = self._token
        platform.handlers[self.base + "/lineitems"] = self._lineitems
        platform.handlers[self.base + "/memberships"] = self._memberships
        self._install_item_routes()

    # -- URLs a launch would carry -------------------------------------------------------
    @property
    def lineitems_url(self) -> str:
        return self.platform.url + self.base + "/lineitems" + self.query

    @property
    def memberships_url(self) -> str:
        return self.platform.url + self.base + "/memberships"

    def claims(self) -> dict:
        """AGS and NRPS claims pointing here, for Platform.claims(**...)."""
        return {
            "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint": {
                "scope": [SCOPE_LINEITEM, SCOPE_SCORE, "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly"],
                "lineitems": self.lineitems_url},
            "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice": {
                "context_memberships_url": self.memberships_url, "service_versions": ["2.0"]},
        }

    # -- token endpoint -------------------------------------------------------------------
    def _token(self, request: Request) -> Response:
        form = request.form
        record = {"scope": form.get("scope", ""), "client_assertion": form.get("client_assertion")}
        with self.lock:
            self.token_requests.append(record)
        if form.get("grant_type") != "client_credentials" or form.get("client_assertion_type") != \
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
            return _json({"error": "unsupported_grant_type"}, 400)
        try:
            header = jwt.get_unverified_header(form["client_assertion"])
            jwks = self.tool_jwks()
            key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
            claims = jwt.decode(form["client_assertion"], key=jwt.PyJWK(key), algorithms=["RS256"],
                                audience=self.platform.token_url)
        except Exception as exc:  # noqa: BLE001 - any failure is an invalid client to an LMS
            return _json({"error": "invalid_client", "error_description": str(exc)}, 401)
        if claims.get("iss") != claims.get("sub") or not claims.get("jti"):
            return _json({"error": "invalid_client"}, 401)
        token = secrets.token_hex(16)
        with self.lock:
            self.tokens[token] = {"client_id": claims["sub"], "scopes": set(form.get("scope", "").split())}
        return _json({"access_token": token, "token_type": "Bearer", "expires_in": self.token_lifetime,
                      "scope": form.get("scope", "")})

    def _authorize(self, request: Request, scope: str) -> Response | None:
        if self.outage is not None:
            headers = {"Retry-After": self.outage_retry_after} if self.outage_retry_after else None
            return _json({"error": "unavailable"}, self.outage, headers=headers)
        auth = request.headers.get("Authorization", "")
        grant = self.tokens.get(auth[7:]) if auth.startswith("Bearer ") else None
        if grant is None:
            return _json({"error": "invalid_token"}, self.invalid_token_status)
        if scope not in grant["scopes"]:
            return _json({"error": "insufficient_scope"}, 403)
        return None

    # -- AGS ------------------------------------------------------------------------------
    def _install_item_routes(self):
        outer = self

        class ItemRouter(dict):  # Platform looks handlers up by exact path: route the dynamic ones here
            def get(self, path, default=None):
                handler = dict.get(self, path)
                if handler is not None:
                    return handler
                if path.startswith(outer.base + "/lineitems/"):
                    return outer._lineitem
                return default

        self.platform.handlers = ItemRouter(self.platform.handlers)

    def item_url(self, number: int) -> str:
        path = f"{self.base}/lineitems/{number}/lineitem" if self.flavour == "moodle" else f"{self.base}/lineitems/{number}"
        return self.platform.url + path + self.query

    def _lineitems(self, request: Request) -> Response:
        if request.method == "GET":
            denied = self._authorize(request, SCOPE_LINEITEM)
            if denied:
                return denied
            if CONTAINER_TYPE not in request.headers.get("Accept", ""):
                return _json({"error": "bad accept"}, 406)
            items = list(self.line_items.values())
            for key in ("resource_link_id", "tag"):
                if request.args.get(key):
                    field = "resourceLinkId" if key == "resource_link_id" else "tag"
                    items = [i for i in items if i.get(field) == request.args[key]]
            return _json(items, mimetype=CONTAINER_TYPE)
        denied = self._authorize(request, SCOPE_LINEITEM)
        if denied:
            return denied
        if request.mimetype != LINEITEM_TYPE:
            return _json({"error": "bad content type"}, 415)
        body = request.get_json(force=True)
        if not isinstance(body.get("scoreMaximum"), (int, float)) or not body.get("label"):
            return _json({"error": "scoreMaximum and label required"}, 400)
        with self.lock:
            number = len(self.line_items) + 1
            while any(k == self.item_url(number) for k in self.line_items):
                number += 1
            item = dict(body, id=self.item_url(number))
            self.line_items[item["id"]] = item
        return _json(item, 201, mimetype=LINEITEM_TYPE)

    def _lineitem(self, request: Request) -> Response:  # noqa: C901 - Moodle's and Canvas's checks side by side
        if getattr(self, "_revoking", False):
            self.tokens.clear()
        path = request.path
        if not path.endswith("/scores"):
            return _json({"error": "not found"}, 404)
        denied = self._authorize(request, SCOPE_SCORE)
        if denied:
            return denied
        item_id = self.platform.url + path[: -len("/scores")] + self.query
        if self.flavour == "moodle" and parse_qs(request.query_string.decode()).get("type_id") != ["1"]:
            return _json({"error": "type_id lost from the URL"}, 400)
        item = self.line_items.get(item_id)
        if item is None:
            return _json({"error": "line item not found"}, 404)
        if request.mimetype != SCORE_TYPE:
            return _json({"error": "bad content type"}, 415)
        score = request.get_json(force=True)
        missing = [k for k in ("userId", "activityProgress", "gradingProgress", "timestamp") if k not in score]
        if missing or ("scoreGiven" in score and "scoreMaximum" not in score):
            self.refused.append((400, score))
            return _json({"error": f"missing {missing or 'scoreMaximum'}"}, 400)
        stamp = datetime.fromisoformat(score["timestamp"].replace("Z", "+00:00"))
        with self.lock:
            previous = [s for s in self.scores if s["lineitem"] == item_id and s["userId"] == score["userId"]]
            if previous:
                last = datetime.fromisoformat(previous[-1]["timestamp"].replace("Z", "+00:00"))
                if self.flavour == "moodle" and int(stamp.timestamp()) <= int(last.timestamp()):
                    self.refused.append((409, score))
                    return _json({"error": "timestamp not newer than the last score"}, 409)
                if self.flavour == "canvas" and stamp < last:
                    self.refused.append((400, score))
                    return _json({"errors": {"timestamp": "older than the last submission"}}, 400)
            self.scores.append(dict(score, lineitem=item_id, received_at=time.time()))
        return _json({"resultUrl": item_id + "/results"}, 200)

    def revoke_tokens_on_scores(self, revoke: bool = True) -> None:
        """While set, every score request first revokes all tokens: each score post is refused as unauthorised."""
        self._revoking = revoke

    def delete_line_items(self) -> None:
        with self.lock:
            self.line_items.clear()

    def final_scores(self) -> dict[str, float]:
        """userId -> the last scoreGiven received (on any line item)."""
        latest = {}
        for score in self.scores:
            latest[score["userId"]] = score.get("scoreGiven")
        return latest

    # -- NRPS -----------------------------------------------------------------------------
    def _memberships(self, request: Request) -> Response:
        denied = self._authorize(request, SCOPE_NRPS)
        if denied:
            return denied
        if NRPS_TYPE not in request.headers.get("Accept", ""):
            return _json({"error": "bad accept"}, 406)
        members = list(self.members)
        headers = {}
        if self.page_size:
            cursor = request.args.get("cursor", "")
            start = int(cursor.split("Pg")[1]) if cursor else 0  # a mixed-case cursor: must not be lowercased
            page = members[start:start + self.page_size]
            if start + self.page_size < len(members):
                nxt = f"{self.memberships_url}?cursor=Pg{start + self.page_size}XyZ".replace("XyZ", "")
                headers["Link"] = f'<{nxt}>; rel="next"'
            members = page
        body = {"id": self.memberships_url, "context": {"id": "course-1", "title": "Physics 101"}, "members": members}
        return _json(body, mimetype=NRPS_TYPE, headers=headers)

    def add_member(self, user_id: str, role: str = "Learner", status: str = "Active", **fields) -> None:
        roles = {"Learner": ["http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"],
                 "Instructor": ["http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"]}[role]
        self.members.append({"user_id": user_id, "roles": roles, "status": status,
                             "name": fields.get("name", f"Member {user_id}"), **fields})
