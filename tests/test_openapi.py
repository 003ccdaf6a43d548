"""The OpenAPI document: valid OpenAPI 3.1, in step with the routes, and true to what the API really answers.

Real responses of a full class (teacher, students, admin, another course) are checked against the
schema the document gives for their path, method and status, with JSON Schema 2020-12 and the
document's own `$ref`s resolved through a `referencing` registry.
"""
from __future__ import annotations

import ast
import inspect
import json
import re
import threading
import time
from datetime import datetime, timedelta, timezone
from io import BytesIO
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import quote

import pytest
import simple_websocket
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_openapi
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from sqlalchemy import select
from werkzeug.serving import make_server

from attendance.errors import ErrorCode
from attendance.lms.grade_worker import deliver_due
from attendance.models import User
from attendance.records import submission_json
from attendance.web import openapi, schemas
from attendance.web.errors import HTTP_CODES
from extensions import db
from lti.exceptions import LaunchTokenError
from tests.support.api import launch_as
from tests.support.launch import meta
from tests.support.lms_services import LmsServices

DOC_URI = "urn:attendance:openapi"
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(64)
PDF = b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"
WS = "/ws/attendance/{class_session_id}"


# -- the checker ---------------------------------------------------------------------------------
def escape(segment: str) -> str:
    """A JSON pointer segment."""
    return segment.replace("~", "~0").replace("/", "~1")


def pointer(*segments: str) -> str:
    """A JSON pointer from its segments."""
    return "".join("/" + escape(s) for s in segments)


class Contract:
    """The document as a judge of real responses: each must match its path, method and status."""

    def __init__(self, document: dict):
        self.document = document
        self.registry = Registry().with_resource(
            DOC_URI, Resource.from_contents(document, default_specification=DRAFT202012))
        self.seen: set[tuple[str, str, int]] = set()

    def node(self, where: str):
        """The document's value at a JSON pointer."""
        value = self.document
        for part in where.lstrip("/").split("/"):
            value = value[part.replace("~1", "/").replace("~0", "~")]
        return value

    def response_at(self, path: str, method: str, status: int) -> str:
        """The pointer of the documented response (following a $ref to components/responses)."""
        responses = self.document["paths"][path][method]["responses"]
        assert str(status) in responses, (
            f"{method.upper()} {path} answered {status}, which the document does not list: {sorted(responses)}")
        ref = responses[str(status)].get("$ref")
        return ref[1:] if ref else pointer("paths", path, method, "responses", str(status))

    def validate(self, instance, schema_at: str) -> None:
        """Validate instance against the document's schema at a pointer, $refs and formats included."""
        validator = Draft202012Validator({"$ref": f"{DOC_URI}#{quote(schema_at)}"}, registry=self.registry,
                                         format_checker=Draft202012Validator.FORMAT_CHECKER)
        errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
        assert not errors, f"against {schema_at}:\n" + "\n".join(
            f"  at {list(e.absolute_path)}: {e.message[:300]}" for e in errors[:8]) + f"\nbody: {instance}"

    def check_response(self, response, response_at: str, status: int, code: str | None = None):
        """Status, media type and body of a response against a documented response object."""
        assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:500])
        content = self.node(response_at).get("content", {})
        assert response.mimetype in content, f"{response.mimetype} not documented at {response_at}: {list(content)}"
        if response.mimetype != "application/json":
            return response.get_data()
        body = response.get_json()
        self.validate(body, f"{response_at}/content/{escape(response.mimetype)}/schema")
        if code is not None:
            assert body["error"]["code"] == code, body
        return body

    def check(self, response, path: str, method: str, status: int, code: str | None = None):
        """A real response of (path, method) against the document; answer its body."""
        body = self.check_response(response, self.response_at(path, method, status), status, code)
        self.seen.add((path, method, status))
        return body


@pytest.fixture
def app(make_app, request):
    """The app (settings may come from indirect parametrization)."""
    return make_app(**getattr(request, "param", {}))


@pytest.fixture
def document(app):
    """The document as served, fetched without any credentials."""
    return app.test_client().get("/api/openapi.json").get_json()


@pytest.fixture
def contract(document):
    """A checker built from the served document."""
    return Contract(document)


def user_id(app, sub: str) -> int:
    """The tool's id of the user a launch with this sub created."""
    with app.app_context():
        return db.session.scalar(select(User.id).filter_by(sub=sub))


def times(minutes_ago: int = 2, hours: int = 1) -> dict:
    """starts_at and ends_at of a class that started minutes_ago and lasts for hours from now."""
    now = datetime.now(timezone.utc)
    return {"starts_at": (now - timedelta(minutes=minutes_ago)).isoformat(),
            "ends_at": (now + timedelta(hours=hours)).isoformat()}


# -- the document itself -------------------------------------------------------------------------
def test_document_is_valid_openapi_3_1(document):
    assert document["openapi"] == "3.1.0"
    validate_openapi(document)


def test_every_route_is_documented_and_nothing_else(app, document):
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or not rule.rule.startswith(("/api/", "/ws/")):
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        routes |= {(path, method.lower()) for method in rule.methods - {"HEAD", "OPTIONS"}}
    documented = {(path, method) for path, item in document["paths"].items()
                  for method in item if method in HTTP_METHODS}
    assert routes - documented == set(), "routes missing from the document"
    assert documented - routes == set(), "documented operations no route serves"
    assert ("/ws/attendance/{class_session_id}", "get") in routes


def test_document_is_served_to_anyone_and_built_once_per_app(make_app, monkeypatch):
    built = []
    real = openapi.build_document
    monkeypatch.setattr(openapi, "build_document", lambda app: built.append(app) or real(app))
    app = make_app(MAX_UPLOAD_MB=3)
    anonymous = app.test_client()
    first = anonymous.get("/api/openapi.json")
    assert first.status_code == 200 and first.mimetype == "application/json"
    assert first.get_json() == app.extensions[openapi.CACHE_KEY]
    assert anonymous.get("/api/openapi.json").get_json() == first.get_json()
    assert built == [app]
    multipart = first.get_json()["paths"]["/api/submit-justification/"]["post"]["requestBody"]["content"]
    assert "3 MB" in json.dumps(multipart["multipart/form-data"])  # the document follows the app's settings


def test_bodies_security_and_errors_follow_the_conventions(document, contract):
    schemes = document["components"]["securitySchemes"]
    assert schemes["launchToken"] == {**schemes["launchToken"], "type": "http", "scheme": "bearer"}
    assert schemes["sessionCookie"]["in"] == "cookie" and schemes["sessionCookie"]["name"] == "attendance_session"
    assert schemes["csrfToken"] == {**schemes["csrfToken"], "in": "header", "name": "X-CSRFToken"}
    inputs = {name for name, cls in vars(schemas).items()
              if inspect.isclass(cls) and issubclass(cls, schemas.In) and cls is not schemas.In}
    assert inputs <= set(document["components"]["schemas"]), "an input schema is not in the document"
    csrf_error = {"success": False, "error": {"code": "csrf_missing", "message": "The X-CSRFToken header is missing."}}
    without_body = set()
    for path, item in document["paths"].items():
        for method, op in item.items():
            if path == "/api/openapi.json":
                assert op["security"] == []
                continue
            assert op["security"], (method, path)
            assert {"401", "403"} <= set(op["responses"]), (method, path)
            if method == "get":
                assert "requestBody" not in op, path
                continue
            assert {"sessionCookie": [], "csrfToken": []} in op["security"], path
            contract.validate(csrf_error, contract.response_at(path, method, 403) + "/content/application~1json/schema")
            if "requestBody" not in op:
                without_body.add(path)
                continue
            content = op["requestBody"]["content"]
            assert content["application/json"]["schema"] == content["application/x-www-form-urlencoded"]["schema"]
            assert {"400", "413"} <= set(op["responses"]), (method, path)
    assert without_body == {"/api/roster/sync/"}  # the one POST that reads no body
    upload = document["paths"]["/api/submit-justification/"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in upload
    ws = document["paths"][WS]["get"]
    assert ws["security"] == [{"launchTokenQuery": []}] and "101" in ws["responses"]
    for kind in ("student_submission", "ai_validation_result", "code_generated", "attendance_validated",
                 "connected", "ping", "checkin_stopped", "session_closed"):
        assert f"`{kind}`" in ws["description"]


def test_the_checker_refuses_what_the_document_does_not_allow(contract):
    """The resolver really reaches through $refs: wrong bodies fail, right ones pass."""
    at = contract.response_at("/api/get-session-submissions/", "get", 200) + "/content/application~1json/schema"
    good = {"success": True, "submissions": [{
        "id": 1, "class_session_id": 2, "student": {"id": 3, "name": "Ada"}, "submitted_at": "2025-01-01T10:00:00Z",
        "status": "present", "source": "checkin", "risk": {"score": 10, "level": "low", "reasons": []},
        "location_flag": "inside", "distance_m": 1.5, "accuracy_m": None, "remark": "", "validated_at": None}]}
    contract.validate(good, at)
    bad_bodies = [
        {**good, "success": False},
        {**good, "extra": 1},
        {"success": True, "submissions": [{**good["submissions"][0], "status": "sleeping"}]},
        {"success": True, "submissions": [{**good["submissions"][0], "student": {"id": 3}}]},
        {"success": True, "submissions": [{**good["submissions"][0],
                                           "risk": {"score": 101, "level": "low", "reasons": []}}]},
        {"success": True, "submissions": [{**good["submissions"][0], "submitted_at": "yesterday"}]},
    ]
    for bad in bad_bodies:
        with pytest.raises(AssertionError):
            contract.validate(bad, at)
    unauthorized = contract.response_at("/api/class-sessions/", "get", 401) + "/content/application~1json/schema"
    contract.validate({"success": False, "error": {"code": "authentication_required", "message": "m"}}, unauthorized)
    with pytest.raises(AssertionError):
        contract.validate({"success": False, "error": {"code": "permission_denied", "message": "m"}}, unauthorized)
    invalid = contract.response_at("/api/class-sessions/", "post", 422) + "/content/application~1json/schema"
    with pytest.raises(AssertionError):  # a validation_error without fields
        contract.validate({"success": False, "error": {"code": "validation_error", "message": "m"}}, invalid)
    with pytest.raises(AssertionError):
        contract.response_at("/api/class-sessions/", "get", 409)


# -- error codes -------------------------------------------------------------------------------
ROOT = Path(__file__).resolve().parent.parent
# Calls whose code is not written at the call: each passes on a LaunchTokenError's code (checked below).
PASSED_ON = {("attendance/web/pages.py", "exc.code")}


def raised_codes() -> tuple[set[str], set[tuple[str, str]]]:
    """Every error code written at an `ApiError(...)` in attendance/ and lti/, and the calls that pass one on."""
    codes, passed_on = set(), set()
    for path in sorted([*ROOT.glob("attendance/**/*.py"), *ROOT.glob("lti/**/*.py")]):
        tree = ast.parse(path.read_text(), str(path))
        constants = {target.id: node.value for node in tree.body if isinstance(node, ast.Assign)
                     for target in node.targets if isinstance(target, ast.Name)}
        for call in ast.walk(tree):
            name = getattr(call, "func", None)
            if not isinstance(call, ast.Call) or getattr(name, "id", getattr(name, "attr", None)) != "ApiError":
                continue
            first = call.args[0]
            if isinstance(first, ast.Starred) and isinstance(first.value, ast.Name):
                first = constants[first.value.id].elts[0]  # ApiError(*ALREADY_SUBMITTED)
            if isinstance(first, ast.Constant):
                codes.add(first.value)
            elif isinstance(first, ast.Attribute) and getattr(first.value, "id", None) == "ErrorCode":
                codes.add(ErrorCode[first.attr].value)
            else:
                passed_on.add((str(path.relative_to(ROOT)), ast.unparse(first)))
    return codes, passed_on


def test_every_error_code_the_code_can_raise_is_in_the_enum_and_the_document(document):
    codes, passed_on = raised_codes()
    assert len(codes) > 15, codes  # the scan really finds the calls
    assert passed_on == PASSED_ON
    codes |= {LaunchTokenError.code, *HTTP_CODES.values(), "server_error"}  # and what the handlers answer
    enum = {code.value for code in ErrorCode}
    assert codes - enum == set(), "codes raised but missing from attendance.errors.ErrorCode"
    listed = document["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"]
    assert set(listed) == enum
    documented = set()
    for item in document["paths"].values():
        for op in item.values():
            for response in op.get("responses", {}).values():
                documented |= set(re.findall(r'"enum": \[([^\]]*)\]', json.dumps(response)))
    for response in document["components"]["responses"].values():
        documented |= set(re.findall(r'"enum": \[([^\]]*)\]', json.dumps(response)))
    per_operation = {code.strip(' "') for group in documented for code in group.split(",")}
    # "conflict" only names a bare werkzeug 409, which no view raises
    assert codes - {"conflict"} <= per_operation, "codes no operation documents as an answer"


# -- output schemas ------------------------------------------------------------------------------
def test_the_lean_serializers_answer_exactly_their_output_schemas():
    """submission_json (the check-in hot path) builds plain dicts: their members are the schema's."""
    now = datetime.now(timezone.utc)
    student = SimpleNamespace(id=3, display_name="Ada")
    record = SimpleNamespace(id=1, class_session_id=2, submitted_at=now, status="present", source="checkin",
                             risk_score=None, location_flag="inside", distance_m=1.25, accuracy_m=None, remark=None,
                             validated_at=None)
    assert list(submission_json(record, student)) == list(schemas.SubmissionOut().fields)


# -- real responses ------------------------------------------------------------------------------
def test_real_responses_match_the_document(app, client, launcher, moodle, contract):
    c = contract.check
    lms = LmsServices(moodle, tool_jwks=lambda: client.get("/lti/jwks").get_json())
    for sub, role in (("t1", "Instructor"), ("s1", "Learner"), ("s2", "Learner"), ("s3", "Learner")):
        lms.add_member(sub, role)
    claims = lms.claims()
    teacher = launch_as(launcher, moodle, "instructor", sub="t1", claims=claims)
    s1, s2, s3 = (launch_as(launcher, moodle, "learner", sub=f"s{i}", claims=claims) for i in (1, 2, 3))
    admin = launch_as(launcher, moodle, "site_admin", sub="admin-1", claims=claims)
    other_teacher = launch_as(launcher, moodle, "instructor", sub="t9", context_id="course-2")
    other_student = launch_as(launcher, moodle, "learner", sub="s9", context_id="course-2")
    anonymous = app.test_client()

    # the document, to anyone
    c(anonymous.get("/api/openapi.json"), "/api/openapi.json", "get", 200)

    # class sessions
    P = "/api/class-sessions/"
    created = c(teacher.post(P, json={"title": "Lecture 1", **times(), "latitude": 41.5369, "longitude": -8.4239,
                                      "radius_m": 80}), P, "post", 201)
    sid = created["class_session"]["id"]
    course_id = created["class_session"]["course_id"]
    lab = c(teacher.post(P, data={"title": "Lab", **times(1, 2)}), P, "post", 201)["class_session"]["id"]
    start = datetime.now(timezone.utc) + timedelta(days=2)
    weekly = c(teacher.post(P, json={"title": "Weekly", "starts_at": start.isoformat(),
                                     "ends_at": (start + timedelta(hours=1)).isoformat(),
                                     "repeat_weekly_until": (start + timedelta(days=20)).isoformat()}), P, "post", 201)
    assert len(weekly["class_sessions"]) > 1
    c(teacher.post(P, json={"title": "", **times()}), P, "post", 422, "validation_error")
    c(teacher.post(P, json={"title": "Backwards", **times(-120, 1)}), P, "post", 422, "validation_error")
    c(teacher.post(P, json=[1]), P, "post", 400, "bad_request")
    c(client.post(P, data="{", content_type="application/json", headers=teacher.headers()), P, "post", 400,
      "bad_request")
    c(s1.post(P, json={"title": "Mine", **times()}), P, "post", 403, "permission_denied")
    c(anonymous.post(P, json={"title": "Anon", **times()}), P, "post", 401, "authentication_required")
    for who in (teacher, s1):  # the live socket's ticket
        c(who.post("/api/ws-ticket/", json={"class_session_id": sid}), "/api/ws-ticket/", "post", 200)
    c(other_teacher.post("/api/ws-ticket/", json={"class_session_id": sid}), "/api/ws-ticket/", "post", 404,
      "not_found")
    c(teacher.get(P), P, "get", 200)
    c(s1.get(P), P, "get", 200)
    c(anonymous.get(P), P, "get", 401, "authentication_required")
    c(client.get(P, headers={"Authorization": "Bearer forged"}), P, "get", 401, "authentication_required")
    other_sid = c(other_teacher.post(P, json={"title": "Elsewhere", **times()}), P, "post", 201)["class_session"]["id"]

    # codes
    P = "/api/generate-code/"
    code = c(teacher.post(P, json={"class_session_id": sid}), P, "post", 200)["code"]
    c(teacher.post(P, data={}), P, "post", 200)  # an ad-hoc session
    c(teacher.post(P, json={"class_session_id": other_sid}), P, "post", 404, "not_found")
    c(teacher.post(P, json={"class_session_id": weekly["class_session"]["id"]}), P, "post", 409, "checkin_too_early")
    c(teacher.post(P, json={"class_session_id": "x"}), P, "post", 422, "validation_error")
    c(s1.post(P, json={"class_session_id": sid}), P, "post", 403, "permission_denied")
    other_code = c(other_teacher.post(P, json={"class_session_id": other_sid}), P, "post", 200)["code"]
    P = "/api/qr-code/"
    svg = c(teacher.get(P, class_session_id=sid), P, "get", 200)
    assert svg.lstrip().startswith(b"<svg")
    c(teacher.get(P), P, "get", 422, "validation_error")
    c(teacher.get(P, class_session_id=other_sid), P, "get", 404, "not_found")
    c(s1.get(P, class_session_id=sid), P, "get", 403, "permission_denied")

    # cookie session + CSRF header instead of the token
    page = launcher.launch(moodle, "instructor", sub="t1", claims=claims).get_data(as_text=True)
    P = "/api/generate-code/"
    c(client.post(P, json={"class_session_id": lab}), P, "post", 403, "csrf_missing")
    c(client.post(P, json={"class_session_id": lab}, headers={"X-CSRFToken": "forged"}), P, "post", 403, "csrf_missing")
    c(client.post(P, json={"class_session_id": lab}, headers={"X-CSRFToken": meta(page, "csrf-token")}), P, "post", 200)
    c(client.get("/api/class-sessions/"), "/api/class-sessions/", "get", 200)

    # check-in
    P = "/api/submit-attendance/"
    first = c(s1.post(P, data={"attendance_code": code, "simulated_latitude": "41.5369",
                               "simulated_longitude": "-8.4239", "device_id": "phone-1"}), P, "post", 201)
    assert first["attendance"]["location_flag"] == "inside"
    c(s2.post(P, json={"attendance_code": code.lower(), "latitude": 41.6, "longitude": -8.4, "accuracy_m": 20}),
      P, "post", 201)
    c(other_student.post(P, json={"attendance_code": other_code}), P, "post", 201)
    c(s1.post(P, json={"attendance_code": code}), P, "post", 409, "already_submitted")
    c(s3.post(P, json={"attendance_code": code, "latitude": 200, "longitude": 0}), P, "post", 422, "validation_error")
    c(s3.post(P, json={"attendance_code": code, "latitude": 41.5}), P, "post", 422, "validation_error")
    c(s3.post(P, json={}), P, "post", 422, "validation_error")
    c(teacher.post(P, json={"attendance_code": code}), P, "post", 403, "permission_denied")
    c(anonymous.post(P, json={"attendance_code": code}), P, "post", 401, "authentication_required")
    c(other_student.post(P, json={"attendance_code": code, "class_session_id": sid}), P, "post", 400,
      "invalid_attendance_code")
    for _ in range(10):  # wrong codes until the per-student limit
        wrong = s3.post(P, json={"attendance_code": "AAAAAA"})
        if wrong.status_code == 429:
            break
        c(wrong, P, "post", 400, "invalid_attendance_code")
    c(wrong, P, "post", 429, "rate_limited")
    assert int(wrong.headers["Retry-After"]) >= 1

    # teacher review
    P = "/api/get-session-submissions/"
    subs = c(teacher.get(P, class_session_id=sid), P, "get", 200)["submissions"]
    assert len(subs) == 2 and all(s["risk"] for s in subs)
    c(teacher.get(P), P, "get", 422, "validation_error")
    c(teacher.get(P, class_session_id=other_sid), P, "get", 404, "not_found")
    c(s1.get(P, class_session_id=sid), P, "get", 403, "permission_denied")
    other_att = c(other_teacher.get(P, class_session_id=other_sid), P, "get", 200)["submissions"][0]["id"]
    P = "/api/students/"
    students = c(teacher.get(P), P, "get", 200)["students"]
    assert {s["id"] for s in students} == {user_id(app, f"s{i}") for i in (1, 2, 3)}
    c(s1.get(P), P, "get", 403, "permission_denied")
    P = "/api/validate-attendance/"
    c(teacher.post(P, json={"attendance_id": subs[1]["id"], "status": "late", "remark": "traffic"}), P, "post", 200)
    both = c(teacher.post(P, data={"attendance_ids": f"{subs[0]['id']},{subs[1]['id']}"}), P, "post", 200)
    assert len(both["attendances"]) == 2
    c(teacher.post(P, json={"attendance_id": subs[0]["id"], "status": "absent", "if_status": "excused"}), P, "post",
      409, "stale_status")
    c(teacher.post(P, json={"attendance_id": subs[0]["id"], "status": "sleeping"}), P, "post", 422, "validation_error")
    c(teacher.post(P, json={}), P, "post", 422, "validation_error")
    nested = c(teacher.post(P, json={"attendance_ids": ["x", subs[0]["id"]]}), P, "post", 422, "validation_error")
    assert nested["error"]["fields"]["attendance_ids"] == {"0": ["Not a valid integer."]}
    c(teacher.post(P, json={"attendance_id": other_att}), P, "post", 404, "not_found")
    c(s1.post(P, json={"attendance_id": subs[0]["id"]}), P, "post", 403, "permission_denied")
    P = "/api/mark-attendance/"
    c(teacher.post(P, json={"class_session_id": lab, "student_id": user_id(app, "s3"), "status": "present"}),
      P, "post", 200)
    c(teacher.post(P, data={"class_session_id": lab, "student_id": user_id(app, "s3"), "status": "late"}),
      P, "post", 200)  # again: the record is changed
    c(teacher.post(P, json={"class_session_id": lab, "student_id": user_id(app, "s9"), "status": "present"}),
      P, "post", 404, "not_found")
    c(teacher.post(P, json={"class_session_id": other_sid, "student_id": user_id(app, "s3"), "status": "present"}),
      P, "post", 404, "not_found")
    c(teacher.post(P, json={"class_session_id": lab, "student_id": user_id(app, "s3")}), P, "post", 422,
      "validation_error")
    c(s1.post(P, json={"class_session_id": lab, "student_id": user_id(app, "s3"), "status": "present"}),
      P, "post", 403, "permission_denied")
    P = "/api/run-ai-validation/"
    ai = c(teacher.post(P, json={"class_session_id": sid}), P, "post", 200)
    assert len(ai["results"]) == 2
    c(teacher.post(P, data={"attendance_id": subs[0]["id"]}), P, "post", 200)
    c(teacher.post(P, json={}), P, "post", 422, "validation_error")
    c(teacher.post(P, json={"class_session_id": other_sid}), P, "post", 404, "not_found")
    c(s1.post(P, json={"class_session_id": sid}), P, "post", 403, "permission_denied")

    # course settings
    P = "/api/course-settings/"
    c(teacher.get(P), P, "get", 200)
    c(teacher.post(P, json={"late_minutes": 45, "points_late": 0.5}), P, "post", 200)
    c(teacher.post(P, data={"present_minutes": "12", "timezone": "Europe/Lisbon"}), P, "post", 200)
    c(teacher.post(P, json={"timezone": "Mars/Olympus_Mons"}), P, "post", 422, "validation_error")
    c(teacher.post(P, json={"late_minutes": "many"}), P, "post", 422, "validation_error")
    c(s1.get(P), P, "get", 403, "permission_denied")
    c(s1.post(P, json={"late_minutes": 45}), P, "post", 403, "permission_denied")

    # closing
    P = "/api/stop-checkin/"
    c(teacher.post(P, json={"class_session_id": lab}), P, "post", 200)
    c(teacher.post(P, json={}), P, "post", 422, "validation_error")
    c(teacher.post(P, json={"class_session_id": other_sid}), P, "post", 404, "not_found")
    c(s1.post(P, json={"class_session_id": lab}), P, "post", 403, "permission_denied")
    P = "/api/close-session/"
    closed = c(teacher.post(P, json={"class_session_id": sid}), P, "post", 200)
    assert closed["absent_count"] == 1 and closed["class_session"]["closed"] is True
    c(teacher.post(P, json={"class_session_id": other_sid}), P, "post", 404, "not_found")
    c(teacher.post(P, json={"class_session_id": 0}), P, "post", 422, "validation_error")
    c(s1.post(P, json={"class_session_id": sid}), P, "post", 403, "permission_denied")
    c(teacher.post("/api/generate-code/", json={"class_session_id": sid}), "/api/generate-code/", "post", 409,
      "session_closed")

    # justifications
    P = "/api/submit-justification/"
    with_doc = c(s3.post(P, data={"class_session_id": str(sid), "reason": "Fever",
                                  "document": (BytesIO(PNG), "note.png")}, content_type="multipart/form-data"),
                 P, "post", 201)["justification"]
    assert with_doc["document"]["type"] == "image/png"
    # Classes the students missed: one they attended has nothing to justify.
    without_doc = c(s2.post(P, json={"class_session_id": lab, "reason": "Bus"}), P, "post", 201)["justification"]
    other_missed = other_teacher.post("/api/class-sessions/", json={"title": "Elsewhere, missed", **times()})
    other_just = c(other_student.post(P, data={"class_session_id": other_missed.get_json()["class_session"]["id"],
                                               "reason": "Ill"}), P, "post", 201)
    c(s1.post(P, json={"class_session_id": sid, "reason": "I was there"}), P, "post", 409, "already_attended")
    c(s3.post(P, json={"class_session_id": sid, "reason": "Again"}), P, "post", 409, "already_submitted")
    c(s3.post(P, json={"class_session_id": other_sid, "reason": "Not mine"}), P, "post", 404, "not_found")
    c(s3.post(P, json={"class_session_id": lab}), P, "post", 422, "validation_error")
    c(teacher.post(P, json={"class_session_id": sid, "reason": "Teacher"}), P, "post", 403, "permission_denied")
    P = "/api/justifications/"
    assert len(c(teacher.get(P), P, "get", 200)["justifications"]) == 2
    c(teacher.get(P, class_session_id=sid), P, "get", 200)
    c(teacher.get(P, class_session_id=other_sid), P, "get", 404, "not_found")
    c(teacher.get(P, class_session_id="x"), P, "get", 422, "validation_error")
    c(s3.get(P), P, "get", 403, "permission_denied")
    P = "/api/justifications/{justification_id}/document"
    doc_url = with_doc["document"]["url"]
    assert c(teacher.get(doc_url), P, "get", 200) == PNG
    assert c(s3.get(doc_url), P, "get", 200) == PNG
    c(s2.get(doc_url), P, "get", 404, "not_found")
    c(teacher.get(f"/api/justifications/{without_doc['id']}/document"), P, "get", 404, "not_found")
    c(teacher.get(f"/api/justifications/{other_just['justification']['id']}/document"), P, "get", 404, "not_found")
    c(anonymous.get(doc_url), P, "get", 401, "authentication_required")
    c(admin.get(doc_url), P, "get", 200)  # a teacher with admin rights is a teacher
    P = "/api/review-justification/"
    approved = c(teacher.post(P, json={"justification_id": with_doc["id"], "decision": "approve"}), P, "post", 200)
    assert approved["justification"]["status"] == "approved"
    c(teacher.post(P, data={"justification_id": without_doc["id"], "decision": "reject"}), P, "post", 200)
    c(teacher.post(P, json={"justification_id": with_doc["id"], "decision": "reject"}), P, "post", 409,
      "already_reviewed")
    c(teacher.post(P, json={"justification_id": other_just["justification"]["id"], "decision": "approve"}),
      P, "post", 404, "not_found")
    c(teacher.post(P, json={"justification_id": with_doc["id"], "decision": "maybe"}), P, "post", 422,
      "validation_error")
    c(s3.post(P, json={"justification_id": with_doc["id"], "decision": "approve"}), P, "post", 403,
      "permission_denied")

    # students' views
    for scope in ("current", "today", "weekly"):
        P = f"/api/student/{scope}-classes/"
        c(s1.get(P), P, "get", 200)
        c(teacher.get(P), P, "get", 403, "permission_denied")
        c(anonymous.get(P), P, "get", 401, "authentication_required")
    assert c(s3.get("/api/student/today-classes/"), "/api/student/today-classes/", "get", 200)["classes"]
    P = "/api/student/attendance-history/"
    history = c(s3.get(P), P, "get", 200)
    assert {h["status"] for h in history["history"]} == {"excused", "late"}
    today = datetime.now(timezone.utc).date()
    c(s1.get(P, **{"from": (today - timedelta(days=1)).isoformat(), "to": today.isoformat(), "course_id": course_id}),
      P, "get", 200)
    c(s1.get(P, **{"from": "last tuesday"}), P, "get", 422, "validation_error")
    c(teacher.get(P), P, "get", 403, "permission_denied")

    # admin
    P = "/api/admin/create-course/"
    c(admin.post(P, json={"context_id": "made-by-admin", "title": "Chemistry"}), P, "post", 201)
    c(admin.post(P, data={"context_id": "made-by-admin", "title": "Again"}), P, "post", 409, "already_exists")
    c(admin.post(P, json={"context_id": "tz", "title": "T", "timezone": "Mars/Olympus_Mons"}), P, "post", 422,
      "validation_error")
    c(teacher.post(P, json={"context_id": "x", "title": "y"}), P, "post", 403, "permission_denied")
    P = "/api/admin/create-user/"
    c(admin.post(P, json={"sub": "new-1", "name": "Grace", "email": "grace@example.edu", "course_id": course_id}),
      P, "post", 201)
    c(admin.post(P, data={"sub": "new-2"}), P, "post", 201)
    c(admin.post(P, json={"sub": "new-1"}), P, "post", 409, "already_exists")
    c(admin.post(P, json={"sub": "new-3", "course_id": 999999}), P, "post", 404, "not_found")
    c(admin.post(P, json={"sub": "new-4", "email": "not-an-email"}), P, "post", 422, "validation_error")
    c(teacher.post(P, json={"sub": "x"}), P, "post", 403, "permission_denied")
    P = "/api/admin/create-class-session/"
    c(admin.post(P, json={"course_id": course_id, "title": "By admin", **times()}), P, "post", 201)
    c(admin.post(P, json={"course_id": 999999, "title": "Nowhere", **times()}), P, "post", 404, "not_found")
    c(admin.post(P, json={"title": "No course", **times()}), P, "post", 422, "validation_error")
    c(teacher.post(P, json={"course_id": course_id, "title": "x", **times()}), P, "post", 403, "permission_denied")

    # grades and roster
    with app.app_context():
        deliver_due()
    P = "/api/grades/"
    rows = c(teacher.get(P), P, "get", 200)["grades"]
    assert {row["sync"]["state"] for row in rows} == {"delivered", "none"}  # "none": new-1, added by the admin
    c(s1.get(P), P, "get", 403, "permission_denied")
    P = "/api/grade-policy/"
    c(teacher.get(P), P, "get", 200)
    c(teacher.post(P, json={"drop_lowest": 1, "denominator": "scheduled"}), P, "post", 200)
    c(teacher.post(P, data={"points_late": "0.25"}), P, "post", 200)
    c(teacher.post(P, json={"denominator": "whenever"}), P, "post", 422, "validation_error")
    c(s1.post(P, json={"drop_lowest": 1}), P, "post", 403, "permission_denied")
    P = "/api/roster/sync/"
    synced = c(teacher.post(P), P, "post", 200)
    assert synced["members"] == 4 and synced["roster"]["source"] == "nrps"
    lms.outage = 503
    c(teacher.post(P), P, "post", 502, "roster_unavailable")
    with app.app_context():
        deliver_due()  # the policy change re-sends every grade, into the outage
    rows = c(teacher.get("/api/grades/"), "/api/grades/", "get", 200)["grades"]
    lms.outage = None
    P = "/api/grades/retry/"
    c(teacher.post(P), P, "post", 200)
    c(teacher.post(P, json={"student_id": user_id(app, "s1")}), P, "post", 200)
    c(teacher.post(P, json={"student_id": "one"}), P, "post", 422, "validation_error")
    c(s1.post(P), P, "post", 403, "permission_denied")

    # a method a path does not serve
    for method, path in (("delete", "/api/class-sessions/"), ("put", "/api/openapi.json"),
                         ("get", "/api/close-session/")):
        assert method not in contract.document["paths"][path]
        response = getattr(anonymous, method)(path)
        contract.check_response(response, "/components/responses/MethodNotAllowed", 405, "method_not_allowed")

    # every documented success was seen, and every kind of error
    successes = {(path, method, int(status)) for path, item in contract.document["paths"].items()
                 for method, op in item.items() for status in op["responses"]
                 if status.startswith("2") and path != WS}
    assert successes - contract.seen == set(), "documented successes the flow did not reach"
    assert {400, 401, 403, 404, 409, 422, 429, 502} <= {status for _, _, status in contract.seen}


@pytest.mark.parametrize("app", [{"MAX_UPLOAD_MB": 1}], indirect=True)
def test_upload_refusals_match_the_document(app, launcher, moodle, contract):
    teacher = launch_as(launcher, moodle, "instructor", sub="t1")
    student = launch_as(launcher, moodle, "learner", sub="s1")
    sid = teacher.post("/api/class-sessions/", json={"title": "Lecture", **times()}).get_json()["class_session"]["id"]
    P = "/api/submit-justification/"

    def upload(data: bytes, name: str):
        return student.post(P, data={"class_session_id": str(sid), "reason": "Ill", "document": (BytesIO(data), name)},
                            content_type="multipart/form-data")

    c = contract.check
    c(upload(b"just some text, not a PDF\n", "notes.pdf"), P, "post", 415, "unsupported_media_type")
    c(upload(PDF + b"x" * (1024 * 1024), "big.pdf"), P, "post", 413, "payload_too_large")  # over MAX_UPLOAD_MB
    c(upload(PDF + b"x" * (3 * 1024 * 1024), "huge.pdf"), P, "post", 413, "payload_too_large")  # over the body limit
    c(upload(b"", "empty.pdf"), P, "post", 422, "validation_error")
    big = "x" * (2 * 1024 * 1024)
    c(teacher.post("/api/class-sessions/", json={"title": big, **times()}), "/api/class-sessions/", "post", 413,
      "payload_too_large")  # any body over the limit, JSON or form
    c(teacher.post("/api/close-session/", data={"class_session_id": str(sid), "pad": big}), "/api/close-session/",
      "post", 413, "payload_too_large")
    sent = c(upload(PDF, "ok.pdf"), P, "post", 201)["justification"]
    assert sent["document"]["type"] == "application/pdf"
    body = c(teacher.get(sent["document"]["url"]), "/api/justifications/{justification_id}/document", "get", 200)
    assert body == PDF


# -- real-time -----------------------------------------------------------------------------------
@pytest.fixture
def served(app):
    """The app on a real loopback server (the test client cannot upgrade to a WebSocket)."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def receive_all(ws, until: set[str], timeout: float = 10) -> list[dict]:
    """Messages from a socket until every type in until has come (or the time is up)."""
    messages, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline and not until <= {m["type"] for m in messages}:
        raw = ws.receive(timeout=0.5)
        if raw is not None:
            messages.append(json.loads(raw))
    return messages


@pytest.mark.parametrize("app", [{"WS_PING_SECONDS": 0.3}], indirect=True)
def test_websocket_messages_and_refusals_match_the_document(app, launcher, moodle, contract, served):
    teacher = launch_as(launcher, moodle, "instructor", sub="t1")
    s1, s2 = (launch_as(launcher, moodle, "learner", sub=f"s{i}") for i in (1, 2))
    stranger = launch_as(launcher, moodle, "instructor", sub="t9", context_id="course-2")
    sid = teacher.post("/api/class-sessions/", json={"title": "Live", **times()}).get_json()["class_session"]["id"]

    # the handshake refusals, before any upgrade
    handshake = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                 "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
    anonymous = app.test_client()
    contract.check(anonymous.get(f"/ws/attendance/{sid}?token=forged", headers=handshake), WS, "get", 401,
                   "authentication_required")
    contract.check(anonymous.get(f"/ws/attendance/{sid}?token={stranger.token}", headers=handshake), WS, "get", 403,
                   "permission_denied")
    contract.check(anonymous.get(f"/ws/attendance/{sid + 1000}?token={teacher.token}", headers=handshake), WS, "get",
                   403, "permission_denied")
    contract.check(anonymous.get(f"/ws/attendance/{sid}?token={teacher.token}"), WS, "get", 400)  # no upgrade asked

    messages = contract.document["paths"][WS]["get"]["x-messages"]
    teacher_ws = simple_websocket.Client.connect(f"ws://{served}/ws/attendance/{sid}?token={teacher.token}")
    student_ws = simple_websocket.Client.connect(f"ws://{served}/ws/attendance/{sid}?token={s1.token}")
    try:
        assert receive_all(teacher_ws, {"connected"})[0]["type"] == "connected"
        assert receive_all(student_ws, {"connected"})[0]["type"] == "connected"
        code = teacher.post("/api/generate-code/", json={"class_session_id": sid}).get_json()["code"]
        att = s1.post("/api/submit-attendance/", json={"attendance_code": code}).get_json()["attendance"]["id"]
        assert teacher.post("/api/run-ai-validation/", json={"attendance_id": att}).status_code == 200
        validated = teacher.post("/api/validate-attendance/", json={"attendance_id": att, "status": "late"})
        assert validated.status_code == 200
        assert teacher.post("/api/stop-checkin/", json={"class_session_id": sid}).status_code == 200
        assert teacher.post("/api/close-session/", json={"class_session_id": sid}).get_json()["absent_count"] == 1
        kinds = {"code_generated", "student_submission", "ai_validation_result", "attendance_validated", "ping",
                 "checkin_stopped", "session_closed"}
        to_teacher = receive_all(teacher_ws, kinds)
        to_student = receive_all(student_ws, {"student_submission", "attendance_validated", "ping"})
    finally:
        teacher_ws.close()
        student_ws.close()
    assert kinds <= {m["type"] for m in to_teacher}
    assert {"student_submission", "attendance_validated", "ping"} <= {m["type"] for m in to_student}
    for message in to_teacher:
        contract.validate(message, messages["teacher"]["$ref"][1:])
    for message in to_student:
        contract.validate(message, messages["student"]["$ref"][1:])
    absent = [m for m in to_teacher if m["type"] == "attendance_validated" and m["attendance"]["status"] == "absent"]
    assert [m["attendance"]["student"]["id"] for m in absent] == [user_id(app, "s2")]
    with pytest.raises(AssertionError):  # a teacher's message is not what a student gets
        contract.validate(next(m for m in to_teacher if m["type"] == "student_submission"),
                          messages["student"]["$ref"][1:])
