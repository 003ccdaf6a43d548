"""`python app.py` really serves, migrates an empty database, and two processes share state and nonces."""
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.platform import Platform

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def tool_env(tmp_path):
    env = dict(os.environ, INSTANCE_PATH=str(tmp_path / "instance"), KEYS_DIR=str(tmp_path / "keys"),
               SECRET_KEY="serve-test-secret", PYTHONUNBUFFERED="1")
    env.pop("FLASK_APP", None)
    yield env
    if env.get("DATABASE_URL"):  # leave PostgreSQL empty for the next test
        subprocess.run([sys.executable, "-c", "from tests.test_serve import drop_all; drop_all()"],
                       cwd=ROOT, env=env, check=True, timeout=60)


def drop_all():
    from sqlalchemy import text

    from app import create_app
    from extensions import db

    app = create_app({"AUTO_MIGRATE": False})
    with app.app_context():
        db.drop_all()
        with db.engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))


def serve(env, port):
    proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/lti/jwks", timeout=1).status_code == 200:
                return proc
        except requests.ConnectionError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("tool did not start: " + proc.stdout.read().decode()[-2000:])


def flask_cli(env, *args) -> str:
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "app", *args], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_two_processes_share_state_and_refuse_replays(tool_env):
    port_a, port_b = free_port(), free_port()
    env = dict(tool_env, TOOL_BASE_URL=f"http://127.0.0.1:{port_a}")
    a = serve(env, port_a)
    b = serve(env, port_b)
    platform = Platform(product="moodle")
    try:
        flask_cli(env, "platform", "add", "--issuer", platform.issuer, "--client-id", platform.client_id,
                  "--auth-login-url", platform.auth_url, "--token-url", platform.token_url,
                  "--key-set-url", platform.jwks_url, "--deployment-id", platform.deployment_id)
        assert platform.client_id in flask_cli(env, "platform", "list")
        # The login is served by process A ...
        login = requests.get(f"http://127.0.0.1:{port_a}/lti/login", allow_redirects=False,
                             params=platform.login_params(f"http://127.0.0.1:{port_a}/lti/launch"))
        assert login.status_code == 302
        auth = {k: v[0] for k, v in parse_qs(urlsplit(login.headers["Location"]).query).items()}
        cookie = login.headers["Set-Cookie"].split(";", 1)[0]
        token = platform.id_token(nonce=auth["nonce"], role="learner")
        # ... and the launch by process B: state and nonce must be shared, not in process memory.
        launch = requests.post(f"http://127.0.0.1:{port_b}/lti/launch", headers={"Cookie": cookie},
                               data={"id_token": token, "state": auth["state"]})
        assert launch.status_code == 200, launch.text[:500]
        assert re.search(r'<body[^>]*data-role="student"', launch.text)
        # The same id_token + state replayed on A is refused.
        replay = requests.post(f"http://127.0.0.1:{port_a}/lti/launch", headers={"Cookie": cookie},
                               data={"id_token": token, "state": auth["state"]})
        assert replay.status_code == 403
        assert 'data-error="invalid_state"' in replay.text
    finally:
        for proc in (a, b):
            proc.terminate()
            proc.wait(timeout=10)
        platform.stop()
    assert (Path(env["KEYS_DIR"]) / "keyring.json").exists()
