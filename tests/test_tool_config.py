"""What the tool publishes about itself (JWKS, Canvas JSON, the admin page) and its CLI: keys and platforms."""
from __future__ import annotations

import json
import re
import stat
import time
from pathlib import Path

import jwt
import pytest
from jwcrypto.jwk import JWK
from sqlalchemy import select

from extensions import db
from lti.models import Deployment, Registration
from tests.support.launch import Launcher, body_attr, meta, register_platform
from tests.support.platform import Platform

TOOL = "http://localhost"
LINEITEM = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem"
SCORE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
RESULT_RO = "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly"
NRPS = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
JWKS_PATHS = ("/lti/jwks", "/.well-known/jwks.json")


def thumbprint(public_jwk: dict) -> str:
    """RFC 7638 SHA-256 thumbprint, recomputed from the key's own members only."""
    return JWK(**{k: public_jwk[k] for k in ("kty", "n", "e")}).thumbprint()


def published_kids(client) -> list[str]:
    return [k["kid"] for k in client.get("/lti/jwks").get_json()["keys"]]


# -- JWKS --------------------------------------------------------------------------------------
def test_jwks_on_both_paths_publishes_rfc7638_kids(app, client):
    answers = [client.get(path) for path in JWKS_PATHS]
    for response in answers:
        assert response.status_code == 200
        assert response.mimetype == "application/json"
        assert response.headers["Access-Control-Allow-Origin"] == "*"
    first, second = (r.get_json() for r in answers)
    assert first == second
    keys = first["keys"]
    assert len(keys) == 1
    for key in keys:
        assert key["kty"] == "RSA"
        assert (key["alg"], key["use"]) == ("RS256", "sig")
        assert key["kid"] == thumbprint(key)
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key), "no private members in the JWKS"
    assert keys[0]["kid"] == app.extensions["lti_keys"].current().kid


def test_jwks_key_verifies_what_the_current_key_signs(app, client):
    current = app.extensions["lti_keys"].current()
    token = jwt.encode({"x": 1}, current.private_pem, algorithm="RS256", headers={"kid": current.kid})
    key = next(k for k in client.get("/.well-known/jwks.json").get_json()["keys"] if k["kid"] == current.kid)
    assert jwt.decode(token, jwt.PyJWK(key).key, algorithms=["RS256"]) == {"x": 1}


# -- Canvas developer key JSON -----------------------------------------------------------------------
def test_canvas_json(client):
    response = client.get("/lti/canvas.json")
    assert response.status_code == 200
    data = response.get_json()
    assert data["title"] == "Attendance"
    assert data["oidc_initiation_url"] == TOOL + "/lti/login"
    assert data["target_link_uri"] == TOOL + "/lti/launch"
    assert {LINEITEM, SCORE, RESULT_RO, NRPS} <= set(data["scopes"])
    assert data["public_jwk_url"] in (TOOL + path for path in JWKS_PATHS)
    assert client.get(data["public_jwk_url"][len(TOOL):]).get_json()["keys"]
    assert len(data["extensions"]) == 1
    ext = data["extensions"][0]
    assert ext["platform"] == "canvas.instructure.com"
    assert ext["privacy_level"] == "public"
    assert ext["domain"] == "localhost"
    placements = {p["placement"]: p for p in ext["settings"]["placements"]}
    assert set(placements) == {"course_navigation", "link_selection"}
    assert placements["link_selection"]["message_type"] == "LtiDeepLinkingRequest"
    assert placements["course_navigation"]["message_type"] == "LtiResourceLinkRequest"
    for placement in placements.values():
        assert placement["target_link_uri"] == TOOL + "/lti/launch"


def test_tool_base_url_is_written_into_every_url(make_app):
    app = make_app(TOOL_BASE_URL="https://attendance.example.edu")
    data = app.test_client().get("/lti/canvas.json").get_json()
    assert data["oidc_initiation_url"] == "https://attendance.example.edu/lti/login"
    assert data["target_link_uri"] == "https://attendance.example.edu/lti/launch"
    assert data["public_jwk_url"].startswith("https://attendance.example.edu/")
    assert data["extensions"][0]["domain"] == "attendance.example.edu"


# -- the admin page ----------------------------------------------------------------------------------
def test_config_page_shows_the_urls_to_paste(client):
    response = client.get("/lti/config")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    for url in ("/lti/register", "/lti/canvas.json", "/lti/login", "/lti/launch", "/.well-known/jwks.json"):
        assert TOOL + url in html, url
    assert "platform add" in html
    assert client.get("/").headers["Location"].endswith("/lti/config")


def test_config_page_shows_both_jwks_urls(client):
    html = client.get("/lti/config").get_data(as_text=True)
    assert TOOL + "/lti/jwks" in html
    assert TOOL + "/.well-known/jwks.json" in html


# -- key rotation through the CLI -----------------------------------------------------------------
@pytest.fixture
def fresh_keys(make_app, tmp_path):
    """An app with its own key directory, so rotating does not disturb the session's shared keys."""
    keys_dir = tmp_path / "keys"
    app = make_app(KEYS_DIR=str(keys_dir))
    return app, keys_dir


def pem_files(keys_dir: Path) -> dict[str, int]:
    return {p.stem: stat.S_IMODE(p.stat().st_mode) for p in keys_dir.glob("*.pem")}


def test_first_start_creates_one_private_key_with_mode_0600(fresh_keys):
    app, keys_dir = fresh_keys
    current = app.extensions["lti_keys"].current()
    assert pem_files(keys_dir) == {current.kid: 0o600}
    manifest = json.loads((keys_dir / "keyring.json").read_text())
    assert [(e["kid"], e["retire_at"]) for e in manifest["keys"]] == [(current.kid, None)]


def test_rotate_publishes_old_and_new_and_signs_with_new(fresh_keys):
    app, keys_dir = fresh_keys
    client, runner = app.test_client(), app.test_cli_runner()
    old = app.extensions["lti_keys"].current().kid

    result = runner.invoke(args=["keys", "rotate", "--grace-days", "1"])
    assert result.exit_code == 0, result.output
    new = app.extensions["lti_keys"].current().kid
    assert new != old
    assert new in result.output
    assert "1 days" in result.output

    assert published_kids(client) == [new, old]  # current first
    for key in client.get("/.well-known/jwks.json").get_json()["keys"]:
        assert key["kid"] == thumbprint(key)
    assert pem_files(keys_dir) == {old: 0o600, new: 0o600}
    manifest = {e["kid"]: e["retire_at"] for e in json.loads((keys_dir / "keyring.json").read_text())["keys"]}
    assert manifest[new] is None
    assert manifest[old] == pytest.approx(time.time() + 86400, abs=60)

    listed = runner.invoke(args=["keys", "list"]).output.splitlines()
    assert listed == [f"{new}\tcurrent", f"{old}\tretiring"]

    # Retiring now removes nothing: the grace period is not over.
    result = runner.invoke(args=["keys", "retire"])
    assert result.exit_code == 0, result.output
    assert "Retired 0 key(s)" in result.output
    assert published_kids(client) == [new, old]
    assert set(pem_files(keys_dir)) == {old, new}


def test_deep_linking_response_after_rotation_is_signed_with_the_new_key(fresh_keys):
    app, _ = fresh_keys
    client = app.test_client()
    platform = Platform(product="moodle")
    try:
        register_platform(app, platform)
        old = app.extensions["lti_keys"].current().kid
        assert app.test_cli_runner().invoke(args=["keys", "rotate", "--grace-days", "1"]).exit_code == 0
        new = app.extensions["lti_keys"].current().kid
        assert new != old

        launched = Launcher(client).launch(platform, "instructor", message_type="LtiDeepLinkingRequest")
        html = launched.get_data(as_text=True)
        assert launched.status_code == 200, html[:800]
        answer = client.post("/deep-link/confirm", data={"launch_token": meta(html, "launch-token"),
                                                         "title": "Attendance"})
        assert answer.status_code == 200, answer.get_data(as_text=True)[:800]
        token = re.search(r'name="JWT" value="([^"]+)"', answer.get_data(as_text=True)).group(1)
        assert jwt.get_unverified_header(token)["kid"] == new
        # A platform holding our published key set verifies it.
        key = next(k for k in client.get("/lti/jwks").get_json()["keys"] if k["kid"] == new)
        claims = jwt.decode(token, jwt.PyJWK(key).key, algorithms=["RS256"], audience=platform.issuer)
        assert claims["iss"] == platform.client_id
        assert claims["https://purl.imsglobal.org/spec/lti/claim/message_type"] == "LtiDeepLinkingResponse"
        assert claims["https://purl.imsglobal.org/spec/lti-dl/claim/data"] == "opaque-platform-data"
    finally:
        platform.stop()


def test_retire_after_grace_period_unpublishes_and_deletes_the_old_key(fresh_keys):
    app, keys_dir = fresh_keys
    client, runner = app.test_client(), app.test_cli_runner()
    old = app.extensions["lti_keys"].current().kid
    assert runner.invoke(args=["keys", "rotate", "--grace-days", "1"]).exit_code == 0
    new = app.extensions["lti_keys"].current().kid

    # A day and more later: move the old key's retire_at into the past.
    manifest_path = keys_dir / "keyring.json"
    manifest = json.loads(manifest_path.read_text())
    for entry in manifest["keys"]:
        if entry["kid"] == old:
            entry["retire_at"] = time.time() - 5
    manifest_path.write_text(json.dumps(manifest))

    result = runner.invoke(args=["keys", "retire"])
    assert result.exit_code == 0, result.output
    assert f"Retired 1 key(s). {old}" in result.output
    assert published_kids(client) == [new]
    assert client.get("/.well-known/jwks.json").get_json() == client.get("/lti/jwks").get_json()
    assert pem_files(keys_dir) == {new: 0o600}
    assert [e["kid"] for e in json.loads(manifest_path.read_text())["keys"]] == [new]
    assert app.extensions["lti_keys"].current().kid == new


def test_rotate_with_zero_grace_then_retire(fresh_keys):
    app, keys_dir = fresh_keys
    client, runner = app.test_client(), app.test_cli_runner()
    old = app.extensions["lti_keys"].current().kid
    assert runner.invoke(args=["keys", "rotate", "--grace-days", "0"]).exit_code == 0
    new = app.extensions["lti_keys"].current().kid
    assert published_kids(client) == [new]
    result = runner.invoke(args=["keys", "retire"])
    assert f"Retired 1 key(s). {old}" in result.output
    assert pem_files(keys_dir) == {new: 0o600}
    assert not (keys_dir / f"{old}.pem").exists()


# -- platforms through the CLI --------------------------------------------------------------------
@pytest.fixture
def cli_platform():
    platform = Platform(product="moodle", client_id="cli-client", deployment_id="d-1")
    yield platform
    platform.stop()


def add_args(platform: Platform, *deployments: str) -> list[str]:
    args = ["platform", "add", "--issuer", platform.issuer, "--client-id", platform.client_id,
            "--auth-login-url", platform.auth_url, "--token-url", platform.token_url,
            "--key-set-url", platform.jwks_url, "--name", "CLI Moodle"]
    for deployment in deployments:
        args += ["--deployment-id", deployment]
    return args


def launch_from(launcher, platform: Platform, deployment_id: str, role="instructor"):
    platform.deployment_id = deployment_id
    return launcher.launch(platform, role)


def test_platform_add_list_and_launch(app, launcher, cli_platform):
    runner = app.test_cli_runner()
    result = runner.invoke(args=add_args(cli_platform, "d-1", "d-2"))
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Added platform ")
    with app.app_context():
        row = db.session.scalar(select(Registration))
        assert (row.issuer, row.client_id, row.name, row.active) == (cli_platform.issuer, "cli-client", "CLI Moodle", True)
        assert (row.auth_login_url, row.auth_token_url, row.key_set_url) == (
            cli_platform.auth_url, cli_platform.token_url, cli_platform.jwks_url)
        assert [d.deployment_id for d in row.deployments] == ["d-1", "d-2"]
        reg_id = row.id

    listed = runner.invoke(args=["platform", "list"])
    assert listed.exit_code == 0
    assert listed.output.splitlines() == [
        f"{reg_id}\tactive\t{cli_platform.issuer}\tclient=cli-client\tCLI Moodle",
        "\tdeployment d-1\tactive",
        "\tdeployment d-2\tactive",
    ]

    # Adding again updates: no duplicate registration or deployment.
    again = runner.invoke(args=add_args(cli_platform, "d-2", "d-3"))
    assert again.exit_code == 0, again.output
    assert again.output.startswith(f"Updated platform {reg_id}")
    with app.app_context():
        assert db.session.scalars(select(Registration.id)).all() == [reg_id]
        assert [d.deployment_id for d in db.session.scalars(select(Deployment).order_by(Deployment.id))] == [
            "d-1", "d-2", "d-3"]

    for deployment in ("d-1", "d-2"):
        response = launch_from(launcher, cli_platform, deployment)
        assert response.status_code == 200, response.get_data(as_text=True)[:800]
        assert body_attr(response.get_data(as_text=True), "data-role") == "teacher"


def test_platform_list_when_empty(app):
    result = app.test_cli_runner().invoke(args=["platform", "list"])
    assert result.exit_code == 0
    assert result.output.strip() == "No platforms registered."


def test_deactivate_one_deployment_then_the_whole_registration(app, launcher, cli_platform):
    runner = app.test_cli_runner()
    assert runner.invoke(args=add_args(cli_platform, "d-1", "d-2")).exit_code == 0

    result = runner.invoke(args=["platform", "deactivate", "--issuer", cli_platform.issuer,
                                 "--client-id", "cli-client", "--deployment-id", "d-2"])
    assert result.exit_code == 0, result.output
    assert "Deactivated." in result.output
    assert "\tdeployment d-2\tinactive" in runner.invoke(args=["platform", "list"]).output.splitlines()

    refused = launch_from(launcher, cli_platform, "d-2")
    assert refused.status_code == 403, refused.get_data(as_text=True)[:800]
    assert body_attr(refused.get_data(as_text=True), "data-error") == "unknown_platform"
    assert launch_from(launcher, cli_platform, "d-1").status_code == 200

    # A login that started before the registration is deactivated cannot finish after it.
    cli_platform.deployment_id = "d-1"
    auth = launcher.start(cli_platform)
    result = runner.invoke(args=["platform", "deactivate", "--issuer", cli_platform.issuer, "--client-id", "cli-client"])
    assert result.exit_code == 0, result.output
    assert runner.invoke(args=["platform", "list"]).output.splitlines()[0].split("\t")[1] == "inactive"

    late = launcher.post(cli_platform.id_token(nonce=auth["nonce"]), auth["state"])
    assert late.status_code == 403, late.get_data(as_text=True)[:800]
    assert body_attr(late.get_data(as_text=True), "data-error") == "unknown_platform"

    login = launcher.login(cli_platform)
    assert 400 <= login.status_code < 500
    assert body_attr(login.get_data(as_text=True), "data-error") == "unknown_platform"

    with app.app_context():
        row = db.session.scalar(select(Registration))
        assert row.active is False
        assert [(d.deployment_id, d.active) for d in row.deployments] == [("d-1", True), ("d-2", False)]


@pytest.mark.parametrize("extra, message", [
    ([], "No platform https://nowhere.example with client id nobody"),
    (["--deployment-id", "x"], "No platform https://nowhere.example with client id nobody"),
])
def test_deactivate_unknown_platform_fails(app, extra, message):
    result = app.test_cli_runner().invoke(
        args=["platform", "deactivate", "--issuer", "https://nowhere.example", "--client-id", "nobody", *extra])
    assert result.exit_code != 0
    assert message in result.output


def test_deactivate_unknown_deployment_fails(app, cli_platform):
    runner = app.test_cli_runner()
    assert runner.invoke(args=add_args(cli_platform, "d-1")).exit_code == 0
    result = runner.invoke(args=["platform", "deactivate", "--issuer", cli_platform.issuer,
                                 "--client-id", "cli-client", "--deployment-id", "d-9"])
    assert result.exit_code != 0
    assert "No deployment d-9 on that platform" in result.output
    with app.app_context():
        assert db.session.scalar(select(Registration)).active is True
