"""Invalid launches and logins: each is refused with a 4xx, a clear error page, and no database change.

Every refusal is checked three ways: the HTTP status (a 4xx, never a 500), the error code the
page carries in `<body data-error="...">` with a readable message in `#error-message`, and the
database (no user, course, enrollment, resource link or deployment written). A few positive edge
cases (clock leeway, `azp`, auto-onboarding, key rotation) sit beside the refusals they bound.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import html as htmllib
import json
import re
import time
from urllib.parse import urlencode

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from sqlalchemy import func, select

from attendance.models import Course, Enrollment, ResourceLink, User
from extensions import db
from lti.models import Deployment, Registration
from tests.support.clock import FakeClock
from tests.support.launch import TOOL, Launcher, body_attr, register_platform
from tests.support.platform import LTI, Platform, new_rsa_key

DL_SETTINGS = "https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings"
MODELS = (User, Course, Enrollment, ResourceLink, Deployment, Registration)


# -- helpers ----------------------------------------------------------------------------------

def db_counts(app) -> dict[str, int]:
    """Row counts of every table a launch could write to."""
    with app.app_context():
        return {m.__name__: db.session.scalar(select(func.count()).select_from(m)) for m in MODELS}


def assert_no_product_rows(app) -> None:
    """No user, course, enrollment or resource link exists at all."""
    counts = db_counts(app)
    assert {k: counts[k] for k in ("User", "Course", "Enrollment", "ResourceLink")} == {
        "User": 0, "Course": 0, "Enrollment": 0, "ResourceLink": 0}


def error_message(page: str) -> str | None:
    match = re.search(r'id="error-message"[^>]*>(.*?)</p>', page, re.S)
    return htmllib.unescape(match.group(1)).strip() if match else None


def assert_refused(response, status: int, code: str, message: str | None = None) -> str:
    """A refusal: exact status, error code on the page, a message (containing `message`), no stack trace."""
    page = response.get_data(as_text=True)
    assert response.status_code == status, page[:800]
    assert 400 <= response.status_code < 500
    assert body_attr(page, "data-error") == code, page[:800]
    text = error_message(page)
    assert text, "the error page has no #error-message"
    if message:
        assert message.lower() in text.lower(), text
    assert "Traceback" not in page
    return page


def b64url(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(obj) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")))


def unsigned_token(platform: Platform, body: dict) -> str:
    """alg "none": header and body, an empty signature after the trailing dot."""
    return b64json({"alg": "none", "typ": "JWT", "kid": platform.public_jwk["kid"]}) + "." + b64json(body) + "."


def public_pem(platform: Platform) -> bytes:
    private = serialization.load_pem_private_key(platform.private_pem.encode(), password=None)
    return private.public_key().public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)


def hs256_with_public_key(platform: Platform, body: dict) -> str:
    """Key confusion: HS256 with the platform's public key PEM as the HMAC secret, built by hand."""
    signing_input = b64json({"alg": "HS256", "typ": "JWT", "kid": platform.public_jwk["kid"]}) + "." + b64json(body)
    mac = hmac.new(public_pem(platform), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(mac)


def signed_by_other_key(platform: Platform, body: dict) -> str:
    """A well-formed RS256 token carrying the platform's kid but signed by a stranger's key."""
    other_pem, _ = new_rsa_key()
    return platform.sign(body, key=other_pem)


def with_raw_header(platform: Platform, body: dict, header) -> str:
    """A token whose header is any JSON value, with a real signature over it."""
    signing_input = b64json(header) + "." + b64json(body)
    algo = jwt.get_algorithm_by_name("RS256")
    signature = algo.sign(signing_input.encode(), algo.prepare_key(platform.private_pem))
    return signing_input + "." + b64url(signature)


# -- id_token header and signature -------------------------------------------------------------

TOKEN_BUILDERS = {
    "no_kid": (lambda p, b: p.sign(b, kid=False), 401, "invalid_token", 'no "kid"'),
    "unknown_kid": (lambda p, b: p.sign(b, kid="no-such-kid"), 401, "platform_keys_unavailable", "no-such-kid"),
    "alg_none": (unsigned_token, 401, "invalid_token", 'algorithm "none"'),
    "hs256_key_confusion": (hs256_with_public_key, 401, "invalid_token", 'algorithm "HS256"'),
    "bad_signature": (signed_by_other_key, 401, "invalid_token", "signature"),
    "alg_not_registered": (lambda p, b: p.sign(b, alg="RS512"), 401, "invalid_token", "RS256"),
    "kid_not_a_string": (lambda p, b: with_raw_header(p, b, {"alg": "RS256", "kid": {"x": 1}}),
                         401, "platform_keys_unavailable", None),
}


@pytest.mark.parametrize("case", list(TOKEN_BUILDERS))
def test_bad_header_or_signature_is_refused(app, launcher, moodle, case):
    """No kid, unknown kid, alg none, HS256 key confusion, foreign signature, unregistered alg."""
    build, status, code, message = TOKEN_BUILDERS[case]
    auth = launcher.start(moodle)
    token = build(moodle, moodle.claims("instructor", nonce=auth["nonce"]))
    before = db_counts(app)
    assert_refused(launcher.post(token, auth["state"]), status, code, message)
    assert db_counts(app) == before
    assert_no_product_rows(app)


def test_alg_that_is_not_a_string_is_refused(app, launcher, moodle):
    """A header whose alg is a JSON list is malformed, not a server error."""
    auth = launcher.start(moodle)
    token = with_raw_header(moodle, moodle.claims(nonce=auth["nonce"]),
                            {"alg": ["RS256"], "kid": moodle.public_jwk["kid"]})
    assert_refused(launcher.post(token, auth["state"]), 401, "invalid_token", "algorithm")
    assert_no_product_rows(app)


# -- timing: exp, iat, nbf, maximum age --------------------------------------------------------

@pytest.mark.parametrize("offsets, message", [
    ({"iat": -100, "exp": -60}, "expired"),                 # exp 60 s ago: beyond the 30 s leeway
    ({"iat": 120, "exp": 600}, "not yet valid"),            # issued 2 min in the future
    ({"iat": -400, "exp": 100}, "too old"),                 # older than 300 s + 30 s, exp still ahead
    ({"iat": 0, "exp": 300, "nbf": 120}, "not yet valid"),  # not before 2 min from now
], ids=["expired", "iat_in_future", "iat_too_old", "nbf_in_future"])
def test_token_outside_its_time_window_is_refused(app, launcher, moodle, offsets, message):
    now = int(time.time())
    response = launcher.launch(moodle, claims={k: now + v for k, v in offsets.items()})
    assert_refused(response, 401, "invalid_token", message)
    assert_no_product_rows(app)


@pytest.mark.parametrize("offsets", [
    {"iat": -100, "exp": -20},   # expired 20 s ago: inside the leeway
    {"iat": 20, "exp": 320},     # issued 20 s in the future: platform clock slightly ahead
], ids=["exp_20s_ago", "iat_20s_ahead"])
def test_clock_skew_within_leeway_is_accepted(app, launcher, moodle, offsets):
    now = int(time.time())
    response = launcher.launch(moodle, claims={k: now + v for k, v in offsets.items()})
    assert response.status_code == 200, response.get_data(as_text=True)[:800]
    assert body_attr(response.get_data(as_text=True), "data-role") == "teacher"
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(User)) == 1


def test_iat_as_numeric_string_is_refused(app, launcher, moodle):
    """iat must be a NumericDate; a string is malformed, never a server error."""
    response = launcher.launch(moodle, claims={"iat": str(int(time.time()))})
    assert_refused(response, 401, "invalid_token")
    assert_no_product_rows(app)


# -- nonce and state ---------------------------------------------------------------------------

def test_missing_nonce_is_refused(app, launcher, moodle):
    assert_refused(launcher.launch(moodle, remove=("nonce",)), 401, "invalid_token", "nonce")
    assert_no_product_rows(app)


def test_nonce_of_another_login_is_refused(app, launcher, moodle):
    assert_refused(launcher.launch(moodle, claims={"nonce": "not-the-login-nonce"}),
                   403, "invalid_state", "nonce does not match")
    assert_no_product_rows(app)


def test_replayed_id_token_and_state_is_refused(app, launcher, moodle):
    """The same id_token + state posted twice: the state is consumed by the first launch."""
    auth = launcher.start(moodle)
    token = moodle.id_token(nonce=auth["nonce"])
    assert launcher.post(token, auth["state"]).status_code == 200
    before = db_counts(app)
    assert before["User"] == 1
    assert_refused(launcher.post(token, auth["state"]), 403, "invalid_state", "already used")
    assert db_counts(app) == before


def test_replayed_id_token_with_fresh_state_is_refused(app, launcher, moodle):
    """A captured id_token replayed against a new login: its nonce belongs to the old login."""
    auth = launcher.start(moodle)
    token = moodle.id_token(nonce=auth["nonce"], role="learner")
    assert launcher.post(token, auth["state"]).status_code == 200
    before = db_counts(app)
    fresh = launcher.start(moodle)
    assert fresh["state"] != auth["state"]
    assert_refused(launcher.post(token, fresh["state"]), 403, "invalid_state", "nonce")
    assert db_counts(app) == before


@pytest.mark.parametrize("state, message", [
    (None, 'no "state"'),
    ("", 'no "state"'),
    ("made-up-state", "unknown"),
], ids=["missing", "empty", "unknown"])
def test_missing_or_unknown_state_is_refused(app, launcher, moodle, state, message):
    auth = launcher.start(moodle)
    response = launcher.post(moodle.id_token(nonce=auth["nonce"]), state)
    assert_refused(response, 403, "invalid_state", message)
    assert_no_product_rows(app)


def test_state_without_its_cookie_offers_a_new_window(app, launcher, moodle):
    """A browser that dropped the state cookie gets state_not_bound and a link to retry in a new window."""
    auth = launcher.start(moodle)
    token = moodle.id_token(nonce=auth["nonce"])
    other_browser = Launcher(app.test_client())
    page = assert_refused(other_browser.post(token, auth["state"]), 403, "state_not_bound", "cookies")
    link = re.search(r'<a [^>]*href="([^"]+)"[^>]*>\s*Open .+? in a new window\s*</a>', page, re.S)
    assert link, page
    retry = htmllib.unescape(link.group(1))
    assert retry.startswith("/lti/login?") and "iss=" in retry and "login_hint=" in retry
    assert_no_product_rows(app)
    # the link starts a fresh login that works in the new window ...
    restarted = other_browser.client.get(retry)
    assert restarted.status_code == 302 and restarted.headers["Location"].startswith(moodle.auth_url)
    # ... and the refusal did not burn the state for the browser that holds the cookie
    assert launcher.post(token, auth["state"]).status_code == 200


def test_state_of_another_platforms_login_is_refused(app, launcher, moodle, canvas):
    """A Moodle id_token posted with the state of a Canvas login (cookie present)."""
    auth = launcher.start(canvas)
    response = launcher.post(moodle.id_token(nonce=auth["nonce"]), auth["state"])
    assert_refused(response, 403, "invalid_state", "another platform")
    assert_no_product_rows(app)


def test_missing_id_token_is_refused(app, launcher, moodle):
    auth = launcher.start(moodle)
    assert_refused(launcher.post(None, auth["state"]), 400, "invalid_launch", "id_token")
    assert_no_product_rows(app)


# -- audience and azp --------------------------------------------------------------------------

@pytest.mark.parametrize("claims, remove, status, code, message", [
    ({"aud": "someone-else"}, (), 403, "unknown_platform", "not registered"),
    ({"aud": ["tool-client-1", "evil"]}, (), 401, "invalid_token", "several audiences"),
    ({"aud": ["tool-client-1", "evil"], "azp": "evil"}, (), 403, "unknown_platform", "not registered"),
    ({"azp": "evil"}, (), 401, "invalid_token", "azp"),
    ({"aud": ["tool-client-1"], "azp": "evil"}, (), 401, "invalid_token", "azp"),
    ({}, ("aud",), 401, "invalid_token", "aud"),
    ({"aud": []}, (), 401, "invalid_token", "aud"),
], ids=["aud_wrong", "two_aud_no_azp", "two_aud_azp_evil", "azp_not_in_aud", "azp_not_in_aud_list",
        "aud_missing", "aud_empty"])
def test_bad_audience_is_refused(app, launcher, moodle, claims, remove, status, code, message):
    assert moodle.client_id == "tool-client-1"
    assert_refused(launcher.launch(moodle, claims=claims, remove=remove), status, code, message)
    assert_no_product_rows(app)


def test_two_audiences_with_azp_of_the_tool_are_accepted(app, launcher, moodle):
    response = launcher.launch(moodle, claims={"aud": ["evil", moodle.client_id], "azp": moodle.client_id})
    assert response.status_code == 200, response.get_data(as_text=True)[:800]
    assert body_attr(response.get_data(as_text=True), "data-role") == "teacher"


# -- issuer, client id, deployment, registration -----------------------------------------------

@pytest.mark.parametrize("claims, remove, code, message", [
    ({"iss": "https://evil.example"}, (), "unknown_platform", "not registered"),
    ({"aud": "unknown-client"}, (), "unknown_platform", "not registered"),
    ({}, ("iss",), "invalid_token", "iss"),
], ids=["unknown_issuer", "unknown_client_id", "iss_missing"])
def test_unknown_platform_in_token_is_refused(app, launcher, moodle, claims, remove, code, message):
    response = launcher.launch(moodle, claims=claims, remove=remove)
    assert_refused(response, 401 if code == "invalid_token" else 403, code, message)
    assert_no_product_rows(app)


def set_registration(app, platform: Platform, **fields) -> None:
    with app.app_context():
        row = db.session.scalar(select(Registration).filter_by(issuer=platform.issuer, client_id=platform.client_id))
        for name, value in fields.items():
            setattr(row, name, value)
        db.session.commit()


def test_unknown_deployment_is_refused_without_auto_onboarding(app, launcher, moodle):
    set_registration(app, moodle, auto_onboard_deployments=False)
    before = db_counts(app)
    response = launcher.launch(moodle, claims={LTI + "deployment_id": "99"})
    assert_refused(response, 403, "unknown_platform", '"99"')
    assert db_counts(app) == before
    assert_no_product_rows(app)


def test_unknown_deployment_is_onboarded_when_allowed(app, launcher, moodle):
    """auto_onboard_deployments (the default): the new deployment id is stored on first launch."""
    set_registration(app, moodle, auto_onboard_deployments=True)
    response = launcher.launch(moodle, claims={LTI + "deployment_id": "99"})
    assert response.status_code == 200, response.get_data(as_text=True)[:800]
    with app.app_context():
        rows = {d.deployment_id: d.onboarded_by_launch for d in db.session.scalars(select(Deployment))}
    assert rows == {moodle.deployment_id: False, "99": True}


def test_refused_message_does_not_onboard_a_deployment(app, launcher, moodle):
    """A new deployment id in a launch refused later (no roles claim) leaves no Deployment row."""
    before = db_counts(app)
    response = launcher.launch(moodle, claims={LTI + "deployment_id": "99"}, remove=(LTI + "roles",))
    assert_refused(response, 400, "invalid_launch", "roles")
    assert db_counts(app) == before


def test_inactive_deployment_is_refused(app, launcher, moodle):
    with app.app_context():
        db.session.scalar(select(Deployment)).active = False
        db.session.commit()
    assert_refused(launcher.launch(moodle), 403, "unknown_platform", "deactivated")
    assert_no_product_rows(app)


def test_registration_deactivated_between_login_and_launch_is_refused(app, launcher, moodle):
    auth = launcher.start(moodle)
    set_registration(app, moodle, active=False)
    response = launcher.post(moodle.id_token(nonce=auth["nonce"]), auth["state"])
    assert_refused(response, 403, "unknown_platform", "not registered")
    assert_no_product_rows(app)


# -- the LTI message ---------------------------------------------------------------------------

DL = {"message_type": "LtiDeepLinkingRequest"}


@pytest.mark.parametrize("kwargs, claims, remove, message", [
    pytest.param({}, {}, (LTI + "version",), "version", id="version_missing"),
    pytest.param({}, {LTI + "version": "1.1.0"}, (), "version", id="version_wrong"),
    pytest.param({}, {}, (LTI + "message_type",), "message_type", id="message_type_missing"),
    pytest.param({}, {LTI + "message_type": "LtiSubmissionReviewRequest"}, (), "not supported",
                 id="message_type_submission_review"),
    pytest.param({}, {LTI + "message_type": "DataPrivacyLaunchRequest"}, (), "not supported",
                 id="message_type_data_privacy"),
    pytest.param({}, {}, (LTI + "roles",), "roles", id="roles_missing"),
    pytest.param({}, {LTI + "roles": "Instructor"}, (), "roles", id="roles_not_a_list"),
    pytest.param({}, {}, ("sub",), "sub", id="sub_missing"),
    pytest.param({}, {"sub": ""}, (), "sub", id="sub_empty"),
    pytest.param({}, {LTI + "resource_link": {"title": "Attendance"}}, (), "resource link id",
                 id="resource_link_id_missing"),
    pytest.param({}, {}, (LTI + "resource_link",), "resource link id", id="resource_link_missing"),
    pytest.param({}, {LTI + "resource_link": "link-1"}, (), "resource link", id="resource_link_a_string"),
    pytest.param(DL, {}, (DL_SETTINGS,), "deep linking settings", id="deep_linking_settings_missing"),
    pytest.param(DL, {DL_SETTINGS: {}}, (), "deep linking settings", id="deep_linking_settings_empty"),
    pytest.param(DL, {DL_SETTINGS: "settings"}, (), "deep linking", id="deep_linking_settings_a_string"),
    pytest.param(DL, {DL_SETTINGS: {"accept_types": ["ltiResourceLink"],
                                    "accept_presentation_document_targets": ["iframe"]}}, (),
                 "return url", id="deep_link_return_url_missing"),
    pytest.param({}, {}, (LTI + "deployment_id",), "deployment_id", id="deployment_id_missing"),
    pytest.param({}, {LTI + "deployment_id": ""}, (), "deployment_id", id="deployment_id_empty"),
])
def test_invalid_message_is_refused(app, launcher, moodle, kwargs, claims, remove, message):
    before = db_counts(app)
    response = launcher.launch(moodle, claims=claims, remove=remove, **kwargs)
    assert_refused(response, 400, "invalid_launch", message)
    assert db_counts(app) == before
    assert_no_product_rows(app)


def test_empty_roles_list_is_a_valid_launch(app, launcher, moodle):
    """The counterpart of roles_missing: an empty list grants nothing but is not an error."""
    response = launcher.launch(moodle, [])
    page = response.get_data(as_text=True)
    assert response.status_code == 200, page[:800]
    assert body_attr(page, "data-role") == "none"
    assert body_attr(page, "data-error") is None


# -- not a JWT ---------------------------------------------------------------------------------

NOT_JWTS = {
    "one_part": lambda p, b: "abc",
    "garbage_parts": lambda p, b: "a.b.c",
    "four_parts": lambda p, b: p.sign(b) + ".x",
    "header_not_json": lambda p, b: b64url("not json") + "." + b64json(b) + "." + b64url("sig"),
    "body_not_json": lambda p, b: b64json({"alg": "RS256", "kid": "k"}) + "." + b64url("{nope") + "." + b64url("s"),
    "header_a_list": lambda p, b: b64json(["RS256"]) + "." + b64json(b) + "." + b64url("sig"),
    "body_a_string": lambda p, b: b64json({"alg": "RS256", "kid": "k"}) + "." + b64json("claims") + "." + b64url("s"),
    "empty": lambda p, b: "",
}


@pytest.mark.parametrize("case", list(NOT_JWTS))
def test_id_token_that_is_not_a_jwt_is_refused(app, launcher, moodle, case):
    auth = launcher.start(moodle)
    token = NOT_JWTS[case](moodle, moodle.claims(nonce=auth["nonce"]))
    assert_refused(launcher.post(token, auth["state"]), 400, "invalid_launch")
    assert_no_product_rows(app)


# -- login initiation --------------------------------------------------------------------------

def login(launcher, platform: Platform, method: str, **params):
    """The platform's login request, by GET or POST; params override (None removes) a parameter."""
    target = params.pop("target_link_uri", TOOL + "/lti/launch")
    data = platform.login_params(target, **params)
    if method == "GET":
        return launcher.client.get("/lti/login?" + urlencode(data))
    return launcher.client.post("/lti/login", data=data)


def assert_no_state_cookie(response) -> None:
    assert not [c for c in response.headers.getlist("Set-Cookie") if c.startswith("lti_state_")]


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("params, status, code, message", [
    ({"iss": None}, 400, "invalid_login", "iss"),
    ({"iss": "   "}, 400, "invalid_login", "iss"),
    ({"login_hint": None}, 400, "invalid_login", "login_hint"),
    ({"target_link_uri": "http://evil.example/lti/launch"}, 400, "invalid_login", "another host"),
    ({"target_link_uri": "https://localhost/lti/launch"}, 400, "invalid_login", "another host"),
    ({"iss": "https://unregistered.example"}, 403, "unknown_platform", "not registered"),
    ({"client_id": "unknown-client"}, 403, "unknown_platform", "not registered"),
    pytest.param({"target_link_uri": "http://[::1/lti/launch"}, 400, "invalid_login", "target_link_uri",
                 id="target_unparseable"),
], ids=["iss_missing", "iss_blank", "login_hint_missing", "target_other_host", "target_other_scheme",
        "issuer_unregistered", "client_id_unknown", "target_unparseable"])
def test_bad_login_is_refused(app, launcher, moodle, method, params, status, code, message):
    before = db_counts(app)
    response = login(launcher, moodle, method, **params)
    assert_refused(response, status, code, message)
    assert_no_state_cookie(response)
    assert db_counts(app) == before


def test_login_of_an_unregistered_platform_is_refused(app, launcher):
    stranger = Platform()
    try:
        response = launcher.login(stranger)
        assert_refused(response, 403, "unknown_platform", "not registered")
        assert_no_state_cookie(response)
        assert db_counts(app)["Registration"] == 0
    finally:
        stranger.stop()


def test_login_of_an_inactive_registration_is_refused(app, launcher, moodle):
    set_registration(app, moodle, active=False)
    assert_refused(launcher.login(moodle), 403, "unknown_platform", "not registered")


def test_login_without_client_id_for_a_shared_issuer_is_refused(app, launcher, moodle):
    """Two registrations share one issuer (Canvas-style): the login must name its client_id."""
    sibling = Platform(issuer=moodle.issuer, client_id="tool-client-2")
    try:
        register_platform(app, sibling)
        before = db_counts(app)
        response = launcher.login(moodle, client_id=None)
        assert_refused(response, 403, "unknown_platform", "client_id")
        assert_no_state_cookie(response)
        assert db_counts(app) == before
        # with the client id, each registration logs in on its own
        assert launcher.login(moodle).status_code == 302
        assert launcher.start(sibling)["client_id"] == "tool-client-2"
    finally:
        sibling.stop()


# -- platform key rotation ---------------------------------------------------------------------

@pytest.fixture
def quick_refetch(make_app, monkeypatch):
    """An app whose unknown-kid refetch is rate-limited to once a second, a Moodle-like platform, and the key cache's clock."""
    clock = FakeClock()
    monkeypatch.setattr("lti.platform_keys.time", clock)  # the cache reads time.monotonic(): the test moves it
    app = make_app(LTI_JWKS_MIN_REFETCH_INTERVAL=1)
    platform = Platform()
    register_platform(app, platform)
    yield app, Launcher(app.test_client()), platform, clock
    platform.stop()


def test_rotated_platform_key_is_fetched_and_accepted(quick_refetch):
    app, launcher, platform, clock = quick_refetch
    assert launcher.launch(platform, sub="before").status_code == 200
    assert len(platform.requests_to("/jwks")) == 1
    old_kid, old_pem = platform.public_jwk["kid"], platform.private_pem
    platform.rotate_key()
    assert platform.public_jwk["kid"] != old_kid and len(platform.published) == 2
    clock.advance(1.1)
    response = launcher.launch(platform, sub="after")
    assert response.status_code == 200, response.get_data(as_text=True)[:800]
    assert len(platform.requests_to("/jwks")) == 2  # one refetch for the new kid
    # the old key, still published, keeps working from the refreshed cache
    auth = launcher.start(platform)
    old_signed = platform.sign(platform.claims(nonce=auth["nonce"], sub="old-key"), kid=old_kid, key=old_pem)
    assert launcher.post(old_signed, auth["state"]).status_code == 200
    assert len(platform.requests_to("/jwks")) == 2
    assert db_counts(app)["User"] == 3


def test_unknown_kid_refetch_is_rate_limited(quick_refetch):
    app, launcher, platform, clock = quick_refetch
    assert launcher.launch(platform).status_code == 200
    assert len(platform.requests_to("/jwks")) == 1
    clock.advance(1.1)
    logins = [launcher.start(platform) for _ in range(2)]
    tokens = [platform.sign(platform.claims(nonce=a["nonce"]), kid="rotated-away") for a in logins]
    for auth, token in zip(logins, tokens):
        assert_refused(launcher.post(token, auth["state"]), 401, "platform_keys_unavailable", "rotated-away")
    assert len(platform.requests_to("/jwks")) == 2  # exactly one extra GET for two unknown-kid launches
    assert db_counts(app)["User"] == 1
