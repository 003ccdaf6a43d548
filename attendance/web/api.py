"""The JSON API under /api/: thin views that parse input, call a service and answer the contract's shape.

A flask-smorest blueprint: `@bp.response` names each success body's schema (attendance/web/schemas.py)
and dumps what the view returns through it; `@endpoint` guards the view by role and documents its
roles, input and own error codes. Inputs are parsed by `inputs.load` (JSON or form bodies alike, under
the JSON size and depth caps), so the input schemas are documented, not parsed, by smorest.
The check-in and the submission lists answer lean, ready-made bodies (see `lean`).
"""
from __future__ import annotations

from datetime import datetime
from io import BytesIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import segno
from flask import current_app, jsonify, request, send_file
from flask_smorest import Blueprint
from sqlalchemy import func, select

from attendance import checkin, clock, codes, grading, justifications, review, schedule, sessions
from attendance.enrolment import record_membership
from attendance.errors import ApiError
from attendance.lms import grade_worker, outbox, roster
from attendance.models import (
    AttendanceRecord,
    ClassSession,
    Course,
    CoursePolicy,
    DeliveryState,
    Enrollment,
    GradeDelivery,
    User,
)
from attendance.policy import checked_policy, policy_for
from attendance.records import iso, submission_json
from attendance.schedule import zone
from attendance.web import openapi, schemas, sockets
from attendance.web.auth import current_principal, require_role
from attendance.web.inputs import load
from attendance.web.openapi import SESSION_404, operation
from attendance.web.ratelimit import wrong_codes
from attendance.web.schemas import (
    AdminClassSessionIn,
    AiValidationIn,
    ClassSessionIn,
    CourseSettingsIn,
    CreateCourseIn,
    CreateUserIn,
    GenerateCodeIn,
    GradePolicyIn,
    HistoryIn,
    JustificationIn,
    MarkIn,
    OptionalSessionIn,
    ReviewIn,
    SessionIn,
    StudentIdIn,
    SubmitAttendanceIn,
    ValidateIn,
)
from extensions import db
from lti.roles import ADMIN, STUDENT, TEACHER
from lti.services import ServiceError

bp = Blueprint("api", __name__, url_prefix="/api")


def endpoint(*roles: str, summary: str, tag: str, admin: bool = False, **doc):
    """Let callers of these roles through (see require_role) and document the operation with them."""

    def decorate(view):
        documented = operation(view.__name__, (ADMIN,) if admin else roles, summary, tag, **doc)
        return bp.doc(**documented)(require_role(*roles, admin=admin)(view))

    return decorate


def lean(status: int = 200, **payload):
    """A ready JSON answer that skips the schema dump: the check-in hot path and record lists.

    Dumping a record through SubmissionOut costs about 27 µs against 4 µs for submission_json;
    tests/test_openapi.py checks these bodies against the same schemas.
    """
    response = jsonify({"success": True, **payload})
    response.status_code = status
    return response


def _localize(moment: datetime | None, course: Course) -> datetime | None:
    """Times without an offset are in the course's timezone; everything is stored in UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=zone(course))


# -- class sessions ----------------------------------------------------------------------------
def _create_sessions(course: Course, actor_id: int | None, data: dict):
    data.pop("course_id", None)
    for key in ("starts_at", "ends_at", "repeat_weekly_until"):
        data[key] = _localize(data.get(key), course)
    created = sessions.create_class_sessions(course, actor_id, **data)
    policy = policy_for(course.id)
    answers = [sessions.session_json(s, policy, course) for s in created]
    return {"class_session": answers[0], "class_sessions": answers}


@bp.post("/class-sessions/")
@bp.response(201, schemas.ClassSessionsCreatedOut)
@endpoint(TEACHER, summary="Create a class session (or a weekly series)", tag="Class sessions",
          body=ClassSessionIn, errors=SESSION_404, description="Times without an offset are in the course's timezone.")
def create_class_session():
    principal = current_principal()
    return _create_sessions(sessions.course_of(principal), principal.user_id, load(ClassSessionIn))


@bp.get("/class-sessions/")
@bp.response(200, schemas.ClassSessionListOut)
@endpoint(TEACHER, STUDENT, summary="The launched course's class sessions", tag="Class sessions", errors=SESSION_404)
def list_class_sessions():
    principal = current_principal()
    course = sessions.course_of(principal)
    policy = policy_for(course.id)
    counts = dict(db.session.execute(
        select(AttendanceRecord.class_session_id, func.count()).join(ClassSession)
        .where(ClassSession.course_id == course.id, AttendanceRecord.source == "checkin")
        .group_by(AttendanceRecord.class_session_id)).all())
    now = clock.now()
    return {"class_sessions": [sessions.session_json(s, policy, course, now, counts)
                               for s in sessions.list_class_sessions(course.id)]}


@bp.post("/generate-code/")
@bp.response(200, schemas.CodeIssuedOut)
@endpoint(TEACHER, summary="Open check-in and get the code valid now", tag="Class sessions", body=GenerateCodeIn,
          body_required=False,
          errors={404: ("not_found",), 409: ("session_closed", "checkin_not_open", "checkin_too_early")},
          description="Without class_session_id, an ad-hoc session of the course starting now is created or reused. "
                      "Codes rotate; each is announced on the session's WebSocket (code_generated). Check-in opens at "
                      "most CHECKIN_EARLY_MINUTES (15) before the start (`checkin_too_early` before that). Opening it "
                      "again after its window is over starts a new window from now; a stop and restart while the "
                      "window runs keeps it. The code rotation is fixed when check-in opens (`rotation_seconds`): a "
                      "settings change applies from the next opening.")
def generate_code():
    data = load(GenerateCodeIn)
    session, issued = sessions.generate_code(current_principal(), data.get("class_session_id"), data["reopen"])
    return {"code": issued.code, "class_session_id": session.id, "expires_at": issued.expires_at,
            "rotation_seconds": sessions.rotation_of(session, policy_for(session.course_id)),
            "checkin_url": checkin_url(session.id, issued.code)}


@bp.post("/stop-checkin/")
@bp.response(200, schemas.ClassSessionResultOut)
@endpoint(TEACHER, summary="Stop accepting check-ins (the session stays open)", tag="Class sessions", body=SessionIn,
          errors=SESSION_404)
def stop_checkin():
    principal = current_principal()
    session = sessions.stop_checkin(principal, load(SessionIn)["class_session_id"])
    return {"class_session": sessions.session_json(session, policy_for(session.course_id), session.course)}


def checkin_url(class_session_id: int, code: str) -> str:
    from lti.views import tool_base_url

    return f"{tool_base_url()}/checkin/{class_session_id}?code={code}"


@bp.get("/qr-code/")
@bp.doc(responses={"200": openapi.QR_CODE_RESPONSE})
@endpoint(TEACHER, summary="The QR code of the code valid now", tag="Class sessions", query=SessionIn,
          errors=SESSION_404, description="The image opens the session's check-in with the code filled in; "
                                          "it changes with it.")
def qr_code():
    """The QR code (SVG) of the code valid now: it opens the check-in of this session with the code filled in."""
    principal = current_principal()
    session = sessions.scoped_session(principal, load(SessionIn, query=True)["class_session_id"])
    policy = policy_for(session.course_id)
    issued = codes.current_code(session.code_secret, clock.now(), sessions.rotation_of(session, policy))
    buffer = BytesIO()
    segno.make(checkin_url(session.id, issued.code), error="m").save(buffer, kind="svg", scale=8, border=2,
                                                                     xmldecl=False, svgns=True)
    response = current_app.response_class(buffer.getvalue(), mimetype="image/svg+xml")
    response.headers["Cache-Control"] = "no-store"
    return response


# -- check-in ----------------------------------------------------------------------------------
@bp.post("/submit-attendance/")
@bp.response(201, schemas.CheckInAcceptedOut)
@endpoint(STUDENT, summary="Check in with the code on the screen", tag="Check-in", body=SubmitAttendanceIn,
          errors={400: ("invalid_attendance_code", "bad_request"), 404: ("not_found",),
                  409: ("already_submitted", "checkin_closed", "checkin_too_early", "already_recorded"),
                  429: ("rate_limited",)},
          description="latitude/longitude may be given as simulated_latitude/simulated_longitude; no location at all "
                      "is accepted and flagged (location_flag `missing`). Wrong codes are rate limited per student "
                      "and (loosely) per network address. A 409 says why: `already_submitted` (the student's own "
                      "check-in), `already_recorded` (a teacher recorded the student), `checkin_closed` (the window "
                      "is over, or the class was closed first), `checkin_too_early`. A student excused in advance "
                      "(an approved justification) who comes anyway checks in normally.")
def submit_attendance():
    principal = current_principal()
    limiter = wrong_codes()
    limiter.check(principal.user_id, request.remote_addr)  # before the code is judged: no guessing past it
    data = load(SubmitAttendanceIn)
    where = checkin.Where(
        latitude=data.get("latitude", data.get("simulated_latitude")),
        longitude=data.get("longitude", data.get("simulated_longitude")),
        accuracy_m=data.get("accuracy_m"))
    client = checkin.Client(ip=request.remote_addr, user_agent=request.headers.get("User-Agent", ""),
                             device_id=data.get("device_id"))
    try:
        record = checkin.record_check_in(principal, data["attendance_code"], where, client,
                                          data.get("class_session_id"))
    except ApiError as exc:
        if exc.code == "invalid_attendance_code":
            limiter.count_wrong(principal.user_id, request.remote_addr)
        raise
    return lean(201, attendance={"id": record.id, "class_session_id": record.class_session_id, "status": record.status,
                               "submitted_at": iso(record.submitted_at),
                               "location_flag": record.location_flag})


# -- teacher review ----------------------------------------------------------------------------
@bp.get("/get-session-submissions/")
@bp.response(200, schemas.SubmissionListOut)
@endpoint(TEACHER, summary="Every submission of a session", tag="Review", query=SessionIn, errors=SESSION_404)
def get_session_submissions():
    principal = current_principal()
    records = review.session_submissions(principal, load(SessionIn, query=True)["class_session_id"])
    return lean(submissions=[submission_json(r, r.student) for r in records])


@bp.get("/students/")
@bp.response(200, schemas.StudentListOut)
@endpoint(TEACHER, summary="The course's students the tool knows (launched or rostered)", tag="Review")
def list_students():
    """The course's students the tool knows (launched or rostered)."""
    principal = current_principal()
    rows = db.session.execute(select(User, Enrollment).join(Enrollment, Enrollment.user_id == User.id).where(
        Enrollment.course_id == principal.course_id, Enrollment.role == STUDENT).order_by(User.name)).all()
    return {"students": [{"id": u.id, "name": u.display_name, "email": u.email, "active": e.active} for u, e in rows]}


@bp.post("/validate-attendance/")
@bp.response(200, schemas.AttendanceValidatedOut)
@endpoint(TEACHER, summary="Set the status of one or more records", tag="Review", body=ValidateIn,
          errors={404: ("not_found",), 409: ("stale_status",)},
          description="Each change is audited and announced on the WebSocket (attendance_validated). With "
                      "`if_status`, nothing changes (409 `stale_status`) unless every record still has that status: "
                      "a page that resends what it showed never reverts another teacher's change.")
def validate_attendance():
    data = load(ValidateIn)
    ids = data.get("attendance_ids") or [data["attendance_id"]]
    records = review.validate_attendance(current_principal(), ids, data["status"], data.get("remark"),
                                           data.get("if_status"))
    payload = [submission_json(r, r.student) for r in records]
    return lean(attendance=payload[0], attendances=payload)


@bp.post("/mark-attendance/")
@bp.response(200, schemas.AttendanceMarkedOut)
@endpoint(TEACHER, summary="Record a status for an enrolled student", tag="Review", body=MarkIn, errors=SESSION_404,
          description="With or without a check-in (e.g. a forgotten phone).")
def mark_attendance():
    data = load(MarkIn)
    record = review.mark_attendance(current_principal(), data["class_session_id"], data["student_id"],
                                      data["status"], data.get("remark"))
    return lean(attendance=submission_json(record, record.student))


@bp.post("/run-ai-validation/")
@bp.response(200, schemas.AiResultsOut)
@endpoint(TEACHER, summary="Score check-ins again for risk", tag="Review", body=AiValidationIn, errors=SESSION_404,
          description="Give attendance_id or class_session_id. Each result is also sent on the WebSocket "
                      "(ai_validation_result).")
def run_ai_validation():
    data = load(AiValidationIn)
    return {"results": review.run_ai_validation(current_principal(), data.get("attendance_id"),
                                                data.get("class_session_id"))}


@bp.post("/close-session/")
@bp.response(200, schemas.SessionClosedOut)
@endpoint(TEACHER, summary="Close a session: students without a record are absent", tag="Review", body=SessionIn,
          errors=SESSION_404, description="The roster is read from the LMS (NRPS) first when the launch carried it.")
def close_session():
    principal = current_principal()
    session, absent, roster_error = review.close_session(principal, load(SessionIn)["class_session_id"])
    return {"absent_count": absent, "roster_error": roster_error,
            "class_session": sessions.session_json(session, policy_for(session.course_id), session.course)}


# -- course settings ---------------------------------------------------------------------------
def _settings(course: Course) -> dict:
    """The course's settings, for SettingsResultOut: its timezone and its rules."""
    return {"settings": {**vars(policy_for(course.id)), "timezone": course.timezone or "UTC"}}


def _save_policy(course: Course, changes: dict) -> None:
    """Write changed rules to the course's policy row (created on first change), checked together first."""
    if changes:
        checked_policy(course.id, changes)
        row = db.session.get(CoursePolicy, course.id) or CoursePolicy(course_id=course.id)
        for key, value in changes.items():
            setattr(row, key, value)
        db.session.add(row)


@bp.get("/course-settings/")
@bp.response(200, schemas.SettingsResultOut)
@endpoint(TEACHER, summary="The course's attendance settings", tag="Course settings", errors=SESSION_404)
def get_course_settings():
    return _settings(sessions.course_of(current_principal()))


@bp.post("/course-settings/")
@bp.response(200, schemas.SettingsResultOut)
@endpoint(TEACHER, summary="Change the course's attendance settings", tag="Course settings",
          body=CourseSettingsIn, body_required=False, errors=SESSION_404)
def update_course_settings():
    course = sessions.course_of(current_principal())
    data = load(CourseSettingsIn)
    if "timezone" in data:
        try:
            ZoneInfo(data["timezone"])
        except (ZoneInfoNotFoundError, ValueError):
            raise ApiError("validation_error", "Unknown timezone.", 422, {"timezone": ["Unknown timezone."]}) from None
        course.timezone = data.pop("timezone")
    _save_policy(course, data)
    db.session.commit()
    return _settings(course)


# -- justifications ----------------------------------------------------------------------------
@bp.post("/submit-justification/")
@bp.response(201, schemas.JustificationResultOut)
@endpoint(STUDENT, summary="Justify an absence, with a document", tag="Justifications", body=JustificationIn,
          errors={404: ("not_found",), 409: ("already_submitted", "already_attended"),
                  415: ("unsupported_media_type",)},
          description="Send multipart/form-data to attach a document: PDF, PNG or JPEG (judged by its bytes). One "
                      "pending or approved justification per session (`already_submitted`); none for a class the "
                      "student attended, present or late (`already_attended`).")
def submit_justification():
    data = load(JustificationIn)
    row = justifications.submit_justification(current_principal(), data["class_session_id"], data["reason"],
                                              request.files.get("document"))
    return {"justification": row}


@bp.get("/justifications/")
@bp.response(200, schemas.JustificationListOut)
@endpoint(TEACHER, summary="The course's justifications", tag="Justifications", query=OptionalSessionIn,
          errors=SESSION_404)
def list_justifications():
    data = load(OptionalSessionIn, query=True)
    rows = justifications.list_justifications(current_principal(), data.get("class_session_id"))
    return {"justifications": rows}


@bp.get("/justifications/<int:justification_id>/document",
        parameters=[{"in": "path", "name": "justification_id", "required": True, "schema": openapi.ID}])
@bp.doc(responses={"200": openapi.DOCUMENT_RESPONSE})
@endpoint(TEACHER, STUDENT, summary="A justification's document", tag="Justifications", errors=SESSION_404,
          description="Shown inline to the course's teachers and to the student who sent it (others: 404).")
def justification_document(justification_id: int):
    """The document, shown inline to the course's teachers and its student only."""
    row = justifications.scoped_justification(current_principal(), justification_id)
    path = justifications.document_path(row) if row.document_path else None
    if path is None or not path.is_file():
        raise ApiError("not_found", "This justification has no document.", 404)
    response = send_file(path, mimetype=row.document_type, download_name=row.document_name, as_attachment=False,
                         max_age=0)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "sandbox; default-src 'none'; img-src 'self'; object-src 'self'"
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.post("/review-justification/")
@bp.response(200, schemas.JustificationResultOut)
@endpoint(TEACHER, summary="Approve or reject a justification", tag="Justifications", body=ReviewIn,
          errors={404: ("not_found",), 409: ("already_reviewed",)},
          description="An approved justification makes the student's attendance `excused`, unless the student "
                      "attended (present or late): an attendance is never lowered, the approval then changes no "
                      "record.")
def review_justification():
    data = load(ReviewIn)
    row = justifications.review_justification(current_principal(), data["justification_id"], data["decision"])
    return {"justification": row}


# -- students' views ---------------------------------------------------------------------------
@bp.get("/student/current-classes/")
@bp.response(200, schemas.ClassListOut)
@endpoint(STUDENT, summary="Classes open now or about to start", tag="Student")
def current_classes():
    return {"classes": schedule.classes(current_principal(), "current")}


@bp.get("/student/today-classes/")
@bp.response(200, schemas.ClassListOut)
@endpoint(STUDENT, summary="Today's classes (course timezone)", tag="Student")
def today_classes():
    return {"classes": schedule.classes(current_principal(), "today")}


@bp.get("/student/weekly-classes/")
@bp.response(200, schemas.ClassListOut)
@endpoint(STUDENT, summary="This week's classes (course timezone)", tag="Student")
def weekly_classes():
    return {"classes": schedule.classes(current_principal(), "week")}


@bp.get("/student/attendance-history/")
@bp.response(200, schemas.HistoryOut)
@endpoint(STUDENT, summary="The student's attendance history", tag="Student", query=HistoryIn)
def attendance_history():
    data = load(HistoryIn, query=True)
    items, summary = schedule.history(current_principal(), data.get("course_id"), data.get("from_"), data.get("to"))
    return {"history": items, "summary": summary}


# -- live updates ------------------------------------------------------------------------------
@bp.post("/ws-ticket/")
@bp.response(200, schemas.WsTicketOut)
@endpoint(TEACHER, STUDENT, summary="A single-use ticket that opens a class session's WebSocket", tag="Real-time",
          body=SessionIn, errors=SESSION_404,
          description="For pages: the ticket goes in the socket's URL instead of the launch token, so the token stays "
                      "out of URLs and logs. It works once, for this session, within `expires_in` seconds (and never "
                      "past the launch's own expiry).")
def ws_ticket():
    """Issue a single-use ticket (valid about a minute) that opens one class session's WebSocket."""
    principal = current_principal()
    session = sessions.scoped_session(principal, load(SessionIn)["class_session_id"])
    ticket, expires_in = sockets.issue_ticket(principal, session.id)
    return {"ticket": ticket, "expires_in": expires_in}


# -- admin -------------------------------------------------------------------------------------
def _admin_course(course_id: int) -> Course:
    course, principal = db.session.get(Course, course_id), current_principal()
    # Admin rights reach the admin's own deployment, not every deployment of the registration.
    if course is None or course.registration_id != principal.registration_id or \
            course.deployment_id != principal.deployment_pk:
        raise ApiError("not_found", "No such course on your platform.", 404)
    return course


@bp.post("/admin/create-user/")
@bp.response(201, schemas.UserCreatedOut)
@endpoint(summary="Create a user on the admin's platform", tag="Admin", admin=True, body=CreateUserIn,
          errors={404: ("not_found",), 409: ("already_exists",)})
def admin_create_user():
    principal = current_principal()
    data = load(CreateUserIn)
    if db.session.scalar(select(User).filter_by(registration_id=principal.registration_id, sub=data["sub"])):
        raise ApiError("already_exists", "A user with this sub already exists on your platform.", 409)
    user = User(registration_id=principal.registration_id, sub=data["sub"], name=data["name"], email=data["email"])
    db.session.add(user)
    if data.get("course_id"):
        db.session.flush()
        course = _admin_course(data["course_id"])
        db.session.add(Enrollment(course_id=course.id, user_id=user.id, role=data["role"], source="admin"))
        record_membership(course.id, {user.id: data["role"] == STUDENT})
    db.session.commit()
    return {"user": user}


@bp.post("/admin/create-course/")
@bp.response(201, schemas.CourseCreatedOut)
@endpoint(summary="Create a course on the admin's platform", tag="Admin", admin=True, body=CreateCourseIn,
          errors={409: ("already_exists",)})
def admin_create_course():
    principal = current_principal()
    data = load(CreateCourseIn)
    try:
        ZoneInfo(data["timezone"])
    except (ZoneInfoNotFoundError, ValueError):
        raise ApiError("validation_error", "Unknown timezone.", 422, {"timezone": ["Unknown timezone."]}) from None
    if db.session.scalar(select(Course).filter_by(registration_id=principal.registration_id, context_id=data["context_id"])):
        raise ApiError("already_exists", "A course with this context id already exists on your platform.", 409)
    course = Course(registration_id=principal.registration_id, deployment_id=principal.deployment_pk, **data)
    db.session.add(course)
    db.session.commit()
    return {"course": course}


@bp.post("/admin/create-class-session/")
@bp.response(201, schemas.ClassSessionsCreatedOut)
@endpoint(summary="Create a class session in any course of the admin's platform", tag="Admin", admin=True,
          body=AdminClassSessionIn, errors=SESSION_404)
def admin_create_class_session():
    data = load(AdminClassSessionIn)
    return _create_sessions(_admin_course(data["course_id"]), current_principal().user_id, data)


# -- grades and roster -------------------------------------------------------------------------
def _sync_json(row) -> dict:
    if row is None:
        return {"state": "none", "pending": False}
    return {"state": row.state, "pending": row.state == DeliveryState.PENDING, "delivered_score": row.last_score,
            "delivered_at": iso(row.delivered_at), "last_status": row.last_status,
            "last_error": row.last_error, "attempts": row.attempts,
            "up_to_date": row.delivered_version == row.version and row.state == DeliveryState.DELIVERED}


@bp.get("/grades/")
@bp.response(200, schemas.GradeListOut)
@endpoint(TEACHER, summary="Each student's grade and its delivery to the LMS", tag="Grades", errors=SESSION_404)
def list_grades():
    """Each student's grade, how it was computed, and whether the LMS has it."""
    principal = current_principal()
    course = sessions.course_of(principal)
    students = db.session.execute(select(User, Enrollment).join(Enrollment, Enrollment.user_id == User.id).where(
        Enrollment.course_id == course.id, Enrollment.role == STUDENT).order_by(User.name)).all()
    computed = grading.compute_grades(course.id, [u.id for u, _ in students])
    deliveries = {row.student_id: row for row in db.session.scalars(
        select(GradeDelivery).where(GradeDelivery.course_id == course.id))}
    return {"ags": outbox.course_has_ags(course), "roster": roster.roster_state(course),
            "policy": policy_for(course.id),
            "grades": [{"student": {"id": u.id, "name": u.display_name, "active": e.active},
                        "grade": computed[u.id], "sync": _sync_json(deliveries.get(u.id))} for u, e in students]}


@bp.post("/grades/retry/")
@bp.response(200, schemas.GradesRequeuedOut)
@endpoint(TEACHER, summary="Send failed grades again, now", tag="Grades", body=StudentIdIn, body_required=False,
          description="Without student_id, every failed delivery of the course is retried.")
def retry_grades():
    data = load(StudentIdIn)
    return {"requeued": grade_worker.retry_failed(current_principal().course_id, data.get("student_id"))}


@bp.get("/grade-policy/")
@bp.response(200, schemas.GradePolicyResultOut)
@endpoint(TEACHER, summary="The course's grading rules", tag="Grades", errors=SESSION_404)
def get_grade_policy():
    return {"policy": policy_for(sessions.course_of(current_principal()).id)}


@bp.post("/grade-policy/")
@bp.response(200, schemas.GradePolicyResultOut)
@endpoint(TEACHER, summary="Change the grading rules (every grade is sent again)", tag="Grades",
          body=GradePolicyIn, body_required=False, errors=SESSION_404)
def update_grade_policy():
    course = sessions.course_of(current_principal())
    _save_policy(course, load(GradePolicyIn))  # the flush queues every grade it moves
    db.session.commit()
    return {"policy": policy_for(course.id)}


@bp.post("/roster/sync/")
@bp.response(200, schemas.RosterSyncedOut)
@endpoint(TEACHER, summary="Read the course roster from the LMS (NRPS) now", tag="Grades",
          errors={404: ("not_found",), 409: ("roster_not_granted",), 502: ("roster_unavailable",)},
          description="No body. Students who left the LMS course become inactive. 409 when the LMS did not grant "
                      "the roster service (NRPS) to this course's launches.")
def sync_roster():
    course = sessions.course_of(current_principal())
    if not course.nrps_url:
        raise ApiError("roster_not_granted", "The LMS did not grant the roster service (NRPS) to this tool in this "
                       "course; students are known from their launches.", 409)
    try:
        result = roster.sync_roster(course)
    except ServiceError as exc:
        raise ApiError("roster_unavailable", f"The LMS roster could not be read: {exc.message}", 502) from exc
    return {"roster": roster.roster_state(course), "members": result.members, "added": result.added,
            "updated": result.updated, "deactivated": result.deactivated}
