"""The server's constants the pages' JavaScript needs, handed to every template as `client_config`.

A page renders them as `<script type="application/json" id="client-config">` and
`static/js/config.js` reads that block, so the JS never restates a number or a list the server
decides. Per-course values (a course's code rotation, its timezone) still come from the API or the
page's data; the rotation here is the site default the projector starts from.
"""
from __future__ import annotations

from flask import Flask, current_app

from attendance.codes import ALPHABET, LENGTH
from attendance.justifications import SIGNATURES
from attendance.models import STATUSES


def register_client_config(app: Flask) -> None:
    """Give every template `client_config`, the constants the pages' scripts read."""
    app.context_processor(lambda: {"client_config": client_config()})


def client_config() -> dict:
    """Answer the constants the front end needs, from the app's config and the code modules."""
    config = current_app.config
    return {
        "poor_accuracy_m": config["GEOFENCE_POOR_ACCURACY_M"],
        "code_rotation_seconds": config["CODE_ROTATION_SECONDS"],
        "code_alphabet": ALPHABET,
        "code_length": LENGTH,
        "statuses": [str(status) for status in STATUSES],
        "document_types": [media_type for _magic, media_type, _ext in SIGNATURES],
    }
