"""The live WebSocket: /ws/attendance/<class_session_id>?token=<launch token>.

Teachers of the session's course receive every message of the session; a student receives the
changes to their own record. Anyone else is refused with HTTP 403 before the upgrade.
"""
from __future__ import annotations

import json

from flask import Blueprint, current_app, g, jsonify, request
from simple_websocket import ConnectionClosed

from attendance import realtime
from attendance.auth import Principal
from attendance.errors import error_body
from attendance.models import ClassSession
from extensions import db, sock
from lti.exceptions import LaunchTokenError
from lti.tokens import read_launch_token

bp = Blueprint("sockets", __name__)
PING_SECONDS = 20


@bp.before_request
def authorize_socket():
    """Refuse before the upgrade: a bad token is 401, a caller who may not watch this session 403."""
    session_id = (request.view_args or {}).get("class_session_id")
    try:
        principal = Principal.from_claims(read_launch_token(request.args.get("token", "")), "token")
    except LaunchTokenError as exc:
        return jsonify(error_body("authentication_required", exc.message)), 401
    session = db.session.get(ClassSession, session_id) if session_id else None
    if session is None or session.course_id != principal.course_id or principal.role not in ("teacher", "student"):
        return jsonify(error_body("permission_denied", "You may not watch this class session.")), 403
    g.socket_principal = principal
    db.session.remove()  # a socket lives long: do not hold a database connection


@sock.route("/ws/attendance/<int:class_session_id>", bp=bp)
def attendance_socket(ws, class_session_id: int):
    principal: Principal = g.socket_principal
    channel = (realtime.session_channel(class_session_id) if principal.role == "teacher"
               else realtime.student_channel(class_session_id, principal.user_id))
    broker = current_app.extensions["attendance_broker"]
    subscription = broker.subscribe(channel)
    try:
        ws.send(json.dumps({"type": "connected", "class_session_id": class_session_id, "role": principal.role}))
        while ws.connected:
            message = subscription.get(timeout=PING_SECONDS)
            ws.send(json.dumps(message if message is not None else {"type": "ping"}))
    except ConnectionClosed:
        pass
    finally:
        broker.unsubscribe(subscription)
