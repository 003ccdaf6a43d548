"""GET /api/openapi.json: the OpenAPI 3.1 description of the API, built once per app with apispec.

Request bodies and query parameters come from the marshmallow input schemas (attendance/schemas.py);
what the API answers is described here as JSON Schema 2020-12 components (the dialect of OpenAPI
3.1), so that tests can check real responses against the document.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, Flask, current_app, jsonify
from marshmallow import Schema, fields

from attendance.codes import ALPHABET, LENGTH
from attendance.models import STATUSES, Source
from attendance.web import schemas as inputs
from lti.roles import ADMIN, STUDENT, TEACHER

bp = Blueprint("openapi", __name__)

CACHE_KEY = "attendance_openapi"
JSON, FORM, MULTIPART = "application/json", "application/x-www-form-urlencoded", "multipart/form-data"
DOCUMENT_TYPES = ("application/pdf", "image/png", "image/jpeg")


# -- JSON Schema helpers -----------------------------------------------------------------------
def ref(name: str) -> dict:
    """A reference to a schema component."""
    return {"$ref": f"#/components/schemas/{name}"}


def maybe(schema: dict) -> dict:
    """The schema, or null."""
    if "type" in schema and isinstance(schema["type"], str):
        out = {**schema, "type": [schema["type"], "null"]}
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
        return out
    return {"anyOf": [schema, {"type": "null"}]}


def obj(properties: dict, *, optional: tuple[str, ...] = (), description: str | None = None) -> dict:
    """A closed object whose properties are all required except the optional ones."""
    out = {"type": "object", "properties": properties,
           "required": [name for name in properties if name not in optional], "additionalProperties": False}
    if description:
        out["description"] = description
    return out


def array(items: dict) -> dict:
    """A list of items."""
    return {"type": "array", "items": items}


def success(description: str, **properties) -> dict:
    """A success body: `"success": true` and the payload's members."""
    return obj({"success": {"const": True}, **properties}, description=description)


ID = {"type": "integer", "minimum": 1}
CODE = {"type": "string", "pattern": f"^[{ALPHABET}]{{{LENGTH}}}$"}
TEXT = {"type": "string"}
NUMBER = {"type": "number"}
BOOL = {"type": "boolean"}
COUNT = {"type": "integer", "minimum": 0}
WHEN = {"type": "string", "format": "date-time", "description": "ISO 8601 in UTC (`Z`)"}
STATUS = {"type": "string", "enum": list(STATUSES)}
LEVEL = {"type": "string", "enum": ["low", "medium", "high"]}
LOCATION_FLAG = {"type": "string", "enum": ["inside", "outside", "missing", "inaccurate", "no_geofence"],
                 "description": "inside/outside the classroom circle, no position (missing), poor accuracy "
                                "(inaccurate), or a session without geofence (no_geofence)"}
SOURCE = {"type": "string", "enum": [s.value for s in Source],
          "description": "how the record came to be: a check-in, a teacher's mark, closing, an approved justification"}


# -- output schemas ----------------------------------------------------------------------------
def output_schemas() -> dict[str, dict]:
    """Every body the API answers, as named JSON Schema components."""
    person = obj({"id": ID, "name": TEXT})
    return {
        # errors
        "Error": obj({
            "success": {"const": False},
            "error": obj({
                "code": {"type": "string", "description": (
                    "machine-readable: authentication_required, csrf_missing, permission_denied, not_found, "
                    "bad_request, invalid_attendance_code, method_not_allowed, already_submitted, checkin_closed, "
                    "checkin_too_early, checkin_not_open, already_recorded, already_attended, stale_status, "
                    "session_closed, already_reviewed, already_exists, payload_too_large, unsupported_media_type, "
                    "validation_error, rate_limited, roster_unavailable, server_error")},
                "message": {"type": "string", "description": "for people"},
                "fields": {"type": "object", "description": "per-field messages (validation_error only)",
                           "additionalProperties": {"oneOf": [array(TEXT), {"type": "object"}]}},
            }, optional=("fields",)),
        }, description="Every error, from every endpoint, has this shape."),
        # parts
        "Person": person,
        "Risk": obj({"score": {"type": "integer", "minimum": 0, "maximum": 100,
                              "description": "100 is the most suspicious"},
                     "level": LEVEL, "reasons": array(TEXT)}),
        "ClassSession": obj({
            "id": ID, "course_id": ID, "course_title": TEXT, "title": TEXT, "starts_at": WHEN, "ends_at": WHEN,
            "timezone": {"type": "string", "description": "the course's IANA timezone"},
            "latitude": maybe(NUMBER), "longitude": maybe(NUMBER), "radius_m": maybe(NUMBER),
            "present_until": WHEN, "late_until": WHEN, "checkin_open": BOOL, "checkin_opened_at": maybe(WHEN),
            "closed": BOOL, "closed_at": maybe(WHEN), "is_adhoc": BOOL,
            "series_id": maybe({"type": "string", "description": "shared by the sessions of a weekly series"}),
            "submission_count": {**COUNT, "description": "check-ins so far (in lists only)"},
        }, optional=("submission_count",)),
        "CheckIn": obj({"id": ID, "class_session_id": ID, "status": STATUS, "submitted_at": WHEN,
                        "location_flag": LOCATION_FLAG}, description="The student's own new record."),
        "Submission": obj({
            "id": ID, "class_session_id": ID, "student": ref("Person"), "submitted_at": maybe(WHEN),
            "status": STATUS, "source": SOURCE, "risk": maybe(ref("Risk")), "location_flag": maybe(LOCATION_FLAG),
            "distance_m": maybe(NUMBER), "accuracy_m": maybe(NUMBER), "remark": TEXT, "validated_at": maybe(WHEN),
        }, description="An attendance record as the course's teachers see it."),
        "AttendanceChange": obj({"id": ID, "class_session_id": ID, "status": STATUS},
                                description="A change to a student's own record (their WebSocket)."),
        "AiResult": obj({"attendance_id": ID, "score": {"type": "integer", "minimum": 0, "maximum": 100},
                         "level": LEVEL, "reasons": array(TEXT)}),
        "Student": obj({"id": ID, "name": TEXT, "email": TEXT, "active": BOOL}),
        "Settings": obj({"timezone": TEXT, "present_minutes": COUNT, "late_minutes": COUNT,
                         "code_rotation_seconds": {"type": "integer", "minimum": 1},
                         "points_present": NUMBER, "points_late": NUMBER, "points_absent": NUMBER}),
        "Justification": obj({
            "id": ID, "class_session_id": ID, "student": ref("Person"), "reason": TEXT,
            "status": {"type": "string", "enum": ["pending", "approved", "rejected"]},
            "created_at": WHEN, "reviewed_at": maybe(WHEN),
            "document": maybe(obj({"name": TEXT, "type": {"type": "string", "enum": list(DOCUMENT_TYPES)},
                                   "size": COUNT, "url": {"type": "string", "format": "uri-reference"}})),
        }),
        "StudentClass": obj({
            "class_session_id": ID, "course_id": ID, "course_title": TEXT, "title": TEXT, "starts_at": WHEN,
            "ends_at": WHEN, "timezone": TEXT, "checkin_open": BOOL, "has_location": BOOL,
            "my_status": maybe(STATUS), "closed": BOOL,
        }),
        "HistoryItem": obj({
            "attendance_id": ID, "class_session_id": ID, "course_id": ID, "course_title": TEXT, "title": TEXT,
            "starts_at": WHEN, "status": STATUS, "submitted_at": maybe(WHEN), "remark": TEXT,
        }),
        "CourseSummary": obj({
            "course_id": ID, "course_title": TEXT, "attended": COUNT, "late": COUNT, "excused": COUNT,
            "absent": COUNT, "total": COUNT,
            "percentage": maybe({"type": "number", "minimum": 0, "maximum": 100,
                                 "description": "points earned over points possible; excused not counted"}),
        }),
        "GradePolicy": obj({"points_present": NUMBER, "points_late": NUMBER, "points_absent": NUMBER,
                            "drop_lowest": COUNT, "denominator": {"type": "string", "enum": ["closed", "scheduled"]}}),
        "RosterState": obj({"source": {"type": "string", "enum": ["nrps", "launches"]}, "synced_at": maybe(WHEN),
                            "error": maybe(TEXT)}),
        "Grade": obj({"score": maybe({"type": "number", "minimum": 0, "maximum": 100}), "comment": TEXT,
                      "counted": COUNT, "present": COUNT, "late": COUNT, "excused": COUNT, "absent": COUNT,
                      "dropped": COUNT, "sessions": COUNT}),
        "GradeSync": {"oneOf": [
            obj({"state": {"const": "none"}, "pending": {"const": False}}, description="Nothing to send yet."),
            obj({"state": {"type": "string", "enum": ["pending", "delivered", "failed"]}, "pending": BOOL,
                 "delivered_score": maybe(NUMBER), "delivered_at": maybe(WHEN),
                 "last_status": maybe({"type": "integer", "description": "the LMS's last HTTP status"}),
                 "last_error": maybe(TEXT), "attempts": COUNT, "up_to_date": BOOL}),
        ], "description": "Where the student's grade is on its way to the LMS."},
        "GradeRow": obj({"student": obj({"id": ID, "name": TEXT, "active": BOOL}), "grade": ref("Grade"),
                         "sync": ref("GradeSync")}),
        "AdminUser": obj({"id": ID, "sub": TEXT, "name": TEXT, "email": TEXT}),
        "AdminCourse": obj({"id": ID, "context_id": TEXT, "title": TEXT, "label": TEXT, "timezone": TEXT}),
        # success bodies
        "ClassSessionsCreated": success(
            "The new session (and every week of a series).",
            class_session=ref("ClassSession"), class_sessions=array(ref("ClassSession"))),
        "ClassSessionList": success(
            "The launched course's sessions, oldest first.",
            class_sessions=array({"allOf": [ref("ClassSession")], "required": ["submission_count"]})),
        "CodeIssued": success(
            "The code valid now (check-in is open).",
            code=CODE, class_session_id=ID, expires_at=WHEN,
            rotation_seconds={"type": "integer", "minimum": 1},
            checkin_url={"type": "string", "format": "uri", "description": "opens the check-in with the code"}),
        "ClassSessionResult": success("The session as it is now.", class_session=ref("ClassSession")),
        "CheckInAccepted": success("The check-in was recorded.", attendance=ref("CheckIn")),
        "SubmissionList": success("Every submission of the session, unpaged.", submissions=array(ref("Submission"))),
        "StudentList": success("The course's students the tool knows.", students=array(ref("Student"))),
        "AttendanceValidated": success("The first record, and every record changed.",
                                       attendance=ref("Submission"), attendances=array(ref("Submission"))),
        "AttendanceMarked": success("The student's record.", attendance=ref("Submission")),
        "AiResults": success("One result per check-in.", results=array(ref("AiResult"))),
        "SessionClosed": success("Students without a record were recorded absent.",
                                 absent_count=COUNT, class_session=ref("ClassSession"),
                                 roster_error=maybe({"type": "string", "description": (
                                     "why the LMS roster could not be read first (the session closed anyway)")})),
        "SettingsResult": success("The course's attendance settings.", settings=ref("Settings")),
        "JustificationResult": success("The justification.", justification=ref("Justification")),
        "JustificationList": success("Newest first.", justifications=array(ref("Justification"))),
        "ClassList": success("Classes of the student's courses, by start.", classes=array(ref("StudentClass"))),
        "History": success("The student's records (newest first) and a summary per course.",
                           history=array(ref("HistoryItem")), summary=array(ref("CourseSummary"))),
        "UserCreated": success("The new user.", user=ref("AdminUser")),
        "CourseCreated": success("The new course.", course=ref("AdminCourse")),
        "GradeList": success(
            "Each student's grade, how it was computed, and whether the LMS has it.",
            ags={"type": "boolean", "description": "whether grades go to the LMS (AGS)"},
            roster=ref("RosterState"), policy=ref("GradePolicy"), grades=array(ref("GradeRow"))),
        "GradesRequeued": success("Failed deliveries put back in the queue.", requeued=COUNT),
        "GradePolicyResult": success("The course's grading rules.", policy=ref("GradePolicy")),
        "RosterSynced": success("The roster was read from the LMS (NRPS).", roster=ref("RosterState"),
                                members=COUNT, added=COUNT, updated=COUNT, deactivated=COUNT),
        "WsTicket": success(
            "A ticket for /ws/attendance/{class_session_id}?ticket=...: single use, this session only.",
            ticket={"type": "string", "minLength": 32, "description": "random; consumed by the handshake"},
            expires_in={"type": "integer", "minimum": 1, "description": "seconds it stays usable (WS_TICKET_TTL)"}),
        # WebSocket messages
        "WsConnected": obj({"type": {"const": "connected"}, "class_session_id": ID,
                            "role": {"type": "string", "enum": [TEACHER, STUDENT]}},
                           description="First message after the upgrade."),
        "WsPing": obj({"type": {"const": "ping"}},
                      description="Sent after WS_PING_SECONDS (20 s) without any other message."),
        "WsCodeGenerated": obj({"type": {"const": "code_generated"}, "class_session_id": ID, "code": CODE,
                                "expires_at": WHEN}, description="A teacher opened check-in or asked for the code."),
        "WsCheckinStopped": obj({"type": {"const": "checkin_stopped"}, "class_session_id": ID},
                                description="A teacher stopped check-in (stop-checkin)."),
        "WsSessionClosed": obj({"type": {"const": "session_closed"}, "class_session_id": ID, "absent_count": COUNT},
                               description="The session was closed; its absences were sent just before."),
        "WsAttendanceEvent": obj({"type": {"type": "string", "enum": ["student_submission", "attendance_validated"]},
                                  "attendance": ref("Submission")},
                                 description="A check-in (student_submission) or a changed status "
                                             "(attendance_validated)."),
        "WsAiValidationResult": obj({"type": {"const": "ai_validation_result"}, "result": ref("AiResult")},
                                    description="One result of run-ai-validation."),
        "WsOwnAttendanceEvent": obj({"type": {"type": "string", "enum": ["student_submission", "attendance_validated"]},
                                     "attendance": ref("AttendanceChange")},
                                    description="The student's own record (of any session) was created or "
                                                "changed."),
        "WsTeacherMessage": {
            "oneOf": [ref(n) for n in ("WsConnected", "WsPing", "WsCodeGenerated", "WsCheckinStopped",
                                       "WsAttendanceEvent", "WsAiValidationResult", "WsSessionClosed")],
            "description": "What a teacher of the session's course receives."},
        "WsStudentMessage": {
            "oneOf": [ref(n) for n in ("WsConnected", "WsPing", "WsOwnAttendanceEvent")],
            "description": "What a student of the course receives: changes to their own record."},
    }


# -- error responses ---------------------------------------------------------------------------
def error_schema(codes: tuple[str, ...], *, with_fields: bool = False) -> dict:
    """The error shape narrowed to some codes (and with `fields` required)."""
    error = {"properties": {"code": {"enum": list(codes)}}}
    if with_fields:
        error["required"] = ["fields"]
    return {"allOf": [ref("Error"), {"properties": {"error": error}}]}


@dataclass(frozen=True)
class ErrorKind:
    """A reusable error response: its status, the codes it carries and what it means."""

    status: int
    codes: tuple[str, ...]
    description: str


ERROR_KINDS = {
    "BadRequest": ErrorKind(400, ("bad_request",), "The body is not a JSON object or cannot be parsed."),
    "Unauthorized": ErrorKind(401, ("authentication_required",), "No launch token or session, or it expired."),
    "Forbidden": ErrorKind(403, ("permission_denied",), "The caller's role may not use this endpoint."),
    "ForbiddenUnsafe": ErrorKind(403, ("permission_denied", "csrf_missing"),
                                 "The caller's role may not use this endpoint, or a cookie session sent no valid "
                                 "X-CSRFToken header (csrf_missing)."),
    "NotFound": ErrorKind(404, ("not_found",),
                          "No such id in the caller's course (another course's ids look missing)."),
    "MethodNotAllowed": ErrorKind(405, ("method_not_allowed",),
                                  "Any /api/ path called with a method it does not serve."),
    "PayloadTooLarge": ErrorKind(413, ("payload_too_large",), "The body (or the document) is larger than allowed."),
    "UnsupportedMediaType": ErrorKind(415, ("unsupported_media_type",),
                                      "The document is not a PDF, PNG or JPEG file (judged by its bytes)."),
    "ValidationFailed": ErrorKind(422, ("validation_error",), "Fields are missing or not valid; see `fields`."),
    "RateLimited": ErrorKind(429, ("rate_limited",), "Too many wrong codes from this student or address."),
    "BadGateway": ErrorKind(502, ("roster_unavailable",), "The LMS roster could not be read."),
    "ServerError": ErrorKind(500, ("server_error",), "An unexpected failure; nothing was changed."),
}


def error_responses() -> dict[str, dict]:
    """The reusable error responses, as components."""
    responses = {name: {"description": kind.description,
                        "content": {JSON: {"schema": error_schema(kind.codes, with_fields=kind.status == 422)}}}
                 for name, kind in ERROR_KINDS.items()}
    responses["RateLimited"]["headers"] = {"Retry-After": {
        "description": "seconds until the student or address may try again", "schema": {"type": "integer"}}}
    return responses


STATUS_DESCRIPTIONS = {
    400: "The code is wrong or has expired (invalid_attendance_code), or the body is not a JSON object.",
    404: "No such id in the caller's course (another course's ids look missing).",
    409: "The request conflicts with the current state.",
}


def error_response(status: int, codes: tuple[str, ...]) -> dict:
    """A reference to the matching reusable response, or an inline one for endpoint-specific codes."""
    for name, kind in ERROR_KINDS.items():
        if kind.status == status and kind.codes == codes:
            return {"$ref": f"#/components/responses/{name}"}
    return {"description": f"{STATUS_DESCRIPTIONS[status]} Codes: {', '.join(codes)}.",
            "content": {JSON: {"schema": error_schema(codes)}}}


# -- operations --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Op:
    """One JSON operation of /api/: who may call it, what it takes and what it answers."""

    method: str
    path: str
    operation_id: str
    summary: str
    tag: str
    roles: tuple[str, ...]
    out: str  # the success body's schema component ("" when the answer is not JSON)
    status: int = 200
    body: type[Schema] | None = None
    body_required: bool = True
    query: type[Schema] | None = None
    errors: dict[int, tuple[str, ...]] = field(default_factory=dict)
    description: str = ""


SESSION_404 = {404: ("not_found",)}
OPS = (
    Op("post", "/api/class-sessions/", "create_class_session", "Create a class session (or a weekly series)",
       "Class sessions", (TEACHER,), "ClassSessionsCreated", 201, body=inputs.ClassSessionIn, errors=SESSION_404,
       description="Times without an offset are in the course's timezone."),
    Op("get", "/api/class-sessions/", "list_class_sessions", "The launched course's class sessions",
       "Class sessions", (TEACHER, STUDENT), "ClassSessionList", errors=SESSION_404),
    Op("post", "/api/generate-code/", "generate_code", "Open check-in and get the code valid now",
       "Class sessions", (TEACHER,), "CodeIssued", body=inputs.GenerateCodeIn, body_required=False,
       errors={404: ("not_found",), 409: ("session_closed", "checkin_not_open", "checkin_too_early")},
       description="Without class_session_id, an ad-hoc session of the course starting now is created or reused. "
                   "Codes rotate; each is announced on the session's WebSocket (code_generated). Check-in opens at "
                   "most CHECKIN_EARLY_MINUTES (15) before the start (`checkin_too_early` before that). Opening it "
                   "again after its window is over starts a new window from now; a stop and restart while the "
                   "window runs keeps it. The code rotation is fixed when check-in opens (`rotation_seconds`): a "
                   "settings change applies from the next opening."),
    Op("post", "/api/stop-checkin/", "stop_checkin", "Stop accepting check-ins (the session stays open)",
       "Class sessions", (TEACHER,), "ClassSessionResult", body=inputs.SessionIn, errors=SESSION_404),
    Op("post", "/api/submit-attendance/", "submit_attendance", "Check in with the code on the screen",
       "Check-in", (STUDENT,), "CheckInAccepted", 201, body=inputs.SubmitAttendanceIn,
       errors={400: ("invalid_attendance_code", "bad_request"), 404: ("not_found",),
               409: ("already_submitted", "checkin_closed", "checkin_too_early", "already_recorded"),
               429: ("rate_limited",)},
       description="latitude/longitude may be given as simulated_latitude/simulated_longitude; no location at all "
                   "is accepted and flagged (location_flag `missing`). Wrong codes are rate limited per student "
                   "and (loosely) per network address. A 409 says why: `already_submitted` (the student's own "
                   "check-in), `already_recorded` (a teacher recorded the student), `checkin_closed` (the window "
                   "is over, or the class was closed first), `checkin_too_early`. A student excused in advance "
                   "(an approved justification) who comes anyway checks in normally."),
    Op("get", "/api/get-session-submissions/", "get_session_submissions", "Every submission of a session",
       "Review", (TEACHER,), "SubmissionList", query=inputs.SessionIn, errors=SESSION_404),
    Op("get", "/api/students/", "list_students", "The course's students the tool knows (launched or rostered)",
       "Review", (TEACHER,), "StudentList"),
    Op("post", "/api/validate-attendance/", "validate_attendance", "Set the status of one or more records",
       "Review", (TEACHER,), "AttendanceValidated", body=inputs.ValidateIn,
       errors={404: ("not_found",), 409: ("stale_status",)},
       description="Each change is audited and announced on the WebSocket (attendance_validated). With "
                   "`if_status`, nothing changes (409 `stale_status`) unless every record still has that status: "
                   "a page that resends what it showed never reverts another teacher's change."),
    Op("post", "/api/mark-attendance/", "mark_attendance", "Record a status for an enrolled student",
       "Review", (TEACHER,), "AttendanceMarked", body=inputs.MarkIn, errors=SESSION_404,
       description="With or without a check-in (e.g. a forgotten phone)."),
    Op("post", "/api/run-ai-validation/", "run_ai_validation", "Score check-ins again for risk",
       "Review", (TEACHER,), "AiResults", body=inputs.AiValidationIn, errors=SESSION_404,
       description="Give attendance_id or class_session_id. Each result is also sent on the WebSocket "
                   "(ai_validation_result)."),
    Op("post", "/api/close-session/", "close_session", "Close a session: students without a record are absent",
       "Review", (TEACHER,), "SessionClosed", body=inputs.SessionIn, errors=SESSION_404,
       description="The roster is read from the LMS (NRPS) first when the launch carried it."),
    Op("get", "/api/course-settings/", "get_course_settings", "The course's attendance settings",
       "Course settings", (TEACHER,), "SettingsResult", errors=SESSION_404),
    Op("post", "/api/course-settings/", "update_course_settings", "Change the course's attendance settings",
       "Course settings", (TEACHER,), "SettingsResult", body=inputs.CourseSettingsIn, body_required=False,
       errors=SESSION_404),
    Op("post", "/api/submit-justification/", "submit_justification", "Justify an absence, with a document",
       "Justifications", (STUDENT,), "JustificationResult", 201, body=inputs.JustificationIn,
       errors={404: ("not_found",), 409: ("already_submitted", "already_attended"), 415: ("unsupported_media_type",)},
       description="Send multipart/form-data to attach a document: PDF, PNG or JPEG (judged by its bytes). One "
                   "pending or approved justification per session (`already_submitted`); none for a class the "
                   "student attended, present or late (`already_attended`)."),
    Op("get", "/api/justifications/", "list_justifications", "The course's justifications",
       "Justifications", (TEACHER,), "JustificationList", query=inputs.OptionalSessionIn, errors=SESSION_404),
    Op("post", "/api/review-justification/", "review_justification", "Approve or reject a justification",
       "Justifications", (TEACHER,), "JustificationResult", body=inputs.ReviewIn,
       errors={404: ("not_found",), 409: ("already_reviewed",)},
       description="An approved justification makes the student's attendance `excused`, unless the student "
                   "attended (present or late): an attendance is never lowered, the approval then changes no record."),
    Op("post", "/api/ws-ticket/", "ws_ticket", "A single-use ticket that opens a class session's WebSocket",
       "Real-time", (TEACHER, STUDENT), "WsTicket", body=inputs.SessionIn, errors=SESSION_404,
       description="For pages: the ticket goes in the socket's URL instead of the launch token, so the token stays "
                   "out of URLs and logs. It works once, for this session, within `expires_in` seconds (and never "
                   "past the launch's own expiry)."),
    Op("get", "/api/student/current-classes/", "current_classes", "Classes open now or about to start",
       "Student", (STUDENT,), "ClassList"),
    Op("get", "/api/student/today-classes/", "today_classes", "Today's classes (course timezone)",
       "Student", (STUDENT,), "ClassList"),
    Op("get", "/api/student/weekly-classes/", "weekly_classes", "This week's classes (course timezone)",
       "Student", (STUDENT,), "ClassList"),
    Op("get", "/api/student/attendance-history/", "attendance_history", "The student's attendance history",
       "Student", (STUDENT,), "History", query=inputs.HistoryIn),
    Op("post", "/api/admin/create-user/", "admin_create_user", "Create a user on the admin's platform",
       "Admin", (ADMIN,), "UserCreated", 201, body=inputs.CreateUserIn,
       errors={404: ("not_found",), 409: ("already_exists",)}),
    Op("post", "/api/admin/create-course/", "admin_create_course", "Create a course on the admin's platform",
       "Admin", (ADMIN,), "CourseCreated", 201, body=inputs.CreateCourseIn, errors={409: ("already_exists",)}),
    Op("post", "/api/admin/create-class-session/", "admin_create_class_session",
       "Create a class session in any course of the admin's platform", "Admin", (ADMIN,), "ClassSessionsCreated",
       201, body=inputs.AdminClassSessionIn, errors=SESSION_404),
    Op("get", "/api/grades/", "list_grades", "Each student's grade and its delivery to the LMS", "Grades",
       (TEACHER,), "GradeList", errors=SESSION_404),
    Op("post", "/api/grades/retry/", "retry_grades", "Send failed grades again, now", "Grades", (TEACHER,),
       "GradesRequeued", body=inputs.StudentIdIn, body_required=False,
       description="Without student_id, every failed delivery of the course is retried."),
    Op("get", "/api/grade-policy/", "get_grade_policy", "The course's grading rules", "Grades", (TEACHER,),
       "GradePolicyResult", errors=SESSION_404),
    Op("post", "/api/grade-policy/", "update_grade_policy", "Change the grading rules (every grade is sent again)",
       "Grades", (TEACHER,), "GradePolicyResult", body=inputs.GradePolicyIn, body_required=False,
       errors=SESSION_404),
    Op("post", "/api/roster/sync/", "sync_roster", "Read the course roster from the LMS (NRPS) now", "Grades",
       (TEACHER,), "RosterSynced", errors={404: ("not_found",), 409: ("roster_not_granted",),
                                           502: ("roster_unavailable",)},
       description="No body. Students who left the LMS course become inactive. 409 when the LMS did not grant "
                   "the roster service (NRPS) to this course's launches."),
)

INPUT_SCHEMAS = sorted({s for op in OPS for s in (op.body, op.query) if s is not None}, key=lambda s: s.__name__)


def security_for(method: str, roles: tuple[str, ...]) -> list[dict]:
    """A launch token, or the session cookie (with the CSRF header on unsafe methods)."""
    if not roles:
        return []
    cookie = {"sessionCookie": []} if method == "get" else {"sessionCookie": [], "csrfToken": []}
    return [{"launchToken": []}, cookie]


def common_errors(op: Op) -> dict[int, tuple[str, ...]]:
    """The errors every operation of its kind can answer, then its own."""
    errors: dict[int, tuple[str, ...]] = {401: ("authentication_required",)}
    errors[403] = ("permission_denied",) if op.method == "get" else ("permission_denied", "csrf_missing")
    if op.body is not None:
        errors[400] = ("bad_request",)
        errors[413] = ("payload_too_large",)
    if op.body is not None or op.query is not None:
        errors[422] = ("validation_error",)
    errors.update(op.errors)
    return errors


def request_body(op: Op, max_upload_mb: int) -> dict:
    """The body as JSON and as a form (and as multipart for the justification upload)."""
    content = {JSON: {"schema": op.body}, FORM: {"schema": op.body}}
    if op.body is inputs.ValidateIn:
        content[FORM]["encoding"] = {"attendance_ids": {"style": "form", "explode": True}}
    if op.body is inputs.JustificationIn:
        content[MULTIPART] = {
            "schema": {"allOf": [ref(op.body.__name__), {"type": "object", "properties": {"document": {
                "type": "string", "contentMediaType": "application/octet-stream",
                "description": f"optional: a PDF, PNG or JPEG file of at most {max_upload_mb} MB"}}}]},
            "encoding": {"document": {"contentType": ", ".join(DOCUMENT_TYPES)}},
        }
    return {"required": op.body_required, "content": content}


def describe(op: Op, max_upload_mb: int = 0) -> dict:
    """The OpenAPI operation object of an Op."""
    text = f"Role: {', '.join(op.roles)}." + (f" {op.description}" if op.description else "")
    operation = {
        "operationId": op.operation_id, "summary": op.summary, "description": text, "tags": [op.tag],
        "x-roles": list(op.roles), "security": security_for(op.method, op.roles),
        "responses": {str(op.status): {"description": "Success.", "content": {JSON: {"schema": ref(op.out)}}}}
        if op.out else {},
    }
    for status, codes in sorted(common_errors(op).items()):
        operation["responses"][str(status)] = error_response(status, codes)
    operation["responses"]["default"] = {"$ref": "#/components/responses/ServerError"}
    if op.query is not None:
        operation["parameters"] = [{"in": "query", "schema": op.query}]
    if op.body is not None:
        operation["requestBody"] = request_body(op, max_upload_mb)
    return operation


# -- operations that do not answer JSON --------------------------------------------------------
def qr_code_operation() -> dict:
    """GET /api/qr-code/: an SVG image."""
    op = Op("get", "/api/qr-code/", "qr_code", "The QR code of the code valid now", "Class sessions", (TEACHER,),
            "", query=inputs.SessionIn, errors=SESSION_404)
    operation = describe(op)
    operation["description"] += " The image opens the session's check-in with the code filled in; it changes with it."
    operation["responses"] = {"200": {
        "description": "An SVG image (not cached).",
        "headers": {"Cache-Control": {"schema": {"const": "no-store"}}},
        "content": {"image/svg+xml": {"schema": {"type": "string"}}},
    }, **operation["responses"]}
    return operation


def document_operation() -> dict:
    """GET /api/justifications/{justification_id}/document: the stored file, inline."""
    op = Op("get", "/api/justifications/{justification_id}/document", "justification_document",
            "A justification's document", "Justifications", (TEACHER, STUDENT), "", errors=SESSION_404,
            description="Shown inline to the course's teachers and to the student who sent it (others: 404).")
    operation = describe(op)
    operation["parameters"] = [{"in": "path", "name": "justification_id", "required": True, "schema": ID}]
    operation["responses"] = {"200": {
        "description": "The document, with the type its bytes proved.",
        "headers": {"Content-Security-Policy": {"schema": TEXT}, "Cache-Control": {"schema": TEXT},
                    "X-Content-Type-Options": {"schema": {"const": "nosniff"}}},
        "content": {media: {"schema": {"type": "string", "contentMediaType": media}} for media in DOCUMENT_TYPES},
    }, **operation["responses"]}
    return operation


def openapi_operation() -> dict:
    """GET /api/openapi.json: this document."""
    return {
        "operationId": "openapi_json", "summary": "This OpenAPI 3.1 document", "tags": ["Meta"], "security": [],
        "description": "Anyone may read it; no token needed.",
        "responses": {"200": {"description": "The document.", "content": {JSON: {"schema": {
            "type": "object", "required": ["openapi", "info", "paths", "components"],
            "properties": {"openapi": {"const": "3.1.0"}}}}}}},
    }


WEBSOCKET_DESCRIPTION = """\
A WebSocket (send `Upgrade: websocket`); authenticate with `?ticket=<ticket>` from POST /api/ws-ticket/
(single use, about a minute: what the tool's pages do, so the launch token stays out of URLs and logs)
or with `?token=<launch token>` (API clients).

Teachers of the session's course receive every message of the session; a student of the course
receives changes to their own records, of every session (one socket serves a whole page). A message
reaches every connected teacher, whichever server process holds the socket. Each message is a JSON
object with `type`:

- `connected`: first message, `class_session_id` and `role`;
- `ping`: after WS_PING_SECONDS (20 s) without any other message;
- `code_generated`: `code`, `expires_at` (and `class_session_id`) when check-in opens or the code is asked for;
- `student_submission`: a check-in; `attendance` as an item of get-session-submissions (students: `id`,
  `class_session_id`, `status` of their own record);
- `attendance_validated`: a changed status (validation, mark, close, approved justification); `attendance` as above;
- `ai_validation_result`: `result` as an item of run-ai-validation's `results`;
- `checkin_stopped`: check-in was stopped (`class_session_id`);
- `session_closed`: the session was closed (`class_session_id`, `absent_count`).

Schemas: `WsTeacherMessage` and `WsStudentMessage` (see `x-messages`). A caller who may not watch the
session is refused before the upgrade: 401 for a missing, bad, expired or used token or ticket, 403 otherwise.
Sockets are capped per server process: per class session (WS_MAX_PER_SESSION) and in all
(WS_MAX_PER_PROCESS), past which the handshake answers 429 `rate_limited`; and per user
(WS_MAX_PER_USER), past which the user's oldest socket closes with code 4429. A socket closes with code
4401 when its launch expires or its platform or deployment is deactivated (re-checked at each ping
interval). Clients only listen: an inbound message is ignored, one over 4 KiB closes the socket.
"""


def websocket_operation() -> dict:
    """GET /ws/attendance/{class_session_id}: the live feed of a class session."""
    return {
        "operationId": "attendance_socket", "summary": "Live messages of a class session (WebSocket)",
        "tags": ["Real-time"], "description": WEBSOCKET_DESCRIPTION, "security": [{"launchTokenQuery": []}],
        "x-roles": [TEACHER, STUDENT],
        "x-messages": {"teacher": ref("WsTeacherMessage"), "student": ref("WsStudentMessage")},
        "parameters": [
            {"in": "path", "name": "class_session_id", "required": True, "schema": ID},
            {"in": "query", "name": "ticket", "required": False, "schema": TEXT,
             "description": "a ticket from POST /api/ws-ticket/ for this session (single use)"},
            {"in": "query", "name": "token", "required": False, "schema": TEXT,
             "description": "the launch token (meta launch-token of the launched page), when there is no ticket"},
        ],
        "responses": {
            "101": {"description": "Switching Protocols: the socket is open; messages follow."},
            "400": {"description": "Not a WebSocket handshake (no `Connection: Upgrade`, `Upgrade: websocket`).",
                    "content": {"text/html": {"schema": TEXT}}},
            "401": {"$ref": "#/components/responses/Unauthorized"},
            "403": {"description": "The caller may not watch this session (or it does not exist), or the ticket "
                                   "is for another session.",
                    "content": {JSON: {"schema": error_schema(("permission_denied",))}}},
            "429": {"description": "This server process holds as many sockets as it may, in all or for this "
                                   "session; try again later.",
                    "headers": {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}},
                    "content": {JSON: {"schema": error_schema(("rate_limited",))}}},
        },
    }


# -- the document ------------------------------------------------------------------------------
API_DESCRIPTION = """\
Attendance for LMS courses, launched with LTI 1.3. Every endpoint is scoped to the course of the
launch that issued the token (or session), accepts JSON and application/x-www-form-urlencoded
bodies, and answers JSON: `{"success": true, ...}` or the error shape `Error`
(`{"success": false, "error": {"code", "message", "fields"?}}`) with a fitting HTTP status.
Any /api/ path called with a method it does not serve answers 405 (`MethodNotAllowed`).
"""

def security_schemes(app: Flask) -> dict[str, dict]:
    """The launch token (header or query), or the session cookie with its CSRF header."""
    return {
        "launchToken": {"type": "http", "scheme": "bearer", "bearerFormat": "signed launch token",
                        "description": "`Authorization: Bearer <token>`: the `launch-token` meta of the launched page. "
                                       "Works where third-party cookies are blocked."},
        "sessionCookie": {"type": "apiKey", "in": "cookie", "name": app.config["SESSION_COOKIE_NAME"],
                          "description": "The session cookie set by the launch."},
        "csrfToken": {"type": "apiKey", "in": "header", "name": "X-CSRFToken",
                      "description": "With the session cookie, unsafe methods need the `csrf-token` meta of the page "
                                     "(or a `csrf_token` form field)."},
        "launchTokenQuery": {"type": "apiKey", "in": "query", "name": "token",
                             "description": "The launch token, for the WebSocket handshake (or a `ticket` from "
                                            "POST /api/ws-ticket/ instead)."},
    }


def empty_email_default(converter, ma_field, ret: dict, **_) -> dict:
    """An email field that defaults to "" says so in words: "" is no email, so it cannot be the schema's default."""
    if isinstance(ma_field, fields.Email) and ret.get("default") == "":
        del ret["default"]
        return {"description": "optional; empty when left out"}
    return {}


def _version() -> str:
    """The installed package's version."""
    try:
        return version("lti-attendance")
    except PackageNotFoundError:
        return "0.0.0"


def build_document(app: Flask) -> dict:
    """Assemble the whole OpenAPI 3.1 document for this app's settings."""
    marshmallow = MarshmallowPlugin()
    spec = APISpec(title=app.config.get("TOOL_TITLE", "Attendance") + " API", version=_version(),
                   openapi_version="3.1.0", plugins=[marshmallow],
                   info={"description": API_DESCRIPTION}, servers=[{"url": app.config.get("TOOL_BASE_URL") or "/"}])
    marshmallow.converter.add_attribute_function(empty_email_default)
    for schema in INPUT_SCHEMAS:
        spec.components.schema(schema.__name__, schema=schema)
    for name, schema in output_schemas().items():
        spec.components.schema(name, component=schema)
    for name, response in error_responses().items():
        spec.components.response(name, component=response)
    for name, scheme in security_schemes(app).items():
        spec.components.security_scheme(name, component=scheme)
    paths: dict[str, dict] = {}
    for op in OPS:
        paths.setdefault(op.path, {})[op.method] = describe(op, app.config["MAX_UPLOAD_MB"])
    paths["/api/qr-code/"] = {"get": qr_code_operation()}
    paths["/api/justifications/{justification_id}/document"] = {"get": document_operation()}
    paths["/api/openapi.json"] = {"get": openapi_operation()}
    paths["/ws/attendance/{class_session_id}"] = {"get": websocket_operation()}
    for path in sorted(paths):
        spec.path(path=path, operations=paths[path])
    document = spec.to_dict()
    document.setdefault("tags", [{"name": name} for name in dict.fromkeys(
        op["tags"][0] for ops in paths.values() for op in ops.values())])
    return document


def openapi_document(app: Flask | None = None) -> dict:
    """The app's document, built on first use and kept in app.extensions."""
    app = app or current_app._get_current_object()
    document = app.extensions.get(CACHE_KEY)
    if document is None:
        document = app.extensions.setdefault(CACHE_KEY, build_document(app))
    return document


@bp.get("/api/openapi.json")
def openapi_json():
    """Serve the document to anyone."""
    return jsonify(openapi_document())
