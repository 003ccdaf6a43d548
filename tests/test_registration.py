"""LTI Dynamic Registration against a simulated Moodle and Canvas over real loopback HTTP.

The tool runs under the Flask test client at http://localhost; each platform is a
tests.support.platform.Platform with extra handlers for its OpenID configuration and registration
endpoints, shaped like what Moodle (4.x and the 3.10 quirk) and Canvas really serve.
"""
from __future__ import annotations

import socket
import time

import pytest
from sqlalchemy import select
from werkzeug.wrappers import Response

from extensions import db
from lti.models import Deployment, Registration
from tests.support.launch import TOOL, body_attr
from tests.support.registration import (
    CANVAS_CONFIG_PATH,
    CANVAS_ISSUER,
    CANVAS_JWKS_PATH,
    CANVAS_PRIVACY,
    CANVAS_REGISTRATION_PATH,
    CLOSE_SCRIPT,
    LINEITEM,
    MOODLE_CERTS_PATH,
    MOODLE_CONFIG_PATH,
    MOODLE_REGISTRATION_PATH,
    PLATFORM_CONFIGURATION,
    SCORE,
    TOOL_CONFIGURATION,
    TOOL_SCOPES,
    bearer_required,
    canvas_platform,
    counts,
    json_response,
    moodle_openid_configuration,
    moodle_platform,
    posted_registration,
    register,
    registration_endpoint,
)


# -- Moodle 4.x ------------------------------------------------------------------------------
def test_moodle_registration_posts_what_moodle_needs_and_stores_the_platform(app, client, launcher, platforms):
    moodle = moodle_platform(platforms)
    response = register(client, moodle.url + MOODLE_CONFIG_PATH, "moodle-reg-token")
    html = response.get_data(as_text=True)
    assert response.status_code == 200, html[:800]
    assert CLOSE_SCRIPT.search(html), html

    # The configuration was fetched, then the registration posted with the Bearer token as JSON.
    assert [r[0] for r in moodle.requests_to(MOODLE_CONFIG_PATH)] == ["GET"]
    headers, body = posted_registration(moodle, MOODLE_REGISTRATION_PATH)
    assert headers["Authorization"] == "Bearer moodle-reg-token"
    assert headers["Content-Type"].startswith("application/json")

    assert body["application_type"] == "web"
    assert body["response_types"] == ["id_token"]
    assert set(body["grant_types"]) == {"implicit", "client_credentials"}
    assert body["initiate_login_uri"] == TOOL + "/lti/login"
    assert body["redirect_uris"] == [TOOL + "/lti/launch"]
    # Either published key set URL will do, as long as it serves the tool's keys.
    assert body["jwks_uri"] in (TOOL + "/lti/jwks", TOOL + "/.well-known/jwks.json")
    assert client.get(body["jwks_uri"][len(TOOL):]).get_json() == client.get("/lti/jwks").get_json()
    assert body["token_endpoint_auth_method"] == "private_key_jwt"
    assert set(body["scope"].split()) == TOOL_SCOPES
    assert body["client_name"]

    config = body[TOOL_CONFIGURATION]
    assert config["target_link_uri"] == TOOL + "/lti/launch"
    assert config["domain"] == "localhost"  # Moodle refuses a domain other than target_link_uri's host
    assert {"name", "email"} <= set(config["claims"])
    by_type = {m["type"]: m for m in config["messages"]}
    assert set(by_type) == {"LtiResourceLinkRequest", "LtiDeepLinkingRequest"}
    assert by_type["LtiDeepLinkingRequest"]["target_link_uri"] == TOOL + "/lti/launch"
    assert CANVAS_PRIVACY not in config
    assert all("placements" not in m for m in config["messages"])

    with app.app_context():
        row = db.session.scalar(select(Registration))
        assert (row.issuer, row.client_id) == (moodle.url, "Mdl4ClientXyz")
        assert row.product_family == "moodle"
        assert row.auth_login_url == moodle.url + "/mod/lti/auth.php"
        assert row.auth_token_url == moodle.url + "/mod/lti/token.php"
        assert row.key_set_url == moodle.url + MOODLE_CERTS_PATH
        assert row.id_token_algs == ["RS256"]
        assert set(row.scopes) == TOOL_SCOPES
        assert row.active is True
        assert [(d.deployment_id, d.active, d.onboarded_by_launch) for d in row.deployments] == [("7", True, False)]
    assert "Mdl4ClientXyz" in html

    # The registered platform can now launch the tool.
    moodle.client_id = "Mdl4ClientXyz"
    launched = launcher.launch(moodle, "instructor")
    assert launched.status_code == 200, launched.get_data(as_text=True)[:800]
    assert body_attr(launched.get_data(as_text=True), "data-role") == "teacher"
    assert moodle.requests_to(MOODLE_CERTS_PATH), "the platform's key set was fetched from its jwks_uri"
    assert counts(app) == (1, 1)


def test_moodle_310_platform_configuration_key_with_trailing_space(app, client, launcher, platforms):
    moodle = moodle_platform(platforms, config_key=PLATFORM_CONFIGURATION + " ", client_id="Mdl310", deployment_id="3")
    response = register(client, moodle.url + MOODLE_CONFIG_PATH, "moodle-reg-token")
    assert response.status_code == 200, response.get_data(as_text=True)[:800]
    _, body = posted_registration(moodle, MOODLE_REGISTRATION_PATH)
    # The platform configuration was understood: Moodle's plain-string messages_supported lists deep linking.
    types = [m["type"] for m in body[TOOL_CONFIGURATION]["messages"]]
    assert types == ["LtiResourceLinkRequest", "LtiDeepLinkingRequest"]
    with app.app_context():
        row = db.session.scalar(select(Registration))
        assert (row.issuer, row.client_id, row.product_family) == (moodle.url, "Mdl310", "moodle")
        assert [d.deployment_id for d in row.deployments] == ["3"]
    moodle.client_id = "Mdl310"
    assert launcher.launch(moodle, "learner").status_code == 200


def test_only_scopes_the_platform_supports_are_requested(app, client, platforms):
    moodle = moodle_platform(platforms, scopes=[LINEITEM, SCORE, "openid"])
    assert register(client, moodle.url + MOODLE_CONFIG_PATH, "moodle-reg-token").status_code == 200
    _, body = posted_registration(moodle, MOODLE_REGISTRATION_PATH)
    assert body["scope"].split() == [LINEITEM, SCORE]


def test_deep_linking_not_offered_when_platform_does_not_support_it(app, client, platforms):
    moodle = moodle_platform(platforms)
    config = moodle_openid_configuration(moodle)
    config[PLATFORM_CONFIGURATION]["messages_supported"] = ["LtiResourceLinkRequest"]
    moodle.handlers[MOODLE_CONFIG_PATH] = lambda request: json_response(config)
    assert register(client, moodle.url + MOODLE_CONFIG_PATH, "moodle-reg-token").status_code == 200
    _, body = posted_registration(moodle, MOODLE_REGISTRATION_PATH)
    assert [m["type"] for m in body[TOOL_CONFIGURATION]["messages"]] == ["LtiResourceLinkRequest"]


def test_registration_without_token_is_refused_by_the_platform_and_stores_nothing(app, client, platforms):
    moodle = moodle_platform(platforms)
    response = register(client, moodle.url + MOODLE_CONFIG_PATH)  # no registration_token
    assert response.status_code == 400
    assert "401" in response.get_data(as_text=True)
    headers, _ = posted_registration(moodle, MOODLE_REGISTRATION_PATH)
    assert "Authorization" not in headers
    assert counts(app) == (0, 0)


# -- Canvas ---------------------------------------------------------------------------------
def test_canvas_registration_with_bearer_on_both_calls_then_first_launch_onboards(app, client, launcher, platforms):
    canvas = canvas_platform(platforms)
    response = register(client, canvas.url + CANVAS_CONFIG_PATH, "canvas-reg-token")
    html = response.get_data(as_text=True)
    assert response.status_code == 200, html[:800]
    assert CLOSE_SCRIPT.search(html)

    gets = canvas.requests_to(CANVAS_CONFIG_PATH)
    assert [(r[0], r[2].get("Authorization")) for r in gets] == [("GET", "Bearer canvas-reg-token")]
    headers, body = posted_registration(canvas, CANVAS_REGISTRATION_PATH)
    assert headers["Authorization"] == "Bearer canvas-reg-token"

    config = body[TOOL_CONFIGURATION]
    assert config[CANVAS_PRIVACY] == "public"
    assert config["domain"] == "localhost"
    by_type = {m["type"]: m for m in config["messages"]}
    assert by_type["LtiResourceLinkRequest"]["placements"] == ["course_navigation"]
    assert by_type["LtiDeepLinkingRequest"]["placements"] == ["link_selection"]
    assert set(body["scope"].split()) == TOOL_SCOPES

    with app.app_context():
        row = db.session.scalar(select(Registration))
        assert (row.issuer, row.client_id, row.product_family) == (CANVAS_ISSUER, "10000000000042", "canvas")
        assert row.key_set_url == canvas.url + CANVAS_JWKS_PATH
        assert row.auth_login_url == canvas.auth_url
        assert row.deployments == []  # Canvas answers no deployment_id
        assert row.auto_onboard_deployments is True

    canvas.client_id = "10000000000042"
    canvas.deployment_id = "412:8865aa05b4b79b64a91a86042e43af5ea8ae79eb"
    launched = launcher.launch(canvas, "learner")
    assert launched.status_code == 200, launched.get_data(as_text=True)[:800]
    assert body_attr(launched.get_data(as_text=True), "data-role") == "student"
    with app.app_context():
        deployments = db.session.scalars(select(Deployment)).all()
        assert [(d.deployment_id, d.active, d.onboarded_by_launch) for d in deployments] == [
            ("412:8865aa05b4b79b64a91a86042e43af5ea8ae79eb", True, True)]
    # A second launch reuses the onboarded deployment.
    assert launcher.launch(canvas, "instructor").status_code == 200
    assert counts(app) == (1, 1)


def test_canvas_openid_configuration_without_bearer_fails_cleanly(app, client, platforms):
    canvas = canvas_platform(platforms)
    response = register(client, canvas.url + CANVAS_CONFIG_PATH, "wrong-token")
    assert response.status_code == 400
    assert body_attr(response.get_data(as_text=True), "data-error") == "registration_failed"
    assert canvas.requests_to(CANVAS_REGISTRATION_PATH) == []
    assert counts(app) == (0, 0)


# -- re-registration -----------------------------------------------------------------------
def test_reregistration_of_a_known_client_is_refused_and_changes_nothing(app, client, platforms):
    """A malicious platform re-announcing a known (issuer, client id) with its own URLs takes nothing over."""
    moodle = moodle_platform(platforms, client_id="SameClient", deployment_id="7")
    assert register(client, moodle.url + MOODLE_CONFIG_PATH, "moodle-reg-token").status_code == 200
    with app.app_context():
        first = db.session.scalar(select(Registration))
        first.active = False  # deactivated by an admin: registering again must not bring it back
        db.session.commit()
        before = (first.id, first.auth_token_url, first.key_set_url, first.auth_login_url)

    config = moodle_openid_configuration(moodle)
    config["token_endpoint"] = moodle.url + "/mod/lti/token2.php"
    config["jwks_uri"] = moodle.url + "/attacker-keys"
    moodle.handlers[MOODLE_CONFIG_PATH] = lambda request: json_response(config)
    moodle.handlers[MOODLE_REGISTRATION_PATH] = bearer_required(
        "moodle-reg-token", registration_endpoint("SameClient", "8"))
    response = register(client, moodle.url + MOODLE_CONFIG_PATH, "moodle-reg-token")
    assert response.status_code == 409
    assert body_attr(response.get_data(as_text=True), "data-error") == "already_registered"

    with app.app_context():
        rows = db.session.scalars(select(Registration)).all()
        assert [(r.id, r.auth_token_url, r.key_set_url, r.auth_login_url) for r in rows] == [before]
        assert rows[0].active is False
        assert [d.deployment_id for d in rows[0].deployments] == ["7"]
    assert counts(app) == (1, 1)


def test_two_client_ids_on_one_issuer_coexist(app, client, launcher, platforms):
    first = canvas_platform(platforms, client_id="10000000000001")
    second = canvas_platform(platforms, client_id="10000000000002")
    assert register(client, first.url + CANVAS_CONFIG_PATH, "canvas-reg-token").status_code == 200
    assert register(client, second.url + CANVAS_CONFIG_PATH, "canvas-reg-token").status_code == 200
    with app.app_context():
        rows = db.session.scalars(select(Registration).order_by(Registration.id)).all()
        assert [(r.issuer, r.client_id, r.key_set_url) for r in rows] == [
            (CANVAS_ISSUER, "10000000000001", first.url + CANVAS_JWKS_PATH),
            (CANVAS_ISSUER, "10000000000002", second.url + CANVAS_JWKS_PATH),
        ]
    # Each developer key launches with its own platform keys.
    for platform, client_id in ((first, "10000000000001"), (second, "10000000000002")):
        platform.client_id, platform.deployment_id = client_id, f"dep-{client_id}"
        response = launcher.launch(platform, "instructor")
        assert response.status_code == 200, response.get_data(as_text=True)[:800]
    assert counts(app) == (2, 2)


# -- failures: a 4xx page, never a 500, nothing stored --------------------------------------------------
def closed_port_url() -> str:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}{MOODLE_CONFIG_PATH}"


def _fail_not_json(moodle):
    moodle.handlers[MOODLE_CONFIG_PATH] = lambda request: Response("<html>Moodle login</html>", mimetype="text/html")


def _fail_no_registration_endpoint(moodle):
    config = moodle_openid_configuration(moodle)
    del config["registration_endpoint"]
    moodle.handlers[MOODLE_CONFIG_PATH] = lambda request: json_response(config)


def _fail_registration_400(moodle):
    moodle.handlers[MOODLE_REGISTRATION_PATH] = lambda request: json_response(
        {"error": "invalid_client_metadata", "error_description": "domain mismatch"}, 400)


def _fail_no_client_id(moodle):
    def handler(request):
        answer = dict(request.get_json(force=True))
        answer[TOOL_CONFIGURATION] = dict(answer[TOOL_CONFIGURATION], deployment_id="7")
        return json_response(answer)
    moodle.handlers[MOODLE_REGISTRATION_PATH] = handler


def _fail_config_not_object(moodle):
    moodle.handlers[MOODLE_CONFIG_PATH] = lambda request: json_response(["not", "an", "object"])


def _fail_config_404(moodle):
    moodle.handlers[MOODLE_CONFIG_PATH] = lambda request: Response("missing", status=404)


def _fail_registration_not_json(moodle):
    moodle.handlers[MOODLE_REGISTRATION_PATH] = lambda request: Response("OK", mimetype="text/plain")


@pytest.mark.parametrize("breakage, posted", [
    (_fail_not_json, False),
    (_fail_config_not_object, False),
    (_fail_config_404, False),
    (_fail_no_registration_endpoint, False),
    (_fail_registration_400, True),
    (_fail_no_client_id, True),
    (_fail_registration_not_json, True),
])
def test_platform_failures_answer_a_4xx_page_and_store_nothing(app, client, platforms, breakage, posted):
    moodle = moodle_platform(platforms)
    breakage(moodle)
    response = register(client, moodle.url + MOODLE_CONFIG_PATH, "moodle-reg-token")
    html = response.get_data(as_text=True)
    assert 400 <= response.status_code < 500, html[:800]
    assert body_attr(html, "data-error") == "registration_failed"
    assert "Traceback" not in html
    assert not CLOSE_SCRIPT.search(html)
    assert bool([r for r in moodle.requests_to(MOODLE_REGISTRATION_PATH) if r[0] == "POST"]) is posted
    assert counts(app) == (0, 0)


@pytest.mark.parametrize("openid_configuration", [
    None,                       # missing parameter
    "",                         # empty parameter
    "file:///etc/passwd",       # not http(s)
    "ftp://127.0.0.1/openid-configuration",
    "not a url",
    "http://[::1/openid-configuration",  # urlsplit raises ValueError: still a 400, not a 500
])
def test_bad_openid_configuration_parameter(app, client, openid_configuration):
    response = register(client, openid_configuration, "tok")
    html = response.get_data(as_text=True)
    assert response.status_code == 400, html[:800]
    assert body_attr(html, "data-error") == "registration_failed"
    assert "root:" not in html
    assert counts(app) == (0, 0)


def test_unreachable_openid_configuration(app, client):
    response = register(client, closed_port_url(), "tok")
    html = response.get_data(as_text=True)
    assert response.status_code == 400, html[:800]
    assert body_attr(html, "data-error") == "registration_failed"
    assert counts(app) == (0, 0)


def test_slow_platform_times_out_with_a_4xx(make_app, platforms):
    app = make_app(LTI_HTTP_TIMEOUT=0.5)
    moodle = moodle_platform(platforms)

    def slow(request):
        time.sleep(2)
        return json_response(moodle_openid_configuration(moodle))
    moodle.handlers[MOODLE_CONFIG_PATH] = slow
    started = time.monotonic()
    response = register(app.test_client(), moodle.url + MOODLE_CONFIG_PATH, "moodle-reg-token")
    assert time.monotonic() - started < 1.8
    assert response.status_code == 400
    assert body_attr(response.get_data(as_text=True), "data-error") == "registration_failed"
    assert counts(app) == (0, 0)


@pytest.mark.parametrize("offered, stored", [
    (["RS256", "HS256", "none"], ["RS256"]),   # never a symmetric or unsigned algorithm
    (["ES256", "RS256"], ["ES256", "RS256"]),
    (["HS256"], ["RS256"]),
    (None, ["RS256"]),
])
def test_id_token_algorithms_kept_from_the_configuration(app, client, platforms, offered, stored):
    moodle = moodle_platform(platforms)
    config = moodle_openid_configuration(moodle)
    if offered is None:
        del config["id_token_signing_alg_values_supported"]
    else:
        config["id_token_signing_alg_values_supported"] = offered
    moodle.handlers[MOODLE_CONFIG_PATH] = lambda request: json_response(config)
    assert register(client, moodle.url + MOODLE_CONFIG_PATH, "moodle-reg-token").status_code == 200
    with app.app_context():
        assert db.session.scalar(select(Registration)).id_token_algs == stored


def test_numeric_deployment_id_is_stored_as_text(app, client, launcher, platforms):
    moodle = moodle_platform(platforms, client_id="NumDep")
    moodle.handlers[MOODLE_REGISTRATION_PATH] = registration_endpoint("NumDep", 12)
    assert register(client, moodle.url + MOODLE_CONFIG_PATH, "moodle-reg-token").status_code == 200
    with app.app_context():
        assert [d.deployment_id for d in db.session.scalars(select(Deployment))] == ["12"]
    moodle.client_id, moodle.deployment_id = "NumDep", "12"
    assert launcher.launch(moodle, "instructor").status_code == 200
    with app.app_context():
        assert [d.onboarded_by_launch for d in db.session.scalars(select(Deployment))] == [False]
