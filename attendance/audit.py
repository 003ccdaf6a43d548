"""The audit trail of changes to attendance records."""
from __future__ import annotations

from attendance.models import AuditEntry
from extensions import db


def record_audit(course_id: int, record_id: int | None, actor_id: int | None, action: str,
                 from_status: str | None = None, to_status: str | None = None, detail: dict | None = None) -> None:
    """Add an audit entry for a change in a course to the current transaction."""
    db.session.add(AuditEntry(course_id=course_id, record_id=record_id, actor_id=actor_id, action=action,
                              from_status=from_status, to_status=to_status, detail=detail))
