"""A simulated LMS: signs id_tokens with a throwaway key and serves its JWKS (and more) over real HTTP.

The server is a real loopback HTTP server in a thread, so the tool fetches keys and talks to the
platform exactly as it would to Moodle or Canvas; nothing is mocked.
"""
from __future__ import annotations

import json
import threading
import time
import uuid
from html import escape
from urllib.parse import urlencode

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwcrypto.jwk import JWK
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

LTI = "https://purl.imsglobal.org/spec/lti/claim/"
ROLE = {
    "instructor": "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor",
    "learner": "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner",
    "ta": "http://purl.imsglobal.org/vocab/lis/v2/membership/Instructor#TeachingAssistant",
    "mentor": "http://purl.imsglobal.org/vocab/lis/v2/membership#Mentor",
    "institution_admin": "http://purl.imsglobal.org/vocab/lis/v2/institution/person#Administrator",
    "system_admin": "http://purl.imsglobal.org/vocab/lis/v2/system/person#Administrator",
    "system_user": "http://purl.imsglobal.org/vocab/lis/v2/system/person#User",
    "institution_student": "http://purl.imsglobal.org/vocab/lis/v2/institution/person#Student",
    "institution_instructor": "http://purl.imsglobal.org/vocab/lis/v2/institution/person#Instructor",
    "test_user": "http://purl.imsglobal.org/vocab/lti/system/person#TestUser",
}


def new_rsa_key() -> tuple[str, dict]:
    """A fresh RSA key: (private PEM, public JWK with kid = RFC 7638 thumbprint)."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    jwk = JWK.from_pem(pem.encode())
    public = json.loads(jwk.export_public())
    public.update(kid=jwk.thumbprint(), alg="RS256", use="sig")
    return pem, public


class Platform:
    """One LMS: an issuer with a client id and deployment, keys, and an HTTP server."""

    def __init__(self, issuer: str | None = None, client_id: str = "tool-client-1", deployment_id: str = "1",
                 product: str = "moodle"):
        self.product = product
        self.client_id = client_id
        self.deployment_id = deployment_id
        self.private_pem, self.public_jwk = new_rsa_key()
        self._signing_key = None
        self.published = [self.public_jwk]
        self.requests: list[tuple[str, str, dict, bytes]] = []  # (method, path+query, headers, body)
        self.handlers = {}  # path -> callable(Request) -> Response, for tests to add endpoints
        self.auth_claims = None  # callable(login_hint, message_hint) -> claims, for the browser flow
        self._server = make_server("127.0.0.1", 0, self._wsgi, threaded=True)
        self.port = self._server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self.issuer = issuer or self.url
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    # -- endpoints ----------------------------------------------------------------------
    @property
    def jwks_url(self) -> str:
        return self.url + "/jwks"

    @property
    def auth_url(self) -> str:
        return self.url + "/auth"

    @property
    def token_url(self) -> str:
        return self.url + "/token"

    def _wsgi(self, environ, start_response):
        request = Request(environ)
        self.requests.append((request.method, request.full_path.rstrip("?"), dict(request.headers), request.get_data()))
        handler = self.handlers.get(request.path)
        if handler is not None:
            response = handler(request)
        elif request.path == "/jwks":
            response = Response(json.dumps({"keys": self.published}), mimetype="application/json")
        elif request.path == "/auth":
            response = self._authorize(request)
        else:
            response = Response("not found", status=404)
        return response(environ, start_response)

    def _authorize(self, request: Request) -> Response:
        """The OIDC auth endpoint: answer with a self-posting form, as a real LMS does."""
        args = request.values
        claims = self.auth_claims(args.get("login_hint"), args.get("lti_message_hint")) if self.auth_claims else {}
        token = self.id_token(nonce=args.get("nonce"), **claims)
        html = (f'<!doctype html><form id="f" method="post" action="{escape(args.get("redirect_uri", ""))}">'
                f'<input type="hidden" name="id_token" value="{escape(token)}">'
                f'<input type="hidden" name="state" value="{escape(args.get("state", ""))}"></form>'
                '<script>document.getElementById("f").submit()</script>')
        return Response(html, mimetype="text/html")

    def requests_to(self, path: str) -> list:
        return [r for r in self.requests if r[1].split("?")[0] == path]

    def stop(self) -> None:
        self._server.shutdown()

    # -- tokens -------------------------------------------------------------------------
    def rotate_key(self, keep_old: bool = True) -> None:
        """Make a new signing key and publish it (beside the old one unless keep_old is False)."""
        self.private_pem, self.public_jwk = new_rsa_key()
        self._signing_key = None
        self.published = (self.published if keep_old else []) + [self.public_jwk]

    def sign(self, claims: dict, *, kid: str | None | bool = True, alg: str = "RS256", key: str | None = None,
             headers: dict | None = None) -> str:
        """Sign claims as this platform; kid=False leaves the kid out, a string sets it."""
        hdr = dict(headers or {})
        if kid is True:
            hdr["kid"] = self.public_jwk["kid"]
        elif isinstance(kid, str):
            hdr["kid"] = kid
        if key is None and alg.startswith("RS"):
            if self._signing_key is None:  # parsing the PEM is the slow part of signing: once per key
                self._signing_key = serialization.load_pem_private_key(
                    self.private_pem.encode(), None, unsafe_skip_rsa_key_validation=True)
            key = self._signing_key
        return jwt.encode(claims, key or self.private_pem, algorithm=alg, headers=hdr)

    def claims(self, role: str = "instructor", *, nonce: str = "n", sub: str | None = None,
               context_id: str = "course-1", resource_link_id: str = "link-1",
               message_type: str = "LtiResourceLinkRequest", ags: bool = True, nrps: bool = True, **extra) -> dict:
        """Claims shaped like this platform's launches (Moodle or Canvas) for a role preset or list of roles."""
        now = int(time.time())
        roles = role if isinstance(role, list) else self.role_preset(role)
        body = {
            "iss": self.issuer,
            "aud": self.client_id,
            "sub": sub or f"{role if isinstance(role, str) else 'user'}-sub",
            "iat": now,
            "exp": now + 300,
            "nonce": nonce,
            "name": "Ada Lovelace",
            "given_name": "Ada",
            "family_name": "Lovelace",
            "email": "ada@example.edu",
            LTI + "message_type": message_type,
            LTI + "version": "1.3.0",
            LTI + "deployment_id": self.deployment_id,
            LTI + "target_link_uri": "http://127.0.0.1/lti/launch",
            LTI + "roles": roles,
            LTI + "context": {"id": context_id, "label": "PHY101", "title": "Physics 101",
                              "type": ["http://purl.imsglobal.org/vocab/lis/v2/course#CourseOffering"]},
            LTI + "tool_platform": {"guid": "platform-guid", "name": "Test " + self.product,
                                    "product_family_code": self.product, "version": "1"},
            LTI + "launch_presentation": {"document_target": "iframe", "return_url": self.url + "/return"},
        }
        if message_type == "LtiResourceLinkRequest":
            body[LTI + "resource_link"] = {"id": resource_link_id, "title": "Attendance"}
        else:
            body["https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings"] = {
                "deep_link_return_url": self.url + "/deep_link_return",
                "accept_types": ["ltiResourceLink"],
                "accept_presentation_document_targets": ["iframe", "window"],
                "accept_multiple": False,
                "data": "opaque-platform-data",
            }
        if ags:
            body["https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"] = {
                "scope": ["https://purl.imsglobal.org/spec/lti-ags/scope/lineitem",
                          "https://purl.imsglobal.org/spec/lti-ags/scope/score",
                          "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly"],
                "lineitems": self.url + "/mod/lti/services.php/2/lineitems?type_id=1",
            }
        if nrps:
            body["https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"] = {
                "context_memberships_url": self.url + "/mod/lti/services.php/CourseSection/2/bindings/1/memberships",
                "service_versions": ["1.0", "2.0"],
            }
        body.update(extra)
        return body

    def role_preset(self, role: str) -> list[str]:
        """Roles as Moodle or Canvas send them for a kind of user."""
        canvas = self.product == "canvas"
        presets = {
            "instructor": [ROLE["instructor"], ROLE["institution_instructor"]] + ([ROLE["system_user"]] if canvas else []),
            "learner": [ROLE["learner"], ROLE["institution_student"]] + ([ROLE["system_user"]] if canvas else []),
            "ta": [ROLE["instructor"], ROLE["ta"], ROLE["system_user"]],
            "test_user": [ROLE["learner"], ROLE["test_user"], ROLE["system_user"]],
            "site_admin": [ROLE["instructor"], ROLE["institution_admin"], ROLE["system_admin"]],
            "account_admin": [ROLE["institution_admin"], ROLE["system_user"]],
            "mentor": [ROLE["mentor"]],
            "none": [],
            "system_user": [ROLE["system_user"]],
        }
        return list(presets[role])

    def id_token(self, nonce: str, role: str = "instructor", **kwargs) -> str:
        return self.sign(self.claims(role, nonce=nonce, **kwargs))

    def login_params(self, target_link_uri: str, **extra) -> dict:
        params = {"iss": self.issuer, "login_hint": "hint-42", "target_link_uri": target_link_uri,
                  "client_id": self.client_id, "lti_deployment_id": self.deployment_id,
                  "lti_message_hint": "msg-" + uuid.uuid4().hex[:8]}
        params.update(extra)
        return {k: v for k, v in params.items() if v is not None}

    def login_query(self, target_link_uri: str, **extra) -> str:
        return urlencode(self.login_params(target_link_uri, **extra))
