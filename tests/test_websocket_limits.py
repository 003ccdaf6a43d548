"""Live sockets that cannot take the tool down, and that end when their launch does.

The attacker is a student with a valid launch token who opens socket after socket: on gunicorn's gevent
worker (the README's production command) and on a threaded gunicorn (what the contract also allows),
plain HTTP keeps answering, and the caps per user, per class session and per process hold. The pages
open their socket with a single-use ticket, never with the launch token in the URL; a socket closes
when its launch expires or its platform is deactivated.
"""
from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
import simple_websocket
from simple_websocket import ConnectionClosed
from werkzeug.serving import make_server

from attendance.web import sockets
from extensions import db
from lti.models import Deployment, Registration
from lti.store import get_store
from tests.support.api import ApiUser, fast_launch
from tests.support.browser import browser, lms, open_course, tool, wait_for_js  # noqa: F401 - fixtures
from tests.support.clock import store_time
from tests.support.launch import Launcher, meta, register_platform
from tests.support.platform import Platform
from tests.support.processes import flask_cli, free_port, serve_gunicorn, stop
from tests.support.websocket import WebSocketClient, handshake_status, http_launch, session_body

ROOT = Path(__file__).resolve().parent.parent


# -- helpers -----------------------------------------------------------------------------------
def connect(url: str) -> simple_websocket.Client:
    """Open a socket and read its `connected` message."""
    ws = WebSocketClient.connect(url)
    hello = json.loads(ws.receive(timeout=10) or "{}")
    assert hello.get("type") == "connected", hello
    return ws


def close_code(ws: simple_websocket.Client, timeout: float) -> int | None:
    """Wait until the server closes the socket; answer its close code (None if it stayed open)."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ws.receive(timeout=max(0.05, deadline - time.monotonic()))
    except ConnectionClosed as closed:
        return closed.reason
    return None if ws.connected else ws.close_reason


def stays_open(ws: simple_websocket.Client, seconds: float) -> bool:
    """Whether the socket is still open (and answering pings) after a while."""
    return close_code(ws, seconds) is None


def timed_get(url: str, **kw) -> tuple[int, float]:
    started = time.monotonic()
    response = requests.get(url, timeout=10, **kw)
    return response.status_code, time.monotonic() - started


def http_stays_fast(base: str, student_token: str, rounds: int = 5) -> list[float]:
    """Time plain HTTP calls (the key set and an API GET); each must answer 200 within a second."""
    durations = []
    for _ in range(rounds):
        for path, headers in (("/lti/jwks", {}),
                              ("/api/student/current-classes/", {"Authorization": f"Bearer {student_token}"})):
            status, took = timed_get(base + path, headers=headers)
            assert status == 200, path
            assert took < 1.0, f"{path} took {took:.2f} s with the sockets open"
            durations.append(took)
    return durations


# -- a real gunicorn -----------------------------------------------------------------------------
class RealTool:
    """A gunicorn serving the tool, one platform, a teacher, a student and an open class session."""

    def __init__(self, env: dict, tmp_path: Path, *options: str):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.platform = Platform(product="moodle")
        env = dict(env, TOOL_BASE_URL=self.base)
        self.proc = serve_gunicorn(env, self.port, tmp_path / "gunicorn.log", *options)
        flask_cli(env, "platform", "add", "--issuer", self.platform.issuer, "--client-id", self.platform.client_id,
                  "--auth-login-url", self.platform.auth_url, "--token-url", self.platform.token_url,
                  "--key-set-url", self.platform.jwks_url, "--deployment-id", self.platform.deployment_id)
        self.teacher = http_launch(self.base, self.platform, "instructor", sub="t1")
        self.student = http_launch(self.base, self.platform, "learner", sub="s1", name="Sam")
        created = requests.post(f"{self.base}/api/class-sessions/", json=session_body(), timeout=10,
                                headers={"Authorization": f"Bearer {self.teacher}"})
        assert created.status_code == 201, created.text
        self.session_id = created.json()["class_session"]["id"]
        self.sockets: list[simple_websocket.Client] = []

    def ws_url(self, token: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/attendance/{self.session_id}?token={token}"

    def open(self, token: str) -> simple_websocket.Client:
        ws = connect(self.ws_url(token))
        self.sockets.append(ws)
        return ws

    def close(self) -> None:
        for ws in self.sockets:
            try:
                ws.close()
            except ConnectionClosed:
                pass
        stop(self.proc)
        self.platform.stop()


@pytest.fixture
def real_tool(tool_env, tmp_path):
    tools = []

    def start(*options: str, **settings) -> RealTool:
        env = dict(tool_env, WS_PING_SECONDS="1", **{k: str(v) for k, v in settings.items()})
        tools.append(RealTool(env, tmp_path, *options))
        return tools[-1]

    yield start
    for started in tools:
        started.close()


def test_a_student_holding_many_sockets_does_not_starve_http_on_gevent(real_tool):
    """A student with a valid token opens 20 sockets on one gevent worker: all stay open (the per-user cap is
    raised to let them), none pins a thread, and the key set and the API keep answering within a second."""
    tool = real_tool("-k", "gevent", "-w", "1", "--worker-connections", "1000", WS_MAX_PER_USER=25)
    for _ in range(20):
        tool.open(tool.student)
    http_stays_fast(tool.base, tool.student)
    # The sockets are all alive (they get pings), and a teacher's socket still gets live messages.
    assert all(stays_open(ws, 0.1) for ws in tool.sockets)
    teacher_ws = tool.open(tool.teacher)
    issued = requests.post(f"{tool.base}/api/generate-code/", json={"class_session_id": tool.session_id},
                           headers={"Authorization": f"Bearer {tool.teacher}"}, timeout=10)
    assert issued.status_code == 200
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        message = json.loads(teacher_ws.receive(timeout=deadline - time.monotonic()) or "{}")
        if message.get("type") == "code_generated":
            assert message["code"] == issued.json()["code"]
            break
    else:
        pytest.fail("the teacher's socket got no code_generated")
    assert stays_open(tool.sockets[0], 1.5)  # still open after a ping interval


def test_on_gevent_a_student_keeps_only_the_newest_sockets(real_tool):
    """With the shipped caps, each socket past WS_MAX_PER_USER (3) closes the student's oldest with 4429."""
    tool = real_tool("-k", "gevent", "-w", "1")
    opened = [tool.open(tool.student) for _ in range(20)]
    http_stays_fast(tool.base, tool.student, rounds=2)
    codes = [close_code(ws, 3) for ws in opened[:-3]]
    assert codes == [sockets.CLOSE_REPLACED] * 17
    assert all(stays_open(ws, 1.5) for ws in opened[-3:])


def test_the_issues_threaded_server_keeps_answering_http(real_tool):
    """The 1 worker x 2 threads server that two sockets froze: sockets take at most half the threads, the
    rest are refused at the handshake with 429, and HTTP keeps answering."""
    tool = real_tool("-w", "1", "--threads", "2")
    first = tool.open(tool.student)
    for _ in range(5):
        status, body = handshake_status(tool.ws_url(tool.student).replace("ws://", "http://"))
        assert status == 429 and body["error"]["code"] == "rate_limited", (status, body)
    teacher_status, _ = handshake_status(tool.ws_url(tool.teacher).replace("ws://", "http://"))
    assert teacher_status == 429  # the cap is per process: one thread stays for HTTP whoever asks
    http_stays_fast(tool.base, tool.student)
    assert stays_open(first, 1.5)
    first.close()
    deadline = time.monotonic() + 5
    while handshake_status(tool.ws_url(tool.teacher).replace("ws://", "http://"))[0] != 101:
        assert time.monotonic() < deadline, "the closed socket's place was not given back"
        time.sleep(0.2)


# -- one tool in this process (exact caps, tickets, expiry) ------------------------------------
class Room:
    """The tool on a real threaded server, its platform, a teacher, students and an open session."""

    def __init__(self, app, platform):
        self.app = app
        self.platform = platform
        self.registration_id = register_platform(app, platform)
        self.httpd = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.port = self.httpd.server_port
        launcher = Launcher(app.test_client())
        self.teacher = fast_launch(launcher, platform, "instructor", sub="t1", name="Teacher")
        self.alice = fast_launch(launcher, platform, "learner", sub="alice", name="Alice")
        self.bob = fast_launch(launcher, platform, "learner", sub="bob", name="Bob")
        self.stranger = fast_launch(launcher, platform, "instructor", sub="t2", context_id="course-2")
        self.session_id = self.new_session()
        self.sockets: list[simple_websocket.Client] = []

    def new_session(self, title: str = "Lecture") -> int:
        created = self.teacher.post("/api/class-sessions/", json=session_body(title))
        assert created.status_code == 201, created.get_json()
        return created.get_json()["class_session"]["id"]

    def url(self, query: str, session_id: int | None = None, scheme: str = "ws") -> str:
        return f"{scheme}://127.0.0.1:{self.port}/ws/attendance/{session_id or self.session_id}?{query}"

    def ticket(self, user: ApiUser, session_id: int | None = None) -> str:
        response = user.post("/api/ws-ticket/", json={"class_session_id": session_id or self.session_id})
        assert response.status_code == 200, response.get_json()
        return response.get_json()["ticket"]

    def open(self, user: ApiUser, session_id: int | None = None) -> simple_websocket.Client:
        ws = connect(self.url(f"ticket={self.ticket(user, session_id)}", session_id))
        self.sockets.append(ws)
        return ws

    def refusal(self, query: str, session_id: int | None = None) -> tuple[int, dict | None]:
        return handshake_status(self.url(query, session_id, scheme="http"))

    def stop(self):
        for ws in self.sockets:
            try:
                ws.close()
            except ConnectionClosed:
                pass
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def room(make_app):
    rooms = []
    platform = Platform(product="moodle")

    def build(**settings) -> Room:
        rooms.append(Room(make_app(**{"WS_PING_SECONDS": 1, **settings}), platform))
        return rooms[-1]

    yield build
    for built in rooms:
        built.stop()
    platform.stop()


def test_a_reload_past_the_per_user_cap_closes_the_oldest_socket(room):
    """A student with a valid token opening a third socket (cap 2) is not locked out: their oldest closes."""
    r = room(WS_MAX_PER_USER=2)
    first, second = r.open(r.alice), r.open(r.alice)
    bobs = r.open(r.bob)  # another student is not affected
    third = r.open(r.alice)
    assert close_code(first, 5) == sockets.CLOSE_REPLACED
    assert all(stays_open(ws, 1.5) for ws in (second, third, bobs))


def test_the_per_session_cap_refuses_with_429_until_a_socket_closes(room):
    r = room(WS_MAX_PER_SESSION=2)
    teacher_ws = r.open(r.teacher)
    alice_ws = r.open(r.alice)
    status, body = r.refusal(f"ticket={r.ticket(r.bob)}")
    assert status == 429 and body["success"] is False and body["error"]["code"] == "rate_limited"
    other = r.new_session("Other")  # the cap is per session: another session still has room
    r.open(r.bob, other)
    alice_ws.close()
    deadline = time.monotonic() + 5
    while (status := r.refusal(f"ticket={r.ticket(r.bob)}")[0]) != 101:
        assert status == 429 and time.monotonic() < deadline, status
        time.sleep(0.1)
    assert stays_open(teacher_ws, 0.2)


def test_the_per_process_cap_refuses_with_429(room):
    r = room(WS_MAX_PER_PROCESS=1)
    r.open(r.teacher)
    status, body = r.refusal(f"ticket={r.ticket(r.alice)}")
    assert status == 429 and body["error"]["code"] == "rate_limited"
    status, _ = r.refusal(f"token={r.alice.token}")  # the same cap for API clients
    assert status == 429


def test_a_ticket_opens_one_socket_once(room):
    """A student with a valid token gets a ticket; whoever replays it (from a log, a proxy) is refused."""
    r = room()
    ticket = r.ticket(r.alice)
    with r.app.app_context():  # stored only as a hash: whoever reads the store cannot use what they see
        assert get_store().get(sockets.TICKET_PREFIX + ticket) is None
        assert get_store().get(sockets._ticket_key(ticket)) is not None
    ws = connect(r.url(f"ticket={ticket}"))
    r.sockets.append(ws)
    status, body = r.refusal(f"ticket={ticket}")
    assert status == 401 and body["error"]["code"] == "authentication_required"
    for bad in ("", "x", ticket[:-2] + "AA", "A" * 500):
        assert r.refusal(f"ticket={bad}")[0] == 401


def test_an_expired_ticket_is_refused(room, monkeypatch):
    r = room(WS_TICKET_TTL=1)
    ticket = r.ticket(r.alice)
    with r.app.app_context():
        let_pass = store_time(get_store(), monkeypatch)
    let_pass(1.6)
    status, body = r.refusal(f"ticket={ticket}")
    assert status == 401 and body["error"]["code"] == "authentication_required"


def test_a_ticket_is_for_its_own_session_and_course(room):
    r = room()
    other = r.new_session("Other")
    status, body = r.refusal(f"ticket={r.ticket(r.alice)}", other)
    assert status == 403 and body["error"]["code"] == "permission_denied"
    # A teacher of another course cannot get a ticket for this course's session (it looks missing).
    response = r.stranger.post("/api/ws-ticket/", json={"class_session_id": r.session_id})
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"


def test_a_socket_closes_when_its_launch_token_expires(room):
    """Sockets opened by ticket and by token both end at the launch's expiry, with 4401."""
    r = room(LAUNCH_TOKEN_TTL=6)
    opened = time.monotonic()
    by_ticket = r.open(r.alice)
    by_token = connect(r.url(f"token={r.bob.token}"))
    r.sockets.append(by_token)
    assert close_code(by_ticket, 10) == sockets.CLOSE_EXPIRED
    assert close_code(by_token, 3) == sockets.CLOSE_EXPIRED
    assert time.monotonic() - opened < 8  # at the expiry, not at some later ping
    status, _ = r.refusal(f"token={r.bob.token}")
    assert status == 401  # and it cannot come back


@pytest.mark.parametrize("what", ["registration", "deployment"])
def test_a_socket_closes_when_its_platform_is_deactivated(room, what):
    """A malicious platform's admin is cut off: deactivating it closes its open sockets within a re-check."""
    r = room(ACTIVE_CHECK_SECONDS=1)
    teacher_ws, student_ws = r.open(r.teacher), r.open(r.alice)
    with r.app.app_context():
        if what == "registration":
            db.session.get(Registration, r.registration_id).active = False
        else:
            for deployment in db.session.scalars(db.select(Deployment).filter_by(registration_id=r.registration_id)):
                deployment.active = False
        db.session.commit()
    started = time.monotonic()
    assert close_code(teacher_ws, 6) == sockets.CLOSE_EXPIRED
    assert close_code(student_ws, 3) == sockets.CLOSE_EXPIRED
    assert time.monotonic() - started < 6


def test_inbound_messages_are_dropped_and_large_ones_close_the_socket(room):
    """A student flooding their socket with messages does not grow the server's memory; a big frame closes it."""
    r = room()
    ws = r.open(r.alice)
    for _ in range(200):
        ws.send("x" * 1000)
    assert stays_open(ws, 1.5)
    ws.send("x" * 10_000)
    assert close_code(ws, 5) is not None


# -- defaults per server ---------------------------------------------------------------------------
def test_the_default_process_cap_suits_the_server(make_app):
    app = make_app()
    with app.app_context():
        assert sockets.process_cap({"wsgi.multithread": True, "SERVER_SOFTWARE": "Werkzeug/3.1"}) == 100
        assert sockets.process_cap({"SERVER_SOFTWARE": "gunicorn/23"}) == 0  # sync worker: the main thread

        def in_pool():
            with app.app_context():
                return sockets.process_cap({"SERVER_SOFTWARE": "gunicorn/23"})

        with ThreadPoolExecutor(max_workers=8) as pool:  # gunicorn's gthread worker: half of --threads
            assert pool.submit(in_pool).result() == 4
        app.config["WS_MAX_PER_PROCESS"] = 7
        assert sockets.process_cap({}) == 7


# -- the pages ---------------------------------------------------------------------------------------
def test_the_pages_build_socket_urls_from_tickets_only():
    common = (ROOT / "static" / "js" / "socket.js").read_text()
    helper = common[common.index("function liveSocket"):]
    assert "/api/ws-ticket/" in helper and "?ticket=" in helper
    assert "?token=" not in common and "token=" not in helper.replace("{ token: token }", "")
    for page in sorted((ROOT / "static").rglob("*.js")):
        if page.name != "socket.js":
            assert "/ws/" not in page.read_text(), page.name  # every page goes through the shared helper


@pytest.mark.browser
def test_the_pages_open_one_socket_each_with_a_ticket_never_the_token(browser, tool, lms):
    """In Chromium: the student page with two open classes opens one socket, which still brings the change to
    the class it was not opened on; the teacher's dashboard opens one; no socket URL carries `token=`."""
    from datetime import datetime, timedelta, timezone

    app = tool.flask_app
    handshakes: list[str] = []
    inner = app.wsgi_app

    def recording(environ, start_response):
        if environ.get("PATH_INFO", "").startswith("/ws/"):
            handshakes.append(environ.get("QUERY_STRING", ""))
        return inner(environ, start_response)

    app.wsgi_app = recording
    client = app.test_client()  # the teacher's other window, on the API
    auth = Launcher.auth_request(client.get("/lti/login?" + lms.login_query(tool.url + "/lti/launch")))
    launched = client.post("/lti/launch", data={"state": auth["state"], "id_token": lms.sign(lms.claims(
        "instructor", nonce=auth["nonce"], sub="teacher-1", name="Ada Lovelace", ags=False, nrps=False))})
    assert launched.status_code == 200, launched.get_data(as_text=True)[:500]
    teacher_api = ApiUser(client, meta(launched.get_data(as_text=True), "launch-token"))
    now = datetime.now(timezone.utc)
    ids = []
    for title, minutes_ago in (("Lecture A", 10), ("Lecture B", 1)):
        ids.append(teacher_api.post("/api/class-sessions/", json={
            "title": title, "starts_at": (now - timedelta(minutes=minutes_ago)).isoformat(),
            "ends_at": (now + timedelta(hours=1)).isoformat()}).get_json()["class_session"]["id"])
        assert teacher_api.post("/api/generate-code/", json={"class_session_id": ids[-1]}).status_code == 200

    def open_sockets() -> int:
        found = app.extensions.get(sockets.REGISTRY_KEY)
        return found.counts()["total"] if found else 0

    student = browser("student")
    assert open_course(student, lms, "student") == "student"
    for session_id in ids:
        wait_for_js(student, f"return document.querySelector('#current-classes li[data-class-session-id=\"{session_id}\"]')")
    deadline = time.monotonic() + 10
    while open_sockets() < 1:
        assert time.monotonic() < deadline, "the student page opened no socket"
        time.sleep(0.1)
    time.sleep(1.5)  # room for a second socket, if the page wrongly opened one per class
    assert len(handshakes) == 1 and open_sockets() == 1

    # The teacher records the student absent in the class the socket was not opened on: it arrives live.
    students = teacher_api.get("/api/students/").get_json()["students"]
    grace = next(s["id"] for s in students if s["name"] == "Grace Hopper")
    assert teacher_api.post("/api/mark-attendance/", json={"class_session_id": ids[1], "student_id": grace,
                                                           "status": "absent"}).status_code == 200
    assert "Lecture B" in wait_for_js(student, "return document.getElementById('live-message').textContent", 10)
    assert wait_for_js(student, f"return document.querySelector('#current-classes li[data-class-session-id="
                                f"\"{ids[1]}\"]').dataset.myStatus") == "absent"

    teacher = browser("teacher")
    assert open_course(teacher, lms, "teacher") == "teacher"
    wait_for_js(teacher, "return document.getElementById('live-state').dataset.state === 'live'")
    time.sleep(1)
    assert len(handshakes) == 2 and open_sockets() == 2
    assert all(q.startswith("ticket=") and "token=" not in q for q in handshakes), handshakes
