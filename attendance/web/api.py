"""The JSON API under /api/: thin views that parse input, call a service and answer the contract's shape."""
from __future__ import annotations

from datetime import datetime
from io import BytesIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import segno
from flask import Blueprint, current_app, jsonify, request, send_file
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
    Justification,
    User,
)
from attendance.policy import checked_policy, policy_for
from attendance.records import iso, submission_json
from attendance.schedule import zone
from attendance.web import sockets
from attendance.web.auth import current_principal, require_role
from attendance.web.inputs import load
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
from lti.roles import STUDENT, TEACHER
from lti.services import ServiceError

bp = Blueprint("api", __name__, url_prefix="/api")



def ok(status: int = 200, **payload):
    return jsonify({"success": True, **payload}), status


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
    return ok(201, class_session=answers[0], class_sessions=answers)


@bp.post("/class-sessions/")
@require_role(TEACHER)
def create_class_session():
    principal = current_principal()
    return _create_sessions(sessions.course_of(principal), principal.user_id, load(ClassSessionIn))


@bp.get("/class-sessions/")
@require_role(TEACHER, STUDENT)
def list_class_sessions():
    principal = current_principal()
    course = sessions.course_of(principal)
    policy = policy_for(course.id)
    counts = dict(db.session.execute(
        select(AttendanceRecord.class_session_id, func.count()).join(ClassSession)
        .where(ClassSession.course_id == course.id, AttendanceRecord.source == "checkin")
        .group_by(AttendanceRecord.class_session_id)).all())
    now = clock.now()
    return ok(class_sessions=[sessions.session_json(s, policy, course, now, counts)
                              for s in sessions.list_class_sessions(course.id)])


@bp.post("/generate-code/")
@require_role(TEACHER)
def generate_code():
    data = load(GenerateCodeIn)
    session, issued = sessions.generate_code(current_principal(), data.get("class_session_id"), data["reopen"])
    return ok(code=issued.code, class_session_id=session.id, expires_at=iso(issued.expires_at),
              rotation_seconds=sessions.rotation_of(session, policy_for(session.course_id)),
              checkin_url=checkin_url(session.id, issued.code))


@bp.post("/stop-checkin/")
@require_role(TEACHER)
def stop_checkin():
    principal = current_principal()
    session = sessions.stop_checkin(principal, load(SessionIn)["class_session_id"])
    return ok(class_session=sessions.session_json(session, policy_for(session.course_id), session.course))


def checkin_url(class_session_id: int, code: str) -> str:
    from lti.views import tool_base_url

    return f"{tool_base_url()}/checkin/{class_session_id}?code={code}"


@bp.get("/qr-code/")
@require_role(TEACHER)
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
@require_role(STUDENT)
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
    return ok(201, attendance={"id": record.id, "class_session_id": record.class_session_id, "status": record.status,
                               "submitted_at": iso(record.submitted_at),
                               "location_flag": record.location_flag})


# -- teacher review ----------------------------------------------------------------------------
@bp.get("/get-session-submissions/")
@require_role(TEACHER)
def get_session_submissions():
    principal = current_principal()
    records = review.session_submissions(principal, load(SessionIn, query=True)["class_session_id"])
    return ok(submissions=[submission_json(r, r.student) for r in records])


@bp.get("/students/")
@require_role(TEACHER)
def list_students():
    """The course's students the tool knows (launched or rostered)."""
    principal = current_principal()
    rows = db.session.execute(select(User, Enrollment).join(Enrollment, Enrollment.user_id == User.id).where(
        Enrollment.course_id == principal.course_id, Enrollment.role == STUDENT).order_by(User.name)).all()
    return ok(students=[{"id": u.id, "name": u.display_name, "email": u.email, "active": e.active} for u, e in rows])


@bp.post("/validate-attendance/")
@require_role(TEACHER)
def validate_attendance():
    data = load(ValidateIn)
    ids = data.get("attendance_ids") or [data["attendance_id"]]
    records = review.validate_attendance(current_principal(), ids, data["status"], data.get("remark"),
                                           data.get("if_status"))
    payload = [submission_json(r, r.student) for r in records]
    return ok(attendance=payload[0], attendances=payload)


@bp.post("/mark-attendance/")
@require_role(TEACHER)
def mark_attendance():
    data = load(MarkIn)
    record = review.mark_attendance(current_principal(), data["class_session_id"], data["student_id"],
                                      data["status"], data.get("remark"))
    return ok(attendance=submission_json(record, record.student))


@bp.post("/run-ai-validation/")
@require_role(TEACHER)
def run_ai_validation():
    data = load(AiValidationIn)
    return ok(results=review.run_ai_validation(current_principal(), data.get("attendance_id"),
                                                 data.get("class_session_id")))


@bp.post("/close-session/")
@require_role(TEACHER)
def close_session():
    principal = current_principal()
    session, absent, roster_error = review.close_session(principal, load(SessionIn)["class_session_id"])
    return ok(absent_count=absent, roster_error=roster_error,
              class_session=sessions.session_json(session, policy_for(session.course_id), session.course))


# -- course settings ---------------------------------------------------------------------------
def _settings_json(course: Course) -> dict:
    policy = policy_for(course.id)
    return {"timezone": course.timezone or "UTC", "present_minutes": policy.present_minutes,
            "late_minutes": policy.late_minutes, "code_rotation_seconds": policy.code_rotation_seconds,
            "points_present": policy.points_present, "points_late": policy.points_late,
            "points_absent": policy.points_absent}


def _save_policy(course: Course, changes: dict) -> None:
    """Write changed rules to the course's policy row (created on first change), checked together first."""
    if changes:
        checked_policy(course.id, changes)
        row = db.session.get(CoursePolicy, course.id) or CoursePolicy(course_id=course.id)
        for key, value in changes.items():
            setattr(row, key, value)
        db.session.add(row)


@bp.route("/course-settings/", methods=["GET", "POST"])
@require_role(TEACHER)
def course_settings():
    principal = current_principal()
    course = sessions.course_of(principal)
    if request.method == "POST":
        data = load(CourseSettingsIn)
        if "timezone" in data:
            try:
                ZoneInfo(data["timezone"])
            except (ZoneInfoNotFoundError, ValueError):
                raise ApiError("validation_error", "Unknown timezone.", 422, {"timezone": ["Unknown timezone."]}) from None
            course.timezone = data.pop("timezone")
        _save_policy(course, data)
        db.session.commit()
    return ok(settings=_settings_json(course))


# -- justifications ----------------------------------------------------------------------------
def justification_json(row: Justification) -> dict:
    return {
        "id": row.id, "class_session_id": row.class_session_id,
        "student": {"id": row.student_id, "name": row.student.display_name},
        "reason": row.reason, "status": row.status, "created_at": iso(row.created_at),
        "reviewed_at": iso(row.reviewed_at),
        "document": {"name": row.document_name, "type": row.document_type, "size": row.document_size,
                     "url": f"/api/justifications/{row.id}/document"} if row.document_path else None,
    }


@bp.post("/submit-justification/")
@require_role(STUDENT)
def submit_justification():
    data = load(JustificationIn)
    row = justifications.submit_justification(current_principal(), data["class_session_id"], data["reason"],
                                              request.files.get("document"))
    return ok(201, justification=justification_json(row))


@bp.get("/justifications/")
@require_role(TEACHER)
def list_justifications():
    data = load(OptionalSessionIn, query=True)
    rows = justifications.list_justifications(current_principal(), data.get("class_session_id"))
    return ok(justifications=[justification_json(r) for r in rows])


@bp.get("/justifications/<int:justification_id>/document")
@require_role(TEACHER, STUDENT)
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
@require_role(TEACHER)
def review_justification():
    data = load(ReviewIn)
    row = justifications.review_justification(current_principal(), data["justification_id"], data["decision"])
    return ok(justification=justification_json(row))


# -- students' views ---------------------------------------------------------------------------
@bp.get("/student/current-classes/")
@require_role(STUDENT)
def current_classes():
    return ok(classes=schedule.classes(current_principal(), "current"))


@bp.get("/student/today-classes/")
@require_role(STUDENT)
def today_classes():
    return ok(classes=schedule.classes(current_principal(), "today"))


@bp.get("/student/weekly-classes/")
@require_role(STUDENT)
def weekly_classes():
    return ok(classes=schedule.classes(current_principal(), "week"))


@bp.get("/student/attendance-history/")
@require_role(STUDENT)
def attendance_history():
    data = load(HistoryIn, query=True)
    items, summary = schedule.history(current_principal(), data.get("course_id"), data.get("from_"), data.get("to"))
    return ok(history=items, summary=summary)


# -- live updates ------------------------------------------------------------------------------
@bp.post("/ws-ticket/")
@require_role(TEACHER, STUDENT)
def ws_ticket():
    """Issue a single-use ticket (valid about a minute) that opens one class session's WebSocket."""
    principal = current_principal()
    session = sessions.scoped_session(principal, load(SessionIn)["class_session_id"])
    ticket, expires_in = sockets.issue_ticket(principal, session.id)
    return ok(ticket=ticket, expires_in=expires_in)


# -- admin -------------------------------------------------------------------------------------
def _admin_course(course_id: int) -> Course:
    course, principal = db.session.get(Course, course_id), current_principal()
    # Admin rights reach the admin's own deployment, not every deployment of the registration.
    if course is None or course.registration_id != principal.registration_id or \
            course.deployment_id != principal.deployment_pk:
        raise ApiError("not_found", "No such course on your platform.", 404)
    return course


@bp.post("/admin/create-user/")
@require_role(admin=True)
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
    return ok(201, user={"id": user.id, "sub": user.sub, "name": user.name, "email": user.email})


@bp.post("/admin/create-course/")
@require_role(admin=True)
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
    return ok(201, course={"id": course.id, "context_id": course.context_id, "title": course.title,
                           "label": course.label, "timezone": course.timezone})


@bp.post("/admin/create-class-session/")
@require_role(admin=True)
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
@require_role(TEACHER)
def list_grades():
    """Each student's grade, how it was computed, and whether the LMS has it."""
    principal = current_principal()
    course = sessions.course_of(principal)
    students = db.session.execute(select(User, Enrollment).join(Enrollment, Enrollment.user_id == User.id).where(
        Enrollment.course_id == course.id, Enrollment.role == STUDENT).order_by(User.name)).all()
    computed = grading.compute_grades(course.id, [u.id for u, _ in students])
    deliveries = {row.student_id: row for row in db.session.scalars(
        select(GradeDelivery).where(GradeDelivery.course_id == course.id))}
    return ok(ags=outbox.course_has_ags(course), roster=roster.roster_state(course), policy=_policy_json(course),
              grades=[{"student": {"id": u.id, "name": u.display_name, "active": e.active},
                       "grade": computed[u.id].as_json(), "sync": _sync_json(deliveries.get(u.id))}
                      for u, e in students])


@bp.post("/grades/retry/")
@require_role(TEACHER)
def retry_grades():
    data = load(StudentIdIn)
    return ok(requeued=grade_worker.retry_failed(current_principal().course_id, data.get("student_id")))


def _policy_json(course: Course) -> dict:
    policy = policy_for(course.id)
    return {"points_present": policy.points_present, "points_late": policy.points_late,
            "points_absent": policy.points_absent, "drop_lowest": policy.drop_lowest,
            "denominator": policy.denominator}


@bp.route("/grade-policy/", methods=["GET", "POST"])
@require_role(TEACHER)
def grade_policy():
    """The course's grading rules; a change re-sends every student's grade."""
    principal = current_principal()
    course = sessions.course_of(principal)
    if request.method == "POST":
        _save_policy(course, load(GradePolicyIn))  # the flush queues every grade it moves
        db.session.commit()
    return ok(policy=_policy_json(course))


@bp.post("/roster/sync/")
@require_role(TEACHER)
def sync_roster_now():
    course = sessions.course_of(current_principal())
    if not course.nrps_url:
        raise ApiError("roster_not_granted", "The LMS did not grant the roster service (NRPS) to this tool in this "
                       "course; students are known from their launches.", 409)
    try:
        result = roster.sync_roster(course)
    except ServiceError as exc:
        raise ApiError("roster_unavailable", f"The LMS roster could not be read: {exc.message}", 502) from exc
    return ok(roster=roster.roster_state(course), members=result.members, added=result.added,
              updated=result.updated, deactivated=result.deactivated)
