"""A course on a tool app for check-in tests: its teacher, students launched on demand, sessions, codes."""
from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from attendance import codes
from attendance.models import AttendanceRecord, ClassSession
from extensions import db
from tests.support.api import ApiUser, fast_launch
from tests.support.clock import Clock
from tests.support.launch import Launcher, register_platform
from tests.support.platform import Platform

T0 = datetime(2030, 1, 7, 9, 0, 0, tzinfo=timezone.utc)  # a Monday; a multiple of 15 s after the codes' epoch
ROOM = (41.5369, -8.4239)
METRES_PER_DEGREE = 6_371_008.8 * math.pi / 180


def north_of_room(metres: float) -> tuple[float, float]:
    """A point due north of the room's middle, some metres away."""
    return ROOM[0] + metres / METRES_PER_DEGREE, ROOM[1]


def iso(moment: datetime) -> str:
    """ISO 8601 with a Z, as the API writes it."""
    return moment.isoformat().replace("+00:00", "Z")


class Course:
    """A course on a tool app: its teacher, students launched on demand, and helpers."""

    def __init__(self, app, platform, context_id="course-1"):
        self.app, self.platform, self.context_id = app, platform, context_id
        self.launcher = Launcher(app.test_client())
        self.teacher = fast_launch(self.launcher, platform, "instructor", sub=f"t-{context_id}", context_id=context_id)
        self._students = {}

    def student(self, n: int) -> ApiUser:
        if n not in self._students:
            self._students[n] = fast_launch(self.launcher, self.platform, "learner", sub=f"s{n}-{self.context_id}",
                                            name=f"Student {n}", context_id=self.context_id)
        return self._students[n]

    def new_session(self, starts_at=T0, minutes=90, geofence=True, **extra) -> int:
        body = {"title": "Lecture", "starts_at": iso(starts_at), "ends_at": iso(starts_at + timedelta(minutes=minutes)),
                **({"latitude": ROOM[0], "longitude": ROOM[1], "radius_m": 100} if geofence else {}), **extra}
        response = self.teacher.post("/api/class-sessions/", json=body)
        assert response.status_code == 201, response.get_json()
        return response.get_json()["class_session"]["id"]

    def generate(self, session_id: int | None = None) -> dict:
        response = self.teacher.post("/api/generate-code/", json={"class_session_id": session_id} if session_id else {})
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    def secret(self, session_id: int) -> str:
        with self.app.app_context():
            value = db.session.get(ClassSession, session_id).code_secret
            db.session.remove()
        return value

    def code_of_period(self, session_id: int, period: int) -> str:
        return codes.code_for(self.secret(session_id), period)

    def records(self, session_id: int) -> int:
        with self.app.app_context():
            n = db.session.scalar(select(func.count()).select_from(AttendanceRecord)
                                  .where(AttendanceRecord.class_session_id == session_id))
            db.session.remove()
        return n

    def sessions(self) -> int:
        with self.app.app_context():
            n = db.session.scalar(select(func.count()).select_from(ClassSession))
            db.session.remove()
        return n

    def submissions(self, session_id: int) -> list[dict]:
        response = self.teacher.get("/api/get-session-submissions/", class_session_id=session_id)
        assert response.status_code == 200
        return response.get_json()["submissions"]


def submit(student: ApiUser, code: str, **fields):
    """Check in with a code (and location fields) as the student."""
    return student.post("/api/submit-attendance/", json={"attendance_code": code, **fields})


def status_of(response) -> str:
    """The status of an accepted check-in."""
    assert response.status_code == 201, response.get_json()
    return response.get_json()["attendance"]["status"]


# -- fixtures of the check-in suites (imported by them) --------------------------------------------
@pytest.fixture(scope="module")
def platform():
    lms = Platform(product="moodle")
    yield lms
    lms.stop()


@pytest.fixture
def clock(monkeypatch) -> Clock:
    return Clock(monkeypatch, T0)


@pytest.fixture
def course(app, platform, clock) -> Course:
    register_platform(app, platform)
    return Course(app, platform)
