"""Issue 7's smaller hardening items, each as the attack it stops.

Rate limits on the LTI entry points and on pending login states (an anonymous visitor flooding
them), JSON depth and size caps on the API (a student with a valid token posting a parser bomb),
the secret key file (a local user reading it; two workers starting at once), TOOL_BASE_URL (an
anonymous visitor choosing the URLs handed to an LMS with a Host header) and bulk validation.
"""
from __future__ import annotations

import io
import json
import os
import random
import stat
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

import config
from attendance.models import AttendanceRecord, ClassSession, Course, Enrollment, User
from attendance.web.inputs import json_depth
from extensions import db
from lti.models import StoreEntry
from tests.support.api import assert_error, fast_launch
from tests.support.launch import Launcher, register_platform
from tests.support.platform import Platform

ROOT = Path(__file__).resolve().parent.parent


def session_body(**extra) -> dict:
    now = datetime.now(timezone.utc)
    return {"title": "Lecture", "starts_at": (now - timedelta(minutes=2)).isoformat(),
            "ends_at": (now + timedelta(hours=1)).isoformat(), **extra}


@pytest.fixture
def world(make_app):
    """Build an app with the given overrides, a Moodle registered with it, and a launcher on it."""
    platforms = []

    def build(**overrides):
        app = make_app(**overrides)
        platform = Platform(product="moodle")
        platforms.append(platform)
        register_platform(app, platform)
        return app, platform, Launcher(app.test_client())

    yield build
    for platform in platforms:
        platform.stop()


def from_address(address: str) -> dict:
    return {"environ_base": {"REMOTE_ADDR": address}}


# -- rate limits on /lti/login, /lti/launch and /lti/register ------------------------------------
def test_anonymous_visitor_flooding_the_lti_entry_points_gets_429_per_address(make_app):
    app = make_app(LTI_RATE_LIMIT="5 per minute")
    client = app.test_client()
    answers = [client.get("/lti/login?iss=https://nowhere.example&login_hint=x"),
               client.post("/lti/launch", data={"state": "s", "id_token": "t"}),
               client.get("/lti/register"),
               client.post("/lti/login", data={"iss": "https://nowhere.example"}),
               client.post("/lti/launch")]
    assert all(r.status_code != 429 for r in answers), [r.status_code for r in answers]
    refused = client.get("/lti/login?iss=https://nowhere.example&login_hint=x")
    assert refused.status_code == 429
    assert refused.mimetype == "text/html"  # a browser endpoint: a page, not JSON
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert "Traceback" not in refused.get_data(as_text=True)
    for call in (lambda: client.post("/lti/launch"), lambda: client.get("/lti/register")):
        assert call().status_code == 429
    # Asked for JSON, the same refusal comes in the API's error shape.
    as_json = client.get("/lti/register", headers={"Accept": "application/json"})
    assert_error(as_json, 429, "rate_limited")
    assert int(as_json.headers["Retry-After"]) >= 1
    # Another address is counted apart, and the other LTI pages are not limited.
    assert client.get("/lti/register", **from_address("192.0.2.7")).status_code != 429
    assert client.get("/lti/jwks").status_code == 200
    assert client.get("/lti/config").status_code == 200


def test_forged_forwarded_for_does_not_escape_the_limit_without_trusted_proxies(make_app):
    app = make_app(LTI_RATE_LIMIT="3 per minute")
    client = app.test_client()
    codes = [client.get("/lti/register", headers={"X-Forwarded-For": f"198.51.100.{i}"}).status_code
             for i in range(5)]
    assert codes[3:] == [429, 429], codes


def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget(make_app):
    app = make_app(LTI_RATE_LIMIT="2 per minute", TRUSTED_PROXIES=1)
    client = app.test_client()

    def register(address):
        return client.get("/lti/register", headers={"X-Forwarded-For": address}).status_code

    assert [register("203.0.113.1") for _ in range(3)][2] == 429
    assert register("203.0.113.2") != 429


def test_an_ipv6_client_cannot_escape_the_limit_by_changing_addresses_in_its_64(make_app):
    app = make_app(LTI_RATE_LIMIT="2 per minute")
    client = app.test_client()
    codes = [client.get("/lti/register", **from_address(f"2001:db8:1:2::{i:x}")).status_code for i in range(1, 4)]
    assert codes[2] == 429, codes
    assert client.get("/lti/register", **from_address("2001:db8:1:3::1")).status_code != 429


def test_default_limit_lets_a_campus_behind_one_nat_launch(world):
    app, moodle, launcher = world()
    assert app.config["LTI_RATE_LIMIT"] == "6000 per minute"
    for n in range(30):  # a lecture hall launching at once, all from one address
        fast_launch(launcher, moodle, "learner", sub=f"s{n}")


# -- a bound on pending login states -------------------------------------------------------------
def pending_states(app) -> int:
    with app.app_context():
        if app.config["REDIS_URL"]:
            store = app.extensions["lti_store"]
            return sum(1 for _ in store.redis.scan_iter(store.prefix + "lti_state:*"))
        return db.session.scalar(select(func.count()).select_from(StoreEntry).where(
            StoreEntry.key.like("lti_state:%")))


def test_anonymous_visitor_cannot_fill_the_store_with_login_states(world):
    app, moodle, launcher = world(LTI_PENDING_STATES_PER_ADDRESS="4 per 10 minutes")
    for _ in range(4):
        assert launcher.login(moodle).status_code == 302
    refused = launcher.login(moodle)
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert pending_states(app) == 4  # the refused login stored nothing
    # A login from another address still works: the bound is per address, not global.
    other = launcher.client.get("/lti/login?" + moodle.login_query("http://localhost/lti/launch"),
                                **from_address("192.0.2.50"))
    assert other.status_code == 302
    assert pending_states(app) == 5


def test_logins_of_unknown_platforms_do_not_use_the_pending_state_budget(world):
    app, moodle, launcher = world(LTI_PENDING_STATES_PER_ADDRESS="2 per 10 minutes")
    for _ in range(5):
        assert launcher.client.get("/lti/login?iss=https://nowhere.example&login_hint=x").status_code == 403
    assert launcher.login(moodle).status_code == 302


# -- JSON depth and size on the API ---------------------------------------------------------------
BOMBS = {  # under the size cap, so the nesting check is what answers; beyond it, the size check answers first
    "nested-arrays": ("[" * 100000, 400, "bad_request"),
    "nested-objects": ('{"a":' * 25000, 400, "bad_request"),
    "nested-objects-250k": ('{"a":' * 50000, 413, "payload_too_large"),
}


@pytest.fixture
def api_users(world):
    app, moodle, launcher = world()
    teacher = fast_launch(launcher, moodle, "instructor", sub="t")
    student = fast_launch(launcher, moodle, "learner", sub="s")
    session_id = teacher.post("/api/class-sessions/", json=session_body()).get_json()["class_session"]["id"]
    return app, teacher, student, session_id


def count_rows(app) -> tuple:
    with app.app_context():
        return tuple(db.session.scalar(select(func.count()).select_from(model))
                     for model in (ClassSession, AttendanceRecord, User, Course))


ENDPOINTS = [("teacher", "/api/class-sessions/"), ("teacher", "/api/validate-attendance/"),
             ("teacher", "/api/close-session/"), ("teacher", "/api/course-settings/"),
             ("student", "/api/submit-attendance/"), ("student", "/api/submit-justification/")]


@pytest.mark.parametrize("bomb", BOMBS)
def test_user_with_a_valid_token_posting_deeply_nested_json_gets_4xx_not_500(api_users, bomb):
    app, teacher, student, _ = api_users
    body, status, code = BOMBS[bomb]
    before = count_rows(app)
    for who, path in ENDPOINTS:
        user = teacher if who == "teacher" else student
        assert_error(user.post(path, data=body, content_type="application/json"), status, code)
    assert count_rows(app) == before


def test_nesting_is_refused_just_past_the_cap_and_parsed_at_it(api_users):
    app, teacher, _, _ = api_users
    cap = app.config["API_MAX_JSON_DEPTH"]
    at_cap = '{"title": ' + "[" * (cap - 1) + "]" * (cap - 1) + "}"
    past_cap = '{"title": ' + "[" * cap + "]" * cap + "}"
    # Brackets inside strings do not count: this title is an ordinary (invalid) value.
    in_string = json.dumps({"title": "[" * 1000})
    assert_error(teacher.post("/api/class-sessions/", data=at_cap, content_type="application/json"),
                 422, "validation_error", "title")
    assert_error(teacher.post("/api/class-sessions/", data=past_cap, content_type="application/json"),
                 400, "bad_request")
    assert_error(teacher.post("/api/class-sessions/", data=in_string, content_type="application/json"),
                 422, "validation_error", "starts_at")


def test_user_with_a_valid_token_posting_a_megabyte_of_json_gets_413(api_users):
    app, teacher, student, session_id = api_users
    big = json.dumps({"title": "x" * (1024 * 1024), "class_session_id": session_id})
    before = count_rows(app)
    for who, path in ENDPOINTS:
        user = teacher if who == "teacher" else student
        assert_error(user.post(path, data=big, content_type="application/json"), 413, "payload_too_large")
    assert count_rows(app) == before


def test_a_chunked_json_body_without_length_is_capped_too(api_users):
    app, teacher, _, _ = api_users
    body = json.dumps({"title": "x" * (300 * 1024)}).encode()
    response = teacher.client.post("/api/class-sessions/", input_stream=io.BytesIO(body),
                                   content_type="application/json",
                                   headers={**teacher.headers(), "Transfer-Encoding": "chunked"},
                                   environ_base={"wsgi.input_terminated": True})
    assert_error(response, 413, "payload_too_large")


def test_the_largest_legitimate_body_still_fits(api_users):
    _, teacher, _, _ = api_users
    ids = [2_100_000_000 + i for i in range(5000)]  # the most ids validate-attendance accepts, ten digits each
    body = json.dumps({"attendance_ids": ids, "status": "present", "remark": "r" * 2000}, indent=1)
    assert len(body) > 64 * 1024
    assert_error(teacher.post("/api/validate-attendance/", data=body, content_type="application/json"),
                 404, "not_found")  # parsed and looked up: no such records, not "too large"


def test_json_depth_counts_brackets_outside_strings_only():
    assert json_depth(b'{"a": [1, {"b": []}]}') == 4
    assert json_depth(b'{"a": "[[[[\\"{{{"}') == 1
    assert json_depth(b"[" * 100000, stop_above=32) == 33


# -- the secret key file --------------------------------------------------------------------------
def test_generated_secret_key_is_never_readable_by_others(tmp_path, monkeypatch):
    """A local user must not read the key, even in the moment between creating the file and a chmod."""
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.setattr(os, "chmod", lambda *a, **k: None)  # only the mode given at creation counts
    old_umask = os.umask(0)
    try:
        key = config._secret_key(tmp_path / "instance", production=False)
    finally:
        os.umask(old_umask)
    path = tmp_path / "instance" / "secret_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == key and len(key) >= 32
    assert config._secret_key(tmp_path / "instance", production=False) == key  # kept across restarts


def test_workers_starting_at_once_share_one_secret_key(tmp_path):
    """Two gunicorn workers booting together must sign with the same key, or each refuses the other's tokens."""
    instance = tmp_path / "instance"
    start_at = time.time() + 1.5
    code = ("import os, sys, time; os.environ.pop('SECRET_KEY', None); from pathlib import Path; import config\n"
            f"time.sleep(max(0, {start_at} - time.time()))\n"
            f"print(config._secret_key(Path({str(instance)!r}), False))")
    env = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(6)]
    keys = {p.communicate(timeout=60)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs)
    assert keys == {(instance / "secret_key").read_text().strip()}


def test_threads_starting_at_once_share_one_secret_key(tmp_path, monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    barrier = threading.Barrier(12)
    keys = []

    def start():
        barrier.wait()
        keys.append(config._secret_key(tmp_path, False))

    threads = [threading.Thread(target=start) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(keys) == 12 and set(keys) == {(tmp_path / "secret_key").read_text().strip()}


def test_a_key_file_still_being_written_is_waited_for(tmp_path, monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    path = tmp_path / "secret_key"
    path.touch(mode=0o600)  # another process created it and has not written yet
    writer = threading.Timer(0.2, lambda: path.write_text("written-by-the-other-process"))
    writer.start()
    try:
        assert config._secret_key(tmp_path, False) == "written-by-the-other-process"
    finally:
        writer.join()


# -- TOOL_BASE_URL --------------------------------------------------------------------------------
def test_production_refuses_to_start_without_tool_base_url(tmp_path, monkeypatch):
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", "a-production-secret")
    monkeypatch.delenv("TOOL_BASE_URL", raising=False)
    with pytest.raises(RuntimeError, match="TOOL_BASE_URL"):
        config.load(tmp_path)
    monkeypatch.setenv("TOOL_BASE_URL", "https://attendance.example.edu/")
    assert config.load(tmp_path)["TOOL_BASE_URL"] == "https://attendance.example.edu"


def test_tool_base_url_must_be_an_http_origin(tmp_path, monkeypatch):
    monkeypatch.setenv("TOOL_BASE_URL", "javascript:alert(1)")
    with pytest.raises(RuntimeError, match="TOOL_BASE_URL"):
        config.load(tmp_path, {"SECRET_KEY": "x"})


def test_anonymous_visitor_cannot_choose_the_urls_given_to_an_lms_with_a_host_header(make_app, monkeypatch):
    monkeypatch.delenv("TOOL_BASE_URL", raising=False)
    monkeypatch.delenv("APP_ENV", raising=False)
    app = make_app(TOOL_BASE_URL=None)
    assert app.config["TOOL_BASE_URL"] == "http://127.0.0.1:5000"
    client = app.test_client()
    for path in ("/lti/canvas.json", "/lti/config"):
        response = client.get(path, headers={"Host": "evil.example"})
        text = response.get_data(as_text=True)
        assert response.status_code == 200
        assert "evil.example" not in text
        assert "http://127.0.0.1:5000/lti/launch" in text
    assert client.get("/lti/canvas.json", base_url="https://evil.example").get_json()["oidc_initiation_url"] == \
        "http://127.0.0.1:5000/lti/login"


# -- bulk validation ------------------------------------------------------------------------------
def test_bulk_validation_of_2000_records_sets_every_status_in_the_requested_order(api_users):
    app, teacher, _, session_id = api_users
    with app.app_context():
        session = db.session.get(ClassSession, session_id)
        registration_id = session.course.registration_id
        course_id = session.course_id
        db.session.execute(insert(User), [{"registration_id": registration_id, "sub": f"bulk-{i}", "name": f"S{i}"}
                                          for i in range(2000)])
        students = db.session.scalars(select(User.id).where(User.sub.like("bulk-%"))).all()
        db.session.execute(insert(Enrollment), [{"course_id": course_id, "user_id": sid, "role": "student"}
                                                for sid in students])
        db.session.execute(insert(AttendanceRecord), [
            {"class_session_id": session_id, "student_id": sid, "status": ("present", "late")[i % 2],
             "source": "checkin"} for i, sid in enumerate(students)])
        db.session.commit()
        ids = db.session.scalars(select(AttendanceRecord.id).where(
            AttendanceRecord.class_session_id == session_id)).all()
    assert len(ids) == 2000
    wanted = random.Random(7).sample(ids, len(ids))
    untouched, chosen = wanted[:500], wanted[500:]
    response = teacher.post("/api/validate-attendance/",
                            json={"attendance_ids": chosen + chosen[:10], "status": "excused", "remark": "bulk"})
    assert response.status_code == 200, response.get_data(as_text=True)[:400]
    answered = response.get_json()["attendances"]
    assert [a["id"] for a in answered] == chosen  # the caller's order, duplicates once
    assert {(a["status"], a["remark"]) for a in answered} == {("excused", "bulk")}
    with app.app_context():
        statuses = dict(db.session.execute(select(AttendanceRecord.id, AttendanceRecord.status)).all())
    assert all(statuses[i] == "excused" for i in chosen)
    assert all(statuses[i] in ("present", "late") for i in untouched)
