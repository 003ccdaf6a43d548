"""Fixtures shared by several test modules (registered in conftest.py through `pytest_plugins`)."""
from __future__ import annotations

import pytest

from tests.support.launch import Launcher, register_platform
from tests.support.lms_services import LmsServices
from tests.support.platform import Platform


@pytest.fixture
def lms(request, app, client):
    """The loopback LMS of the `moodle` platform (or of the product given by indirect parametrization)."""
    product = getattr(request, "param", "moodle")
    platform = request.getfixturevalue(product)
    return LmsServices(platform, tool_jwks=lambda: client.get("/lti/jwks").get_json())


@pytest.fixture
def own_lms(make_app):
    """An app with settings of the test's own, and a loopback LMS registered with it: (app, Launcher, LmsServices)."""
    platforms = []

    def factory(**settings):
        app = make_app(**settings)
        client = app.test_client()
        platform = Platform(product="moodle")
        platforms.append(platform)
        register_platform(app, platform)
        return app, Launcher(client), LmsServices(platform, tool_jwks=lambda: client.get("/lti/jwks").get_json())

    yield factory
    for platform in platforms:
        platform.stop()


@pytest.fixture
def platforms():
    """A factory of simulated platforms, all stopped at teardown."""
    made = []

    def factory(**kwargs) -> Platform:
        platform = Platform(**kwargs)
        made.append(platform)
        return platform

    yield factory
    for platform in made:
        platform.stop()
