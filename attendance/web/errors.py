"""The handlers that make every failure answer in the contract's shape: JSON on /api/, a page elsewhere."""
from __future__ import annotations

from flask import Flask, current_app, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from attendance.errors import ApiError, ErrorCode, error_body
from extensions import db
from lti.exceptions import LtiError

HTTP_CODES = {  # the code answered for a bare HTTP error of each status
    400: ErrorCode.BAD_REQUEST,
    401: ErrorCode.AUTHENTICATION_REQUIRED,
    403: ErrorCode.PERMISSION_DENIED,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    409: ErrorCode.CONFLICT,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
    415: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
    422: ErrorCode.VALIDATION_ERROR,
    429: ErrorCode.RATE_LIMITED,
}


def wants_json() -> bool:
    """Whether the caller expects JSON: every /api/ path, or an Accept header asking for it."""
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
        code = HTTP_CODES.get(status, ErrorCode.SERVER_ERROR if status >= 500 else ErrorCode.BAD_REQUEST)
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
            return jsonify(error_body(ErrorCode.SERVER_ERROR, message)), 500
        return render_template("error.html", status=500, code="server_error", message=message), 500
