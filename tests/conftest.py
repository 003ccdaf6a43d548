"""Fixtures in layers: app → client → platform rows → a launcher that signs id_tokens like an LMS.

The suite runs on SQLite by default; with DATABASE_URL (PostgreSQL) and REDIS_URL set, it runs
against those real servers instead. Helpers and factories live in `tests/support/`; shared fixtures
beyond these layers in `tests/support/fixtures.py`.
"""
from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy import text

from app import create_app
from extensions import db
from tests.support.launch import TOOL, Launcher, register_platform
from tests.support.platform import Platform

pytest_plugins = [
    "tests.support.processes",  # the tool_env fixture for tests that run real tool processes
    "tests.support.fixtures",  # the loopback LMS fixtures: lms, own_lms
]


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


@pytest.fixture
def launcher(client):
    return Launcher(client)

