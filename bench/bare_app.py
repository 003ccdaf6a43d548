"""The bare baseline of bench/checkin_burst.py: a minimal Flask app whose POST inserts one row.

Served by gunicorn exactly like the tool (`gunicorn --chdir bench 'bare_app:create_app()'`), on the
same database (BARE_DATABASE_URL, the same SQLAlchemy engine options as the tool's defaults), so the
ratio tool/bare measures what the tool's check-in path costs on top of "Flask + one INSERT".
The table (bench_bare_checkin) is created and dropped by checkin_burst.py, not here.
"""
from __future__ import annotations

import os
from datetime import datetime, timezone

from flask import Flask, jsonify, request
from sqlalchemy import Column, DateTime, Float, Integer, MetaData, String, Table, create_engine, insert

TABLE = "bench_bare_checkin"
metadata = MetaData()
bare_checkin = Table(
    TABLE, metadata,
    Column("id", Integer, primary_key=True),
    Column("student_id", Integer, nullable=False),
    Column("code", String(32)),
    Column("latitude", Float),
    Column("longitude", Float),
    Column("created_at", DateTime(timezone=True)),
)


def database_url() -> str:
    url = os.environ["BARE_DATABASE_URL"]
    for prefix in ("postgres://", "postgresql://"):  # the same driver as the tool (psycopg 3)
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def create_app() -> Flask:
    app = Flask(__name__)
    url = database_url()
    options = {"pool_pre_ping": True}  # as the tool's config/defaults.py
    if url.startswith("sqlite"):
        options["connect_args"] = {"timeout": 30}
    engine = create_engine(url, **options)
    if url.startswith("sqlite"):
        from sqlalchemy import event

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

    @app.get("/health")
    def health():
        return jsonify(ok=True)

    @app.post("/submit/")
    def submit():
        data = request.get_json(silent=True) or {}
        with engine.begin() as conn:
            row_id = conn.execute(insert(bare_checkin).values(
                student_id=int(data.get("student_id") or 0), code=str(data.get("attendance_code", ""))[:32],
                latitude=data.get("latitude"), longitude=data.get("longitude"),
                created_at=datetime.now(timezone.utc)).returning(bare_checkin.c.id)).scalar_one()
        return jsonify(success=True, id=row_id), 201

    return app
