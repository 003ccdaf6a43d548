"""Absence justifications: documents typed by their bytes, stored under a random name outside the web root,
readable only by the course's teachers and the student; review makes the attendance excused."""
from __future__ import annotations

import re
import struct
import zlib
from datetime import datetime, timedelta, timezone
from io import BytesIO
from pathlib import Path

import pytest
from sqlalchemy import func, select

from attendance.models import AttendanceRecord, AuditEntry, Justification
from extensions import db
from tests.support.api import assert_error, fast_launch
from tests.support.launch import Launcher, register_platform
from tests.support.platform import Platform


def _png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00")) + chunk(b"IEND", b""))


PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<< /Type /Catalog >>endobj\ntrailer<< /Root 1 0 R >>\n%%EOF\n"
PNG = _png()
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9"
STORED_NAME = re.compile(r"^[0-9a-f]{32}\.(pdf|png|jpg)$")

@pytest.fixture(scope="module")
def platform():
    lms = Platform(product="moodle")
    yield lms
    lms.stop()


class Classes:
    """Two courses on one platform: course-1 (teacher, students 1 and 2) and course-2 (teacher, student)."""

    def __init__(self, app, platform):
        self.app = app
        register_platform(app, platform)
        launcher = Launcher(app.test_client())
        self.teacher = fast_launch(launcher, platform, "instructor", sub="t1")
        self.student = fast_launch(launcher, platform, "learner", sub="s1", name="Student One")
        self.classmate = fast_launch(launcher, platform, "learner", sub="s2", name="Student Two")
        self.other_teacher = fast_launch(launcher, platform, "instructor", sub="t2", context_id="course-2")
        self.other_student = fast_launch(launcher, platform, "learner", sub="u2", context_id="course-2")
        now = datetime.now(timezone.utc)
        created = self.teacher.post("/api/class-sessions/", json={
            "title": "Monday", "starts_at": (now - timedelta(hours=3)).isoformat(),
            "ends_at": (now - timedelta(hours=2)).isoformat()})
        assert created.status_code == 201
        self.session_id = created.get_json()["class_session"]["id"]
        self.upload_dir = Path(app.config["UPLOAD_DIR"])

    def submit(self, student=None, document=None, name="note.pdf", reason="I was ill.", session_id=None):
        data = {"class_session_id": str(session_id or self.session_id), "reason": reason}
        if document is not None:
            data["document"] = (BytesIO(document), name)
        return (student or self.student).post("/api/submit-justification/", data=data,
                                              content_type="multipart/form-data")

    def review(self, justification_id: int, decision: str):
        return self.teacher.post("/api/review-justification/", json={"justification_id": justification_id,
                                                                     "decision": decision})

    def files(self) -> list[Path]:
        return sorted(p for p in self.upload_dir.rglob("*") if p.is_file()) if self.upload_dir.exists() else []

    def count(self, model) -> int:
        with self.app.app_context():
            n = db.session.scalar(select(func.count()).select_from(model))
            db.session.remove()
        return n

    def row(self, justification_id: int) -> Justification:
        with self.app.app_context():
            row = db.session.get(Justification, justification_id)
            db.session.expunge(row)
            db.session.remove()
        return row

    def submissions(self) -> list[dict]:
        response = self.teacher.get("/api/get-session-submissions/", class_session_id=self.session_id)
        return response.get_json()["submissions"]


@pytest.fixture
def classes(app, platform) -> Classes:
    return Classes(app, platform)


# -- submitting --------------------------------------------------------------------------------
@pytest.mark.parametrize("content, name, media_type, ext", [
    (PDF, "medical note.pdf", "application/pdf", "pdf"),
    (PNG, "photo.png", "image/png", "png"),
    (JPEG, "scan.jpeg", "image/jpeg", "jpg"),
])
def test_document_is_stored_under_a_random_name(classes, content, name, media_type, ext):
    response = classes.submit(document=content, name=name)
    assert response.status_code == 201, response.get_json()
    justification = response.get_json()["justification"]
    assert justification["status"] == "pending" and justification["reason"] == "I was ill."
    assert justification["document"]["name"] == name
    assert justification["document"]["type"] == media_type and justification["document"]["size"] == len(content)
    files = classes.files()
    assert len(files) == 1
    stored = files[0]
    assert STORED_NAME.match(stored.name) and stored.suffix == "." + ext
    assert Path(name).stem not in stored.name
    assert stored.parent == classes.upload_dir and stored.read_bytes() == content
    assert classes.row(justification["id"]).document_path == stored.name
    # outside the web root: not under static/, not served by it
    static = Path(classes.app.static_folder).resolve()
    assert not stored.resolve().is_relative_to(static)
    assert classes.app.test_client().get(f"/static/{stored.name}").status_code == 404
    document = classes.teacher.get(justification["document"]["url"])
    assert document.status_code == 200 and document.data == content and document.mimetype == media_type


def test_justification_without_a_document(classes):
    response = classes.submit()
    assert response.status_code == 201
    justification = response.get_json()["justification"]
    assert justification["document"] is None
    assert classes.files() == []
    assert_error(classes.teacher.get(f"/api/justifications/{justification['id']}/document"), 404, "not_found")


@pytest.mark.parametrize("name, shown", [
    ("../../etc/passwd.pdf", "passwd.pdf"),
    ("..\\..\\windows\\win.pdf", None),  # the multipart quoting may eat the backslashes: no path is left
    ("/etc/passwd.pdf", "passwd.pdf"),
    ("....pdf", "pdf"),
    ("../", "document"),
    ("a\x00b\x1f.pdf", "ab.pdf"),
])
def test_path_like_file_names_are_cleaned_and_never_used_as_paths(classes, tmp_path, name, shown):
    before = {p for p in tmp_path.rglob("*") if p.is_file()}
    response = classes.submit(document=PDF, name=name)
    assert response.status_code == 201, response.get_json()
    justification = response.get_json()["justification"]
    if shown is None:
        assert justification["document"]["name"].endswith("win.pdf")
    else:
        assert justification["document"]["name"] == shown
    assert not re.search(r"[\\/\x00-\x1f]|^\.", justification["document"]["name"])
    files = classes.files()
    assert len(files) == 1 and STORED_NAME.match(files[0].name) and files[0].parent == classes.upload_dir
    created = {p for p in tmp_path.rglob("*") if p.is_file()} - before
    assert {p for p in created if not p.name.startswith("test.db")} == {files[0]}
    assert not (classes.upload_dir.parent.parent / "etc" / "passwd.pdf").exists()
    document = classes.student.get(justification["document"]["url"])
    assert document.status_code == 200 and document.data == PDF
    disposition = document.headers.get("Content-Disposition", "")
    assert disposition.startswith("inline") and ".." not in disposition and "/" not in disposition


@pytest.mark.parametrize("content, name, media_type, ext", [
    (PNG, "scan.pdf", "image/png", "png"),
    (PDF, "photo.png", "application/pdf", "pdf"),
    (JPEG, "letter.pdf", "image/jpeg", "jpg"),
])
def test_type_comes_from_the_bytes_not_the_name(classes, content, name, media_type, ext):
    response = classes.submit(document=content, name=name)
    assert response.status_code == 201
    document = response.get_json()["justification"]["document"]
    assert document["type"] == media_type
    assert classes.files()[0].suffix == "." + ext
    served = classes.teacher.get(document["url"])
    assert served.mimetype == media_type


@pytest.mark.parametrize("content, name", [
    (b"just some text, not a PDF\n", "x.pdf"),
    (b"<html><script>alert(1)</script></html>", "note.pdf"),
    (b"GIF89a\x01\x00\x01\x00", "anim.png"),
    (b"PK\x03\x04 a zip or docx", "letter.pdf"),
    (b"%PD", "short.pdf"),
])
def test_other_types_are_refused_with_415_and_nothing_is_stored(classes, content, name):
    before = (classes.count(Justification), classes.files())
    response = classes.submit(document=content, name=name)
    assert_error(response, 415, "unsupported_media_type")
    assert (classes.count(Justification), classes.files()) == before


def test_an_empty_document_is_refused(classes):
    response = classes.submit(document=b"", name="empty.pdf")
    body = assert_error(response, 422, "validation_error")
    assert "document" in body["error"]["fields"]
    assert classes.count(Justification) == 0 and classes.files() == []


@pytest.fixture
def small_classes(make_app, platform) -> Classes:
    return Classes(make_app(MAX_UPLOAD_MB=1), platform)


@pytest.mark.parametrize("size", [int(1.5 * 1024 * 1024), 1024 * 1024 + 10 * 1024, 1024 * 1024 + 1])
def test_oversized_documents_are_refused_with_413_and_nothing_is_stored(small_classes, size):
    content = PDF + b"0" * (size - len(PDF))
    response = small_classes.submit(document=content, name="big.pdf")
    assert_error(response, 413, "payload_too_large")
    assert small_classes.count(Justification) == 0 and small_classes.files() == []


def test_a_document_of_exactly_the_limit_is_accepted(small_classes):
    content = PDF + b"0" * (1024 * 1024 - len(PDF))
    response = small_classes.submit(document=content, name="limit.pdf")
    assert response.status_code == 201, response.get_json()
    assert small_classes.files()[0].stat().st_size == 1024 * 1024


def test_one_pending_justification_per_session(classes):
    first = classes.submit(document=PDF)
    assert first.status_code == 201
    before = (classes.count(Justification), classes.files())
    assert_error(classes.submit(document=PNG, name="again.png"), 409, "already_submitted")
    assert (classes.count(Justification), classes.files()) == before
    # after a rejection the student may try again
    assert classes.review(first.get_json()["justification"]["id"], "reject").status_code == 200
    assert classes.submit(reason="Here is the note.").status_code == 201


# -- reviewing ---------------------------------------------------------------------------------
def test_teacher_lists_justifications(classes):
    mine = classes.submit(document=PDF).get_json()["justification"]
    theirs = classes.submit(student=classes.classmate).get_json()["justification"]
    listed = classes.teacher.get("/api/justifications/").get_json()["justifications"]
    assert {j["id"] for j in listed} == {mine["id"], theirs["id"]}
    item = next(j for j in listed if j["id"] == mine["id"])
    assert item["student"]["name"] == "Student One" and item["status"] == "pending"
    assert item["class_session_id"] == classes.session_id and item["document"]["type"] == "application/pdf"
    filtered = classes.teacher.get("/api/justifications/", class_session_id=classes.session_id).get_json()
    assert len(filtered["justifications"]) == 2
    assert classes.other_teacher.get("/api/justifications/").get_json()["justifications"] == []


def test_approve_creates_an_excused_attendance_when_there_is_none(classes):
    justification = classes.submit(document=PDF).get_json()["justification"]
    assert classes.submissions() == []
    response = classes.review(justification["id"], "approve")
    assert response.status_code == 200
    assert response.get_json()["justification"]["status"] == "approved"
    assert response.get_json()["justification"]["reviewed_at"]
    [record] = classes.submissions()
    assert record["status"] == "excused" and record["student"]["name"] == "Student One"
    history = classes.student.get("/api/student/attendance-history/").get_json()["history"]
    assert [h["status"] for h in history] == ["excused"]
    with classes.app.app_context():
        audit = db.session.scalars(select(AuditEntry).where(AuditEntry.record_id == record["id"])).all()
        assert [(a.from_status, a.to_status) for a in audit] == [(None, "excused")]
        db.session.remove()


def test_approve_turns_an_absence_into_excused(classes):
    justification = classes.submit().get_json()["justification"]
    closed = classes.teacher.post("/api/close-session/", json={"class_session_id": classes.session_id})
    assert closed.get_json()["absent_count"] == 2
    assert classes.review(justification["id"], "approve").status_code == 200
    statuses = {s["student"]["name"]: s["status"] for s in classes.submissions()}
    assert statuses == {"Student One": "excused", "Student Two": "absent"}
    assert classes.count(AttendanceRecord) == 2


def test_reject_leaves_the_attendance_alone(classes):
    justification = classes.submit().get_json()["justification"]
    response = classes.review(justification["id"], "reject")
    assert response.status_code == 200 and response.get_json()["justification"]["status"] == "rejected"
    assert classes.submissions() == []


@pytest.mark.parametrize("first, second", [("approve", "reject"), ("reject", "approve"), ("approve", "approve")])
def test_a_reviewed_justification_cannot_be_reviewed_again(classes, first, second):
    justification = classes.submit().get_json()["justification"]
    assert classes.review(justification["id"], first).status_code == 200
    before = (classes.row(justification["id"]).status, classes.submissions(), classes.count(AuditEntry))
    response = classes.review(justification["id"], second)
    assert response.status_code == 409
    assert response.get_json()["success"] is False and response.get_json()["error"]["code"]
    assert (classes.row(justification["id"]).status, classes.submissions(), classes.count(AuditEntry)) == before


# -- reading the document ----------------------------------------------------------------------
def test_document_is_readable_by_the_course_teacher_and_its_student_only(classes):
    justification = classes.submit(document=PDF).get_json()["justification"]
    url = justification["document"]["url"]
    for reader in (classes.teacher, classes.student):
        response = reader.get(url)
        assert response.status_code == 200 and response.data == PDF
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "sandbox" in response.headers["Content-Security-Policy"]
        assert "no-store" in response.headers.get("Cache-Control", "")
    for stranger in (classes.classmate, classes.other_teacher, classes.other_student):
        response = stranger.get(url)
        assert_error(response, 404, "not_found")
        assert response.data != PDF
    assert classes.app.test_client().get(url).status_code == 401
