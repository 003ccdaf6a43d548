"""The product's expected failures: an error code, an HTTP status, a message and maybe per-field errors."""
from __future__ import annotations


class ApiError(Exception):
    """An expected failure of an API call: a code, an HTTP status, a message and maybe per-field errors."""

    def __init__(self, code: str, message: str, status: int = 400, fields: dict | None = None,
                 headers: dict | None = None):
        super().__init__(message)
        self.code, self.message, self.status, self.fields, self.headers = code, message, status, fields, headers


def error_body(code: str, message: str, fields: dict | None = None) -> dict:
    error = {"code": code, "message": message}
    if fields:
        error["fields"] = fields
    return {"success": False, "error": error}
