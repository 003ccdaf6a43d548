"""Absence justifications and their documents: typed by their bytes, stored outside the web root."""
from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload
from werkzeug.datastructures import FileStorage

from attendance import clock
from attendance.audit import record_audit
from attendance.errors import ApiError
from attendance.models import EXCUSED, LATE, PRESENT, AttendanceRecord, ClassSession, Justification
from attendance.principal import Principal
from attendance.records import insert_new_records, publish_record
from attendance.sessions import scoped_session
from extensions import db
from lti.roles import STUDENT

ALREADY_SUBMITTED = ("already_submitted", "You already sent a justification for this class.", 409)
SIGNATURES = (  # (magic bytes, media type, extension)
    (b"%PDF-", "application/pdf", "pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png", "png"),
    (b"\xff\xd8\xff", "image/jpeg", "jpg"),
)


def sniff(head: bytes) -> tuple[str, str] | None:
    """Return the (media type, extension) the first bytes prove, or None."""
    for magic, media_type, ext in SIGNATURES:
        if head.startswith(magic):
            return media_type, ext
    return None


def clean_name(name: str | None) -> str:
    """Make a display name for the student's file: no path, no control characters."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = re.sub(r"[\x00-\x1f\x7f]", "", base).strip().lstrip(".")
    return base[:200] or "document"


def store_document(upload: FileStorage) -> tuple[str, str, str, int]:
    """Check and save an upload under a random name; answer (stored name, media type, display name, size)."""
    limit = current_app.config["MAX_UPLOAD_MB"] * 1024 * 1024
    data = upload.stream.read(limit + 1)
    if len(data) > limit:
        raise ApiError("payload_too_large", f"The document is larger than {current_app.config['MAX_UPLOAD_MB']} MB.", 413)
    if not data:
        raise ApiError("validation_error", "The document is empty.", 422, {"document": ["The file is empty."]})
    kind = sniff(data[:16])
    if kind is None:
        raise ApiError("unsupported_media_type", "Documents must be PDF, JPEG or PNG files.", 415)
    media_type, ext = kind
    folder = Path(current_app.config["UPLOAD_DIR"])
    folder.mkdir(parents=True, exist_ok=True)
    stored = f"{secrets.token_hex(16)}.{ext}"
    fd = os.open(folder / stored, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return stored, media_type, clean_name(upload.filename), len(data)


def submit_justification(principal: Principal, class_session_id: int, reason: str,
                         upload: FileStorage | None) -> Justification:
    """Record a student's explanation of an absence (past or coming) from a session of their course."""
    session = scoped_session(principal, class_session_id)
    attended = db.session.scalar(select(AttendanceRecord.status).where(
        AttendanceRecord.class_session_id == session.id, AttendanceRecord.student_id == principal.user_id))
    if attended in (PRESENT, LATE):
        raise ApiError("already_attended", "You attended this class; there is nothing to justify.", 409)
    pending = db.session.scalar(select(Justification).where(
        Justification.class_session_id == session.id, Justification.student_id == principal.user_id,
        Justification.status.in_(("pending", "approved"))))
    if pending is not None:
        raise ApiError(*ALREADY_SUBMITTED)
    stored = store_document(upload) if upload is not None and upload.filename else None
    row = Justification(class_session_id=session.id, student_id=principal.user_id, reason=reason)
    if stored:
        row.document_path, row.document_type, row.document_name, row.document_size = stored
    db.session.add(row)
    try:
        db.session.commit()
    except IntegrityError:  # another one for this session was stored meanwhile (the partial unique index)
        db.session.rollback()
        if stored:
            (Path(current_app.config["UPLOAD_DIR"]) / stored[0]).unlink(missing_ok=True)
        raise ApiError(*ALREADY_SUBMITTED) from None
    return row


def scoped_justification(principal: Principal, justification_id: int) -> Justification:
    """Return a justification of the caller's course (a student's own only), or answer 404."""
    row = db.session.scalar(select(Justification).join(ClassSession).where(
        Justification.id == justification_id, ClassSession.course_id == principal.course_id))
    if row is None or (principal.role == STUDENT and row.student_id != principal.user_id):
        raise ApiError("not_found", "No such justification in this course.", 404)
    return row


def list_justifications(principal: Principal, class_session_id: int | None) -> list[Justification]:
    """List the course's justifications, a student's own only, optionally of one class session."""
    query = select(Justification).join(ClassSession).where(ClassSession.course_id == principal.course_id)
    if class_session_id is not None:
        query = query.where(Justification.class_session_id == scoped_session(principal, class_session_id).id)
    if principal.role == STUDENT:
        query = query.where(Justification.student_id == principal.user_id)
    return db.session.scalars(query.options(selectinload(Justification.student))
                              .order_by(Justification.created_at.desc())).all()


def review_justification(principal: Principal, justification_id: int, decision: str) -> Justification:
    """Approve or reject a pending justification.

    Approval makes the attendance excused, unless the student attended (present or late): an
    attendance is never lowered, the approval then stands alone.
    """
    row = scoped_justification(principal, justification_id)
    if row.status != "pending":
        raise ApiError("already_reviewed", "This justification was already reviewed.", 409)
    now = clock.now()
    row.status = "approved" if decision == "approve" else "rejected"
    row.reviewed_by_id, row.reviewed_at = principal.user_id, now
    record = None
    if row.status == "approved":
        inserted = insert_new_records(principal.course_id, [dict(
            class_session_id=row.class_session_id, student_id=row.student_id, status=EXCUSED, source="justification",
            validated_by_id=principal.user_id, validated_at=now, remark="", updated_at=now)])
        if inserted:
            record = db.session.get(AttendanceRecord, inserted[row.student_id])
            record_audit(principal.course_id, record.id, principal.user_id, "justified", None, EXCUSED,
                   {"justification_id": row.id})
        else:  # a record exists, perhaps a check-in that just arrived: lock it before judging it
            record = db.session.scalar(select(AttendanceRecord).filter_by(
                class_session_id=row.class_session_id, student_id=row.student_id).with_for_update())
            if record.status in (PRESENT, LATE):
                record = None  # attended after all: nothing to excuse, and the grade never falls
            elif record.status != EXCUSED:
                record_audit(principal.course_id, record.id, principal.user_id, "justified", record.status, EXCUSED,
                       {"justification_id": row.id})
                record.status = EXCUSED
                record.validated_by_id, record.validated_at = principal.user_id, now
    db.session.commit()
    if record is not None:
        publish_record(record, record.student, "attendance_validated")
    return row


def document_path(row: Justification) -> Path:
    """Return where a justification's uploaded document is stored."""
    return Path(current_app.config["UPLOAD_DIR"]) / row.document_path
