"""Sessions, launch tokens and admin rights: what an attacker holding a leaked value can and cannot do.

Attackers: someone who saw a launch's form post (id_token + state) but not the browser's platform
storage; a user whose platform or deployment was deactivated; a leaked session cookie after its
launch expired; an admin of one deployment looking at another school's deployment of the same
client id; a malicious platform sending a script URL as its deep linking return URL.
"""
from __future__ import annotations

import json
import re
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from attendance.models import Course
from extensions import db
from lti.models import Deployment, Registration
from tests.support.api import assert_error, launch_as
from tests.support.clock import FakeClock
from tests.support.launch import Launcher, body_attr, meta, register_platform
from tests.support.platform import Platform

DL_SETTINGS = "https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings"
CONTEXT = "https://purl.imsglobal.org/spec/lti/claim/context"


# -- platform storage must prove the browser ----------------------------------------------------------
def _storage_login(launcher, platform):
    """Start a login with platform storage; answer (state, nonce, secret put into platform storage)."""
    response = launcher.login(platform, lti_storage_target="_parent")
    html = response.get_data(as_text=True)
    assert response.status_code == 200, html[:500]
    redirect = re.search(r"window\.location\.replace\((\"[^\"]+\")\)", html).group(1)
    query = {k: v[0] for k, v in parse_qs(urlsplit(json.loads(redirect)).query).items()}
    put = re.search(r'ltiStorage\.put\("state_" \+ "[^"]+", "([^"]+)"\)', html)
    return query["state"], query["nonce"], put.group(1)


def test_attacker_with_the_form_post_cannot_launch_through_platform_storage(app, moodle, launcher):
    state, nonce, secret = _storage_login(launcher, moodle)
    assert secret not in (state, nonce)
    id_token = moodle.sign(moodle.claims("instructor", nonce=nonce))
    attacker = app.test_client()  # no state cookie: the value in platform storage is the only proof
    forged = attacker.post("/lti/launch", data={"id_token": id_token, "state": state,
                                                "lti_storage_state": state, "lti_storage_nonce": nonce})
    assert forged.status_code == 403
    assert body_attr(forged.get_data(as_text=True), "data-error") == "invalid_state"
    # The real browser reads the secret back from the platform's storage and gets in.
    real = attacker.post("/lti/launch", data={"id_token": id_token, "state": state,
                                              "lti_storage_state": secret, "lti_storage_nonce": nonce})
    assert real.status_code == 200, real.get_data(as_text=True)[:500]
    assert body_attr(real.get_data(as_text=True), "data-role") == "teacher"


# -- deactivation stops tokens and sessions -------------------------------------------------------------
@pytest.mark.parametrize("what", ["registration", "deployment"])
def test_deactivating_a_platform_stops_its_launch_tokens_and_sessions(make_app, what):
    app = make_app(ACTIVE_CHECK_SECONDS=0)
    client = app.test_client()
    platform = Platform(product="moodle")
    try:
        register_platform(app, platform)
        teacher = launch_as(Launcher(client), platform, "instructor")
        assert teacher.get("/api/class-sessions/").status_code == 200
        args = ["platform", "deactivate", "--issuer", platform.issuer, "--client-id", platform.client_id]
        if what == "deployment":
            args += ["--deployment-id", platform.deployment_id]
        assert app.test_cli_runner().invoke(args=args).exit_code == 0
        assert_error(teacher.get("/api/class-sessions/"), 401, "authentication_required")
        # The cookie session of the same launch is refused as well.
        assert_error(client.get("/api/class-sessions/"), 401, "authentication_required")
    finally:
        platform.stop()


def test_a_session_cookie_expires_with_the_launch_token(app, moodle, launcher, client):
    launch_as(launcher, moodle, "instructor")
    assert client.get("/api/class-sessions/").status_code == 200  # by the session cookie alone
    with client.session_transaction() as session:
        session["launch"]["issued_at"] = time.time() - app.config["LAUNCH_TOKEN_TTL"] - 1
    assert_error(client.get("/api/class-sessions/"), 401, "authentication_required")
    assert app.permanent_session_lifetime.total_seconds() == app.config["LAUNCH_TOKEN_TTL"]


def test_an_expired_launch_token_is_refused(make_app, monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr("itsdangerous.timed.time", clock)  # the launch token's signing and expiry clock
    app = make_app(LAUNCH_TOKEN_TTL=1)
    platform = Platform(product="moodle")
    try:
        register_platform(app, platform)
        teacher = launch_as(Launcher(app.test_client()), platform, "instructor")
        assert teacher.get("/api/class-sessions/").status_code == 200
        clock.advance(2.1)  # itsdangerous counts whole seconds
        assert_error(teacher.get("/api/class-sessions/"), 401, "authentication_required")
    finally:
        platform.stop()


# -- the admin overview takes no token in its URL, and sees one deployment ----------------------------------
def test_admin_overview_refuses_a_token_in_the_query_string(app, moodle, launcher):
    admin = launch_as(launcher, moodle, "account_admin", sub="admin-1")
    stranger = app.test_client()  # a leaked URL from an access log, without the admin's cookie
    response = stranger.get("/admin/overview", query_string={"token": admin.token})
    assert response.status_code == 401
    assert moodle.issuer not in response.get_data(as_text=True)
    assert stranger.post("/admin/overview", data={"token": admin.token}).status_code == 200
    assert stranger.get("/admin/overview", headers={"Authorization": f"Bearer {admin.token}"}).status_code == 200


def test_admin_rights_reach_only_the_deployment_the_admin_launched_from(app, client, launcher):
    # One Canvas client id installed in two sub-accounts (two schools), each with its own deployment.
    school_a = Platform(issuer="https://canvas.instructure.com", client_id="10000000000007", product="canvas",
                        deployment_id="a:school")
    try:
        register_platform(app, school_a, deployments=["a:school", "b:school"])
        teacher_b = Launcher(app.test_client())
        school_a.deployment_id = "b:school"
        launch_as(teacher_b, school_a, "instructor", sub="teacher-b",
                  claims={CONTEXT: {"id": "secret-course", "label": "B", "title": "School B Chemistry"}})
        school_a.deployment_id = "a:school"
        launch_as(launcher, school_a, "instructor", sub="teacher-a")
        admin_a = launch_as(launcher, school_a, "account_admin", sub="admin-a")
        html = client.post("/admin/overview", data={"token": admin_a.token}).get_data(as_text=True)
        assert "Physics 101" in html and "School B Chemistry" not in html and "b:school" not in html
        with app.app_context():
            other = db.session.scalar(select(Course).where(Course.context_id == "secret-course"))
        now = "2030-01-01T10:00:00+00:00"
        response = admin_a.post("/api/admin/create-class-session/", json={
            "course_id": other.id, "title": "x", "starts_at": now, "ends_at": "2030-01-01T11:00:00+00:00"})
        assert_error(response, 404, "not_found")
    finally:
        school_a.stop()


# -- deep linking return URL -------------------------------------------------------------------------------
@pytest.mark.parametrize("url", ["javascript:alert(document.domain)", "data:text/html,<script>alert(1)</script>",
                                 "http://"])
def test_malicious_platform_deep_linking_return_url_must_be_http(app, moodle, launcher, url):
    auth = launcher.start(moodle)
    claims = moodle.claims("instructor", nonce=auth["nonce"], message_type="LtiDeepLinkingRequest")
    claims[DL_SETTINGS]["deep_link_return_url"] = url
    response = launcher.post(moodle.sign(claims), auth["state"])
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert body_attr(html, "data-error") == "invalid_launch" and url not in html
    assert meta(html, "launch-token") is None


def test_pending_registration_cannot_log_in(app, launcher):
    platform = Platform(product="moodle")
    try:
        register_platform(app, platform, active=False, pending_approval=True)
        assert launcher.login(platform).status_code == 403
    finally:
        platform.stop()
    with app.app_context():
        assert db.session.scalar(select(Registration)).pending_approval is True
        assert db.session.scalar(select(Deployment)) is not None


def test_another_site_cannot_open_a_socket_with_the_users_session_cookie(app, moodle, launcher, client):
    """Cross-site WebSocket hijacking: a socket handshake carries cookies but is not bound by the same-origin
    policy, so it never accepts the cookie session — only a single-use ticket or an API client's token."""
    teacher = launch_as(launcher, moodle, "instructor")
    start = datetime.now(timezone.utc)
    created = teacher.post("/api/class-sessions/", json={
        "title": "L", "starts_at": start.isoformat(), "ends_at": (start + timedelta(hours=1)).isoformat()})
    session_id = created.get_json()["class_session"]["id"]
    assert client.get("/api/class-sessions/").status_code == 200  # the cookie session is live
    refused = client.get(f"/ws/attendance/{session_id}", headers={
        "Origin": "https://evil.example", "Connection": "Upgrade", "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert refused.status_code == 401
    assert refused.get_json()["error"]["code"] == "authentication_required"
