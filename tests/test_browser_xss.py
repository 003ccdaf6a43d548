"""Script injection through URLs a malicious platform stored, tried in a real headless Chromium.

The attacker is a malicious platform whose registration was stored before the tool checked URL
schemes: a `javascript:` authorization endpoint (which the platform-storage login page navigates
to) and a `javascript:` deep-linking return URL (which the return page's form posts to). The
tool's Content-Security-Policy must stop both in the tool's origin, inside the cross-site LMS
iframe, even with the bad URLs already in the database. Each attack is also run with the policy
replaced by one that allows inline script, to show that the alert would fire and the test would see it.

Chromium keeps the console of a cross-site iframe out of WebDriver's log, so the browser's CSP
violation reports are collected instead: the tool's own policy, with a `report-uri` directive
appended on the way out, pointing at a loopback collector of the test.
"""
from __future__ import annotations

import json
import threading
import time

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from extensions import db
from lti.models import Registration
from tests.support.browser import (
    BLOCK_THIRD_PARTY,
    WAIT,
    ToolServer,
    browser_available,
    chrome,
    course_page,
    lms_url,
    login_url,
    open_alert_text,
    wait_for_js,
)
from tests.support.launch import register_platform
from tests.support.platform import Platform

pytestmark = pytest.mark.browser

JS_URL = "javascript:alert(document.domain)//"
# For the control runs: a policy that restricts no script, as good as the tool's former lack of one.
NO_SCRIPT_POLICY = "frame-ancestors *"


@pytest.fixture
def browser(tmp_path):
    """A factory of headless Chromium drivers blocking third-party cookies; all quit at the end."""
    if not browser_available():
        pytest.skip("needs /usr/bin/chromium and /usr/bin/chromedriver")
    drivers = []

    def factory():
        driver = chrome(tmp_path / f"chromium-profile-{len(drivers)}", BLOCK_THIRD_PARTY)
        drivers.append(driver)
        return driver

    yield factory
    for driver in drivers:
        driver.quit()


class ReportCollector:
    """A loopback server that keeps the CSP violation reports browsers post to it."""

    def __init__(self):
        self.reports: list[dict] = []
        self._server = make_server("127.0.0.1", 0, self._wsgi, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}/csp-report"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def _wsgi(self, environ, start_response):
        request = Request(environ)
        try:
            self.reports.append(json.loads(request.get_data(as_text=True)).get("csp-report") or {})
        except ValueError:
            pass
        return Response(status=204)(environ, start_response)

    def wait(self, timeout: float = WAIT) -> list[dict]:
        """Wait for a first report; answer all of them."""
        deadline = time.monotonic() + timeout
        while not self.reports and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.3)  # reports of the same page arrive together
        return list(self.reports)

    def stop(self) -> None:
        """Stop the server."""
        self._server.shutdown()
        self._server.server_close()


def reporting(wsgi_app, report_url: str):
    """Wrap the app so that its Content-Security-Policy gains a report-uri (nothing else changes)."""
    def middleware(environ, start_response):
        def start(status, headers, exc_info=None):
            headers = [(k, f"{v}; report-uri {report_url}" if k.lower() == "content-security-policy" else v)
                       for k, v in headers]
            return start_response(status, headers, exc_info)
        return wsgi_app(environ, start)
    return middleware


@pytest.fixture
def reports():
    """The CSP violation reports of the test's tool servers."""
    collector = ReportCollector()
    yield collector
    collector.stop()


@pytest.fixture
def tool_with(make_app, reports):
    """A factory of tool servers; csp=False swaps the tool's policy for one that allows inline script."""
    servers = []

    def factory(csp: bool = True):
        server = ToolServer()
        app = make_app(TOOL_BASE_URL=server.url)
        if not csp:
            @app.after_request
            def _lax(response):  # runs before the tool's own hook, which keeps a policy already set
                response.headers["Content-Security-Policy"] = NO_SCRIPT_POLICY
                return response
        server.start(reporting(app, reports.url))
        server.flask_app = app
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.stop()


@pytest.fixture
def platforms():
    """A factory of simulated LMSs, stopped at the end of the test."""
    made = []

    def factory() -> Platform:
        platform = Platform(product="moodle")
        made.append(platform)
        return platform

    yield factory
    for platform in made:
        platform.stop()


def store_registration(tool, platform: Platform, **fields) -> int:
    """Store the platform's registration as given, bypassing the tool's checks (stored before they existed)."""
    registration_id = register_platform(tool.flask_app, platform)
    with tool.flask_app.app_context():
        row = db.session.get(Registration, registration_id)
        for name, value in fields.items():
            setattr(row, name, value)
        db.session.commit()
    return registration_id


class AlertFired(Exception):
    """A JavaScript dialog opened while the test drove the page."""


def enter_tool_frame(driver, platform) -> None:
    """Open the LMS course page and switch into the tool's frame; AlertFired if a dialog got in the way."""
    from selenium.common.exceptions import UnexpectedAlertPresentException
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        driver.get(lms_url(platform, "/course"))
        WebDriverWait(driver, WAIT).until(EC.frame_to_be_available_and_switch_to_it("tool"))
    except UnexpectedAlertPresentException as exc:  # WebDriver dismisses it and says what it said
        raise AlertFired(exc.alert_text) from exc


def alert_of(attack, *args) -> str | None:
    """Run an attack; answer the text of the dialog it opened (waiting for one), or None."""
    try:
        driver = attack(*args)
    except AlertFired as fired:
        return str(fired.args[0])
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        text = open_alert_text(driver)
        if text is not None:
            return text
        time.sleep(0.2)
    return None


# -- a javascript: authorization endpoint, through the platform-storage login page ---------------
def _storage_login_attack(browser, tool, platforms):
    platform = platforms()
    # The LMS page framing the tool is on the platform's own host (localhost:<port>), so the frame
    # is allowed and what stops the script is the script policy, not frame-ancestors.
    store_registration(tool, platform, auth_login_url=JS_URL, service_hosts=[f"localhost:{platform.port}"])
    src = login_url(tool.url, platform, lti_storage_target="_parent")
    platform.handlers["/course"] = lambda request: course_page(src, platform_storage=True)
    driver = browser()
    enter_tool_frame(driver, platform)
    return driver


def test_javascript_login_url_does_not_run_in_the_tool(browser, tool_with, platforms, reports):
    tool = tool_with(csp=True)
    driver = _storage_login_attack(browser, tool, platforms)

    # The tool's storage login page rendered in the LMS frame and tried to navigate to the URL ...
    assert wait_for_js(driver, "return document.title.indexOf('Opening') === 0 && location.href")
    assert [r["status"] for r in tool.to("/lti/login")] == [200]
    # ... and the browser refused it for the script policy: a report, no alert, the tool's page stays.
    found = reports.wait()
    assert any(r.get("violated-directive", "").startswith("script-src")
               and r.get("document-uri", "").startswith(tool.url + "/lti/login") for r in found), found
    assert open_alert_text(driver) is None
    driver.switch_to.default_content()
    driver.switch_to.frame("tool")
    assert driver.execute_script("return location.href").startswith(tool.url + "/lti/login")


def test_control_without_the_policy_the_javascript_login_url_runs(browser, tool_with, platforms):
    """The same attack against the tool without its policy: the alert fires in the tool's origin."""
    tool = tool_with(csp=False)
    assert alert_of(_storage_login_attack, browser, tool, platforms) == "127.0.0.1"  # document.domain of the tool


# -- a javascript: deep-linking return URL, through the return page's form ---------------------
def _deep_link_attack(browser, tool, platforms):
    from selenium.webdriver.common.by import By

    from attendance.web.pages import DEEP_LINK_PREFIX
    from lti.store import get_store
    from lti.tokens import read_launch_token

    platform = platforms()
    store_registration(tool, platform, auth_login_url=lms_url(platform, "/auth"))
    platform.auth_claims = lambda login_hint, message_hint: dict(role="instructor",
                                                                 message_type="LtiDeepLinkingRequest")
    src = login_url(tool.url, platform)
    platform.handlers["/course"] = lambda request: course_page(src, platform_storage=False)
    driver = browser()
    enter_tool_frame(driver, platform)
    token = wait_for_js(driver, 'var m = document.querySelector("meta[name=launch-token]"); '
                                'return document.getElementById("deep-link-form") && m && m.content')
    with tool.flask_app.app_context():  # the return URL as a launch stored before the tool checked it
        key = DEEP_LINK_PREFIX + read_launch_token(token)["deep_link"]
        settings = json.loads(get_store().get(key))
        settings["return_url"] = JS_URL
        get_store().put(key, json.dumps(settings), 600)
    driver.find_element(By.CSS_SELECTOR, "#deep-link-form button[type=submit]").click()
    return driver


def test_javascript_deep_link_return_url_does_not_run_in_the_tool(browser, tool_with, platforms, reports):
    tool = tool_with(csp=True)
    driver = _deep_link_attack(browser, tool, platforms)

    assert wait_for_js(driver, 'return document.getElementById("deep-link-return") && location.href')
    assert [r["status"] for r in tool.to("/deep-link/confirm", "POST")] == [200]
    found = reports.wait()
    assert any(r.get("document-uri") == tool.url + "/deep-link/confirm"
               and r.get("violated-directive", "").split("-")[0] in ("script", "form") for r in found), found
    assert open_alert_text(driver) is None
    driver.switch_to.default_content()
    driver.switch_to.frame("tool")
    assert driver.execute_script("return location.href") == tool.url + "/deep-link/confirm"


def test_control_without_the_policy_the_javascript_return_url_runs(browser, tool_with, platforms):
    tool = tool_with(csp=False)
    assert alert_of(_deep_link_attack, browser, tool, platforms) == "127.0.0.1"


# -- a student's document in the teacher's viewer ----------------------------------------------
PDF = (b"%PDF-1.1\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
       b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 300 200]/Contents 4 0 R/Resources<</Font<</F1 5 0 R>>>>>>"
       b"endobj\n4 0 obj<</Length 44>>stream\nBT /F1 24 Tf 40 100 Td (Doctor note) Tj ET\nendstream endobj\n"
       b"5 0 obj<</Type/Font/Subtype/Type1/BaseFont/Helvetica>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n")


def api_user(tool, platform: Platform, role: str, sub: str):
    """Launch a user through the tool's login and launch URLs; answer their API client."""
    from tests.support.api import ApiUser
    from tests.support.launch import Launcher, meta

    client = tool.flask_app.test_client()
    query = platform.login_query(tool.url + "/lti/launch")
    auth = Launcher.auth_request(client.get("/lti/login?" + query, base_url=tool.url))
    token = platform.sign(platform.claims(role, nonce=auth["nonce"], sub=sub, ags=False, nrps=False))
    response = client.post("/lti/launch", data={"id_token": token, "state": auth["state"]}, base_url=tool.url)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    return ApiUser(client, meta(response.get_data(as_text=True), "launch-token"))


def test_a_students_pdf_opens_in_the_pdf_viewer_only(browser, tool_with, platforms):
    """A student's upload never becomes a page of the tool's origin: the viewer pins its type to PDF.

    (Chromium shows no PDF in a sandboxed frame, so the PDF frame cannot carry `sandbox`; the pinned
    type, the server's byte check and the CSP the blob inherits are what keep scripts out.)
    """
    from datetime import datetime, timedelta, timezone
    from io import BytesIO

    from selenium.webdriver.common.by import By

    tool = tool_with(csp=True)
    platform = platforms()
    store_registration(tool, platform, auth_login_url=lms_url(platform, "/auth"))
    teacher_api = api_user(tool, platform, "instructor", "teacher-1")
    now = datetime.now(timezone.utc)
    session_id = teacher_api.post("/api/class-sessions/", json={
        "title": "Lecture", "starts_at": (now - timedelta(hours=2)).isoformat(),
        "ends_at": (now - timedelta(hours=1)).isoformat()}).get_json()["class_session"]["id"]
    sent = api_user(tool, platform, "learner", "student-1").post(
        "/api/submit-justification/", data={"class_session_id": str(session_id), "reason": "Doctor",
                                            "document": (BytesIO(PDF), "note.pdf")},
        content_type="multipart/form-data")
    assert sent.status_code == 201, sent.get_json()

    platform.auth_claims = lambda login_hint, message_hint: dict(role="instructor", sub="teacher-1")
    src = login_url(tool.url, platform)
    platform.handlers["/course"] = lambda request: course_page(src, platform_storage=False)
    driver = browser()
    enter_tool_frame(driver, platform)
    card = "#justifications li[data-justification-id] [data-action=view-document]"
    wait_for_js(driver, f"return document.querySelector('{card}')")
    driver.find_element(By.CSS_SELECTOR, card).click()
    frame = wait_for_js(driver, "return document.querySelector('#document-frame iframe')")
    assert frame.get_attribute("src").startswith("blob:" + tool.url)
    # The browser took it for a PDF (its viewer), not for a document of the tool's.
    assert wait_for_js(driver, "var f = document.querySelector('#document-frame iframe');"
                               "return f.contentDocument && f.contentDocument.readyState === 'complete'"
                               " && f.contentDocument.contentType") == "application/pdf"
