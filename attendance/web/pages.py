"""The HTML pages: what a launch lands on (role page or deep linking), the projector view, the QR landing page and the admin overview."""
from __future__ import annotations

import json
import re
import secrets
import time

from flask import Blueprint, current_app, make_response, render_template, request, session
from flask_wtf.csrf import generate_csrf
from sqlalchemy import func, select
from sqlalchemy.orm import aliased

from attendance.errors import ApiError
from attendance.lms.roster import sync_if_stale
from attendance.models import AttendanceRecord, AuditEntry, ClassSession, Course, Enrollment, User
from attendance.principal import Principal
from attendance.provisioning import provision
from attendance.schedule import zone
from attendance.web.auth import PAGE_SOURCES, SESSION_KEY, load_principal, optional_principal
from extensions import db
from lti.deep_linking import attendance_resource, deep_linking_response_jwt
from lti.exceptions import LtiError
from lti.invitations import create_invite, invite_url
from lti.launch import DeepLinkingSettings, Launch
from lti.models import Registration
from lti.roles import ADMIN, NONE, STUDENT, TEACHER
from lti.store import get_store
from lti.tokens import issue_launch_token, read_launch_token
from lti.tool_config import DatabaseToolConf
from lti.views import tool_base_url, tool_url

bp = Blueprint("pages", __name__)

DEEP_LINK_PREFIX = "deep_link:"
TEMPLATES = {TEACHER: "pages/teacher.html", STUDENT: "pages/student.html", ADMIN: "pages/admin.html"}


def handle_launch(launch: Launch):  # long: one launch: provision, token, session, then the page for the role
    """Provision the launch's people and course, then render the page for the user's role."""
    provisioned = provision(launch)
    course = provisioned.course
    role = launch.role
    if launch.is_deep_linking and role not in (TEACHER,) and not launch.is_admin:
        role = NONE
    claims = {
        "registration": launch.registration_id,
        "deployment": launch.deployment_pk,
        "user": provisioned.user.id,
        "course": course.id if course else None,
        "role": role,
        "admin": launch.is_admin,
    }
    if launch.is_deep_linking and role != NONE:
        settings = launch.deep_linking_settings
        key = secrets.token_urlsafe(24)
        get_store().put(DEEP_LINK_PREFIX + key, json.dumps(settings.__dict__), current_app.config["LTI_STATE_TTL"])
        claims["deep_link"] = key
    if course is not None and role == TEACHER:
        sync_if_stale(current_app._get_current_object(), course.id)  # throttled, in the background
    token = issue_launch_token(claims)
    session.clear()
    session.permanent = True  # the cookie expires with PERMANENT_SESSION_LIFETIME = LAUNCH_TOKEN_TTL
    session[SESSION_KEY] = {**claims, "issued_at": time.time()}
    context = {
        "launch_token": token,
        "csrf_token": generate_csrf(),
        "role": role,
        "is_admin": launch.is_admin,
        "user": provisioned.user,
        "course": course,
        "resource_link": provisioned.resource_link,
        "platform_name": launch.platform_name,
        "return_url": launch.return_url,
    }
    if "deep_link" in claims:
        return render_template("pages/deep_link.html", settings=launch.deep_linking_settings, **context)
    if role == NONE:
        return render_template("pages/no_access.html", **context)
    if role == ADMIN:
        context.update(admin_overview(launch.registration_id, launch.deployment_pk))
    return render_template(TEMPLATES[role], **context)


@bp.route("/deep-link/confirm", methods=["POST"])
def deep_link_confirm():
    """Send the chosen content item back to the platform as a signed LtiDeepLinkingResponse."""
    try:
        claims = read_launch_token(request.form.get("launch_token", ""))
    except LtiError as exc:
        raise ApiError(exc.code, exc.message, exc.status) from exc
    key = claims.get("deep_link")
    raw = get_store().pop(DEEP_LINK_PREFIX + key) if key else None
    if raw is None:
        raise ApiError("not_found", "This activity chooser session has expired; open it again from the course.", 404)
    settings = DeepLinkingSettings(**json.loads(raw))
    registration = db.session.get(Registration, claims["registration"])
    deployment = next((d for d in registration.deployments if d.id == claims["deployment"]), None) \
        if registration is not None and registration.active else None
    if deployment is None or not deployment.active:
        raise ApiError("permission_denied", "This platform or deployment is no longer active in the tool.", 403)
    title = (request.form.get("title") or "").strip()[:200] or current_app.config["TOOL_TITLE"]
    cfg = current_app.config  # the same line item the grade worker looks for: one column, whatever the settings
    resource = attendance_resource(tool_url("lti.launch"), title, score_maximum=cfg["GRADE_SCORE_MAXIMUM"],
                                   label=cfg["GRADE_LINE_ITEM_LABEL"], tag=cfg["GRADE_LINE_ITEM_TAG"])
    keys = current_app.extensions["lti_keys"]
    jwt_value = deep_linking_response_jwt(
        DatabaseToolConf(keys).to_pylti(registration), keys.current().kid, deployment.deployment_id, settings, [resource]
    )
    return render_template("pages/deep_link_return.html", return_url=settings.return_url, jwt=jwt_value)


# -- projector view -----------------------------------------------------------------------------
@bp.get("/projector/<int:class_session_id>")
def projector(class_session_id: int):
    """Show the full-screen code screen; its launch token travels in the URL fragment, never to the server.

    Everything it shows comes from the API with that token: the session and its course title from
    GET /api/class-sessions/, the code from POST /api/generate-code/, stops from the session's WebSocket.
    """
    response = make_response(render_template("pages/projector.html", class_session_id=class_session_id))
    return _private(response)


# -- QR landing page ----------------------------------------------------------------------------
CODE_SHAPE = re.compile(r"[A-Za-z0-9-]{4,16}")


@bp.get("/checkin/<int:class_session_id>")
def checkin_landing(class_session_id: int):
    """Where a phone camera lands from the QR code: how to check in, and a button when a launch session allows it.

    The page looks the same for any id to a visitor without a student session of that course, so it
    reveals nothing about sessions or courses; the code is only echoed when it looks like a code.
    """
    raw = (request.args.get("code") or "").strip()
    code = raw.upper() if CODE_SHAPE.fullmatch(raw) else None
    principal = optional_principal()  # no launch, an expired one, a deactivated platform: the generic page
    row = None
    if principal.role == STUDENT and principal.course_id:
        candidate = db.session.get(ClassSession, class_session_id)
        if candidate is not None and candidate.course_id == principal.course_id:
            row = candidate
    context = {"code": code, "class_session_id": class_session_id, "class_session": row,
               "course": row.course if row is not None else None,
               "csrf_token": generate_csrf() if row is not None else None}
    return _private(make_response(render_template("pages/checkin.html", **context)))


# -- admin overview -----------------------------------------------------------------------------
ACTIONS = {
    "validated": "changed a status", "marked": "marked a student", "closed_absent": "recorded absent at close",
    "session_closed": "closed a session", "checkin_opened": "opened check-in", "checkin_stopped": "stopped check-in",
    "justified": "excused (justification)",
}


def admin_overview(registration_id: int, deployment_pk: int, limit: int = 50) -> dict:
    """Gather the admin's deployment: its registration, the courses launched through it with counts, recent activity.

    Admin rights reach one deployment, not the whole registration: Canvas sub-account admins of
    different schools can share one client id, each with their own deployment.
    """
    registration = db.session.get(Registration, registration_id)
    courses = db.session.scalars(select(Course).where(Course.registration_id == registration_id,
                                                      Course.deployment_id == deployment_pk)
                                 .order_by(Course.title, Course.id)).all()
    ids = [c.id for c in courses] or [0]
    session_counts = dict(db.session.execute(select(ClassSession.course_id, func.count()).where(
        ClassSession.course_id.in_(ids)).group_by(ClassSession.course_id)).all())
    student_counts = dict(db.session.execute(select(Enrollment.course_id, func.count()).where(
        Enrollment.course_id.in_(ids), Enrollment.role == STUDENT, Enrollment.active.is_(True))
        .group_by(Enrollment.course_id)).all())
    actor, student = aliased(User), aliased(User)
    rows = db.session.execute(
        select(AuditEntry, Course, actor, student)
        .join(Course, Course.id == AuditEntry.course_id)
        .outerjoin(actor, actor.id == AuditEntry.actor_id)
        .outerjoin(AttendanceRecord, AttendanceRecord.id == AuditEntry.record_id)
        .outerjoin(student, student.id == AttendanceRecord.student_id)
        .where(Course.id.in_(ids))
        .order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit)).all()
    activity = [{
        "at": entry.at, "local": entry.at.astimezone(zone(course)).strftime("%Y-%m-%d %H:%M %Z"),
        "course": course.display_title, "actor": who.display_name if who else "—",
        "action": ACTIONS.get(entry.action, entry.action.replace("_", " ")),
        "student": whom.display_name if whom else "", "from": entry.from_status or "", "to": entry.to_status or "",
    } for entry, course, who, whom in rows]
    deployments = [d for d in registration.deployments if d.id == deployment_pk] if registration else []
    return {
        "registrations": [registration] if registration else [],
        "deployments": deployments,
        "courses": [{"course": c, "sessions": session_counts.get(c.id, 0), "students": student_counts.get(c.id, 0)}
                    for c in courses],
        "activity": activity,
    }


def _page_principal() -> Principal:
    """The caller of a page: a launch token in a posted form field, a Bearer header, or the launch session.

    Never a query string: URLs end up in access logs, browser history and Referer headers.
    """
    return load_principal(PAGE_SOURCES)


class _Refused(Exception):
    """A page request refused with a clear page (status, code, message)."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.page = _refusal(status, code, message)


def _admin_principal() -> Principal:
    """Find the caller of an admin page, or _Refused: no valid launch (401), or no admin rights (403)."""
    try:
        principal = _page_principal()
    except ApiError as exc:
        raise _Refused(exc.status, exc.code, exc.message) from exc
    if not (principal.role == ADMIN or principal.is_admin):
        raise _Refused(403, "permission_denied", "Only administrators of your platform can see this page. "
                       "Open Attendance from your course instead.")
    return principal


@bp.errorhandler(_Refused)
def _refused(exc: _Refused):
    return exc.page


@bp.route("/admin/overview", methods=["GET", "POST"])
def admin_overview_page():
    """Show the admin page: for admin launches (or teachers with admin rights) only; a clear 403 page for others."""
    return _admin_page(_admin_principal())


@bp.post("/admin/invitations")
def admin_invite():
    """Make a single-use dynamic registration link for another platform, and show it once."""
    principal = _admin_principal()
    hours = current_app.config["LTI_INVITE_HOURS"]
    token = create_invite(hours, note=(request.form.get("note") or "").strip()[:255],
                          created_by=f"admin user {principal.user_id} (registration {principal.registration_id}, "
                                    f"deployment {principal.deployment_pk})")
    current_app.logger.warning("registration invitation made by admin user %s of registration %s",
                               principal.user_id, principal.registration_id)
    return _admin_page(principal, new_invite={"url": invite_url(tool_base_url(), token), "hours": hours})


def _admin_page(principal: Principal, **extra):
    user = db.session.get(User, principal.user_id)
    token = request.form.get("token") if principal.via == "token" and request.method == "POST" else None
    response = make_response(render_template(
        "pages/admin_overview.html", user=user, launch_token=token,
        csrf_token=generate_csrf() if token is None else None,
        **admin_overview(principal.registration_id, principal.deployment_pk), **extra))
    return _private(response)


def _refusal(status: int, code: str, message: str):
    response = make_response(render_template("error.html", status=status, code=code, message=message), status)
    return _private(response)


def _private(response):
    """Pages that may carry tokens or personal data: never cached, never leaking their URL."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
