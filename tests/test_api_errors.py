"""Every /api/ endpoint: success, refused roles, missing or bad authentication, bad input, unknown and
other courses' ids. Every failure answers the contract's error shape and changes nothing in the database.

The world each test starts from: course-1 (teacher, three students, a launch with no role, an account
admin and a Moodle site admin), course-2 on the same platform (its own teacher, student, session,
record and justification), and a course on a second platform (Canvas) for the admin API.
"""
from __future__ import annotations

import json
import math
import os
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from io import BytesIO
from unittest import mock

import pytest
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import select

from app import create_app
from attendance import audit, codes, review, sessions
from attendance.models import (
    AttendanceRecord,
    AuditEntry,
    ClassSession,
    Course,
    CoursePolicy,
    Enrollment,
    GradeDelivery,
    Justification,
    ResourceLink,
    User,
)
from extensions import db
from lti.tokens import SALT, read_launch_token
from tests.conftest import _reset_postgres
from tests.support.api import ApiUser, assert_error
from tests.support.api import fast_launch as _fast_launch
from tests.support.launch import TOOL, Launcher, meta, register_platform
from tests.support.platform import Platform

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
ROOM = (41.5369, -8.4239)


# -- fast, real launches -----------------------------------------------------------------------
def fast_launch(launcher, platform, role="instructor", **claims) -> tuple[ApiUser, str]:
    """A launch answering the API user and the launched page."""
    return _fast_launch(launcher, platform, role, with_page=True, **claims)


def user_of(app, api_user: ApiUser) -> dict:
    with app.app_context():
        return read_launch_token(api_user.token)


# -- database snapshots ------------------------------------------------------------------------
MODELS = (AttendanceRecord, ClassSession, Justification, AuditEntry, User, Course, Enrollment, CoursePolicy,
          GradeDelivery, ResourceLink)
CORE = ("attendance_record", "class_session", "justification", "audit_entry", "grade_delivery", "uploads")


def snapshot(app) -> dict:
    """Every row (every column) of the attendance tables, and the upload folder's files."""
    with app.app_context():
        out = {}
        for model in MODELS:
            rows = db.session.execute(select(model.__table__)).all()
            out[model.__tablename__] = sorted(repr(tuple(row)) for row in rows)
        db.session.remove()
    folder = app.config["UPLOAD_DIR"]
    out["uploads"] = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    return out


def counts(snap: dict) -> dict:
    return {table: len(rows) for table, rows in snap.items()}


def assert_unchanged(app, before: dict, label: str = "", tables=None) -> None:
    after = snapshot(app)
    if tables:
        before, after = ({k: v for k, v in snap.items() if k in tables} for snap in (before, after))
    assert counts(after) == counts(before), f"{label}: row counts changed"
    for table in before:
        assert after[table] == before[table], f"{label}: rows of {table} changed"



# -- the world ---------------------------------------------------------------------------------
# Wrong codes are tested here as bad input; the rate limit has its own tests (test_checkin_rules).
SETTINGS = {"WRONG_CODE_LIMIT_STUDENT": "1000 per minute"}


@pytest.fixture(scope="module")
def platforms():
    """Two LMSs (a Moodle and a Canvas), kept for the whole module: making RSA keys is slow."""
    moodle = Platform(product="moodle")
    canvas = Platform(issuer="https://canvas.instructure.com", client_id="10000000000001", product="canvas",
                      deployment_id="6:8865aa05b4b79b64a91a86042e43af5ea8ae79eb")
    yield moodle, canvas
    moodle.stop()
    canvas.stop()


@pytest.fixture
def app(make_app):
    return make_app(**SETTINGS)


@dataclass
class World:
    app: object
    moodle: object
    teacher: ApiUser
    student: ApiUser  # checked in to `session_id` (record `record_id`)
    student2: ApiUser  # sent justification `justification_id` (with a document)
    student3: ApiUser  # nothing yet
    nobody: ApiUser  # a valid launch with no role in the course
    account_admin: ApiUser  # an institution admin, not in the course
    site_admin: ApiUser  # Moodle site admin: Instructor + Administrator
    teacher2: ApiUser  # course-2
    student_c2: ApiUser  # course-2
    course_id: int
    other_course_id: int
    foreign_course_id: int  # a course on another platform
    session_id: int  # check-in open
    session2_id: int  # not opened
    record_id: int
    justification_id: int
    other_session_id: int
    other_record_id: int
    other_justification_id: int
    student3_id: int
    other_student_id: int
    teacher_id: int
    fingerprint: str = ""

    def secret(self, session_id: int) -> str:
        with self.app.app_context():
            secret = db.session.get(ClassSession, session_id).code_secret
            db.session.remove()
            return secret

    def code_now(self, session_id: int, moment: datetime | None = None) -> str:
        return codes.current_code(self.secret(session_id), moment or datetime.now(timezone.utc), 15).code

    def role(self, name: str) -> ApiUser:
        return {"teacher": self.teacher, "student": self.student, "none": self.nobody,
                "account_admin": self.account_admin, "site_admin": self.site_admin}[name]

    def alive(self) -> bool:
        """Whether the database still holds this world (on PostgreSQL another test may have reset it)."""
        try:
            return self.secret(self.session_id) == self.fingerprint
        except Exception:  # noqa: BLE001 - tables dropped, row gone: rebuild
            with self.app.app_context():
                db.session.remove()
            return False


def session_body(**extra) -> dict:
    now = datetime.now(timezone.utc)
    body = {"title": "Lecture", "starts_at": (now - timedelta(minutes=2)).isoformat(),
            "ends_at": (now + timedelta(hours=1)).isoformat(), "latitude": ROOM[0], "longitude": ROOM[1],
            "radius_m": 100}
    body.update(extra)
    return body


def build_world(app, moodle, canvas) -> World:
    register_platform(app, moodle)
    register_platform(app, canvas)
    launcher = Launcher(app.test_client())
    teacher, _ = fast_launch(launcher, moodle, "instructor", sub="t1", name="Teacher One")
    student, _ = fast_launch(launcher, moodle, "learner", sub="s1", name="Student One")
    student2, _ = fast_launch(launcher, moodle, "learner", sub="s2", name="Student Two")
    student3, _ = fast_launch(launcher, moodle, "learner", sub="s3", name="Student Three")
    nobody, html = fast_launch(launcher, moodle, "none", sub="n1")
    assert 'data-role="none"' in html
    account_admin, html = fast_launch(launcher, moodle, "account_admin", sub="a1")
    assert 'data-role="admin"' in html
    site_admin, html = fast_launch(launcher, moodle, "site_admin", sub="sa1")
    assert 'data-role="teacher"' in html and 'data-admin="true"' in html
    teacher2, _ = fast_launch(launcher, moodle, "instructor", sub="t2", context_id="course-2")
    student_c2, _ = fast_launch(launcher, moodle, "learner", sub="u2", context_id="course-2")
    foreign, _ = fast_launch(launcher, canvas, "instructor", sub="canvas-t", context_id="course-1")

    created = teacher.post("/api/class-sessions/", json=session_body())
    assert created.status_code == 201, created.get_json()
    session_id = created.get_json()["class_session"]["id"]
    session2 = teacher.post("/api/class-sessions/", json=session_body(title="Later"))
    session2_id = session2.get_json()["class_session"]["id"]
    code = teacher.post("/api/generate-code/", json={"class_session_id": session_id}).get_json()["code"]
    checked = student.post("/api/submit-attendance/", json={"attendance_code": code, "latitude": ROOM[0],
                                                            "longitude": ROOM[1]})
    assert checked.status_code == 201, checked.get_json()
    justified = student2.post("/api/submit-justification/", content_type="multipart/form-data", data={
        "class_session_id": str(session_id), "reason": "Ill", "document": (BytesIO(PDF), "note.pdf")})
    assert justified.status_code == 201, justified.get_json()

    other = teacher2.post("/api/class-sessions/", json=session_body(title="Other course"))
    other_session_id = other.get_json()["class_session"]["id"]
    other_code = teacher2.post("/api/generate-code/", json={"class_session_id": other_session_id}).get_json()["code"]
    other_checked = student_c2.post("/api/submit-attendance/", json={"attendance_code": other_code})
    assert other_checked.status_code == 201, other_checked.get_json()
    # Justified: another class of course-2 (one the student attended has nothing to justify).
    missed = teacher2.post("/api/class-sessions/", json=session_body(title="Other course, missed"))
    other_justified = student_c2.post("/api/submit-justification/", content_type="multipart/form-data", data={
        "class_session_id": str(missed.get_json()["class_session"]["id"]), "reason": "Away",
        "document": (BytesIO(PDF), "x.pdf")})
    assert other_justified.status_code == 201

    world = World(
        app=app, moodle=moodle, teacher=teacher, student=student, student2=student2, student3=student3,
        nobody=nobody, account_admin=account_admin, site_admin=site_admin, teacher2=teacher2, student_c2=student_c2,
        course_id=user_of(app, teacher)["course"], other_course_id=user_of(app, teacher2)["course"],
        foreign_course_id=user_of(app, foreign)["course"], session_id=session_id, session2_id=session2_id,
        record_id=checked.get_json()["attendance"]["id"],
        justification_id=justified.get_json()["justification"]["id"],
        other_session_id=other_session_id, other_record_id=other_checked.get_json()["attendance"]["id"],
        other_justification_id=other_justified.get_json()["justification"]["id"],
        student3_id=user_of(app, student3)["user"], other_student_id=user_of(app, student_c2)["user"],
        teacher_id=user_of(app, teacher)["user"])
    world.fingerprint = world.secret(session_id)
    return world


@pytest.fixture
def world(app, platforms) -> World:
    """A fresh world, for tests that change it."""
    return build_world(app, *platforms)


@pytest.fixture(scope="module")
def _shared(tmp_path_factory, keys_dir, platforms):
    """One world for the many tests that must leave it unchanged (they check that they do)."""
    path = tmp_path_factory.mktemp("shared-world")
    settings = {"TESTING": True, "AUTO_MIGRATE": False, "SECRET_KEY": "test-secret-key", "KEYS_DIR": str(keys_dir),
                "TOOL_BASE_URL": TOOL, "REDIS_PREFIX": f"test-{uuid.uuid4().hex}:",
                "OUTBOUND_ALLOW_NETWORKS": "127.0.0.1/32", **SETTINGS}
    if not os.environ.get("DATABASE_URL"):
        settings["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{path / 'shared.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("INSTANCE_PATH", str(path / "instance"))
        shared_app = create_app(settings)
    holder = {"app": shared_app, "world": None}
    yield holder
    with shared_app.app_context():
        db.session.remove()
        if _postgres(shared_app):
            _reset_postgres()
        db.engine.dispose()


def _postgres(app) -> bool:
    return app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql")


@pytest.fixture
def shared_world(_shared, platforms) -> World:
    world = _shared["world"]
    if world is None or not world.alive():
        shared_app = _shared["app"]
        with shared_app.app_context():
            if _postgres(shared_app):
                _reset_postgres()
            db.create_all()
        _shared["world"] = world = build_world(shared_app, *platforms)
    return world


# -- the endpoints -----------------------------------------------------------------------------
@dataclass
class Endpoint:
    name: str
    method: str
    path: object  # str or callable(World) -> str
    roles: tuple  # who may call: "teacher", "student", "admin"
    body: object  # callable(World) -> dict: a valid input
    status: int = 200
    multipart: bool = False
    success_as: tuple = ()  # World attributes to call as on success (default: by role)
    check: object = None  # callable(World, json) -> None

    def url(self, w: World) -> str:
        return self.path(w) if callable(self.path) else self.path

    def call(self, w: World, user: ApiUser, payload: dict | None = None, raw: bytes | str | None = None,
             form: bool = False):
        payload = self.body(w) if payload is None else payload
        url = self.url(w)
        if self.method == "GET":
            return user.get(url, **payload)
        if raw is not None:
            return user.client.post(url, data=raw, content_type="application/json", headers=user.headers())
        if self.multipart:
            return user.post(url, data=payload, content_type="multipart/form-data")
        if form:
            return user.post(url, data=payload)
        return user.post(url, json=payload)


def _doc(name="note.pdf", data=PDF):
    return (BytesIO(data), name)


def _check_generate(w, body):
    assert len(body["code"]) == 6 and body["class_session_id"] == w.session_id
    assert body["expires_at"].endswith("Z")


def _check_submissions(w, body):
    assert [s["id"] for s in body["submissions"]] == [w.record_id]
    item = body["submissions"][0]
    assert set(item) >= {"id", "student", "submitted_at", "status", "risk"}
    assert set(item["student"]) >= {"id", "name"}


ENDPOINTS = [
    Endpoint("create-class-session", "POST", "/api/class-sessions/", ("teacher",), lambda w: session_body(title="New"),
             201, check=lambda w, b: b["class_session"]["title"] == "New" or pytest.fail(b)),
    Endpoint("list-class-sessions", "GET", "/api/class-sessions/", ("teacher", "student"), lambda w: {},
             check=lambda w, b: {s["id"] for s in b["class_sessions"]} == {w.session_id, w.session2_id}
             or pytest.fail(b)),
    Endpoint("generate-code", "POST", "/api/generate-code/", ("teacher",),
             lambda w: {"class_session_id": w.session_id}, check=_check_generate),
    Endpoint("stop-checkin", "POST", "/api/stop-checkin/", ("teacher",), lambda w: {"class_session_id": w.session_id},
             check=lambda w, b: b["class_session"]["checkin_open"] is False or pytest.fail(b)),
    Endpoint("qr-code", "GET", "/api/qr-code/", ("teacher",), lambda w: {"class_session_id": w.session_id}),
    Endpoint("submit-attendance", "POST", "/api/submit-attendance/", ("student",),
             lambda w: {"attendance_code": w.code_now(w.session_id), "latitude": ROOM[0], "longitude": ROOM[1]},
             201, success_as=("student3",),
             check=lambda w, b: b["attendance"]["status"] == "present" or pytest.fail(b)),
    Endpoint("get-session-submissions", "GET", "/api/get-session-submissions/", ("teacher",),
             lambda w: {"class_session_id": w.session_id}, check=_check_submissions),
    Endpoint("students", "GET", "/api/students/", ("teacher",), lambda w: {},
             check=lambda w, b: len(b["students"]) == 3 or pytest.fail(b)),
    Endpoint("validate-attendance", "POST", "/api/validate-attendance/", ("teacher",),
             lambda w: {"attendance_id": w.record_id, "status": "late"},
             check=lambda w, b: b["attendance"]["status"] == "late" or pytest.fail(b)),
    Endpoint("mark-attendance", "POST", "/api/mark-attendance/", ("teacher",),
             lambda w: {"class_session_id": w.session_id, "student_id": w.student3_id, "status": "absent"},
             check=lambda w, b: b["attendance"]["status"] == "absent" or pytest.fail(b)),
    Endpoint("run-ai-validation", "POST", "/api/run-ai-validation/", ("teacher",),
             lambda w: {"class_session_id": w.session_id},
             check=lambda w, b: [r["attendance_id"] for r in b["results"]] == [w.record_id] or pytest.fail(b)),
    Endpoint("close-session", "POST", "/api/close-session/", ("teacher",), lambda w: {"class_session_id": w.session_id},
             check=lambda w, b: b["absent_count"] == 2 or pytest.fail(b)),
    Endpoint("course-settings-get", "GET", "/api/course-settings/", ("teacher",), lambda w: {},
             check=lambda w, b: (b["settings"]["timezone"], b["settings"]["present_minutes"]) == ("UTC", 10)
             or pytest.fail(b)),
    Endpoint("course-settings-post", "POST", "/api/course-settings/", ("teacher",),
             lambda w: {"timezone": "Europe/Lisbon", "present_minutes": 5},
             check=lambda w, b: b["settings"]["timezone"] == "Europe/Lisbon" or pytest.fail(b)),
    Endpoint("submit-justification", "POST", "/api/submit-justification/", ("student",),
             lambda w: {"class_session_id": str(w.session_id), "reason": "Doctor", "document": _doc()}, 201,
             multipart=True, success_as=("student3",),
             check=lambda w, b: b["justification"]["status"] == "pending" or pytest.fail(b)),
    Endpoint("list-justifications", "GET", "/api/justifications/", ("teacher",), lambda w: {},
             check=lambda w, b: [j["id"] for j in b["justifications"]] == [w.justification_id] or pytest.fail(b)),
    Endpoint("justification-document", "GET", lambda w: f"/api/justifications/{w.justification_id}/document",
             ("teacher", "student"), lambda w: {}, success_as=("teacher", "student2")),
    Endpoint("review-justification", "POST", "/api/review-justification/", ("teacher",),
             lambda w: {"justification_id": w.justification_id, "decision": "approve"},
             check=lambda w, b: b["justification"]["status"] == "approved" or pytest.fail(b)),
    Endpoint("current-classes", "GET", "/api/student/current-classes/", ("student",), lambda w: {},
             check=lambda w, b: w.session_id in {c["class_session_id"] for c in b["classes"]} or pytest.fail(b)),
    Endpoint("today-classes", "GET", "/api/student/today-classes/", ("student",), lambda w: {},
             check=lambda w, b: w.session_id in {c["class_session_id"] for c in b["classes"]}
             <= {w.session_id, w.session2_id} or pytest.fail(b)),
    Endpoint("weekly-classes", "GET", "/api/student/weekly-classes/", ("student",), lambda w: {},
             check=lambda w, b: w.session_id in {c["class_session_id"] for c in b["classes"]}
             <= {w.session_id, w.session2_id} or pytest.fail(b)),
    Endpoint("attendance-history", "GET", "/api/student/attendance-history/", ("student",), lambda w: {},
             check=lambda w, b: [h["attendance_id"] for h in b["history"]] == [w.record_id] or pytest.fail(b)),
    Endpoint("ws-ticket", "POST", "/api/ws-ticket/", ("teacher", "student"),
             lambda w: {"class_session_id": w.session_id},
             check=lambda w, b: (len(b["ticket"]) >= 32 and 0 < b["expires_in"] <= 60) or pytest.fail(b)),
    # grade passback and roster (their behaviour has its own tests; here: roles, authentication, input)
    Endpoint("grades", "GET", "/api/grades/", ("teacher",), lambda w: {},
             check=lambda w, b: len(b["grades"]) == 3 or pytest.fail(b)),
    Endpoint("grades-retry", "POST", "/api/grades/retry/", ("teacher",), lambda w: {},
             check=lambda w, b: "requeued" in b or pytest.fail(b)),
    Endpoint("grade-policy-get", "GET", "/api/grade-policy/", ("teacher",), lambda w: {},
             check=lambda w, b: b["policy"]["points_present"] == 1 or pytest.fail(b)),
    Endpoint("grade-policy-post", "POST", "/api/grade-policy/", ("teacher",), lambda w: {"points_late": 0.25},
             check=lambda w, b: b["policy"]["points_late"] == 0.25 or pytest.fail(b)),
    Endpoint("roster-sync", "POST", "/api/roster/sync/", ("teacher",), lambda w: {}, success_as=None),
    Endpoint("admin-create-user", "POST", "/api/admin/create-user/", ("admin",),
             lambda w: {"sub": "new-user", "name": "New", "email": "new@example.edu", "course_id": w.course_id}, 201,
             success_as=("account_admin", "site_admin")),
    Endpoint("admin-create-course", "POST", "/api/admin/create-course/", ("admin",),
             lambda w: {"context_id": "new-course", "title": "New course", "timezone": "Europe/Lisbon"}, 201,
             success_as=("account_admin", "site_admin")),
    Endpoint("admin-create-class-session", "POST", "/api/admin/create-class-session/", ("admin",),
             lambda w: session_body(course_id=w.course_id, title="By admin"), 201,
             success_as=("account_admin", "site_admin")),
]
BY_NAME = {e.name: e for e in ENDPOINTS}
ROLES = ("teacher", "student", "none", "account_admin", "site_admin")


def allowed(endpoint: Endpoint, role: str) -> bool:
    if "admin" in endpoint.roles:
        return role in ("account_admin", "site_admin")
    effective = {"teacher": "teacher", "site_admin": "teacher", "student": "student"}.get(role)
    return effective in endpoint.roles


def test_every_api_route_is_covered(app):
    """A new endpoint of attendance/web/api.py must be added to this file's table."""
    document = "/api/justifications/<int:justification_id>/document"
    covered = {(e.method, e.path if isinstance(e.path, str) else document) for e in ENDPOINTS}
    routes = set()
    for rule in app.url_map.iter_rules():
        if app.view_functions[rule.endpoint].__module__ == "attendance.web.api":
            routes |= {(m, rule.rule) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert routes == covered


# -- success -----------------------------------------------------------------------------------
SECOND_CALL = {"admin-create-user": {"sub": "second-user"}, "admin-create-course": {"context_id": "second-course"}}


@pytest.mark.parametrize("endpoint", [e for e in ENDPOINTS if e.success_as is not None], ids=lambda e: e.name)
def test_success(world, endpoint):
    """Every endpoint's success (roster sync needs an LMS roster service: tests/test_roster.py covers it)."""
    callers = endpoint.success_as or endpoint.roles
    for index, caller in enumerate(callers):
        payload = endpoint.body(world)
        if index:
            payload.update(SECOND_CALL.get(endpoint.name, {}))
        response = endpoint.call(world, getattr(world, caller), payload)
        assert response.status_code == endpoint.status, (caller, response.get_data(as_text=True)[:500])
        if endpoint.name == "qr-code":
            assert response.mimetype == "image/svg+xml" and b"<svg" in response.data
        elif endpoint.name == "justification-document":
            assert response.data == PDF and response.mimetype == "application/pdf"
        else:
            body = response.get_json()
            assert body["success"] is True, body
            if endpoint.check:
                endpoint.check(world, body)


def test_openapi_is_public(shared_world):
    response = shared_world.app.test_client().get("/api/openapi.json")
    assert response.status_code == 200
    assert response.get_json()["openapi"].startswith("3.1")


# -- refused roles -----------------------------------------------------------------------------
REFUSALS = [(e, role) for e in ENDPOINTS for role in ROLES if not allowed(e, role)]


@pytest.mark.parametrize("endpoint, role", REFUSALS, ids=[f"{e.name}-{r}" for e, r in REFUSALS])
def test_refused_role(shared_world, endpoint, role):
    before = snapshot(shared_world.app)
    response = endpoint.call(shared_world, shared_world.role(role))
    assert_error(response, 403, "permission_denied")
    assert_unchanged(shared_world.app, before, f"{endpoint.name} as {role}")


# -- authentication ----------------------------------------------------------------------------
def _forged(token: str) -> str:
    body, sig = token.rsplit(".", 1)
    return body + "." + ("A" if sig[0] != "A" else "B") + sig[1:]


def _other_secret(app, token: str) -> str:
    with app.app_context():
        claims = read_launch_token(token)
    return URLSafeTimedSerializer("not-the-secret", salt=SALT).dumps(claims)


def _expired(app, token: str) -> str:
    """The same claims, signed with the right key, but issued longer ago than LAUNCH_TOKEN_TTL."""
    with app.app_context():
        claims = read_launch_token(token)
    issued = time.time() - app.config["LAUNCH_TOKEN_TTL"] - 60
    with mock.patch("itsdangerous.timed.time.time", return_value=issued):
        return URLSafeTimedSerializer(app.config["SECRET_KEY"], salt=SALT).dumps(claims)


def _escalated(app, token: str) -> str:
    """The payload edited to claim admin rights, the original timestamp and signature kept."""
    with app.app_context():
        claims = read_launch_token(token)
    serializer = URLSafeTimedSerializer("whatever", salt=SALT)
    edited = serializer.dump_payload({**claims, "role": "teacher", "admin": True}).decode()
    timestamp, signature = token.rsplit(".", 2)[1:]
    return f"{edited}.{timestamp}.{signature}"


AUTH_CASES = ("no-token", "empty-bearer", "garbage", "forged-signature", "other-secret", "expired", "edited-claims")


def _bad_user(world: World, case: str, caller: ApiUser) -> ApiUser:
    client = world.app.test_client()  # no session cookie
    token = caller.token
    if case == "no-token":
        user = ApiUser(client, "")
        user.headers = lambda extra=None: dict(extra or {})
        return user
    return ApiUser(client, {
        "empty-bearer": "", "garbage": "not-a-token", "forged-signature": _forged(token),
        "other-secret": _other_secret(world.app, token), "expired": _expired(world.app, token),
        "edited-claims": _escalated(world.app, token)}[case])


@pytest.mark.parametrize("case", AUTH_CASES)
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.name)
def test_authentication_required(shared_world, endpoint, case):
    caller = shared_world.account_admin if "admin" in endpoint.roles else (
        shared_world.teacher if "teacher" in endpoint.roles else shared_world.student)
    before = snapshot(shared_world.app)
    response = endpoint.call(shared_world, _bad_user(shared_world, case, caller))
    assert_error(response, 401, "authentication_required")
    assert_unchanged(shared_world.app, before, f"{endpoint.name} {case}")


# -- bad input, unknown ids, other courses' ids ------------------------------------------------
MISSING = 987654


def _without(body: dict, *keys) -> dict:
    return {k: v for k, v in body.items() if k not in keys}


def _form(body: dict) -> dict:
    return {k: str(v) for k, v in body.items()}


def _nan_json(body: dict, key: str) -> str:
    return json.dumps({**body, key: math.nan})  # Python writes NaN, a JSON parser may accept it



# (endpoint name, case id, payload(World) or None, options, status, code, field)
# options: {"as": World attribute, "raw": callable(World) -> raw JSON text, "form": True}
def V(field):  # noqa: N802 - reads as a table
    return 422, "validation_error", field


NF = (404, "not_found", None)

CASES = [
    # class sessions
    ("create-class-session", "missing-title", lambda w: _without(session_body(), "title"), {}, *V("title")),
    ("create-class-session", "title-boolean", lambda w: session_body(title=True), {}, *V("title")),
    ("create-class-session", "starts-at-abc", lambda w: session_body(starts_at="abc"), {}, *V("starts_at")),
    ("create-class-session", "missing-ends-at", lambda w: _without(session_body(), "ends_at"), {}, *V("ends_at")),
    ("create-class-session", "ends-before-start", lambda w: session_body(
        ends_at=(datetime.now(timezone.utc) - timedelta(hours=1)).isoformat()), {}, *V("ends_at")),
    ("create-class-session", "latitude-91", lambda w: session_body(latitude=91), {}, *V("latitude")),
    ("create-class-session", "longitude-minus-181", lambda w: session_body(longitude=-181), {}, *V("longitude")),
    ("create-class-session", "latitude-abc", lambda w: session_body(latitude="abc"), {}, *V("latitude")),
    ("create-class-session", "latitude-nan", None, {"raw": lambda w: _nan_json(session_body(), "latitude")},
     *V("latitude")),
    ("create-class-session", "latitude-boolean", lambda w: session_body(latitude=True), {}, *V("latitude")),
    ("create-class-session", "latitude-without-longitude", lambda w: _without(session_body(), "longitude"), {},
     *V("longitude")),
    ("create-class-session", "radius-negative", lambda w: session_body(radius_m=-5), {}, *V("radius_m")),
    ("create-class-session", "repeat-too-long", lambda w: session_body(
        repeat_weekly_until=(datetime.now(timezone.utc) + timedelta(weeks=200)).isoformat()), {},
     *V("repeat_weekly_until")),
    ("create-class-session", "form-latitude-abc", lambda w: _form(session_body(latitude="abc")), {"form": True},
     *V("latitude")),
    ("create-class-session", "form-missing-title", lambda w: _form(session_body(title="")), {"form": True},
     *V("title")),
    # generate-code / stop-checkin / qr-code
    ("generate-code", "id-abc", lambda w: {"class_session_id": "abc"}, {}, *V("class_session_id")),
    ("generate-code", "id-zero", lambda w: {"class_session_id": 0}, {}, *V("class_session_id")),
    ("generate-code", "id-boolean", lambda w: {"class_session_id": True}, {}, *V("class_session_id")),
    pytest.param("generate-code", "id-float", lambda w: {"class_session_id": w.session_id + 0.5}, {},
                 *V("class_session_id"),
                 id="generate-code-id-float"),
    pytest.param("get-session-submissions", "id-float", lambda w: {"class_session_id": f"{w.session_id}.0"}, {},
                 *V("class_session_id"), id="get-session-submissions-id-float-string"),
    pytest.param("generate-code", "id-huge", lambda w: {"class_session_id": 2 ** 63}, {}, *V("class_session_id"),
                 id="generate-code-id-huge"),
    pytest.param("validate-attendance", "id-huge", lambda w: {"attendance_id": 10 ** 30}, {}, *V("attendance_id"),
                 id="validate-attendance-id-huge"),
    ("generate-code", "unknown-id", lambda w: {"class_session_id": MISSING}, {}, *NF),
    ("generate-code", "other-course", lambda w: {"class_session_id": w.other_session_id}, {}, *NF),
    ("stop-checkin", "missing-id", lambda w: {}, {}, *V("class_session_id")),
    ("stop-checkin", "id-abc", lambda w: {"class_session_id": "abc"}, {}, *V("class_session_id")),
    ("stop-checkin", "unknown-id", lambda w: {"class_session_id": MISSING}, {}, *NF),
    ("stop-checkin", "other-course", lambda w: {"class_session_id": w.other_session_id}, {}, *NF),
    ("ws-ticket", "missing-id", lambda w: {}, {}, *V("class_session_id")),
    ("ws-ticket", "id-abc", lambda w: {"class_session_id": "abc"}, {}, *V("class_session_id")),
    ("ws-ticket", "unknown-id", lambda w: {"class_session_id": MISSING}, {}, *NF),
    ("ws-ticket", "other-course", lambda w: {"class_session_id": w.other_session_id}, {}, *NF),
    ("qr-code", "missing-id", lambda w: {}, {}, *V("class_session_id")),
    ("qr-code", "id-abc", lambda w: {"class_session_id": "abc"}, {}, *V("class_session_id")),
    ("qr-code", "unknown-id", lambda w: {"class_session_id": MISSING}, {}, *NF),
    ("qr-code", "other-course", lambda w: {"class_session_id": w.other_session_id}, {}, *NF),
    # submit-attendance (as student3, who has not checked in)
    ("submit-attendance", "missing-code", lambda w: {"latitude": 1, "longitude": 1}, {"as": "student3"},
     *V("attendance_code")),
    ("submit-attendance", "code-integer", lambda w: {"attendance_code": 123456}, {"as": "student3"},
     *V("attendance_code")),
    ("submit-attendance", "latitude-91", lambda w: {"attendance_code": w.code_now(w.session_id), "latitude": 91,
                                                    "longitude": 0}, {"as": "student3"}, *V("latitude")),
    ("submit-attendance", "longitude-minus-181", lambda w: {"attendance_code": w.code_now(w.session_id),
                                                            "latitude": 0, "longitude": -181},
     {"as": "student3"}, *V("longitude")),
    ("submit-attendance", "simulated-latitude-abc", lambda w: {"attendance_code": w.code_now(w.session_id),
                                                               "simulated_latitude": "abc",
                                                               "simulated_longitude": "-8.4"},
     {"as": "student3", "form": True}, *V("simulated_latitude")),
    ("submit-attendance", "simulated-longitude-181", lambda w: {"attendance_code": w.code_now(w.session_id),
                                                                "simulated_latitude": "41.5",
                                                                "simulated_longitude": "181"},
     {"as": "student3", "form": True}, *V("simulated_longitude")),
    ("submit-attendance", "latitude-nan", None, {"as": "student3", "raw": lambda w: _nan_json(
        {"attendance_code": w.code_now(w.session_id), "longitude": 1.0}, "latitude")}, *V("latitude")),
    ("submit-attendance", "latitude-form-nan", lambda w: {"attendance_code": w.code_now(w.session_id),
                                                          "latitude": "nan", "longitude": "1"},
     {"as": "student3", "form": True}, *V("latitude")),
    ("submit-attendance", "latitude-boolean", lambda w: {"attendance_code": w.code_now(w.session_id),
                                                         "latitude": True, "longitude": 1}, {"as": "student3"},
     *V("latitude")),
    ("submit-attendance", "accuracy-negative", lambda w: {"attendance_code": w.code_now(w.session_id),
                                                          "latitude": 1, "longitude": 1, "accuracy_m": -1},
     {"as": "student3"}, *V("accuracy_m")),
    ("submit-attendance", "latitude-only", lambda w: {"attendance_code": w.code_now(w.session_id), "latitude": 41.5},
     {"as": "student3"}, *V("longitude")),
    ("submit-attendance", "device-id-too-long", lambda w: {"attendance_code": w.code_now(w.session_id),
                                                           "device_id": "d" * 500}, {"as": "student3"},
     *V("device_id")),
    ("submit-attendance", "session-id-abc", lambda w: {"attendance_code": w.code_now(w.session_id),
                                                       "class_session_id": "abc"}, {"as": "student3"},
     *V("class_session_id")),
    ("submit-attendance", "wrong-code", lambda w: {"attendance_code": "ZZZZZZ"}, {"as": "student3"},
     400, "invalid_attendance_code", None),
    ("submit-attendance", "expired-code", lambda w: {"attendance_code": codes.code_for(
        w.secret(w.session_id), codes.period_of(datetime.now(timezone.utc), 15) - 2)}, {"as": "student3"},
     400, "invalid_attendance_code", None),
    ("submit-attendance", "not-opened-session", lambda w: {"attendance_code": w.code_now(w.session2_id)},
     {"as": "student3"}, 400, "invalid_attendance_code", None),
    ("submit-attendance", "other-course-code", lambda w: {"attendance_code": w.code_now(w.other_session_id)},
     {"as": "student3"}, 400, "invalid_attendance_code", None),
    ("submit-attendance", "duplicate", lambda w: {"attendance_code": w.code_now(w.session_id)}, {"as": "student"},
     409, "already_submitted", None),
    # teacher review
    ("get-session-submissions", "missing-id", lambda w: {}, {}, *V("class_session_id")),
    ("get-session-submissions", "id-abc", lambda w: {"class_session_id": "abc"}, {}, *V("class_session_id")),
    ("get-session-submissions", "unknown-id", lambda w: {"class_session_id": MISSING}, {}, *NF),
    ("get-session-submissions", "other-course", lambda w: {"class_session_id": w.other_session_id}, {}, *NF),
    ("validate-attendance", "missing-id", lambda w: {"status": "late"}, {}, *V("attendance_id")),
    ("validate-attendance", "id-abc", lambda w: {"attendance_id": "abc"}, {}, *V("attendance_id")),
    ("validate-attendance", "id-boolean", lambda w: {"attendance_id": True}, {}, *V("attendance_id")),
    ("validate-attendance", "status-bogus", lambda w: {"attendance_id": w.record_id, "status": "bogus"}, {},
     *V("status")),
    ("validate-attendance", "status-boolean", lambda w: {"attendance_id": w.record_id, "status": True}, {},
     *V("status")),
    ("validate-attendance", "ids-abc", lambda w: {"attendance_ids": ["abc"]}, {}, *V("attendance_ids")),
    ("validate-attendance", "remark-too-long", lambda w: {"attendance_id": w.record_id, "remark": "r" * 3000}, {},
     *V("remark")),
    ("validate-attendance", "unknown-id", lambda w: {"attendance_id": MISSING}, {}, *NF),
    ("validate-attendance", "stale-status", lambda w: {"attendance_id": w.record_id, "status": "late",
                                                       "if_status": "absent", "remark": "r"}, {},
     409, "stale_status", None),
    ("validate-attendance", "if-status-bogus", lambda w: {"attendance_id": w.record_id, "if_status": "here"}, {},
     *V("if_status")),
    ("validate-attendance", "other-course", lambda w: {"attendance_id": w.other_record_id, "status": "absent"}, {},
     *NF),
    ("validate-attendance", "own-and-other-course", lambda w: {"attendance_ids": [w.record_id, w.other_record_id],
                                                               "status": "absent"}, {}, *NF),
    ("mark-attendance", "missing-student", lambda w: {"class_session_id": w.session_id, "status": "absent"}, {},
     *V("student_id")),
    ("mark-attendance", "missing-status", lambda w: {"class_session_id": w.session_id, "student_id": w.student3_id},
     {}, *V("status")),
    ("mark-attendance", "status-bogus", lambda w: {"class_session_id": w.session_id, "student_id": w.student3_id,
                                                   "status": "here"}, {}, *V("status")),
    ("mark-attendance", "session-abc", lambda w: {"class_session_id": "abc", "student_id": w.student3_id,
                                                  "status": "absent"}, {}, *V("class_session_id")),
    ("mark-attendance", "unknown-session", lambda w: {"class_session_id": MISSING, "student_id": w.student3_id,
                                                      "status": "absent"}, {}, *NF),
    ("mark-attendance", "other-course-session", lambda w: {"class_session_id": w.other_session_id,
                                                           "student_id": w.other_student_id, "status": "absent"},
     {}, *NF),
    ("mark-attendance", "unknown-student", lambda w: {"class_session_id": w.session_id, "student_id": MISSING,
                                                      "status": "absent"}, {}, *NF),
    ("mark-attendance", "other-course-student", lambda w: {"class_session_id": w.session_id,
                                                           "student_id": w.other_student_id, "status": "absent"},
     {}, *NF),
    ("mark-attendance", "teacher-as-student", lambda w: {"class_session_id": w.session_id,
                                                         "student_id": w.teacher_id, "status": "absent"}, {}, *NF),
    ("run-ai-validation", "no-target", lambda w: {}, {}, *V("attendance_id")),
    ("run-ai-validation", "id-abc", lambda w: {"attendance_id": "abc"}, {}, *V("attendance_id")),
    ("run-ai-validation", "session-abc", lambda w: {"class_session_id": "abc"}, {}, *V("class_session_id")),
    ("run-ai-validation", "unknown-attendance", lambda w: {"attendance_id": MISSING}, {}, *NF),
    ("run-ai-validation", "unknown-session", lambda w: {"class_session_id": MISSING}, {}, *NF),
    ("run-ai-validation", "other-course-attendance", lambda w: {"attendance_id": w.other_record_id}, {}, *NF),
    ("run-ai-validation", "other-course-session", lambda w: {"class_session_id": w.other_session_id}, {}, *NF),
    ("close-session", "missing-id", lambda w: {}, {}, *V("class_session_id")),
    ("close-session", "id-abc", lambda w: {"class_session_id": "abc"}, {}, *V("class_session_id")),
    ("close-session", "unknown-id", lambda w: {"class_session_id": MISSING}, {}, *NF),
    ("close-session", "other-course", lambda w: {"class_session_id": w.other_session_id}, {}, *NF),
    # course settings
    ("course-settings-post", "unknown-timezone", lambda w: {"timezone": "Mars/Olympus_Mons"}, {}, *V("timezone")),
    ("course-settings-post", "timezone-valid-but-minutes-bad", lambda w: {"timezone": "Europe/Lisbon",
                                                                         "present_minutes": -1}, {},
     *V("present_minutes")),
    ("course-settings-post", "minutes-valid-but-timezone-bad", lambda w: {"present_minutes": 3,
                                                                         "timezone": "Nowhere/Land"}, {},
     *V("timezone")),
    ("course-settings-post", "rotation-abc", lambda w: {"code_rotation_seconds": "abc"}, {},
     *V("code_rotation_seconds")),
    ("course-settings-post", "rotation-too-short", lambda w: {"code_rotation_seconds": 1}, {},
     *V("code_rotation_seconds")),
    ("course-settings-post", "points-late-2", lambda w: {"points_late": 2}, {}, *V("points_late")),
    ("course-settings-post", "late-minutes-boolean", lambda w: {"late_minutes": True}, {}, *V("late_minutes")),
    # justifications (multipart as student3)
    ("submit-justification", "missing-reason", lambda w: {"class_session_id": str(w.session_id), "document": _doc()},
     {"as": "student3"}, *V("reason")),
    ("submit-justification", "missing-session", lambda w: {"reason": "Ill", "document": _doc()}, {"as": "student3"},
     *V("class_session_id")),
    ("submit-justification", "session-abc", lambda w: {"class_session_id": "abc", "reason": "Ill",
                                                       "document": _doc()}, {"as": "student3"},
     *V("class_session_id")),
    ("submit-justification", "unknown-session", lambda w: {"class_session_id": str(MISSING), "reason": "Ill",
                                                           "document": _doc()}, {"as": "student3"}, *NF),
    ("submit-justification", "other-course-session", lambda w: {"class_session_id": str(w.other_session_id),
                                                                "reason": "Ill", "document": _doc()},
     {"as": "student3"}, *NF),
    ("submit-justification", "text-named-pdf", lambda w: {"class_session_id": str(w.session_id), "reason": "Ill",
                                                          "document": _doc("x.pdf", b"just some text\n")},
     {"as": "student3"}, 415, "unsupported_media_type", None),
    ("submit-justification", "path-like-name-text", lambda w: {
        "class_session_id": str(w.session_id), "reason": "Ill", "document": _doc("../../etc/passwd", b"root:x:0:0")},
     {"as": "student3"}, 415, "unsupported_media_type", None),
    ("submit-justification", "duplicate", lambda w: {"class_session_id": str(w.session_id), "reason": "Again"},
     {"as": "student2"}, 409, "already_submitted", None),
    ("submit-justification", "attended", lambda w: {"class_session_id": str(w.session_id), "reason": "Was there"},
     {"as": "student"}, 409, "already_attended", None),
    ("list-justifications", "id-abc", lambda w: {"class_session_id": "abc"}, {}, *V("class_session_id")),
    ("list-justifications", "unknown-id", lambda w: {"class_session_id": MISSING}, {}, *NF),
    ("list-justifications", "other-course", lambda w: {"class_session_id": w.other_session_id}, {}, *NF),
    ("review-justification", "missing-decision", lambda w: {"justification_id": w.justification_id}, {},
     *V("decision")),
    ("review-justification", "decision-maybe", lambda w: {"justification_id": w.justification_id,
                                                          "decision": "maybe"}, {}, *V("decision")),
    ("review-justification", "id-abc", lambda w: {"justification_id": "abc", "decision": "approve"}, {},
     *V("justification_id")),
    ("review-justification", "unknown-id", lambda w: {"justification_id": MISSING, "decision": "approve"}, {}, *NF),
    ("review-justification", "other-course", lambda w: {"justification_id": w.other_justification_id,
                                                        "decision": "approve"}, {}, *NF),
    # students' views
    ("attendance-history", "course-abc", lambda w: {"course_id": "abc"}, {}, *V("course_id")),
    ("attendance-history", "from-not-a-date", lambda w: {"from": "yesterday"}, {}, *V("from")),
    ("attendance-history", "to-bad-date", lambda w: {"to": "2024-13-45"}, {}, *V("to")),
    # grades and roster
    ("grades-retry", "student-abc", lambda w: {"student_id": "abc"}, {}, *V("student_id")),
    ("grade-policy-post", "points-present-zero", lambda w: {"points_present": 0}, {}, *V("points_present")),
    ("grade-policy-post", "denominator-bogus", lambda w: {"denominator": "bogus"}, {}, *V("denominator")),
    ("grade-policy-post", "drop-lowest-abc", lambda w: {"drop_lowest": "abc"}, {}, *V("drop_lowest")),
    # admin
    ("admin-create-user", "missing-sub", lambda w: {"name": "X"}, {}, *V("sub")),
    ("admin-create-user", "email-bad", lambda w: {"sub": "x", "email": "not-an-email"}, {}, *V("email")),
    ("admin-create-user", "role-bogus", lambda w: {"sub": "x", "role": "god"}, {}, *V("role")),
    ("admin-create-user", "course-abc", lambda w: {"sub": "x", "course_id": "abc"}, {}, *V("course_id")),
    ("admin-create-user", "unknown-course", lambda w: {"sub": "x", "course_id": MISSING}, {}, *NF),
    ("admin-create-user", "other-platform-course", lambda w: {"sub": "x", "course_id": w.foreign_course_id}, {}, *NF),
    ("admin-create-user", "duplicate-sub", lambda w: {"sub": "t1"}, {}, 409, "already_exists", None),
    ("admin-create-course", "missing-context", lambda w: {"title": "X"}, {}, *V("context_id")),
    ("admin-create-course", "missing-title", lambda w: {"context_id": "x"}, {}, *V("title")),
    ("admin-create-course", "unknown-timezone", lambda w: {"context_id": "x", "title": "X", "timezone": "Mars/Base"},
     {}, *V("timezone")),
    ("admin-create-course", "duplicate-context", lambda w: {"context_id": "course-1", "title": "Again"}, {},
     409, "already_exists", None),
    ("admin-create-class-session", "missing-course", lambda w: session_body(), {}, *V("course_id")),
    ("admin-create-class-session", "course-abc", lambda w: session_body(course_id="abc"), {}, *V("course_id")),
    ("admin-create-class-session", "latitude-91", lambda w: session_body(course_id=w.course_id, latitude=91), {},
     *V("latitude")),
    ("admin-create-class-session", "unknown-course", lambda w: session_body(course_id=MISSING), {}, *NF),
    ("admin-create-class-session", "other-platform-course", lambda w: session_body(course_id=w.foreign_course_id),
     {}, *NF),
]

# A JSON body that is not an object, and malformed JSON: 400 on every JSON endpoint.
for _e in ENDPOINTS:
    if _e.method == "POST" and not _e.multipart and _e.name != "roster-sync":  # roster-sync reads no input
        _as = {"as": "student3"} if _e.name == "submit-attendance" else {}
        CASES.append((_e.name, "json-list-body", None, {**_as, "raw": lambda w: "[1, 2, 3]"}, 400, "bad_request", None))
        CASES.append((_e.name, "malformed-json", None, {**_as, "raw": lambda w: '{"title": "x",'}, 400, "bad_request",
                      None))


def _case_id(case) -> str:
    return case.id if hasattr(case, "values") else f"{case[0]}-{case[1]}"


@pytest.mark.parametrize("name, case, payload, options, status, code, field", CASES,
                         ids=[_case_id(c) for c in CASES])
def test_bad_input(shared_world, name, case, payload, options, status, code, field):
    endpoint = BY_NAME[name]
    user = getattr(shared_world, options.get("as") or ("account_admin" if "admin" in endpoint.roles else (
        "teacher" if "teacher" in endpoint.roles else "student")))
    built = payload(shared_world) if payload else {}
    raw = options["raw"](shared_world) if "raw" in options else None
    before = snapshot(shared_world.app)
    response = endpoint.call(shared_world, user, built, raw=raw, form=options.get("form", False))
    assert_error(response, status, code, field)
    assert_unchanged(shared_world.app, before, f"{name} {case}")


@pytest.mark.parametrize("caller, path", [
    ("teacher", "/api/justifications/{unknown}/document"),
    ("teacher", "/api/justifications/{other}/document"),
    ("student", "/api/justifications/{own_course}/document"),  # another student's, same course
    ("student_c2", "/api/justifications/{own_course}/document"),
    ("teacher2", "/api/justifications/{own_course}/document"),
    ("teacher", "/api/justifications/abc/document"),
])
def test_document_not_found(shared_world, caller, path):
    w = shared_world
    url = path.format(unknown=MISSING, other=w.other_justification_id, own_course=w.justification_id)
    before = snapshot(shared_world.app)
    response = getattr(shared_world, caller).get(url)
    assert_error(response, 404, "not_found")
    assert response.data != PDF
    assert_unchanged(shared_world.app, before)


def test_other_course_id_answers_like_an_unknown_id(shared_world):
    """Never reveal another course's data, not even its existence: same status, code and message."""
    w = shared_world
    before = snapshot(w.app)
    pairs = [
        ("/api/get-session-submissions/", "GET", {"class_session_id": w.other_session_id},
         {"class_session_id": MISSING}),
        ("/api/validate-attendance/", "POST", {"attendance_id": w.other_record_id}, {"attendance_id": MISSING}),
        ("/api/review-justification/", "POST", {"justification_id": w.other_justification_id, "decision": "reject"},
         {"justification_id": MISSING, "decision": "reject"}),
        ("/api/justifications/", "GET", {"class_session_id": w.other_session_id}, {"class_session_id": MISSING}),
    ]
    for path, method, other, unknown in pairs:
        call = w.teacher.get if method == "GET" else (lambda p, **kw: w.teacher.post(p, json=kw))
        a, b = call(path, **other), call(path, **unknown)
        assert (a.status_code, a.get_json()) == (b.status_code, b.get_json()), path
    # A student naming another course's session with that session's right code learns nothing either.
    code = w.code_now(w.other_session_id)
    other = w.student3.post("/api/submit-attendance/", json={"attendance_code": code,
                                                              "class_session_id": w.other_session_id})
    unknown = w.student3.post("/api/submit-attendance/", json={"attendance_code": code, "class_session_id": MISSING})
    assert (other.status_code, other.get_json()) == (unknown.status_code, unknown.get_json())
    assert other.status_code in (400, 404)
    assert_unchanged(w.app, before)


@pytest.mark.parametrize("which", ["other-course", "unknown-course"])
def test_history_of_a_course_the_student_cannot_see(shared_world, which):
    course_id = shared_world.other_course_id if which == "other-course" else MISSING
    response = shared_world.student.get("/api/student/attendance-history/", course_id=course_id)
    assert_error(response, 404, "not_found")


def test_window_closed_changes_nothing(shared_world, monkeypatch):
    later = datetime.now(timezone.utc) + timedelta(hours=2)
    monkeypatch.setattr("attendance.clock.now", lambda: later)
    before = snapshot(shared_world.app)
    response = shared_world.student3.post("/api/submit-attendance/", json={
        "attendance_code": shared_world.code_now(shared_world.session_id, later)})
    assert_error(response, 409, "checkin_closed")
    assert_unchanged(shared_world.app, before)


# -- every /api/ error is JSON -----------------------------------------------------------------
@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE"])
def test_unknown_api_path_is_json_404(shared_world, method):
    teacher = shared_world.teacher
    response = teacher.client.open("/api/no-such-endpoint/", method=method, headers=teacher.headers())
    assert_error(response, 404, "not_found")
    anonymous = shared_world.app.test_client().open("/api/nope", method=method)
    assert_error(anonymous, 404, "not_found")


@pytest.mark.parametrize("method, path", [
    ("GET", "/api/submit-attendance/"), ("GET", "/api/generate-code/"), ("DELETE", "/api/class-sessions/"),
    ("PUT", "/api/review-justification/"), ("POST", "/api/student/today-classes/"), ("POST", "/api/openapi.json"),
])
def test_wrong_method_is_json_405(shared_world, method, path):
    before = snapshot(shared_world.app)
    response = shared_world.teacher.client.open(path, method=method, headers=shared_world.teacher.headers())
    assert_error(response, 405, "method_not_allowed")
    assert_unchanged(shared_world.app, before)


@pytest.fixture
def small_world(make_app):
    """A course whose app accepts bodies of about 1 MB."""
    from tests.support.launch import register_platform
    from tests.support.platform import Platform

    small = make_app(MAX_UPLOAD_MB=1)
    platform = Platform(product="moodle")
    register_platform(small, platform)
    launcher = Launcher(small.test_client())
    teacher, _ = fast_launch(launcher, platform, "instructor", sub="t")
    student, _ = fast_launch(launcher, platform, "learner", sub="s")
    created = teacher.post("/api/class-sessions/", json=session_body())
    yield small, teacher, student, created.get_json()["class_session"]["id"]
    platform.stop()


@pytest.mark.parametrize("kind", ["json", "form", "multipart"])
def test_oversized_body_is_json_413(small_world, kind):
    small, teacher, student, session_id = small_world
    big = "x" * int(1.5 * 1024 * 1024)
    before = snapshot(small)
    if kind == "json":
        response = teacher.post("/api/class-sessions/", json=session_body(title=big))
    elif kind == "form":
        response = teacher.post("/api/class-sessions/", data={**session_body(), "title": big})
    else:
        response = student.post("/api/submit-justification/", content_type="multipart/form-data", data={
            "class_session_id": str(session_id), "reason": "r", "document": (BytesIO(PDF + big.encode()), "a.pdf")})
    assert_error(response, 413, "payload_too_large")
    assert_unchanged(small, before)


def test_server_error_is_json_without_a_trace(shared_world, monkeypatch):

    def explode(*_a, **_k):
        raise RuntimeError("secret internals at /srv/app/attendance/services.py line 42")

    monkeypatch.setattr(sessions, "list_class_sessions", explode)
    response = shared_world.teacher.get("/api/class-sessions/")
    body = assert_error(response, 500, "server_error")
    assert body == {"success": False, "error": {"code": "server_error", "message": body["error"]["message"]}}
    text = response.get_data(as_text=True)
    assert "secret internals" not in text and "RuntimeError" not in text and "<html" not in text.lower()


def test_server_error_mid_transaction_changes_nothing(world, monkeypatch):
    """close-session fails after adding the absences (flushed): the whole change is rolled back."""

    real = audit.record_audit

    def audit_then_fail(*args, **kwargs):
        real(*args, **kwargs)
        if kwargs.get("to_status") == "absent" or (len(args) > 5 and args[5] == "absent"):
            raise RuntimeError("disk full")

    monkeypatch.setattr(review, "record_audit", audit_then_fail)
    before = snapshot(world.app)
    response = world.teacher.post("/api/close-session/", json={"class_session_id": world.session_id})
    assert_error(response, 500, "server_error")
    assert_unchanged(world.app, before, tables=CORE)
    monkeypatch.setattr(review, "record_audit", real)
    assert world.teacher.post("/api/close-session/", json={"class_session_id": world.session_id}).status_code == 200


# -- the session cookie + X-CSRFToken ----------------------------------------------------------
@pytest.fixture
def cookie_student(world):
    """A browser of its own: launched as a student, holding the session cookie; answers (client, csrf token)."""
    browser = Launcher(world.app.test_client())
    _, html = fast_launch(browser, world.moodle, "learner", sub="cookie-student", name="Cookie Student")
    return browser.client, meta(html, "csrf-token")


def test_cookie_without_csrf_header_is_refused(world, cookie_student):
    client, _ = cookie_student
    before = snapshot(world.app)
    response = client.post("/api/submit-attendance/", data={"attendance_code": world.code_now(world.session_id)})
    assert_error(response, 403, "csrf_missing")
    response = client.post("/api/submit-attendance/", json={"attendance_code": world.code_now(world.session_id)},
                           headers={"X-CSRFToken": "forged-token"})
    assert_error(response, 403, "csrf_missing")
    assert_unchanged(world.app, before)
    # Reading needs no CSRF token.
    assert client.get("/api/student/today-classes/").status_code == 200


def test_cookie_with_csrf_header_works(world, cookie_student):
    client, csrf_token = cookie_student
    response = client.post("/api/submit-attendance/", json={"attendance_code": world.code_now(world.session_id)},
                           headers={"X-CSRFToken": csrf_token})
    assert response.status_code == 201, response.get_json()


def test_the_seeds_curl_example_works_as_written(world, cookie_student):
    r"""curl -X POST /api/submit-attendance/ -b cookies.txt -H "X-CSRFToken: ..." \
         -d "attendance_code=ABC123&simulated_latitude=41.5369&simulated_longitude=-8.4239" """
    client, csrf_token = cookie_student
    code = world.code_now(world.session_id)
    response = client.post("/api/submit-attendance/", headers={"X-CSRFToken": csrf_token},
                           data=f"attendance_code={code}&simulated_latitude=41.5369&simulated_longitude=-8.4239",
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 201, response.get_json()
    attendance = response.get_json()["attendance"]
    assert attendance["class_session_id"] == world.session_id
    assert attendance["status"] == "present" and attendance["location_flag"] == "inside"


def test_cookie_without_a_launch_is_401(shared_world):
    response = shared_world.app.test_client().post("/api/submit-attendance/", data={"attendance_code": "ABCDEF"},
                                                   headers={"X-CSRFToken": "x"})
    assert_error(response, 401, "authentication_required")
