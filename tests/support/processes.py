"""Real tool processes for tests: `python app.py` on a free port, and the `flask` CLI, with a private environment."""
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]  # the repository


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def tool_env(tmp_path):
    """Environment variables for tool processes of one test: their own instance folder, keys and secret."""
    env = dict(os.environ, INSTANCE_PATH=str(tmp_path / "instance"), KEYS_DIR=str(tmp_path / "keys"),
               SECRET_KEY="serve-test-secret", PYTHONUNBUFFERED="1", OUTBOUND_ALLOW_NETWORKS="127.0.0.1/32")
    env.pop("FLASK_APP", None)
    yield env
    if env.get("DATABASE_URL"):  # leave PostgreSQL empty for the next test
        subprocess.run([sys.executable, "-c", "from tests.support.processes import drop_all; drop_all()"],
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


def serve(env, port, log: Path | None = None) -> subprocess.Popen:
    """Start `python app.py --port port` and wait until it answers; its output goes to log (or a pipe)."""
    handle = log.open("wb") if log else subprocess.PIPE
    proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=handle, stderr=subprocess.STDOUT)
    if log:
        handle.close()
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/lti/jwks", timeout=1).status_code == 200:
                return proc
        except requests.ConnectionError:
            time.sleep(0.2)
    proc.kill()
    proc.wait()
    output = log.read_text() if log else proc.stdout.read().decode()
    raise AssertionError("tool did not start: " + output[-2000:])


def flask_cli(env, *args) -> str:
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "app", *args], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def serve_gunicorn(env, port, log: Path, *options: str, app: str = "app:create_app()") -> subprocess.Popen:
    """Start gunicorn (options such as "-k", "gevent") on 127.0.0.1:port and wait until it answers."""
    handle = log.open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", "--graceful-timeout", "2",
                             *options, app], cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT)
    handle.close()
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        try:
            if requests.get(f"http://127.0.0.1:{port}/lti/jwks", timeout=1).status_code == 200:
                return proc
        except requests.RequestException:
            time.sleep(0.2)
    stop(proc)
    raise AssertionError("gunicorn did not start: " + log.read_text()[-3000:])


def stop(proc: subprocess.Popen) -> None:
    """Stop a server process (SIGTERM, then SIGKILL after 10 s)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
