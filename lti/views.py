"""LTI endpoints: login, launch, key set, dynamic registration, Canvas JSON and the admin config page."""
from __future__ import annotations

from urllib.parse import urlencode, urlsplit

from flask import Blueprint, current_app, jsonify, make_response, redirect, render_template, request, url_for

from extensions import db
from lti.adapter import LOGIN_PARAMS, PendingStorageCheck, start_login, state_cookie_name, validate_launch
from lti.constants import CANVAS_PLATFORM, TOOL_SCOPES
from lti.dynamic_registration import ToolDescription, ToolDynamicRegistration
from lti.exceptions import LtiError, RegistrationError
from lti.invitations import claim_invite, complete_invite, release_invite

bp = Blueprint("lti", __name__)


def tool_base_url() -> str:
    """Return the origin written into every URL the tool hands to a platform."""
    return current_app.config["TOOL_BASE_URL"]  # configuration only: a Host header must never choose it


def tool_url(endpoint: str, **values) -> str:
    """Return the absolute URL of an endpoint, on the tool's configured origin."""
    return tool_base_url() + url_for(endpoint, **values)


def tool_description() -> ToolDescription:
    """Describe the tool to a platform: name, URLs, logo and scopes."""
    base = tool_base_url()
    return ToolDescription(
        name=current_app.config["TOOL_TITLE"],
        description=current_app.config["TOOL_DESCRIPTION"],
        base_url=base,
        login_url=tool_url("lti.login"),
        launch_url=tool_url("lti.launch"),
        jwks_url=tool_url("lti.jwks"),
        logo_url=base + url_for("static", filename="logo.svg"),
        scopes=[s.value for s in TOOL_SCOPES],
    )


def _set_state_cookie(response, state: str) -> None:
    cfg = current_app.config
    response.set_cookie(
        state_cookie_name(state), state, max_age=cfg["LTI_STATE_TTL"], secure=cfg["LTI_COOKIE_SECURE"],
        httponly=True, samesite=cfg["LTI_COOKIE_SAMESITE"], partitioned=cfg["LTI_COOKIE_PARTITIONED"],
        path=url_for("lti.launch"),
    )


@bp.errorhandler(LtiError)
def lti_error(exc: LtiError):
    """Answer an LTI failure with a clear page and the failure's status; never a stack trace."""
    current_app.logger.info("LTI refused: %s (%s)", exc.message, exc.code)
    new_window_url = None
    if exc.code == "state_not_bound":
        new_window_url = getattr(exc, "retry_url", None)
    body = render_template("lti/error.html", error=exc, new_window_url=new_window_url)
    return make_response(body, exc.status)


@bp.route("/lti/login", methods=["GET", "POST"])
def login():
    """OIDC third-party login initiation."""
    params = {k: v for k, v in (request.form if request.method == "POST" else request.args).items()}
    base = urlsplit(tool_base_url())
    origins = {f"{base.scheme}://{base.netloc}"}  # never the Host header: a client chooses that
    result = start_login(params, tool_url("lti.launch"), origins)
    if result.storage_target:
        response = make_response(render_template(
            "lti/login_storage.html", redirect_url=result.redirect_url, state=result.state, nonce=result.nonce,
            secret=result.storage_secret,
            target=result.storage_target, origin=result.storage_origin))
    else:
        response = redirect(result.redirect_url, code=302)
    _set_state_cookie(response, result.state)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/lti/launch", methods=["POST"])
def launch():
    """Validate the id_token and hand the launch to the product."""
    form = {k: v for k, v in request.form.items()}
    try:
        outcome = validate_launch(form, request.cookies)
    except LtiError as exc:
        if exc.code == "state_not_bound":
            exc.retry_url = _retry_url(form)
        raise
    if isinstance(outcome, PendingStorageCheck):
        return render_template("lti/launch_storage.html", check=outcome, id_token=form["id_token"],
                               action=url_for("lti.launch"))
    response = make_response(current_app.extensions["lti_launch_handler"](outcome))
    response.delete_cookie(state_cookie_name(form["state"]), path=url_for("lti.launch"),
                           secure=True, samesite="None", partitioned=current_app.config["LTI_COOKIE_PARTITIONED"])
    return response


def _retry_url(form: dict) -> str | None:
    """Build a login URL that starts the same launch again, for a new window where cookies work."""
    import json

    from lti.adapter import STATE_PREFIX
    from lti.store import get_store

    raw = get_store().get(STATE_PREFIX + (form.get("state") or ""))
    if not raw:
        return None
    login = json.loads(raw).get("login") or {}
    params = {k: login[k] for k in LOGIN_PARAMS if login.get(k)}
    return url_for("lti.login") + "?" + urlencode(params)


@bp.route("/.well-known/jwks.json")
@bp.route("/lti/jwks")  # the inner route is the one url_for builds
def jwks():
    """Publish the tool's public keys: the current one and any still in their rotation grace period."""
    response = jsonify(current_app.extensions["lti_keys"].jwks())
    response.headers["Cache-Control"] = "public, max-age=300"
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


@bp.route("/lti/register")
def register():
    """LTI Dynamic Registration, opened by the platform in a dialog or iframe, with the tool's invitation.

    Without a valid invitation nothing is fetched (an anonymous visitor must not make the tool call
    anywhere), unless the operator opted into open registration: then the new platform is stored
    inactive, pending an admin's approval.
    """
    cfg = current_app.config
    invite = (request.args.get("invite") or "").strip()
    openid_configuration = (request.args.get("openid_configuration") or "").strip()
    if not invite and not cfg["LTI_OPEN_REGISTRATION"]:
        raise RegistrationError("Registering with this tool needs an invitation link from its administrator "
                                "(flask --app app platform invite).", code="invitation_required", status=403)
    if not openid_configuration:
        raise RegistrationError("This URL is for LTI Dynamic Registration: the platform must pass "
                                "openid_configuration.", status=400)
    flow = ToolDynamicRegistration(tool_description(), openid_configuration, request.args.get("registration_token"),
                                   cfg["LTI_HTTP_TIMEOUT"], allow_networks=cfg["OUTBOUND_ALLOW_NETWORKS"],
                                   pending=not invite)
    invite_id = claim_invite(invite) if invite else None
    try:
        flow.checked_url("openid_configuration", openid_configuration)
        registration = flow.register()
        if invite_id is not None:
            complete_invite(invite_id, registration.id)
        db.session.commit()
    except Exception:
        db.session.rollback()
        if invite_id is not None:
            release_invite(invite_id)
        raise
    current_app.logger.warning("platform registered by dynamic registration: %s client %s (%s)", registration.issuer,
                               registration.client_id, "pending approval" if registration.pending_approval else "invited")
    return render_template("lti/registered.html", registration=registration,
                           deployments=[d.deployment_id for d in registration.deployments])


@bp.route("/lti/canvas.json")
def canvas_json():
    """Serve the Canvas developer key JSON configuration."""
    tool = tool_description()
    domain = urlsplit(tool.base_url).netloc
    placement = {"text": tool.name, "enabled": True, "icon_url": tool.logo_url, "message_type": "LtiResourceLinkRequest",
                 "target_link_uri": tool.launch_url}
    return jsonify({
        "title": tool.name,
        "description": tool.description,
        "oidc_initiation_url": tool.login_url,
        "target_link_uri": tool.launch_url,
        "scopes": tool.scopes,
        "public_jwk_url": tool.jwks_url,
        "custom_fields": {},
        "extensions": [{
            "domain": domain,
            "tool_id": "lti-attendance",
            "platform": CANVAS_PLATFORM,
            "privacy_level": "public",
            "settings": {
                "text": tool.name,
                "icon_url": tool.logo_url,
                "placements": [
                    dict(placement, placement="course_navigation", default="enabled", visibility="members"),
                    dict(placement, placement="link_selection", message_type="LtiDeepLinkingRequest"),
                ],
            },
        }],
    })


@bp.route("/lti/config")
def config_page():
    """Show LMS admins every URL to paste into Moodle or Canvas."""
    tool = tool_description()
    return render_template("lti/config.html", tool=tool, register_url=tool_url("lti.register"),
                           canvas_json_url=tool_url("lti.canvas_json"), jwks_alt=tool_base_url() + "/.well-known/jwks.json")
