"""Helpers for the real-browser tests: a threaded tool server, headless Chromium, an LMS course page.

The tool listens on 127.0.0.1 and the simulated LMS is reached as http://localhost:<port>, so the
tool's iframe in the course page is cross-site, as it is in a real Moodle or Canvas.
"""
from __future__ import annotations

import json
import os
import threading
import time
from html import escape
from urllib.parse import urlencode

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Response

from extensions import db
from lti.models import Registration
from tests.support.launch import register_platform
from tests.support.platform import Platform

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT = 20  # seconds, for every explicit wait

# What chrome() blocks
BLOCK_THIRD_PARTY = "third_party"
BLOCK_ALL = "all"


def browser_available() -> bool:
    """Whether Debian's chromium and chromium-driver are installed."""
    return os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)


class ToolServer:
    """A real HTTP server in a thread for the tool app, recording what the browser sends and gets.

    The server is created before the app so that TOOL_BASE_URL can be the tool's real origin.
    """

    def __init__(self):
        self.app = None
        self.requests: list[dict] = []  # {method, path, cookie, status}
        self._server = make_server("127.0.0.1", 0, self._wsgi, threaded=True)
        self.port = self._server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self, app) -> None:
        self.app = app
        self._thread.start()

    def _wsgi(self, environ, start_response):
        record = {"method": environ["REQUEST_METHOD"], "path": environ.get("PATH_INFO", ""),
                  "cookie": environ.get("HTTP_COOKIE", ""), "status": None}
        self.requests.append(record)

        def recording_start_response(status, headers, exc_info=None):
            record["status"] = int(status.split()[0])
            return start_response(status, headers, exc_info)

        return self.app(environ, recording_start_response)

    def to(self, path: str, method: str | None = None) -> list[dict]:
        return [r for r in self.requests if r["path"] == path and (method is None or r["method"] == method)]

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def chrome(user_data_dir, cookies: str = BLOCK_THIRD_PARTY):
    """A headless Chromium that blocks third-party cookies, or every cookie (cookies=BLOCK_ALL)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--no-default-browser-check", "--window-size=1200,900",
                "--test-third-party-cookie-phaseout", "--enable-features=ThirdPartyStoragePartitioning",
                f"--user-data-dir={user_data_dir}"):
        options.add_argument(arg)
    prefs = {"profile.cookie_controls_mode": 1, "profile.block_third_party_cookies": True}
    if cookies == BLOCK_ALL:
        prefs["profile.default_content_setting_values.cookies"] = 2
    options.add_experimental_option("prefs", prefs)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(WAIT)
    driver.set_script_timeout(WAIT)
    return driver


# -- the LMS side ------------------------------------------------------------------------------

# The platform half of LTI Platform Storage: answers lti.capabilities / lti.put_data / lti.get_data
# from any frame, keeping values per sender origin.
PLATFORM_STORAGE_JS = """
<script>
window.ltiStore = {};
window.ltiMessages = [];
window.addEventListener("message", function (event) {
  var data = event.data;
  if (!data || typeof data !== "object" || typeof data.subject !== "string") return;
  window.ltiMessages.push({origin: event.origin, subject: data.subject, key: data.key});
  var reply = {subject: data.subject + ".response", message_id: data.message_id};
  if (data.subject === "lti.capabilities") {
    reply.supported_messages = [{subject: "lti.put_data"}, {subject: "lti.get_data"}];
  } else if (data.subject === "lti.put_data") {
    window.ltiStore[event.origin + " " + data.key] = data.value;
    reply.key = data.key; reply.value = data.value;
  } else if (data.subject === "lti.get_data") {
    var id = event.origin + " " + data.key;
    reply.key = data.key;
    reply.value = Object.prototype.hasOwnProperty.call(window.ltiStore, id) ? window.ltiStore[id] : null;
  } else {
    return;
  }
  event.source.postMessage(reply, event.origin);
});
</script>
"""


def course_page(iframe_src: str, *, platform_storage: bool) -> Response:
    html = ("<!doctype html><html><head><meta charset='utf-8'><title>Physics 101</title></head><body>"
            "<h1>Physics 101</h1>"
            + (PLATFORM_STORAGE_JS if platform_storage else "")
            + f'<iframe name="tool" id="tool" src="{escape(iframe_src)}" width="1000" height="700" '
              'allow="clipboard-write"></iframe></body></html>')
    return Response(html, mimetype="text/html")


def login_url(tool_url: str, platform, **extra) -> str:
    params = {"iss": platform.issuer, "login_hint": "hint-42", "target_link_uri": tool_url + "/lti/launch",
              "client_id": platform.client_id, "lti_deployment_id": platform.deployment_id}
    params.update(extra)
    return tool_url + "/lti/login?" + urlencode(params)


def lms_url(platform, path: str) -> str:
    """The LMS page's URL on a site other than the tool's (localhost, not 127.0.0.1)."""
    return f"http://localhost:{platform.port}{path}"


def add_cookie_probe(platform) -> None:
    """Endpoints proving how this browser treats cookies of a cross-site iframe.

    /probe-top (opened as localhost) frames /probe-set on 127.0.0.1, which sets an unpartitioned and
    a partitioned SameSite=None cookie and then loads /probe-echo, whose body lists the cookies the
    browser sent back.
    """
    def top(request):
        src = f"http://127.0.0.1:{platform.port}/probe-set"
        return Response(f'<!doctype html><iframe name="probe" src="{src}"></iframe>', mimetype="text/html")

    def set_cookies(request):
        response = Response('<!doctype html><script>location.replace("/probe-echo")</script>', mimetype="text/html")
        response.headers.add("Set-Cookie", "probe_unpartitioned=1; Path=/; Secure; SameSite=None")
        response.headers.add("Set-Cookie", "probe_partitioned=1; Path=/; Secure; SameSite=None; Partitioned")
        return response

    def echo(request):
        names = sorted(request.cookies.keys())
        return Response(f"<!doctype html><body data-cookies='{escape(json.dumps(names))}'>{escape(' '.join(names))}"
                        "</body>", mimetype="text/html")

    platform.handlers.update({"/probe-top": top, "/probe-set": set_cookies, "/probe-echo": echo})


def cookies_sent_to_iframe(driver, platform, top_host: str = "localhost") -> list[str]:
    """Open the cookie probe with the top page on top_host; answer the cookie names the iframe got back.

    The iframe is on 127.0.0.1: top_host "localhost" makes it cross-site, "127.0.0.1" first-party.
    """
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    add_cookie_probe(platform)
    driver.switch_to.default_content()
    driver.get(f"http://{top_host}:{platform.port}/probe-top")
    WebDriverWait(driver, WAIT).until(EC.frame_to_be_available_and_switch_to_it("probe"))
    names = wait_for_js(driver, "return document.body && document.body.dataset.cookies || null")
    driver.switch_to.default_content()
    return json.loads(names)


def wait_for_js(driver, script: str, timeout: float = WAIT):
    """Poll a script in the current frame until it answers something truthy (ignoring navigations)."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    def probe(d):
        try:
            return d.execute_script(script)
        except WebDriverException:
            return None

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(probe, f"waiting for: {script}")


def open_alert_text(driver) -> str | None:
    """Answer the text of the JavaScript dialog open in the browser (dismissing it), or None."""
    from selenium.common.exceptions import NoAlertPresentException

    try:
        alert = driver.switch_to.alert
        text = alert.text
    except NoAlertPresentException:
        return None
    alert.dismiss()
    return text


# -- a course in an LMS page, the tool framed in it: fixtures for tests that import them ------------------
USERS = {
    "teacher-hint": {"role": "instructor", "sub": "teacher-1", "name": "Ada Lovelace"},
    "student-hint": {"role": "learner", "sub": "student-1", "name": "Grace Hopper"},
}


@pytest.fixture
def tool(make_app):
    """The tool served on a real port, its Flask app as `flask_app`."""
    server = ToolServer()
    app = make_app(TOOL_BASE_URL=server.url)
    server.start(app)
    server.flask_app = app
    yield server
    server.stop()


@pytest.fixture
def lms(tool):
    """One LMS course with a page per user; the iframe may use geolocation, as Canvas and Moodle allow."""
    platform = Platform(product="moodle")
    registration_id = register_platform(tool.flask_app, platform)
    with tool.flask_app.app_context():
        db.session.get(Registration, registration_id).auth_login_url = lms_url(platform, "/auth")
        db.session.commit()
    platform.auth_claims = lambda login_hint, message_hint: dict(USERS[login_hint])

    def course_page(login_hint):
        src = login_url(tool.url, platform, login_hint=login_hint)

        def handler(request):
            return Response("<!doctype html><html><head><meta charset='utf-8'><title>Physics 101</title></head><body>"
                            "<h1 style='font:600 20px sans-serif;margin:8px'>Physics 101 · Moodle</h1>"
                            f'<iframe name="tool" id="tool" src="{escape(src)}" width="1180" height="1400" '
                            'allow="geolocation; clipboard-write" style="border:1px solid #ccc"></iframe></body></html>',
                            mimetype="text/html")
        return handler

    for hint in USERS:
        platform.handlers[f"/course/{hint.split('-')[0]}"] = course_page(hint)
    yield platform
    platform.stop()


@pytest.fixture
def browser(tmp_path):
    """A factory of headless Chromiums, one profile each, all quit at teardown."""
    if not browser_available():
        pytest.skip("needs /usr/bin/chromium and /usr/bin/chromedriver")
    drivers = []

    def factory(name):
        driver = chrome(tmp_path / f"profile-{name}")
        drivers.append(driver)
        return driver

    yield factory
    for driver in drivers:
        driver.quit()


def place(driver, platform, tool, latitude, longitude, accuracy):
    """Fake the browser's position and let both the LMS page and the tool's frame read it."""
    driver.execute_cdp_cmd("Emulation.setGeolocationOverride",
                           {"latitude": latitude, "longitude": longitude, "accuracy": accuracy})
    for origin in (tool.url, lms_url(platform, "")):
        driver.execute_cdp_cmd("Browser.grantPermissions", {"origin": origin, "permissions": ["geolocation"]})


def open_course(driver, platform, who):
    """Open the user's course page in the LMS and switch into the tool's iframe, once its page is ready."""
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(lms_url(platform, f"/course/{who}"))
    WebDriverWait(driver, WAIT).until(EC.frame_to_be_available_and_switch_to_it("tool"))
    wait_for_js(driver, "return document.body && document.body.dataset.role")
    return driver.execute_script("return document.body.dataset.role")


def click(driver, selector: str, attempts: int = 20) -> None:
    """Click the element matching selector, finding it again if a live update re-rendered it meanwhile."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By

    for attempt in range(attempts):
        try:
            driver.find_element(By.CSS_SELECTOR, selector).click()
            return
        except (StaleElementReferenceException, NoSuchElementException):
            if attempt == attempts - 1:
                raise
            time.sleep(0.25)
