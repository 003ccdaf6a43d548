"""`python app.py` really serves, migrates an empty database, and two processes share state and nonces."""
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import requests

from tests.support.platform import Platform
from tests.support.processes import flask_cli, free_port, serve


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
