"""Launches in a real headless Chromium, with the tool framed cross-site in an LMS course page.

The tool runs on http://127.0.0.1:<port>, the LMS course page on http://localhost:<port>: different
sites, so the browser treats the tool's cookies as third-party ones. Third-party cookies are blocked
in every test; some tests block every cookie.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from extensions import db
from lti.models import Registration
from tests.support.browser import (
    BLOCK_ALL,
    BLOCK_THIRD_PARTY,
    WAIT,
    ToolServer,
    browser_available,
    chrome,
    cookies_sent_to_iframe,
    course_page,
    lms_url,
    login_url,
    wait_for_js,
)
from tests.support.launch import register_platform
from tests.support.platform import Platform

pytestmark = pytest.mark.browser


@pytest.fixture
def browser(tmp_path):
    """A factory of headless Chromium drivers; every one is quit at the end of the test."""
    if not browser_available():
        pytest.skip("needs /usr/bin/chromium and /usr/bin/chromedriver")
    drivers = []

    def factory(cookies=BLOCK_THIRD_PARTY):
        driver = chrome(tmp_path / f"chromium-profile-{len(drivers)}", cookies)
        drivers.append(driver)
        return driver

    yield factory
    for driver in drivers:
        driver.quit()


@pytest.fixture
def tool(make_app):
    """The tool app on a real HTTP server whose origin is its TOOL_BASE_URL."""
    server = ToolServer()
    app = make_app(TOOL_BASE_URL=server.url)
    server.start(app)
    server.flask_app = app
    yield server
    server.stop()


def make_platform(product: str) -> Platform:
    if product == "canvas":
        return Platform(issuer="https://canvas.instructure.com", client_id="10000000000001", product="canvas",
                        deployment_id="6:8865aa05b4b79b64a91a86042e43af5ea8ae79eb")
    return Platform(product="moodle")


@pytest.fixture
def lms(tool):
    """A factory of simulated LMSs registered with the tool, whose auth endpoint is on the LMS site."""
    platforms = []

    def factory(product="moodle", role="instructor", *, platform_storage=False, **login_extra):
        platform = make_platform(product)
        platforms.append(platform)
        registration_id = register_platform(tool.flask_app, platform)
        with tool.flask_app.app_context():
            row = db.session.get(Registration, registration_id)
            row.auth_login_url = lms_url(platform, "/auth")  # storage target origin = this origin
            db.session.commit()
        platform.auth_claims = lambda login_hint, message_hint: dict(role=role)
        src = login_url(tool.url, platform, **login_extra)
        platform.handlers["/course"] = lambda request: course_page(src, platform_storage=platform_storage)
        return platform

    yield factory
    for platform in platforms:
        platform.stop()


def open_tool(driver, platform):
    """Open the LMS course page and switch into the tool's iframe."""
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(lms_url(platform, "/course"))
    WebDriverWait(driver, WAIT).until(EC.frame_to_be_available_and_switch_to_it("tool"))


def tool_body(driver, attr: str) -> str:
    """Wait until the tool's page (in the current frame) has a body data-* attribute; answer it."""
    return wait_for_js(driver, f"return (document.body && document.body.dataset.{attr}) || null")


def test_third_party_cookies_are_blocked_but_partitioned_ones_work(browser, lms):
    """Sanity check of the browser set-up the other tests rely on."""
    driver = browser(BLOCK_THIRD_PARTY)
    platform = lms()
    # Control: first-party, the probe gets both cookies (Secure cookies do work on http://127.0.0.1) ...
    assert cookies_sent_to_iframe(driver, platform, "127.0.0.1") == ["probe_partitioned", "probe_unpartitioned"]
    # ... cross-site, the unpartitioned cookie (now in the jar) is withheld and only the CHIPS one works.
    assert cookies_sent_to_iframe(driver, platform, "localhost") == ["probe_partitioned"]


def test_all_cookies_blocked_browser_keeps_no_cookie(browser, lms):
    driver = browser(BLOCK_ALL)
    platform = lms()
    assert cookies_sent_to_iframe(driver, platform, "127.0.0.1") == []
    assert cookies_sent_to_iframe(driver, platform, "localhost") == []


@pytest.mark.parametrize("product", ["moodle", "canvas"])
def test_launch_in_cross_site_iframe_with_partitioned_cookie(browser, tool, lms, product):
    driver = browser(BLOCK_THIRD_PARTY)
    platform = lms(product, "instructor")
    open_tool(driver, platform)

    assert tool_body(driver, "role") == "teacher"
    assert driver.execute_script(
        'var m = document.querySelector("meta[name=launch-token]"); return m && m.content')
    # The launch was bound to this browser by the partitioned state cookie, not by platform storage.
    launches = tool.to("/lti/launch", "POST")
    assert len(launches) == 1 and launches[0]["status"] == 200
    assert "lti_state_" in launches[0]["cookie"]
    assert len(platform.requests_to("/auth")) == 1


@pytest.mark.parametrize("product", ["canvas", "moodle"])
def test_launch_through_platform_storage_without_any_cookie(browser, tool, lms, product):
    driver = browser(BLOCK_ALL)
    platform = lms(product, "learner", platform_storage=True, lti_storage_target="_parent")
    open_tool(driver, platform)

    assert tool_body(driver, "role") == "student"
    assert driver.execute_script(
        'var m = document.querySelector("meta[name=launch-token]"); return m && m.content')

    # No cookie ever reached the tool: the state came back through the LMS page's storage.
    assert all(not r["cookie"] for r in tool.requests), tool.requests
    launches = tool.to("/lti/launch", "POST")
    assert [r["status"] for r in launches] == [200, 200]  # storage check page, then the launched page

    driver.switch_to.default_content()
    store = driver.execute_script("return window.ltiStore")
    keys = sorted(k.split(" ", 1)[1] for k in store)
    assert all(k.split(" ", 1)[0] == tool.url for k in store), store
    assert len(keys) == 2 and keys[0].startswith("nonce_") and keys[1].startswith("state_"), keys
    # Under state_<state> the page keeps a random secret of its own, never the state itself (which an
    # onlooker of the form post knows): that secret is the browser's proof.
    secret = store[f"{tool.url} {keys[1]}"]
    assert secret and secret != keys[1][len("state_"):] and len(secret) >= 40
    assert store[f"{tool.url} {keys[0]}"] == keys[0][len("nonce_"):]
    subjects = [m["subject"] for m in driver.execute_script("return window.ltiMessages")]
    assert subjects.count("lti.put_data") == 2 and subjects.count("lti.get_data") == 2, subjects


def test_launch_without_cookies_or_storage_fails_cleanly(browser, tool, lms):
    from selenium.webdriver.common.by import By

    driver = browser(BLOCK_ALL)
    platform = lms("moodle", "learner")
    open_tool(driver, platform)

    assert tool_body(driver, "error") == "state_not_bound"
    link = driver.find_element(By.PARTIAL_LINK_TEXT, "in a new window")
    assert link.text.startswith("Open ")
    assert "/lti/login?" in link.get_attribute("href")
    assert link.get_attribute("target") == "_blank"
    launches = tool.to("/lti/launch", "POST")
    assert [r["status"] for r in launches] == [403]
    assert all(r["status"] != 500 for r in tool.requests)


def test_an_lms_admin_makes_a_registration_link_from_the_admin_page(browser, tool, lms, tmp_path):
    """The admin page in the LMS iframe: the button gives a single-use registration link, shown once."""
    driver = browser()
    platform = lms("moodle", "account_admin")
    open_tool(driver, platform)
    assert tool_body(driver, "role") == "admin"
    driver.find_element("id", "invite-note").send_keys("Second campus")
    driver.find_element("id", "invite-button").click()
    url = wait_for_js(driver, 'var c = document.getElementById("invite-url"); return c && c.value')
    assert url.startswith(tool.url + "/lti/register?invite=")
    folder = Path(os.environ.get("ATTENDANCE_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(folder / "admin-invite.png"))
