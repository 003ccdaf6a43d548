#!/usr/bin/env python
"""Grades to the LMS and the roster from it, against a loopback LMS: figures, not a test.

A benchmark that PRINTS figures (it asserts nothing). In one run it:

1. starts the loopback LMS of the test suite (`tests/platform.py` + `tests/lms_services.py`: token
   endpoint checking the tool's signed client assertion, AGS line items and scores with Moodle's
   timestamp rule and `?type_id=` URLs, NRPS with `Link: rel="next"` paging) on 127.0.0.1;
2. builds the tool with `create_app()` on a scratch database (a SQLite file by default, the embedded
   mode; or `--database-url postgresql://...`: a new `grades_bench_<pid>` database on that server,
   dropped at the end), migrated by the tool's own Alembic migrations, and seeds a registration,
   one course with the AGS and NRPS endpoints, 1,000 students and 3 closed class sessions;
3. GRADES, 3 times: changes the course's late weight (so every grade moves), queues every student
   (`queue_grades`, as the grade-policy endpoint does) and runs `deliver_due` until the outbox is
   empty: every grade recomputed and posted as an AGS score; then posts the SAME score bodies, with
   the same URL, headers and bearer token, to the SAME server with plain `requests` (one Session,
   serially, like the worker). Prints scores/s for both, the ratio tool/raw (goal >= 0.8), and the
   token requests the LMS received;
4. ROSTER, 3 times: 5,000 members served in 50 pages of 100; `sync_roster` from a roster the tool
   has never seen (the previous run's users are deleted first), then the same 50 pages fetched raw
   (requests, bearer token, following `Link: rel="next"`). Prints seconds for both and the ratio
   raw/tool (1.0 = as fast as fetching the pages);
5. prints the medians. Loopback only; stops with status 2 past --time-limit.

Run from the repository root:  .venv/bin/python bench/grades_bench.py   (see bench/README.md)
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def log(*parts) -> None:
    print(*parts, flush=True)


class TimeLimit(Exception):
    pass


class Database:
    """A scratch database: a SQLite file in the temp dir, or a new PostgreSQL database on a server."""

    def __init__(self, url: str | None, tmp: Path):
        self.server_url = None
        if not url or url == "sqlite":
            self.url = f"sqlite:///{tmp / 'grades_bench.db'}"
            self.name = "SQLite (embedded default)"
            return
        import psycopg

        self.server_url = url.replace("postgresql+psycopg://", "postgresql://", 1).replace("postgres://", "postgresql://", 1)
        self.db_name = f"grades_bench_{os.getpid()}"
        with psycopg.connect(self.server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.db_name}"')
            conn.execute(f'CREATE DATABASE "{self.db_name}"')
        base = self.server_url.rsplit("/", 1)[0]
        self.url = f"{base}/{self.db_name}"
        self.name = f"PostgreSQL (scratch database {self.db_name})"

    def drop(self) -> None:
        if not self.server_url:
            return
        import psycopg

        with psycopg.connect(self.server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')


def build_app(database: Database, tmp: Path):
    os.environ["INSTANCE_PATH"] = str(tmp / "instance")
    os.environ["DATABASE_URL"] = database.url
    os.environ.pop("REDIS_URL", None)
    from app import create_app

    return create_app({"SECRET_KEY": "grades-bench", "KEYS_DIR": str(tmp / "keys"), "TOOL_BASE_URL": "http://127.0.0.1:9",
                       "REDIS_PREFIX": f"grades-bench-{uuid.uuid4().hex}:",
                       "OUTBOUND_ALLOW_NETWORKS": "127.0.0.1/32"})  # its simulated LMS listens on loopback


def seed(app, platform, lms, students: int) -> int:
    """Registration, course with AGS + NRPS, students, 3 closed sessions with mixed statuses; the course id."""
    from attendance.models import AttendanceRecord, ClassSession, Course, Enrollment, ResourceLink, User
    from extensions import db
    from lti.models import Deployment, Registration

    with app.app_context():
        registration = Registration(issuer=platform.issuer, client_id=platform.client_id, name="bench",
                                    product_family="moodle", auth_login_url=platform.auth_url,
                                    auth_token_url=platform.token_url, key_set_url=platform.jwks_url, active=True)
        db.session.add(registration)
        db.session.add(Deployment(registration=registration, deployment_id=platform.deployment_id))
        db.session.flush()
        course = Course(registration_id=registration.id, context_id="bench-course", title="Bench 101",
                        ags_lineitems_url=lms.lineitems_url, nrps_url=lms.memberships_url,
                        ags_scopes=["https://purl.imsglobal.org/spec/lti-ags/scope/lineitem",
                                    "https://purl.imsglobal.org/spec/lti-ags/scope/score"])
        db.session.add(course)
        db.session.flush()
        db.session.add(ResourceLink(course_id=course.id, resource_link_id="link-1", title="Attendance"))
        now = datetime.now(timezone.utc)
        sessions = [ClassSession(course_id=course.id, title=f"Lecture {i}", starts_at=now - timedelta(days=3 - i),
                                 ends_at=now - timedelta(days=3 - i) + timedelta(hours=1), code_secret=uuid.uuid4().hex,
                                 closed_at=now - timedelta(days=3 - i) + timedelta(hours=1)) for i in range(3)]
        users = [User(registration_id=registration.id, sub=f"student-{i:05d}", name=f"Student {i}") for i in range(students)]
        db.session.add_all(sessions + users)
        db.session.flush()
        db.session.add_all([Enrollment(course_id=course.id, user_id=u.id, role="student", source="roster") for u in users])
        statuses = ["present", "late", "absent", "excused", "present"]
        db.session.add_all([AttendanceRecord(class_session_id=s.id, student_id=u.id, status=statuses[(i + j) % 5],
                                             source="teacher")
                            for i, u in enumerate(users) for j, s in enumerate(sessions)])
        db.session.commit()
        return course.id


# -- grades ------------------------------------------------------------------------------------
def grades_round(app, lms, course_id: int, late_weight: float, students: int) -> dict:
    import requests

    from attendance.lms.grade_worker import deliver_due
    from attendance.lms.outbox import queue_grades
    from attendance.models import CoursePolicy
    from extensions import db
    from lti.services import SCORE, scores_url

    lms.scores.clear()  # each run starts from an empty gradebook: the raw replay below must not meet 409s
    with app.app_context():
        started = time.perf_counter()
        policy = db.session.get(CoursePolicy, course_id) or CoursePolicy(course_id=course_id)
        policy.points_late = late_weight
        db.session.add(policy)
        db.session.flush()
        queue_grades(course_id)
        db.session.commit()
        handled = 0
        while count := deliver_due():
            handled += count
            db.session.remove()
        tool_seconds = time.perf_counter() - started
    posted = [dict(s) for s in lms.scores]
    if handled != students or len(posted) != students:
        log(f"  !! the tool handled {handled} rows and the LMS accepted {len(posted)} scores (expected {students});"
            f" refused: {len(lms.refused)}")
    # The same bodies, URL, headers and token, straight from `requests`.
    [item] = {s["lineitem"] for s in posted}
    url = scores_url(item)
    token = next(r[2]["Authorization"] for r in reversed(lms.platform.requests) if "/scores" in r[1])
    headers = {"Authorization": token, "Content-Type": SCORE, "Accept": "application/json"}
    bodies = [{k: v for k, v in s.items() if k not in ("lineitem", "received_at")} for s in posted]
    import json

    lms.scores.clear()
    session = requests.Session()
    started = time.perf_counter()
    errors = 0
    for body in bodies:
        if session.post(url, data=json.dumps(body).encode(), headers=headers, timeout=10).status_code != 200:
            errors += 1
    raw_seconds = time.perf_counter() - started
    session.close()
    return {"scores": len(posted), "tool_s": tool_seconds, "tool_rate": len(posted) / tool_seconds,
            "raw_s": raw_seconds, "raw_rate": len(bodies) / raw_seconds, "raw_errors": errors}


# -- roster ------------------------------------------------------------------------------------
def roster_round(app, lms, course_id: int) -> dict:
    import requests
    from sqlalchemy import delete

    from attendance.lms.roster import sync_roster
    from attendance.models import Course, User
    from extensions import db
    from lti.services import MEMBERSHIP_CONTAINER

    with app.app_context():  # a roster the tool has never seen: every user and enrollment is new
        db.session.execute(delete(User).where(User.sub.like("member-%")))
        db.session.commit()
        started = time.perf_counter()
        result = sync_roster(db.session.get(Course, course_id))
        tool_seconds = time.perf_counter() - started
        db.session.remove()
        started = time.perf_counter()
        again = sync_roster(db.session.get(Course, course_id))
        warm_seconds = time.perf_counter() - started
        db.session.remove()
    path = lms.base + "/memberships"
    token = next(r[2]["Authorization"] for r in reversed(lms.platform.requests) if r[1].split("?")[0] == path)
    session = requests.Session()
    started = time.perf_counter()
    url, pages, members = lms.memberships_url, 0, 0
    while url:
        response = session.get(url, headers={"Authorization": token, "Accept": MEMBERSHIP_CONTAINER}, timeout=10)
        members += len(response.json()["members"])
        pages += 1
        url = response.links.get("next", {}).get("url")
    raw_seconds = time.perf_counter() - started
    session.close()
    return {"members": result.members, "added": result.added, "warm_updated": again.updated,
            "tool_s": tool_seconds, "warm_s": warm_seconds, "raw_s": raw_seconds, "raw_pages": pages,
            "raw_members": members}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=None,
                        help="a PostgreSQL server URL (a scratch database is created there); default: a SQLite file")
    parser.add_argument("--students", type=int, default=1000)
    parser.add_argument("--members", type=int, default=5000)
    parser.add_argument("--pages", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--time-limit", type=float, default=600, help="seconds; past it the run stops (status 2)")
    args = parser.parse_args()

    def on_alarm(*_):
        raise TimeLimit()

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(int(args.time_limit))
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the loopback LMS would log every request
    tmp = Path(tempfile.mkdtemp(prefix="grades_bench_"))
    database = platform = None
    try:
        from tests.support.lms_services import SCOPE_SCORE, LmsServices
        from tests.support.platform import Platform

        database = Database(args.database_url, tmp)
        app = build_app(database, tmp)
        jwks_client = app.test_client()
        platform = Platform(product="moodle")
        lms = LmsServices(platform, tool_jwks=lambda: jwks_client.get("/lti/jwks").get_json())
        course_id = seed(app, platform, lms, args.students)
        for i in range(args.members):
            lms.add_member(f"member-{i:05d}", "Instructor" if i % 250 == 0 else "Learner", email=f"m{i}@example.edu")
        lms.page_size = max(1, -(-args.members // args.pages))
        log(f"grades_bench: {database.name}; loopback LMS {platform.url} (Moodle flavour); "
            f"{args.students} students, {args.members} members in pages of {lms.page_size}; "
            f"load average {os.getloadavg()[0]:.1f}")

        # Warm-up: the line item is created, the AGS token fetched, connections and caches primed.
        grades_round(app, lms, course_id, 0.5, args.students)
        log("\nGRADES: every student's grade recomputed and delivered by deliver_due, then the same bodies "
            "posted raw")
        log(f"  {'run':>4} {'scores':>7} {'tool s':>8} {'tool/s':>8} {'raw s':>8} {'raw/s':>8} {'ratio':>6}")
        grade_runs = []
        for run in range(args.repeats):
            figures = grades_round(app, lms, course_id, [0.25, 0.75, 0.4][run % 3], args.students)
            grade_runs.append(figures)
            log(f"  {run + 1:>4} {figures['scores']:>7} {figures['tool_s']:>8.2f} {figures['tool_rate']:>8.1f} "
                f"{figures['raw_s']:>8.2f} {figures['raw_rate']:>8.1f} {figures['tool_rate'] / figures['raw_rate']:>6.2f}"
                + (f"  raw errors {figures['raw_errors']}" if figures["raw_errors"] else ""))
        tool_rate = statistics.median(r["tool_rate"] for r in grade_runs)
        raw_rate = statistics.median(r["raw_rate"] for r in grade_runs)
        ags_tokens = [r for r in lms.token_requests if SCOPE_SCORE in r["scope"].split()]
        total_scores = args.students * (args.repeats + 1)
        log(f"  median: tool {tool_rate:.1f} scores/s, raw {raw_rate:.1f} posts/s, "
            f"ratio tool/raw {tool_rate / raw_rate:.2f} (goal >= 0.80: {'met' if tool_rate / raw_rate >= 0.8 else 'NOT MET'})")
        log(f"  AGS token requests for {total_scores} score posts (warm-up included): {len(ags_tokens)}; "
            f"refused by the LMS: {len(lms.refused)}")

        log(f"\nROSTER: {args.members} members over {-(-args.members // lms.page_size)} pages; sync_roster "
            "(all new), a second sync (nothing changed), then the same pages fetched raw")
        log(f"  {'run':>4} {'members':>8} {'added':>6} {'tool s':>8} {'again s':>8} {'raw s':>8} {'raw/tool':>9}")
        roster_runs = []
        for run in range(args.repeats):
            figures = roster_round(app, lms, course_id)
            roster_runs.append(figures)
            log(f"  {run + 1:>4} {figures['members']:>8} {figures['added']:>6} {figures['tool_s']:>8.2f} "
                f"{figures['warm_s']:>8.2f} {figures['raw_s']:>8.2f} {figures['raw_s'] / figures['tool_s']:>9.2f}"
                f"  ({figures['raw_pages']} pages, {figures['raw_members']} members raw)")
        tool_s = statistics.median(r["tool_s"] for r in roster_runs)
        warm_s = statistics.median(r["warm_s"] for r in roster_runs)
        raw_s = statistics.median(r["raw_s"] for r in roster_runs)
        log(f"  median: sync_roster {tool_s:.2f} s (re-sync {warm_s:.2f} s), raw pages {raw_s:.2f} s, "
            f"ratio raw/tool {raw_s / tool_s:.2f} (re-sync {raw_s / warm_s:.2f})")
        nrps_tokens = [r for r in lms.token_requests if "contextmembership" in r["scope"]]
        log(f"  NRPS token requests: {len(nrps_tokens)}")
        log(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
        return 0
    except TimeLimit:
        log(f"\n!! time limit of {args.time_limit:.0f} s reached: stopped")
        return 2
    finally:
        signal.alarm(0)
        if platform is not None:
            platform.stop()
        if database is not None:
            try:
                from extensions import db

                with app.app_context():  # noqa: F821 - set once the database exists
                    db.session.remove()
                    db.engine.dispose()
            except Exception:  # noqa: BLE001
                pass
            database.drop()
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
