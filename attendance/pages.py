"""What a launch lands on: the role's home page, or the deep linking confirmation."""
from __future__ import annotations

import json
import secrets

from flask import Blueprint, current_app, render_template, request, session
from flask_wtf.csrf import generate_csrf

from attendance.auth import SESSION_KEY
from attendance.errors import ApiError
from attendance.provisioning import provision
from extensions import csrf, db
from lti.deep_linking import attendance_resource, deep_linking_response_jwt
from lti.exceptions import LtiError
from lti.launch import DeepLinkingSettings, Launch
from lti.models import Registration
from lti.roles import ADMIN, NONE, STUDENT, TEACHER
from lti.store import get_store
from lti.tokens import issue_launch_token, read_launch_token
from lti.tool_config import DatabaseToolConf
from lti.views import tool_url

bp = Blueprint("pages", __name__)
csrf.exempt(bp)  # the deep linking form carries its launch token instead of a cookie-bound CSRF token

DEEP_LINK_PREFIX = "deep_link:"
TEMPLATES = {TEACHER: "pages/teacher.html", STUDENT: "pages/student.html", ADMIN: "pages/admin.html"}


def handle_launch(launch: Launch):
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
    token = issue_launch_token(claims)
    session.clear()
    session[SESSION_KEY] = claims
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
    deployment = next(d for d in registration.deployments if d.id == claims["deployment"])
    title = (request.form.get("title") or "").strip()[:200] or current_app.config["TOOL_TITLE"]
    resource = attendance_resource(tool_url("lti.launch"), title, score_maximum=100, label="Attendance", tag="attendance")
    keys = current_app.extensions["lti_keys"]
    jwt_value = deep_linking_response_jwt(
        DatabaseToolConf(keys).to_pylti(registration), keys.current().kid, deployment.deployment_id, settings, [resource]
    )
    return render_template("pages/deep_link_return.html", return_url=settings.return_url, jwt=jwt_value)
