"""Security headers on every answer: a nonce-based CSP whose frame-ancestors names only the active
platforms, nosniff, no referrer, no caching of launch pages, HSTS over HTTPS only.

The attackers: an anonymous visitor framing the tool or injecting script through a URL a platform
registration stored before URLs were checked (a malicious platform), and a student with a valid
token who may not see anything cached of a teacher's launch.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from sqlalchemy import insert, update

from extensions import db
from lti.models import Registration
from tests.support.api import launch_as
from tests.support.launch import meta, register_platform
from tests.support.platform import Platform

ROOT = Path(__file__).resolve().parent.parent


def csp(response) -> dict[str, list[str]]:
    """Parse the response's Content-Security-Policy into {directive: [sources]}."""
    header = response.headers.get("Content-Security-Policy")
    assert header, f"no CSP on {response.request.path}"
    directives = {}
    for part in header.split(";"):
        name, *sources = part.split()
        assert name not in directives, f"{name} twice in {header!r}"
        directives[name] = sources
    return directives


def nonce_of(policy: dict) -> str:
    """Answer the nonce of a parsed policy's script-src."""
    [source] = [s for s in policy["script-src"] if s.startswith("'nonce-")]
    return source[len("'nonce-"):-1]


def assert_page_headers(response) -> dict:
    """Check the headers every HTML page carries; answer its parsed CSP."""
    headers = response.headers
    assert response.mimetype == "text/html"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] in ("no-referrer", "strict-origin-when-cross-origin")
    assert "X-Frame-Options" not in headers  # LMSs frame the tool: framing is decided by frame-ancestors
    policy = csp(response)
    assert policy["default-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"] and policy["base-uri"] == ["'none'"]
    assert "'self'" in policy["form-action"] and "'self'" in policy["frame-ancestors"]
    for name in ("script-src", "style-src"):
        assert "'unsafe-inline'" not in policy[name] and "'unsafe-eval'" not in policy[name], policy[name]
        assert not any(s in ("*", "data:", "blob:", "http:", "https:") for s in policy[name]), policy[name]
    assert "*" not in policy["frame-ancestors"]
    # Every script of the page carries this response's nonce, and no script is inline without it.
    html = response.get_data(as_text=True)
    scripts = re.findall(r"<script\b[^>]*>", html)
    nonce = nonce_of(policy)
    assert all(f'nonce="{nonce}"' in tag for tag in scripts), scripts
    return policy


def store_registration(app, platform: Platform, **fields) -> int:
    """Store a registration row as given, bypassing every check (as rows stored before the checks existed)."""
    registration_id = register_platform(app, platform)
    with app.app_context():
        row = db.session.get(Registration, registration_id)
        for name, value in fields.items():
            setattr(row, name, value)
        db.session.commit()
    return registration_id


def assert_private(response) -> None:
    """Check that a response may be neither cached nor leak its URL."""
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"


# -- every kind of page ---------------------------------------------------------------------------
@pytest.mark.parametrize("role, landing", [("instructor", "teacher"), ("learner", "student"),
                                           ("account_admin", "admin")])
def test_launched_pages_carry_the_headers_and_are_never_cached(launcher, moodle, role, landing):
    """A student sharing a computer with a teacher finds nothing of the teacher's launch in any cache."""
    response = launcher.launch(moodle, role)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert f'data-role="{landing}"' in html and meta(html, "launch-token")
    policy = assert_page_headers(response)
    assert_private(response)
    assert moodle.url in policy["frame-ancestors"]  # the platform that launched may frame it
    assert "ws://localhost" in policy["connect-src"]  # the page's own WebSocket
    if landing in ("teacher", "student"):
        assert html.count("<script ") == 2  # common.js and the role's script, both with the nonce


def test_login_and_launch_answers_are_never_cached(launcher, moodle):
    login = launcher.login(moodle)
    assert login.status_code == 302
    assert_private(login)
    storage_login = launcher.login(moodle, lti_storage_target="_parent")
    assert storage_login.status_code == 200
    assert_page_headers(storage_login)
    assert_private(storage_login)
    refused = launcher.post("not-a-token", "no-state")
    assert refused.status_code >= 400
    assert_page_headers(refused)
    assert_private(refused)


def test_projector_and_checkin_landing_carry_the_headers(launcher, moodle, client):
    teacher = launch_as(launcher, moodle, "instructor")
    from datetime import datetime, timedelta, timezone
    now = datetime.now(timezone.utc)
    session_id = teacher.post("/api/class-sessions/", json={
        "title": "Lecture", "starts_at": now.isoformat(), "ends_at": (now + timedelta(hours=1)).isoformat(),
    }).get_json()["class_session"]["id"]
    for path in (f"/projector/{session_id}", f"/checkin/{session_id}?code=ABCD2345"):
        response = client.get(path)
        assert response.status_code == 200
        assert_page_headers(response)
        assert_private(response)


@pytest.mark.parametrize("path, statuses", [
    ("/lti/config", {200}),
    ("/no/such/page", {404}),
    ("/admin/overview", {401}),  # an anonymous visitor: a refusal page
    ("/lti/login?iss=https://unknown.example&login_hint=x", {400, 403, 404}),  # an unknown platform: the LTI error page
])
def test_html_pages_and_error_pages_carry_the_headers(client, path, statuses):
    response = client.get(path)
    assert response.status_code in statuses, (response.status_code, response.get_data(as_text=True)[:300])
    assert_page_headers(response)


@pytest.mark.parametrize("path", ["/api/openapi.json", "/api/class-sessions/", "/lti/jwks", "/lti/canvas.json",
                                  "/static/app.css", "/static/js/api.js", "/static/logo.svg"])
def test_json_and_static_answers_are_nosniff_and_never_framed(client, path):
    response = client.get(path)
    assert response.status_code in (200, 401), path
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "X-Frame-Options" not in response.headers
    policy = csp(response)
    assert policy["default-src"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"]


def test_the_nonce_is_new_on_every_request(client):
    nonces = {nonce_of(csp(client.get("/lti/config"))) for _ in range(5)}
    assert len(nonces) == 5
    assert all(len(n) >= 22 and re.fullmatch(r"[A-Za-z0-9_-]+", n) for n in nonces)


def test_templates_have_no_inline_handlers_or_scripts_without_the_nonce():
    """Inline handlers and nonce-less scripts would need 'unsafe-inline': none may come back."""
    for path in sorted((ROOT / "templates").rglob("*.html")):
        text = path.read_text()
        assert not re.search(r"\son[a-z]+\s*=", text), f"inline event handler in {path.name}"
        assert not re.search(r"=\s*[\"']?\s*javascript:", text), f"javascript: URL in {path.name}"
        for tag in re.findall(r"<script\b[^>]*>", text):
            assert 'nonce="{{ csp_nonce }}"' in tag, f"{path.name}: {tag}"


# -- frame-ancestors: the registered, active platforms ----------------------------------------------
def test_frame_ancestors_are_the_active_platforms_origins(app, client):
    """A visitor's page framing the tool is refused; the platforms registered with it are not."""
    school = Platform(issuer="https://canvas.instructure.com", client_id="1000", product="canvas")
    other = Platform(product="moodle")
    try:
        store_registration(app, school, auth_login_url="https://sso.canvaslms.com/api/lti/authorize_redirect",
                          auth_token_url="https://sso.canvaslms.com/login/oauth2/token",
                          service_hosts=["school.instructure.com", "lms.example.edu:8443"])
        gone = store_registration(app, other, active=False)
        ancestors = csp(client.get("/lti/config"))["frame-ancestors"]
        assert ancestors[0] == "'self'"
        assert {"https://canvas.instructure.com", "https://sso.canvaslms.com", "school.instructure.com",
                "lms.example.edu:8443"} <= set(ancestors)
        assert other.url not in ancestors  # deactivated: not framed any more
        assert len(ancestors) == 5, ancestors

        # Activated in this process: allowed at once, not after the cache's lifetime.
        with app.app_context():
            db.session.get(Registration, gone).active = True
            db.session.commit()
        assert other.url in csp(client.get("/lti/config"))["frame-ancestors"]
        # Deactivated by a bulk UPDATE (as an admin command may do): refused at once again.
        with app.app_context():
            db.session.execute(update(Registration).where(Registration.id == gone).values(active=False))
            db.session.commit()
        assert other.url not in csp(client.get("/lti/config"))["frame-ancestors"]
    finally:
        school.stop()
        other.stop()


def test_lti_pages_name_only_the_platform_they_are_about(app, launcher, moodle, client):
    """Another school's LMS may not frame this school's launch (and the header stays short with many schools)."""
    other = Platform(issuer="https://other-school.example.edu", client_id="other", product="moodle")
    try:
        store_registration(app, other, auth_login_url="https://other-school.example.edu/auth",
                           auth_token_url="https://other-school.example.edu/token")
        assert "https://other-school.example.edu" in csp(client.get("/lti/config"))["frame-ancestors"]
        answers = {
            "storage login": launcher.login(moodle, lti_storage_target="_parent"),
            "launched page": launcher.launch(moodle, "instructor"),
            "deep-link return": _deep_link_page(launcher, moodle),
        }
        for what, response in answers.items():
            assert response.status_code == 200, what
            policy = csp(response)
            assert moodle.url in policy["frame-ancestors"], what
            assert "https://other-school.example.edu" not in policy["frame-ancestors"], what
            assert "https://other-school.example.edu" not in policy["form-action"], what
    finally:
        other.stop()


def test_pending_registrations_may_not_frame_the_tool(app, client):
    pending = Platform(issuer="https://pending.example.edu", product="moodle")
    try:
        store_registration(app, pending, pending_approval=True, active=False)
        ancestors = csp(client.get("/lti/config"))["frame-ancestors"]
        assert "https://pending.example.edu" not in ancestors and pending.url not in ancestors
    finally:
        pending.stop()


def test_origins_are_cached_per_process_between_changes(make_app):
    """Registrations are read once per CSP_ORIGINS_CACHE_SECONDS, not on every page."""
    app = make_app(CSP_ORIGINS_CACHE_SECONDS=3600)
    platform = Platform(product="moodle")
    try:
        client = app.test_client()
        client.get("/lti/config")  # loads the (empty) set
        # A change made by another process (here: a Core INSERT, which no ORM session of this process sees)...
        with app.app_context(), db.engine.begin() as conn:
            conn.execute(insert(Registration.__table__).values(
                issuer=platform.issuer, client_id="c", auth_login_url=platform.auth_url, key_set_url=platform.jwks_url))
        # ... shows once the cached set expires.
        assert platform.url not in csp(client.get("/lti/config"))["frame-ancestors"]
        app.extensions["platform_origins"].ttl = 0
        assert platform.url in csp(client.get("/lti/config"))["frame-ancestors"]
    finally:
        platform.stop()


def test_urls_a_malicious_platform_stored_cannot_widen_or_break_the_policy(app, client):
    """Stored before URLs were checked: a javascript: login URL and hosts that try to add directives."""
    evil = Platform(issuer="javascript:alert(1)//", client_id="evil", product="moodle")
    try:
        store_registration(app, evil, auth_login_url="javascript:alert(document.domain)//",
                          auth_token_url="data:text/html,<script>alert(1)</script>",
                          service_hosts=["evil.example; script-src *", "*", "https:", "'unsafe-inline'",
                                         "ok.example.org"])
        response = client.get("/lti/config")
        header = response.headers["Content-Security-Policy"]
        policy = csp(response)
        assert "javascript" not in header and "data:text" not in header and "evil.example" not in header
        assert policy["frame-ancestors"] == ["'self'", "ok.example.org"]
        assert policy["script-src"] == [f"'nonce-{nonce_of(policy)}'", "'self'"]
    finally:
        evil.stop()


def test_a_forged_host_header_cannot_add_directives(client):
    response = client.get("/lti/config", headers={"Host": "localhost;script-src *"})
    header = response.headers.get("Content-Security-Policy", "")
    assert "script-src *" not in header
    if response.status_code == 200:
        assert "'unsafe-inline'" not in header and csp(response)["script-src"][1:] == ["'self'"]


# -- the deep-linking return form -------------------------------------------------------------------
def _deep_link_page(launcher, platform, return_url: str | None = None):
    """A deep-linking launch confirmed by the teacher; return_url overwrites the stored return URL."""
    from attendance.web.pages import DEEP_LINK_PREFIX
    from lti.store import get_store
    from lti.tokens import read_launch_token

    page = launcher.launch(platform, "instructor", message_type="LtiDeepLinkingRequest").get_data(as_text=True)
    token = meta(page, "launch-token")
    if return_url is not None:
        with launcher.client.application.app_context():
            key = DEEP_LINK_PREFIX + read_launch_token(token)["deep_link"]
            settings = json.loads(get_store().get(key))
            settings["return_url"] = return_url  # as if stored before the launch refused such URLs
            get_store().put(key, json.dumps(settings), 600)
    return launcher.client.post("/deep-link/confirm", data={"launch_token": token, "title": "Attendance"})


def test_deep_link_return_form_may_post_to_the_platform_only(launcher, moodle):
    response = _deep_link_page(launcher, moodle)
    assert response.status_code == 200
    policy = assert_page_headers(response)
    assert_private(response)  # the page carries a signed deep-linking JWT
    assert moodle.url in policy["form-action"]


def test_a_javascript_deep_link_return_url_gets_no_place_in_the_policy(launcher, moodle):
    response = _deep_link_page(launcher, moodle, "javascript:alert(document.domain)//")
    if response.status_code != 200:  # refused outright (the confirm checks the URL): then nothing of it is shown
        assert 400 <= response.status_code < 500 and "javascript:" not in response.get_data(as_text=True)
        return
    assert 'action="javascript:' in response.get_data(as_text=True)  # rendered as stored: the CSP must hold
    policy = assert_page_headers(response)
    assert not any("javascript" in s for s in policy["form-action"])
    assert "'unsafe-inline'" not in policy["script-src"]


# -- HSTS ----------------------------------------------------------------------------------------
def test_hsts_only_over_https(client):
    assert "Strict-Transport-Security" not in client.get("/lti/config").headers
    secure = client.get("/lti/config", base_url="https://localhost")
    assert secure.headers["Strict-Transport-Security"] == "max-age=31536000"
    # Over HTTPS the page's WebSocket is wss:, on the same host.
    assert "wss://localhost" in csp(secure)["connect-src"]


def test_hsts_follows_a_trusted_proxy_only(make_app):
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
    untrusting = make_app().test_client()
    assert "Strict-Transport-Security" not in untrusting.get("/lti/config", headers=forwarded).headers
    behind_proxy = make_app(TRUSTED_PROXIES=1).test_client()
    assert behind_proxy.get("/lti/config", headers=forwarded).headers["Strict-Transport-Security"] == "max-age=31536000"


