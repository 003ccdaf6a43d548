"""Simulated platforms for LTI Dynamic Registration: Moodle's and Canvas's OpenID configurations and
registration endpoints, the tool's registration URL opened as a platform would, and what was stored.
"""
from __future__ import annotations

import json
import re

from sqlalchemy import func, select
from werkzeug.wrappers import Response

from extensions import db
from lti.invitations import create_invite
from lti.models import Deployment, Registration
from tests.support.platform import Platform

PLATFORM_CONFIGURATION = "https://purl.imsglobal.org/spec/lti-platform-configuration"
TOOL_CONFIGURATION = "https://purl.imsglobal.org/spec/lti-tool-configuration"
CANVAS_PRIVACY = "https://canvas.instructure.com/lti/privacy_level"
CANVAS_ISSUER = "https://canvas.instructure.com"

LINEITEM = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem"
LINEITEM_RO = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem.readonly"
SCORE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
RESULT_RO = "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly"
NRPS = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
BASIC_OUTCOME = "https://purl.imsglobal.org/spec/lti-bo/scope/basicoutcome"
TOOL_SCOPES = {LINEITEM, SCORE, RESULT_RO, NRPS}

MOODLE_CONFIG_PATH = "/mod/lti/openid-configuration.php"
MOODLE_REGISTRATION_PATH = "/mod/lti/openid-registration.php"
MOODLE_CERTS_PATH = "/mod/lti/certs.php"
CANVAS_CONFIG_PATH = "/api/lti/security/openid-configuration"
CANVAS_REGISTRATION_PATH = "/api/lti/registrations"
CANVAS_JWKS_PATH = "/api/lti/security/jwks"

CLOSE_SCRIPT = re.compile(
    r"\(\s*window\.opener\s*\|\|\s*window\.parent\s*\)\s*\.postMessage\(\s*\{\s*subject\s*:\s*"
    r"[\"']org\.imsglobal\.lti\.close[\"']"
)


def json_response(obj, status: int = 200) -> Response:
    """A JSON answer of the simulated platform."""
    return Response(json.dumps(obj), status=status, mimetype="application/json")


def bearer_required(token: str, handler):
    """Wrap a handler: 401 unless the request carries `Authorization: Bearer <token>`."""
    def wrapped(request):
        if request.headers.get("Authorization") != f"Bearer {token}":
            return json_response({"error": "invalid_token"}, 401)
        return handler(request)
    return wrapped


def serve_jwks(platform: Platform):
    """A handler serving the platform's published keys."""
    return lambda request: json_response({"keys": platform.published})


def moodle_openid_configuration(platform: Platform, *, config_key: str = PLATFORM_CONFIGURATION,
                                scopes: list[str] | None = None, version: str = "4.1.2 (Build: 20230313)") -> dict:
    """What Moodle 4.x serves at /mod/lti/openid-configuration.php."""
    return {
        "issuer": platform.issuer,
        "token_endpoint": platform.url + "/mod/lti/token.php",
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256"],
        "jwks_uri": platform.url + MOODLE_CERTS_PATH,
        "authorization_endpoint": platform.url + "/mod/lti/auth.php",
        "registration_endpoint": platform.url + MOODLE_REGISTRATION_PATH,
        "scopes_supported": scopes if scopes is not None else [
            BASIC_OUTCOME, "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem.readonly", RESULT_RO,
            SCORE, LINEITEM, NRPS, "https://purl.imsglobal.org/spec/lti-ts/scope/toolsetting", "openid"],
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public", "pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "claims_supported": ["sub", "iss", "name", "given_name", "family_name", "email"],
        config_key: {
            "product_family_code": "moodle",
            "version": version,
            "messages_supported": ["LtiResourceLinkRequest", "LtiDeepLinkingRequest"],
            "placements": ["AddContentMenu"],
            "variables": ["basic-lti-launch-request", "Context.id", "User.id"],
        },
    }


def canvas_openid_configuration(platform: Platform) -> dict:
    """What Canvas serves: issuer canvas.instructure.com, messages_supported as objects with placements."""
    return {
        "issuer": CANVAS_ISSUER,
        "authorization_endpoint": platform.auth_url,
        "registration_endpoint": platform.url + CANVAS_REGISTRATION_PATH,
        "jwks_uri": platform.url + CANVAS_JWKS_PATH,
        "token_endpoint": platform.url + "/login/oauth2/token",
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", LINEITEM, LINEITEM_RO, RESULT_RO, SCORE, NRPS,
                             "https://canvas.instructure.com/lti/public_jwk/scope/update"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "claims_supported": ["sub", "picture", "email", "name", "given_name", "family_name", "locale"],
        PLATFORM_CONFIGURATION: {
            "product_family_code": "canvas",
            "version": "OpenSource",
            "messages_supported": [
                {"type": "LtiResourceLinkRequest",
                 "placements": ["account_navigation", "course_navigation", "link_selection", "assignment_selection"]},
                {"type": "LtiDeepLinkingRequest",
                 "placements": ["link_selection", "assignment_selection", "editor_button"]},
            ],
            "variables": ["Canvas.course.id", "Canvas.user.id"],
            "https://canvas.instructure.com/lti/account_name": "Test University",
            "https://canvas.instructure.com/lti/account_lti_guid": "abc123:canvas-lms",
        },
    }


def registration_endpoint(client_id: str, deployment_id: str | None = None, status: int = 200):
    """A registration endpoint that echoes the tool's request as the platform's answer."""
    def handler(request):
        body = request.get_json(force=True)
        answer = dict(body)
        answer["client_id"] = client_id
        tool_config = dict(body.get(TOOL_CONFIGURATION) or {})
        if deployment_id is not None:
            tool_config["deployment_id"] = deployment_id
        answer[TOOL_CONFIGURATION] = tool_config
        return json_response(answer, status)
    return handler


def moodle_platform(platforms, *, token="moodle-reg-token", client_id="Mdl4ClientXyz", deployment_id="7",
                    config_key=PLATFORM_CONFIGURATION, scopes=None) -> Platform:
    """A Moodle 4.x that serves its OpenID configuration and registers the tool (behind a registration token)."""
    platform = platforms(product="moodle", client_id="unset", deployment_id=deployment_id)
    platform.handlers[MOODLE_CONFIG_PATH] = lambda request: json_response(
        moodle_openid_configuration(platform, config_key=config_key, scopes=scopes))
    platform.handlers[MOODLE_REGISTRATION_PATH] = bearer_required(token, registration_endpoint(client_id, deployment_id))
    platform.handlers[MOODLE_CERTS_PATH] = serve_jwks(platform)
    return platform


def canvas_platform(platforms, *, token="canvas-reg-token", client_id="10000000000042") -> Platform:
    """A Canvas that serves its OpenID configuration and registers the tool (behind a registration token)."""
    platform = platforms(issuer=CANVAS_ISSUER, product="canvas", client_id="unset", deployment_id="unset")
    platform.handlers[CANVAS_CONFIG_PATH] = bearer_required(
        token, lambda request: json_response(canvas_openid_configuration(platform)))
    platform.handlers[CANVAS_REGISTRATION_PATH] = bearer_required(token, registration_endpoint(client_id, None, 201))
    platform.handlers[CANVAS_JWKS_PATH] = serve_jwks(platform)
    return platform


def register(client, openid_configuration: str | None, token: str | None = None, *, invite: str | bool = True):
    """Open the registration URL as the platform would; by default with a fresh invitation of the tool's admin."""
    params = {}
    if invite is True:
        with client.application.app_context():
            params["invite"] = create_invite(1, note="test")
    elif invite:
        params["invite"] = invite
    if openid_configuration is not None:
        params["openid_configuration"] = openid_configuration
    if token is not None:
        params["registration_token"] = token
    return client.get("/lti/register", query_string=params)


def posted_registration(platform: Platform, path: str) -> tuple[dict, dict]:
    """(headers, JSON body) of the one registration POST the platform received."""
    posts = [r for r in platform.requests_to(path) if r[0] == "POST"]
    assert len(posts) == 1, platform.requests
    _, _, headers, body = posts[0]
    return headers, json.loads(body)


def counts(app) -> tuple[int, int]:
    """(registrations, deployments) stored."""
    with app.app_context():
        return (db.session.scalar(select(func.count()).select_from(Registration)),
                db.session.scalar(select(func.count()).select_from(Deployment)))
