"""Attendance records as the pages and sockets see them, and inserts that may race."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from attendance import realtime
from attendance.lms.outbox import records_changed
from attendance.models import AttendanceRecord, User
from extensions import db


def _insert_for(dialect: str):
    return pg_insert if dialect == "postgresql" else sqlite_insert


def insert_new_records(course_id: int, rows: list[dict]) -> dict[int, int]:
    """Insert the records that do not exist yet; answer {student id: new record id} for those inserted.

    INSERT … ON CONFLICT DO NOTHING: a record someone wrote meanwhile (a check-in, another teacher) is
    skipped, never an IntegrityError, whichever database. The grades they move are queued with them.
    """
    if not rows:
        return {}
    table = AttendanceRecord.__table__
    statement = (_insert_for(db.engine.dialect.name)(table)
                 .on_conflict_do_nothing(index_elements=["class_session_id", "student_id"])
                 .returning(table.c.student_id, table.c.id))
    inserted = dict(db.session.execute(statement, rows).all())
    records_changed(course_id, list(inserted))  # Core, not the ORM: the flush hook does not see these
    return inserted


def iso(moment: datetime | None) -> str | None:
    """Format a UTC moment as ISO 8601 with a Z, or None."""
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def risk_of(record: AttendanceRecord) -> dict | None:
    """The record's risk verdict as the API shows it, or None when it was never scored."""
    if record.risk_score is None:
        return None
    return {"score": record.risk_score, "level": record.risk_level, "reasons": list(record.risk_reasons or [])}


def submission_json(record: AttendanceRecord, student: User) -> dict:
    """A record as teachers see it (get-session-submissions, WebSocket messages)."""
    return {
        "id": record.id,
        "class_session_id": record.class_session_id,
        "student": {"id": student.id, "name": student.display_name},
        "submitted_at": iso(record.submitted_at),
        "status": record.status,
        "source": record.source,
        "risk": risk_of(record),
        "location_flag": record.location_flag,
        "distance_m": round(record.distance_m, 1) if record.distance_m is not None else None,
        "accuracy_m": record.accuracy_m,
        "remark": record.remark or "",
        "validated_at": iso(record.validated_at),
    }


def publish_record(record: AttendanceRecord, student: User, kind: str) -> None:
    """Tell the session's teachers, and the student, about a record (after the commit)."""
    publish_payload(record, submission_json(record, student), kind)


def publish_payload(record: AttendanceRecord, payload: dict, kind: str) -> None:
    """Send a record message to the session's teachers and a short one to its student (after the commit)."""
    realtime.broker().publish_many([
        (realtime.session_channel(record.class_session_id), {"type": kind, "attendance": payload}),
        (realtime.student_channel(record.class_session_id, record.student_id), {
            "type": kind, "attendance": {"id": record.id, "class_session_id": record.class_session_id,
                                         "status": record.status}}),
    ])
