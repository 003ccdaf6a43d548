"""The product's expected failures: an error code, an HTTP status, a message and maybe per-field errors."""
from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Every machine-readable error code the API can answer (the OpenAPI document lists exactly these)."""

    BAD_REQUEST = "bad_request"
    AUTHENTICATION_REQUIRED = "authentication_required"
    CSRF_MISSING = "csrf_missing"
    PERMISSION_DENIED = "permission_denied"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    CONFLICT = "conflict"
    INVALID_ATTENDANCE_CODE = "invalid_attendance_code"
    ALREADY_SUBMITTED = "already_submitted"
    ALREADY_RECORDED = "already_recorded"
    ALREADY_ATTENDED = "already_attended"
    ALREADY_REVIEWED = "already_reviewed"
    ALREADY_EXISTS = "already_exists"
    CHECKIN_CLOSED = "checkin_closed"
    CHECKIN_TOO_EARLY = "checkin_too_early"
    CHECKIN_NOT_OPEN = "checkin_not_open"
    STALE_STATUS = "stale_status"
    SESSION_CLOSED = "session_closed"
    ROSTER_NOT_GRANTED = "roster_not_granted"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    VALIDATION_ERROR = "validation_error"
    RATE_LIMITED = "rate_limited"
    ROSTER_UNAVAILABLE = "roster_unavailable"
    SERVER_ERROR = "server_error"


def as_error_code(code: ErrorCode | str) -> ErrorCode | str:
    """The enum member of a known code; an unknown one stays a string (tests/test_openapi.py catches it)."""
    try:
        return ErrorCode(code)
    except ValueError:
        return code


class ApiError(Exception):
    """An expected failure of an API call: a code, an HTTP status, a message and maybe per-field errors."""

    def __init__(self, code: ErrorCode | str, message: str, status: int = 400, fields: dict | None = None,
                 headers: dict | None = None):
        super().__init__(message)
        self.code, self.message, self.status, self.fields, self.headers = (
            as_error_code(code), message, status, fields, headers)


def error_body(code: ErrorCode | str, message: str, fields: dict | None = None) -> dict:
    """The contract's error shape."""
    error = {"code": str(code), "message": message}
    if fields:
        error["fields"] = fields
    return {"success": False, "error": error}
