"""The live WebSocket /ws/attendance/<class_session_id>?token=..., on a real server.

A teacher's socket receives every message of the session; a student's socket only the changes to
their own record; anyone else is refused before the upgrade. With Redis, a teacher connected to one
server process sees a check-in received by another.
"""
from __future__ import annotations

import threading
import uuid

import pytest
import requests
import simple_websocket
from werkzeug.serving import make_server

from tests.support.api import ApiUser, fast_launch
from tests.support.launch import Launcher, register_platform
from tests.support.platform import Platform
from tests.support.processes import flask_cli, free_port, serve
from tests.support.websocket import Socket, handshake_status, http_launch, session_body


# -- one real server in this process -----------------------------------------------------------
@pytest.fixture(scope="module")
def platform():
    lms = Platform(product="moodle")
    yield lms
    lms.stop()


@pytest.fixture
def server(app):
    """The tool on a real HTTP server (werkzeug, threaded), sharing the app (and database) with the test client."""
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_port
    httpd.shutdown()
    httpd.server_close()


class Classroom:
    def __init__(self, app, platform, port):
        register_platform(app, platform)
        self.port = port
        launcher = Launcher(app.test_client())
        self.teacher = fast_launch(launcher, platform, "instructor", sub="t1", name="Teacher")
        self.alice = fast_launch(launcher, platform, "learner", sub="alice", name="Alice")
        self.bob = fast_launch(launcher, platform, "learner", sub="bob", name="Bob")
        self.other_teacher = fast_launch(launcher, platform, "instructor", sub="t2", context_id="course-2")
        self.other_student = fast_launch(launcher, platform, "learner", sub="u2", context_id="course-2")
        self.nobody = fast_launch(launcher, platform, "none", sub="n1")
        self.account_admin = fast_launch(launcher, platform, "account_admin", sub="a1")
        created = self.teacher.post("/api/class-sessions/", json=session_body())
        assert created.status_code == 201
        self.session_id = created.get_json()["class_session"]["id"]
        self.sockets: list[Socket] = []

    def url(self, token: str, session_id: int | None = None, scheme="ws") -> str:
        return f"{scheme}://127.0.0.1:{self.port}/ws/attendance/{session_id or self.session_id}?token={token}"

    def connect(self, user: ApiUser) -> Socket:
        socket = Socket(self.url(user.token))
        self.sockets.append(socket)
        hello = socket.next()
        assert hello is not None and hello["type"] == "connected", hello
        return socket

    def code(self) -> dict:
        response = self.teacher.post("/api/generate-code/", json={"class_session_id": self.session_id})
        assert response.status_code == 200
        return response.get_json()

    def check_in(self, student: ApiUser, **where) -> dict:
        response = student.post("/api/submit-attendance/", json={"attendance_code": self.code()["code"], **where})
        assert response.status_code == 201, response.get_json()
        return response.get_json()["attendance"]

    def submission(self, attendance_id: int) -> dict:
        items = self.teacher.get("/api/get-session-submissions/", class_session_id=self.session_id).get_json()
        return next(s for s in items["submissions"] if s["id"] == attendance_id)


@pytest.fixture
def room(app, platform, server):
    classroom = Classroom(app, platform, server)
    yield classroom
    for socket in classroom.sockets:
        socket.close()


def test_teacher_socket_receives_every_message_of_the_session(room):
    socket = room.connect(room.teacher)
    assert socket.seen[0] == {"type": "connected", "class_session_id": room.session_id, "role": "teacher"}

    issued = room.code()
    message = socket.wait_for("code_generated")
    assert (message["code"], message["expires_at"]) == (issued["code"], issued["expires_at"])

    attendance = room.check_in(room.alice, latitude=41.5369, longitude=-8.4239, accuracy_m=15)
    message = socket.wait_for("student_submission")
    assert message["attendance"] == room.submission(attendance["id"])  # the same shape as get-session-submissions
    assert message["attendance"]["student"]["name"] == "Alice"
    assert set(message["attendance"]) >= {"id", "student", "submitted_at", "status", "risk"}

    validated = room.teacher.post("/api/validate-attendance/", json={"attendance_id": attendance["id"],
                                                                     "status": "late"}).get_json()
    message = socket.wait_for("attendance_validated")
    assert message["attendance"] == validated["attendance"] == room.submission(attendance["id"])
    assert message["attendance"]["status"] == "late"

    results = room.teacher.post("/api/run-ai-validation/", json={"attendance_id": attendance["id"]}).get_json()
    message = socket.wait_for("ai_validation_result")
    assert message["result"] == results["results"][0]
    assert set(message["result"]) == {"attendance_id", "score", "level", "reasons"}
    assert message["result"]["attendance_id"] == attendance["id"]


def test_every_connected_teacher_gets_the_messages(room, app, platform):
    first = room.connect(room.teacher)
    second = room.connect(room.teacher)
    room.check_in(room.bob)
    for socket in (first, second):
        assert socket.wait_for("student_submission")["attendance"]["student"]["name"] == "Bob"


def test_teacher_socket_does_not_get_other_sessions_messages(room):
    other = room.teacher.post("/api/class-sessions/", json=session_body("Other")).get_json()["class_session"]["id"]
    socket = room.connect(room.teacher)
    room.teacher.post("/api/generate-code/", json={"class_session_id": other})
    issued = room.code()
    message = socket.wait_for("code_generated")
    assert message["code"] == issued["code"] and message["class_session_id"] == room.session_id


def test_a_student_socket_gets_only_their_own_changes(room):
    alice_record = room.check_in(room.alice)
    bob_record = room.check_in(room.bob)
    socket = room.connect(room.alice)
    assert socket.seen[0]["role"] == "student"
    room.code()  # teachers' messages are not for students
    room.teacher.post("/api/validate-attendance/", json={"attendance_id": bob_record["id"], "status": "absent"})
    room.teacher.post("/api/validate-attendance/", json={"attendance_id": alice_record["id"], "status": "late"})
    message = socket.next()
    assert message == {"type": "attendance_validated",
                       "attendance": {"id": alice_record["id"], "class_session_id": room.session_id, "status": "late"}}
    assert socket.next(timeout=1.0) is None  # nothing about Bob, no code, before or after


@pytest.mark.parametrize("who, session, status, code", [
    ("other_teacher", "own", 403, "permission_denied"),   # a teacher of another course
    ("other_student", "own", 403, "permission_denied"),
    ("nobody", "own", 403, "permission_denied"),           # a launch with no role
    ("account_admin", "own", 403, "permission_denied"),
    ("teacher", "unknown", 403, "permission_denied"),     # no such session
    ("bad-token", "own", 401, "authentication_required"),
    ("no-token", "own", 401, "authentication_required"),
])
def test_refused_before_the_upgrade(room, who, session, status, code):
    special = {"bad-token": room.teacher.token[:-4] + "AAAA", "no-token": ""}
    token = special[who] if who in special else getattr(room, who).token
    session_id = 987654 if session == "unknown" else room.session_id
    got, body = handshake_status(room.url(token, session_id, scheme="http"))
    assert got == status
    assert body["success"] is False and body["error"]["code"] == code
    with pytest.raises(simple_websocket.ConnectionError) as refused:
        simple_websocket.Client.connect(room.url(token, session_id))
    assert refused.value.status_code == status


def test_a_refused_caller_gets_no_messages(room):
    """The other course's teacher stays refused even while the session is busy."""
    with pytest.raises(simple_websocket.ConnectionError) as refused:
        simple_websocket.Client.connect(room.url(room.other_teacher.token))
    assert refused.value.status_code == 403
    got, _ = handshake_status(room.url(room.teacher.token, scheme="http"))
    assert got == 101  # the same request with the right teacher's token upgrades


# -- two processes, one Redis ------------------------------------------------------------------
REDIS_URL = "redis://127.0.0.1:6379/0"


def redis_reachable() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except Exception:  # noqa: BLE001 - any failure means no Redis here
        return False


@pytest.mark.skipif(not redis_reachable(), reason="Redis is not reachable on 127.0.0.1:6379")
def test_two_processes_deliver_through_redis(tool_env, tmp_path):
    port_a, port_b = free_port(), free_port()
    a_url, b_url = f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"
    env = dict(tool_env, TOOL_BASE_URL=a_url, REDIS_URL=REDIS_URL)
    platform = Platform(product="moodle")
    procs = [serve(env, port_a, tmp_path / "a.log")]
    sockets = []
    try:
        procs.append(serve(env, port_b, tmp_path / "b.log"))
        flask_cli(env, "platform", "add", "--issuer", platform.issuer, "--client-id", platform.client_id,
                  "--auth-login-url", platform.auth_url, "--token-url", platform.token_url,
                  "--key-set-url", platform.jwks_url, "--deployment-id", platform.deployment_id)
        marker = uuid.uuid4().hex[:10]  # other tests may share this Redis: find our own messages by name
        teacher = http_launch(a_url, platform, "instructor", sub="t-" + marker)
        student_name = f"Student {marker}"
        student = http_launch(a_url, platform, "learner", sub="s-" + marker, name=student_name)
        teacher_h = {"Authorization": f"Bearer {teacher}"}
        created = requests.post(f"{a_url}/api/class-sessions/", json=session_body(), headers=teacher_h, timeout=10)
        assert created.status_code == 201, created.text
        session_id = created.json()["class_session"]["id"]

        # The teacher watches on process B ...
        socket = Socket(f"ws://127.0.0.1:{port_b}/ws/attendance/{session_id}?token={teacher}")
        sockets.append(socket)
        assert socket.next()["type"] == "connected"
        # ... while the code and the check-in go through process A.
        issued = requests.post(f"{a_url}/api/generate-code/", json={"class_session_id": session_id},
                               headers=teacher_h, timeout=10).json()
        message = socket.wait_for("code_generated", lambda m: m["code"] == issued["code"])
        assert message["expires_at"] == issued["expires_at"]
        submitted = requests.post(f"{a_url}/api/submit-attendance/", timeout=10,
                                  headers={"Authorization": f"Bearer {student}"},
                                  data={"attendance_code": issued["code"], "simulated_latitude": "41.5369",
                                        "simulated_longitude": "-8.4239"})
        assert submitted.status_code == 201, submitted.text
        message = socket.wait_for("student_submission",
                                  lambda m: m["attendance"]["student"]["name"] == student_name, timeout=15)
        assert message["attendance"]["id"] == submitted.json()["attendance"]["id"]
        listed = requests.get(f"{b_url}/api/get-session-submissions/", params={"class_session_id": session_id},
                              headers=teacher_h, timeout=10).json()["submissions"]
        assert message["attendance"] == listed[0]
    finally:
        for socket in sockets:
            socket.close()
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)
        platform.stop()
