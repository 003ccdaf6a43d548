"""The handlers that make every failure answer in the contract's shape: JSON on /api/, a page elsewhere."""
from __future__ import annotations

from flask import Flask, current_app, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from attendance.errors import ApiError, error_body
from extensions import db
from lti.exceptions import LtiError

HTTP_CODES = {
    400: "bad_request",
    401: "authentication_required",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def register_error_handlers(app: Flask) -> None:
    """JSON in the contract's shape for /api/; a plain page elsewhere; never a stack trace."""

    @app.errorhandler(ApiError)
    def api_error(exc: ApiError):
        return jsonify(error_body(exc.code, exc.message, exc.fields)), exc.status, exc.headers or {}

    @app.errorhandler(LtiError)
    def lti_error(exc: LtiError):
        if wants_json():
            return jsonify(error_body(exc.code, exc.message)), exc.status
        return render_template("lti/error.html", error=exc, new_window_url=None), exc.status

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        status = exc.code or 500
        code = HTTP_CODES.get(status, "server_error" if status >= 500 else "bad_request")
        message = exc.description or exc.name
        # The exception's own headers (Retry-After on 429, Allow on 405) belong in the answer.
        headers = [(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"]
        if wants_json():
            return jsonify(error_body(code, message)), status, headers
        return render_template("error.html", status=status, code=code, message=message), status, headers

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        db.session.rollback()
        current_app.logger.exception("Unhandled error on %s %s", request.method, request.path)
        message = "Something went wrong on our side; nothing was changed. Please try again."
        if wants_json():
            return jsonify(error_body("server_error", message)), 500
        return render_template("error.html", status=500, code="server_error", message=message), 500
