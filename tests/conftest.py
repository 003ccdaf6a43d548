"""Fixtures in layers: app → client → platform rows → a launcher that signs id_tokens like an LMS.

The suite runs on SQLite by default; with DATABASE_URL (PostgreSQL) and REDIS_URL set, it runs
against those real servers instead.
"""
from __future__ import annotations

import os
import re
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import text

from app import create_app
from extensions import db
from lti.models import Deployment, Registration
from tests.platform import Platform

TOOL = "http://localhost"
pytest_plugins = ["tests.processes"]  # the tool_env fixture for tests that run real tool processes


@pytest.fixture(scope="session")
def keys_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("keys")


def _reset_postgres() -> None:
    db.session.remove()
    db.drop_all()
    with db.engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))


@pytest.fixture
def make_app(tmp_path, keys_dir, monkeypatch):
    """Build an app with test settings; more overrides may be passed."""
    monkeypatch.setenv("INSTANCE_PATH", str(tmp_path / "instance"))
    apps = []

    def factory(**overrides):
        settings = {
            "TESTING": True,
            "AUTO_MIGRATE": False,
            "SECRET_KEY": "test-secret-key",
            "KEYS_DIR": str(keys_dir),
            "TOOL_BASE_URL": TOOL,
            "REDIS_PREFIX": f"test-{uuid.uuid4().hex}:",
            # A background roster read per teacher launch would outlive the test's database: opt in per test.
            "ROSTER_SYNC_ON_LAUNCH": False,
            "OUTBOUND_ALLOW_NETWORKS": "127.0.0.1/32",  # the loopback address the tests' platforms listen on
        }
        if not os.environ.get("DATABASE_URL"):
            settings["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path / 'test.db'}"
        settings.update(overrides)
        app = create_app(settings)
        with app.app_context():
            if app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
                _reset_postgres()
            db.create_all()
        apps.append(app)
        return app

    yield factory
    for app in apps:
        with app.app_context():
            db.session.remove()
            if app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
                _reset_postgres()
            db.engine.dispose()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield


def register_platform(app, platform: Platform, *, deployments=None, active=True, **fields) -> int:
    """Store a registration (and deployments) for the simulated platform; return its id."""
    with app.app_context():
        row = Registration(
            issuer=platform.issuer, client_id=platform.client_id, name=platform.product,
            product_family=platform.product, auth_login_url=platform.auth_url,
            auth_token_url=platform.token_url, key_set_url=platform.jwks_url, active=active, **fields)
        db.session.add(row)
        for deployment_id in (deployments if deployments is not None else [platform.deployment_id]):
            db.session.add(Deployment(registration=row, deployment_id=deployment_id))
        db.session.commit()
        return row.id


@pytest.fixture
def moodle(app):
    platform = Platform(product="moodle")
    register_platform(app, platform)
    yield platform
    platform.stop()


@pytest.fixture
def canvas(app):
    platform = Platform(issuer="https://canvas.instructure.com", client_id="10000000000001", product="canvas",
                        deployment_id="6:8865aa05b4b79b64a91a86042e43af5ea8ae79eb")
    register_platform(app, platform)
    yield platform
    platform.stop()


class Launcher:
    """Drives the OIDC login + launch against the tool as a platform and browser would."""

    def __init__(self, client):
        self.client = client

    def login(self, platform: Platform, **params):
        base = self.client.application.config["TOOL_BASE_URL"]  # the tool's public origin, not the test client's host
        return self.client.get("/lti/login?" + platform.login_query(base + "/lti/launch", **params))

    @staticmethod
    def auth_request(response) -> dict:
        """The parameters the tool sent to the platform's auth endpoint."""
        assert response.status_code == 302, response.get_data(as_text=True)[:500]
        return {k: v[0] for k, v in parse_qs(urlsplit(response.headers["Location"]).query).items()}

    def start(self, platform: Platform, **params) -> dict:
        return self.auth_request(self.login(platform, **params))

    def post(self, id_token: str | None, state: str | None, **extra):
        form = {k: v for k, v in {"id_token": id_token, "state": state, **extra}.items() if v is not None}
        return self.client.post("/lti/launch", data=form)

    def launch(self, platform: Platform, role="instructor", *, claims: dict | None = None, remove=(), **claim_kwargs):
        """Full login + launch; claims overrides and removals apply to the id_token."""
        auth = self.start(platform)
        body = platform.claims(role, nonce=auth["nonce"], **claim_kwargs)
        body.update(claims or {})
        for key in remove:
            body.pop(key, None)
        return self.post(platform.sign(body), auth["state"])


@pytest.fixture
def launcher(client):
    return Launcher(client)


def meta(html: str, name: str) -> str | None:
    """The content of a <meta name=...> tag."""
    match = re.search(rf'<meta name="{re.escape(name)}" content="([^"]*)"', html)
    return match.group(1) if match else None


def body_attr(html: str, attr: str) -> str | None:
    match = re.search(rf'<body[^>]*\b{re.escape(attr)}="([^"]*)"', html)
    return match.group(1) if match else None
