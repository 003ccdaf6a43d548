import pytest
from tests.test_browser import *  # noqa
from tests import browser as B
from selenium import webdriver

def test_no_blocking(tmp_path, lms, monkeypatch):
    orig = webdriver.ChromeOptions.add_experimental_option
    args = webdriver.ChromeOptions.add_argument
    monkeypatch.setattr(webdriver.ChromeOptions, "add_experimental_option", lambda self, k, v: None)
    monkeypatch.setattr(webdriver.ChromeOptions, "add_argument",
        lambda self, a: None if "third-party" in a.lower() else args(self, a))
    d = B.chrome(tmp_path / "p")
    try:
        print("NO BLOCK:", B.cookies_sent_to_cross_site_iframe(d, lms()))
    finally:
        d.quit()

def test_prefs_only(tmp_path, lms, monkeypatch):
    args = webdriver.ChromeOptions.add_argument
    monkeypatch.setattr(webdriver.ChromeOptions, "add_argument",
        lambda self, a: None if "third-party" in a.lower() else args(self, a))
    d = B.chrome(tmp_path / "p")
    try:
        print("PREFS ONLY:", B.cookies_sent_to_cross_site_iframe(d, lms()))
    finally:
        d.quit()

def test_unpartitioned_tool_cookie(browser, make_app, monkeypatch):
    server = ToolServer()
    app = make_app(TOOL_BASE_URL=server.url, LTI_COOKIE_PARTITIONED=False)
    server.start(app)
    p = make_platform("moodle")
    rid = register_platform(app, p)
    with app.app_context():
        row = db.session.get(Registration, rid); row.auth_login_url = lms_url(p, "/auth"); db.session.commit()
    p.auth_claims = lambda h, m: dict(role="instructor")
    src = login_url(server.url, p)
    p.handlers["/course"] = lambda r: course_page(src, platform_storage=False)
    d = browser()
    open_tool(d, p)
    print("UNPARTITIONED ->", tool_body(d, "error"), [(r["path"], r["status"], bool(r["cookie"])) for r in server.requests])
    server.stop(); p.stop()
