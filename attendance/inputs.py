"""Read a request body (JSON or form) through a schema; bad input becomes a 400/422 in the contract's shape."""
from __future__ import annotations

import functools

from flask import request
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


@functools.cache
def _schema(schema_cls: type[Schema]) -> Schema:
    """One instance per schema: instantiating deep-copies every field, and loading keeps no state."""
    return schema_cls()


def load(schema_cls: type[Schema], *, query: bool = False) -> dict:
    """The validated input of this request: the query string, a JSON body or a form body."""
    schema = _schema(schema_cls)
    if not query and request.is_json:
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            raise ApiError("bad_request", "The request body is not a JSON object.", 400)
    else:
        data = _form_data(schema)
    try:
        return schema.load(data)
    except ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        raise ApiError("validation_error", "Some fields are missing or not valid.", 422, messages) from None
