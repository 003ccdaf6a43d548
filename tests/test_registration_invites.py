"""Registration takeover attempts: dynamic registration needs the tool admin's invitation.

Attackers: an anonymous visitor on the internet (no invitation, a guessed or reused one) and a
malicious platform (an invitation in hand, announcing someone else's issuer and client id, script
or internal URLs). Each attempt must fetch nothing it should not, store nothing and change nothing.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from extensions import db
from lti.invitations import create_invite
from lti.models import Registration, RegistrationInvite
from tests.support.launch import body_attr, register_platform
from tests.support.platform import Platform
from tests.support.registration import (
    CANVAS_CONFIG_PATH,
    MOODLE_CONFIG_PATH,
    MOODLE_REGISTRATION_PATH,
    bearer_required,
    canvas_openid_configuration,
    canvas_platform,
    counts,
    json_response,
    moodle_openid_configuration,
    moodle_platform,
    register,
    registration_endpoint,
)


def error_of(response) -> str | None:
    return body_attr(response.get_data(as_text=True), "data-error")


# -- anonymous visitor ------------------------------------------------------------------------------
@pytest.mark.parametrize("invite", [False, "guessed-token", "x" * 500])
def test_anonymous_visitor_without_a_valid_invitation_fetches_nothing(app, client, platforms, invite):
    moodle = moodle_platform(platforms)
    response = register(client, moodle.url + MOODLE_CONFIG_PATH, "moodle-reg-token", invite=invite)
    assert response.status_code == 403
    assert error_of(response) == ("invitation_required" if invite is False else "invitation_invalid")
    assert moodle.requests == []  # the tool called nobody on the visitor's behalf
    assert counts(app) == (0, 0)


def test_an_invitation_registers_one_platform_once(app, client, platforms):
    with app.app_context():
        token = create_invite(2, note="moodle.school.edu")
    first = moodle_platform(platforms, client_id="First")
    assert register(client, first.url + MOODLE_CONFIG_PATH, "moodle-reg-token", invite=token).status_code == 200
    second = moodle_platform(platforms, client_id="Second")
    reused = register(client, second.url + MOODLE_CONFIG_PATH, "moodle-reg-token", invite=token)
    assert reused.status_code == 403 and error_of(reused) == "invitation_used"
    assert second.requests == []
    with app.app_context():
        invite = db.session.scalar(select(RegistrationInvite))
        registration = db.session.scalar(select(Registration))
        assert invite.used_at is not None and invite.registration_id == registration.id
        assert invite.token_hash != token and token not in invite.token_hash  # only a hash is kept
        assert registration.client_id == "First" and registration.active and not registration.pending_approval


def test_an_expired_invitation_is_refused(app, client, platforms):
    with app.app_context():
        token = create_invite(1)
        row = db.session.scalar(select(RegistrationInvite))
        row.expires_at = datetime.now(timezone.utc) - timedelta(seconds=1)
        db.session.commit()
    moodle = moodle_platform(platforms)
    response = register(client, moodle.url + MOODLE_CONFIG_PATH, "moodle-reg-token", invite=token)
    assert response.status_code == 403 and error_of(response) == "invitation_expired"
    assert moodle.requests == [] and counts(app) == (0, 0)


def test_a_failed_registration_gives_the_invitation_back(app, client, platforms):
    with app.app_context():
        token = create_invite(1)
    moodle = moodle_platform(platforms)
    moodle.handlers[MOODLE_REGISTRATION_PATH] = registration_endpoint("Mdl", "7", status=500)
    failed = register(client, moodle.url + MOODLE_CONFIG_PATH, "moodle-reg-token", invite=token)
    assert failed.status_code == 400 and counts(app) == (0, 0)
    moodle.handlers[MOODLE_REGISTRATION_PATH] = bearer_required("moodle-reg-token", registration_endpoint("Mdl", "7"))
    assert register(client, moodle.url + MOODLE_CONFIG_PATH, "moodle-reg-token", invite=token).status_code == 200
    assert counts(app) == (1, 1)


# -- malicious platform (holding an invitation) ------------------------------------------------------
def test_malicious_platform_cannot_take_over_a_registered_canvas_client(app, client, platforms, launcher):
    victim = Platform(issuer="https://canvas.instructure.com", client_id="10000000000042", product="canvas")
    try:
        register_platform(app, victim)
        attacker = canvas_platform(platforms, client_id="10000000000042")
        response = register(client, attacker.url + CANVAS_CONFIG_PATH, "canvas-reg-token")
        assert response.status_code == 409 and error_of(response) == "already_registered"
        with app.app_context():
            row = db.session.scalar(select(Registration))
            assert (row.key_set_url, row.auth_login_url) == (victim.jwks_url, victim.auth_url)
        # The attacker's key does not launch; the victim's still does.
        attacker.client_id, attacker.deployment_id = victim.client_id, victim.deployment_id
        refused = launcher.launch(attacker, "instructor")
        assert refused.status_code in (401, 403)
        assert launcher.launch(victim, "instructor").status_code == 200
    finally:
        victim.stop()


@pytest.mark.parametrize("field, url", [
    ("authorization_endpoint", "javascript:alert(document.domain)//"),
    ("authorization_endpoint", "data:text/html,<script>alert(1)</script>"),
    ("jwks_uri", "file:///etc/passwd"),
    ("token_endpoint", "http://93.184.216.34/token"),   # plain http to a public address: https only
    ("jwks_uri", "http://10.0.0.5/keys"),               # an internal address outside the allow-list
    ("jwks_uri", "https://user:secret@lms.example.edu/keys"),
    ("issuer", "javascript:alert(1)"),
])
def test_malicious_platform_urls_are_refused_and_nothing_is_stored(app, client, platforms, field, url):
    moodle = moodle_platform(platforms)
    config = moodle_openid_configuration(moodle)
    config[field] = url
    moodle.handlers[MOODLE_CONFIG_PATH] = lambda request: json_response(config)
    response = register(client, moodle.url + MOODLE_CONFIG_PATH, "moodle-reg-token")
    html = response.get_data(as_text=True)
    assert response.status_code == 400, html[:600]
    assert error_of(response) == "registration_failed"
    assert url not in html  # not echoed into our page either
    assert counts(app) == (0, 0)


def test_authorization_server_on_another_host_is_not_used_as_audience(app, client, platforms):
    moodle = moodle_platform(platforms)
    config = moodle_openid_configuration(moodle)
    config["authorization_server"] = "https://victim-lms.example.edu/login/oauth2/token"
    moodle.handlers[MOODLE_CONFIG_PATH] = lambda request: json_response(config)
    assert register(client, moodle.url + MOODLE_CONFIG_PATH, "moodle-reg-token").status_code == 200
    with app.app_context():
        row = db.session.scalar(select(Registration))
        assert row.auth_audience is None
        assert row.service_hosts == [moodle.url.split("://")[1]]


def test_canvas_registration_keeps_the_schools_host_for_services(app, client, platforms):
    canvas = canvas_platform(platforms)
    config = canvas_openid_configuration(canvas)
    config["authorization_server"] = canvas.url  # same host as the token endpoint: kept
    canvas.handlers[CANVAS_CONFIG_PATH] = lambda request: json_response(config)
    assert register(client, canvas.url + CANVAS_CONFIG_PATH, "canvas-reg-token").status_code == 200
    with app.app_context():
        row = db.session.scalar(select(Registration))
        assert row.issuer == "https://canvas.instructure.com"
        assert row.auth_audience == canvas.url and row.service_hosts == [canvas.url.split("://")[1]]


# -- open registration: pending until approved -----------------------------------------------------
def test_open_registration_stores_platforms_pending_until_an_admin_approves(make_app, platforms):
    app = make_app(LTI_OPEN_REGISTRATION=True)
    client = app.test_client()
    moodle = moodle_platform(platforms, client_id="OpenClient", deployment_id="3")
    response = register(client, moodle.url + MOODLE_CONFIG_PATH, "moodle-reg-token", invite=False)
    assert response.status_code == 200 and "Waiting for approval" in response.get_data(as_text=True)
    with app.app_context():
        row = db.session.scalar(select(Registration))
        assert (row.active, row.pending_approval) == (False, True)
    moodle.client_id = "OpenClient"
    from tests.support.launch import Launcher

    launcher = Launcher(client)
    assert launcher.login(moodle).status_code == 403  # a pending platform cannot launch
    result = app.test_cli_runner().invoke(args=["platform", "approve", "--issuer", moodle.issuer,
                                                "--client-id", "OpenClient"])
    assert result.exit_code == 0, result.output
    assert launcher.launch(moodle, "instructor").status_code == 200


# -- the admin's side: CLI ---------------------------------------------------------------------------
def test_cli_invite_prints_a_working_single_use_link_as_its_last_line(app, client, platforms):
    result = app.test_cli_runner().invoke(args=["platform", "invite", "--expires-hours", "3", "--note", "Moodle"])
    assert result.exit_code == 0, result.output
    url = result.output.strip().splitlines()[-1]
    assert url.startswith("http://localhost/lti/register?invite=")
    token = url.split("invite=", 1)[1]
    with app.app_context():
        row = db.session.scalar(select(RegistrationInvite))
        left = row.expires_at - datetime.now(timezone.utc)
        assert timedelta(hours=2.9) < left <= timedelta(hours=3) and row.note == "Moodle"
    moodle = moodle_platform(platforms)
    assert register(client, moodle.url + MOODLE_CONFIG_PATH, "moodle-reg-token", invite=token).status_code == 200
    again = register(client, moodle.url + MOODLE_CONFIG_PATH, "moodle-reg-token", invite=token)
    assert again.status_code == 403


@pytest.mark.parametrize("option, value", [
    ("--auth-login-url", "javascript:alert(1)"),
    ("--key-set-url", "http://169.254.169.254/latest/meta-data"),
    ("--token-url", "ftp://lms.example.edu/token"),
])
def test_cli_add_refuses_unsafe_urls(app, option, value):
    args = {"--issuer": "https://lms.example.edu", "--client-id": "c1",
            "--auth-login-url": "https://lms.example.edu/auth", "--token-url": "https://lms.example.edu/token",
            "--key-set-url": "https://lms.example.edu/keys"}
    args[option] = value
    result = app.test_cli_runner().invoke(args=["platform", "add", *sum(([k, v] for k, v in args.items()), [])])
    assert result.exit_code != 0
    assert counts(app) == (0, 0)


def test_moodle_config_served_without_bearer_still_needs_the_invitation(app, client, platforms):
    moodle = moodle_platform(platforms)
    moodle.handlers[MOODLE_CONFIG_PATH] = lambda request: json_response(moodle_openid_configuration(moodle))
    response = register(client, moodle.url + MOODLE_CONFIG_PATH, None, invite=False)
    assert response.status_code == 403 and moodle.requests == []


# -- the admin's side: the admin page -------------------------------------------------------------------
def test_an_lms_admin_makes_a_link_on_the_admin_page_and_a_student_cannot(app, client, moodle, launcher, platforms):
    from tests.support.api import launch_as

    student = launch_as(launcher, moodle, "learner", sub="s1")
    refused = app.test_client().post("/admin/invitations", data={"token": student.token})
    assert refused.status_code == 403
    admin = launch_as(launcher, moodle, "account_admin", sub="admin-1")
    page = app.test_client().post("/admin/invitations", data={"token": admin.token, "note": "Second campus"})
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    url = re.search(r'id="invite-url"[^>]*value="([^"]+)"', html).group(1)
    with app.app_context():
        rows = db.session.scalars(select(RegistrationInvite)).all()
        assert len(rows) == 1 and rows[0].note == "Second campus" and "admin user" in rows[0].created_by
    other = moodle_platform(platforms, client_id="Campus2")
    token = url.split("invite=", 1)[1].replace("&amp;", "&")
    assert register(client, other.url + MOODLE_CONFIG_PATH, "moodle-reg-token", invite=token).status_code == 200
