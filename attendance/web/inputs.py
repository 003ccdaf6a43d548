"""Read a request body (JSON or form) through a schema; bad input becomes a 400/422 in the contract's shape."""
from __future__ import annotations

import functools
import json
import re

from flask import current_app, request
from marshmallow import Schema, ValidationError, fields

from attendance.errors import ApiError


def _form_data(schema: Schema) -> dict:
    data = {}
    source = request.form if request.method in ("POST", "PUT", "PATCH") else request.args
    for key, values in source.lists():
        field = schema.fields.get(key) or next((f for f in schema.fields.values() if f.data_key == key), None)
        non_empty = [v for v in values if v != ""]
        if isinstance(field, fields.List):
            data[key] = [v for value in non_empty for v in value.split(",") if v.strip()]
        elif non_empty:
            data[key] = non_empty[-1]
    return data


_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?')  # unrolled: linear, no backtracking
_NOT_BRACKET = re.compile(rb"[^\[\]{}]+")


def json_depth(raw: bytes, stop_above: int | None = None) -> int:
    """Return how deeply arrays and objects nest in raw JSON, counting brackets outside strings (no recursion)."""
    brackets = _NOT_BRACKET.sub(b"", _JSON_STRING.sub(b"", raw))
    depth = deepest = 0
    for byte in brackets:
        depth += 1 if byte in b"[{" else -1
        if depth > deepest:
            deepest = depth
            if stop_above is not None and deepest > stop_above:
                break  # the answer is already "too deep"
    return deepest


def json_body():
    """Parse this request's JSON body under the API's size and nesting caps: 413 or 400, never a 500."""
    cfg = current_app.config
    limit = cfg["API_MAX_JSON_BYTES"]
    too_large = ApiError("payload_too_large", f"A JSON body may be at most {limit // 1024} KiB.", 413)
    if request.content_length is not None and request.content_length > limit:
        raise too_large  # refused before reading a byte of it
    raw = request.get_data(cache=True)  # a chunked body has no length: MAX_CONTENT_LENGTH bounds this read
    if len(raw) > limit:
        raise too_large
    if json_depth(raw, cfg["API_MAX_JSON_DEPTH"]) > cfg["API_MAX_JSON_DEPTH"]:
        raise ApiError("bad_request", f"The JSON body nests deeper than {cfg['API_MAX_JSON_DEPTH']} levels.", 400)
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError too: the depth scan is the guard, this the backstop
        raise ApiError("bad_request", "The request body is not valid JSON.", 400) from None


@functools.cache
def _schema(schema_cls: type[Schema]) -> Schema:
    """One instance per schema: instantiating deep-copies every field, and loading keeps no state."""
    return schema_cls()


def load(schema_cls: type[Schema], *, query: bool = False) -> dict:
    """The validated input of this request: the query string, a JSON body or a form body."""
    schema = _schema(schema_cls)
    if not query and request.is_json:
        data = json_body()
        if not isinstance(data, dict):
            raise ApiError("bad_request", "The request body is not a JSON object.", 400)
    else:
        data = _form_data(schema)
    try:
        return schema.load(data)
    except ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        raise ApiError("validation_error", "Some fields are missing or not valid.", 422, messages) from None
