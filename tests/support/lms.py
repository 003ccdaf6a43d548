"""Course builders and outbox helpers for tests that talk to the loopback LMS (`lms_services`).

A teacher and students launched with the AGS claim, sessions created, marked and closed through
the API, the outbox worker run until it is empty, and what the LMS received.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from attendance.lms.grade_worker import deliver_due
from attendance.models import GradeDelivery
from extensions import db
from tests.support.api import launch_as
from tests.support.lms_services import SCOPE_SCORE, LmsServices
from tests.support.platform import Platform

AGS = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"


def ags_claims(lms: LmsServices, lineitem: str | None = None) -> dict:
    """The AGS claim of the loopback LMS, pointing at another line item when one is given."""
    claim = dict(lms.claims()[AGS])
    if lineitem:
        claim["lineitem"] = lineitem
    return {AGS: claim}


def start_course(launcher, lms, subs, *, lineitem=None, platform=None):
    """A teacher and students launched with the AGS claim (no NRPS): (teacher ApiUser, {sub: user id}, {sub: ApiUser})."""
    platform = platform or lms.platform
    claims = ags_claims(lms, lineitem)
    teacher = launch_as(launcher, platform, "instructor", sub="t", claims=claims, nrps=False)
    students = {sub: launch_as(launcher, platform, "learner", sub=sub, name=f"Student {sub}", claims=claims, nrps=False)
                for sub in subs}
    listed = teacher.get("/api/students/").get_json()["students"]
    ids = {s["name"].removeprefix("Student "): s["id"] for s in listed}
    return teacher, {sub: ids[sub] for sub in subs}, students


def new_session(teacher, days_ago: float = 1.0, *, future: bool = False) -> int:
    """Create a one-hour class session that started some days ago (or starts in some days); answer its id."""
    start = datetime.now(timezone.utc) + (timedelta(days=days_ago) if future else -timedelta(days=days_ago))
    response = teacher.post("/api/class-sessions/", json={
        "title": f"Lecture {start:%j %H%M%S%f}", "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(hours=1)).isoformat()})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["class_session"]["id"]


def mark(teacher, session: int, student_id: int, status: str) -> None:
    """Set a student's status as the teacher."""
    response = teacher.post("/api/mark-attendance/", json={
        "class_session_id": session, "student_id": student_id, "status": status})
    assert response.status_code == 200, response.get_json()


def close(teacher, session: int) -> dict:
    """Close a class session as the teacher; answer the API's body."""
    response = teacher.post("/api/close-session/", json={"class_session_id": session})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def deliver_all(app, rounds: int = 50) -> int:
    """Run the worker until nothing is due; answer how many rows it handled."""
    total = 0
    with app.app_context():
        for _ in range(rounds):
            handled = deliver_due()
            db.session.remove()
            if not handled:
                return total
            total += handled
    raise AssertionError("the outbox never emptied")


def grades_by_sub(teacher, ids: dict) -> dict:
    """The dashboard's grade entries, keyed by sub."""
    body = teacher.get("/api/grades/").get_json()
    by_id = {g["student"]["id"]: g for g in body["grades"]}
    return {sub: by_id[uid] for sub, uid in ids.items()}


def posts_by_user(lms) -> dict[str, list[dict]]:
    """The scores the LMS received, per userId, in order."""
    out = defaultdict(list)
    for score in lms.scores:
        out[score["userId"]].append(score)
    return out


def service_posts(platform: Platform, suffix: str, method: str = "POST") -> list:
    """The requests the platform received to a path ending with suffix."""
    return [r for r in platform.requests if r[0] == method and r[1].split("?")[0].endswith(suffix)]


def ags_token_requests(lms) -> list[dict]:
    """The token requests that asked for the score scope."""
    return [r for r in lms.token_requests if SCOPE_SCORE in r["scope"].split()]


def deliveries(app) -> dict[int, GradeDelivery]:
    """The outbox rows, detached, keyed by student id."""
    with app.app_context():
        rows = db.session.scalars(select(GradeDelivery)).all()
        for row in rows:
            db.session.expunge(row)
        return {row.student_id: row for row in rows}


def sync(teacher, status: int = 200) -> dict:
    """Read the roster from the LMS (NRPS) as the teacher; answer the API's body."""
    response = teacher.post("/api/roster/sync/")
    assert response.status_code == status, response.get_json()
    return response.get_json()
