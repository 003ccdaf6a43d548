"""Delivering queued grades to the LMS gradebook (AGS): leases, posts, retries, the worker."""
from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import datetime, timedelta

from flask import Flask, current_app
from sqlalchemy import case, literal, or_, select, update

from attendance import clock
from attendance.grading import Grade, compute_grades
from attendance.lms.client import service_client
from attendance.models import Course, DeliveryState, GradeDelivery, ResourceLink, User
from extensions import UTCDateTime, db
from lti.constants import Scope
from lti.models import Registration
from lti.services import ServiceClient, ServiceError
from lti.store import get_store

log = logging.getLogger(__name__)


AGS_SCOPES = (Scope.LINEITEM.value, Scope.SCORE.value)


# Outcomes are written every few rows: a crash in between only means the same final grade is posted again.
COMMIT_EVERY = 20


HOST = socket.gethostname()


WORKER_ID = f"{HOST}:{os.getpid()}"


def _dead_local_owner(owner: str | None) -> bool:
    """Whether owner (host:pid) is a process of this machine that no longer runs."""
    host, _, pid = (owner or "").rpartition(":")
    if host != HOST or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def release_dead_leases() -> int:
    """At worker start: rows leased by a worker of this machine that died are free again at once."""
    owners = db.session.scalars(select(GradeDelivery.claimed_by).where(
        GradeDelivery.claimed_until.is_not(None), GradeDelivery.claimed_by.like(f"{HOST}:%")).distinct()).all()
    dead = [owner for owner in owners if _dead_local_owner(owner)]
    count = 0
    if dead:
        count = db.session.execute(update(GradeDelivery).where(GradeDelivery.claimed_by.in_(dead))
                                   .values(claimed_until=None, claimed_by=None)).rowcount
    db.session.commit()
    return count


def _claim(limit: int) -> list[tuple[int, int]]:
    """Lease due rows to this worker: (row id, version). PostgreSQL skips rows another worker holds."""
    now = clock.now()
    lease = now + timedelta(seconds=current_app.config["GRADE_CLAIM_SECONDS"])
    query = (select(GradeDelivery.id)
             .where(GradeDelivery.state == DeliveryState.PENDING, GradeDelivery.next_attempt_at <= now,
                    or_(GradeDelivery.claimed_until.is_(None), GradeDelivery.claimed_until < now))
             .order_by(GradeDelivery.next_attempt_at).limit(limit))
    if db.engine.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    ids = db.session.scalars(query).all()
    if not ids:
        db.session.commit()
        return []
    # One conditional UPDATE leases them all; its condition keeps the lease safe on SQLite too (no SKIP LOCKED).
    claimed = db.session.execute(
        update(GradeDelivery)
        .where(GradeDelivery.id.in_(ids), or_(GradeDelivery.claimed_until.is_(None), GradeDelivery.claimed_until < now))
        .values(claimed_until=lease, claimed_by=WORKER_ID)
        .returning(GradeDelivery.id, GradeDelivery.version)).all()
    db.session.commit()
    return [(row.id, row.version) for row in claimed]


def _backoff(attempts: int, retry_after: float | None) -> float:
    cap = current_app.config["GRADE_RETRY_MAX_SECONDS"]
    delay = min(cap, 2 ** min(attempts, 10)) * random.uniform(0.5, 1.0)
    return max(delay, retry_after or 0.0)


def _resolve_line_items(course: Course, client: ServiceClient, force: bool = False) -> list[str]:
    """Find the course's attendance line items: the launch's, else by resource link and tag, else create them once."""
    links = db.session.scalars(select(ResourceLink).where(ResourceLink.course_id == course.id)
                               .order_by(ResourceLink.id)).all()
    urls = []
    for link in links:
        if link.ags_lineitem_url and not force:
            urls.append(link.ags_lineitem_url)
            continue
        if not course.ags_lineitems_url:
            continue
        # One worker at a time finds-or-creates a link's line item: two would make two gradebook columns.
        lock = f"lineitem:{link.id}"
        _acquire(lock)
        try:
            db.session.refresh(link)  # the worker that held the lock may have made it meanwhile
            if link.ags_lineitem_url and not force:
                urls.append(link.ags_lineitem_url)
                continue
            url = _find_or_create_line_item(course, link, client)
        finally:
            get_store().pop(lock)
        if url:
            urls.append(url)
    return urls


def _acquire(lock: str) -> None:
    """Wait for a lock of the shared store; a lock left by a dead worker of this machine is taken over."""
    store = get_store()
    deadline = time.monotonic() + 2 * current_app.config["LTI_HTTP_TIMEOUT"] + 5
    while not store.add(lock, WORKER_ID, 60):
        owner = store.get(lock)
        if _dead_local_owner(owner) and store.pop(lock) == owner:
            continue
        if time.monotonic() > deadline:
            raise ServiceError("Another worker is still setting up this course's gradebook column.")  # transient
        time.sleep(0.2)


def _find_or_create_line_item(course: Course, link: ResourceLink, client: ServiceClient) -> str | None:
    """Find the link's line item with our tag in the LMS, or create it there."""
    cfg = current_app.config
    tag = cfg["GRADE_LINE_ITEM_TAG"]
    found = client.find_line_items(course.ags_lineitems_url, resource_link_id=link.resource_link_id, tag=tag,
                                   scopes=AGS_SCOPES)
    found = [item for item in found if item.get("id") and item.get("tag", tag) == tag
             and item.get("resourceLinkId", link.resource_link_id) == link.resource_link_id]
    if found:
        link.ags_lineitem_url = found[0]["id"]
    else:
        created = client.create_line_item(course.ags_lineitems_url, {
            "scoreMaximum": cfg["GRADE_SCORE_MAXIMUM"], "label": cfg["GRADE_LINE_ITEM_LABEL"], "tag": tag,
            "resourceLinkId": link.resource_link_id}, AGS_SCOPES)
        link.ags_lineitem_url = created.get("id")
    db.session.commit()
    return link.ags_lineitem_url


def _timestamp(previous: datetime | None) -> datetime:
    """Strictly increasing, at least a second apart: Moodle compares to the second, Canvas refuses older ones."""
    now = clock.now()
    if previous is not None and now < previous + timedelta(seconds=1):
        return previous + timedelta(seconds=1)
    return now


def _iso_ms(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def deliver_due(limit: int | None = None) -> int:
    """Deliver the grades that are due; answer how many rows were handled."""
    claimed = _claim(limit or current_app.config["GRADE_WORKER_BATCH"])
    if not claimed:
        return 0
    session = db.session()
    expire, session.expire_on_commit = session.expire_on_commit, False  # a commit per row must not reload the batch
    try:
        versions = dict(claimed)
        rows = db.session.scalars(select(GradeDelivery).where(GradeDelivery.id.in_(versions))).all()
        by_course: dict[int, list[GradeDelivery]] = defaultdict(list)
        for row in rows:
            by_course[row.course_id].append(row)
        for course_id, course_rows in by_course.items():
            _deliver_course(db.session.get(Course, course_id), course_rows, versions)
    finally:
        session.expire_on_commit = expire
    return len(claimed)


def _renew_lease(rows: list[GradeDelivery], renewed_at: float) -> float:
    """Keep the rows still to send leased to this worker (a dead worker's lease lapses within seconds).

    Renewed every third of the lease, and committed at once: no lock is held while the LMS answers.
    """
    seconds = current_app.config["GRADE_CLAIM_SECONDS"]
    if not rows or time.monotonic() - renewed_at < seconds / 3:
        return renewed_at
    db.session.execute(update(GradeDelivery).where(GradeDelivery.id.in_([r.id for r in rows]))
                       .values(claimed_until=clock.now() + timedelta(seconds=seconds)))
    db.session.commit()
    return time.monotonic()


def _await_renewing(future, pending: list[GradeDelivery], renewed_at: float):
    """Wait for one post, renewing the lease of the rows still to send while it runs: one slow LMS answer
    must not let the lease lapse and another worker post the same grades with other timestamps."""
    step = max(0.05, current_app.config["GRADE_CLAIM_SECONDS"] / 3)
    while True:
        renewed_at = _renew_lease(pending, renewed_at)
        try:
            return future.result(timeout=step), renewed_at
        except FutureTimeout:
            continue


def _deliver_course(course: Course, rows: list[GradeDelivery], versions: dict[int, int]) -> None:  # noqa: C901 - one course's delivery is one story: resolve, post, retry missing, record
    registration = db.session.get(Registration, course.registration_id)
    client = service_client(registration)
    try:
        line_items = _resolve_line_items(course, client)
    except ServiceError as exc:
        for row in rows:
            _failed(row, exc, "line item", versions[row.id])
        db.session.commit()
        return
    if not line_items:
        for row in rows:
            _failed(row, ServiceError("The LMS gave no line item for this course.", 404), "line item", versions[row.id])
        db.session.commit()
        return
    grades = compute_grades(course.id, [row.student_id for row in rows])
    users = {u.id: u for u in db.session.scalars(select(User).where(User.id.in_([r.student_id for r in rows])))}
    maximum = current_app.config["GRADE_SCORE_MAXIMUM"]
    outcomes: dict[int, tuple] = {}
    with ThreadPoolExecutor(max_workers=current_app.config["GRADE_POST_CONCURRENCY"]) as pool:
        # Only HTTP runs in the pool; every database read and write stays on this thread.
        # A grade that became "nothing counted" still goes out when the LMS holds one of ours: as a cleared score.
        futures = [(row, pool.submit(_post_scores, client, tuple(line_items), users[row.student_id].sub,
                                     grades[row.student_id], row.last_timestamp, maximum))
                   for row in rows if grades[row.student_id].score is not None or row.last_score is not None]
        renewed_at = time.monotonic()  # _claim has just leased them
        for index, (row, future) in enumerate(futures):
            outcomes[row.id], renewed_at = _await_renewing(future, [r for r, _ in futures[index:]], renewed_at)
    missing = [row for row in rows if row.id in outcomes and outcomes[row.id][2]]
    if missing:
        # The line item was deleted in the LMS: find or create it again, once, and post those scores again.
        try:
            line_items = _resolve_line_items(course, client, force=True)
            for row in missing:
                outcomes[row.id] = _post_scores(client, tuple(line_items), users[row.student_id].sub,
                                                grades[row.student_id], outcomes[row.id][0], maximum)
        except ServiceError as exc:
            for row in missing:
                outcomes[row.id] = (outcomes[row.id][0], exc, False)
    for index, row in enumerate(rows):
        grade = grades[row.student_id]
        last_timestamp, error, still_missing = outcomes.get(row.id, (row.last_timestamp, None, False))
        if row.id in outcomes and last_timestamp is not None:
            row.last_timestamp = _not_older(last_timestamp)
        if still_missing:
            error = ServiceError("The LMS line item is gone and could not be made again.", 404)
        if error is not None:
            _failed(row, error, "score", versions[row.id])
        else:
            row.delivered_version = versions[row.id]
            row.state = _unless_changed(versions[row.id], DeliveryState.DELIVERED)
            row.attempts, row.last_error, row.last_status = 0, None, 200
            row.last_score, row.last_comment = grade.score, grade.comment
            row.delivered_at = clock.now()
        row.claimed_until = None
        if index % COMMIT_EVERY == COMMIT_EVERY - 1:
            db.session.commit()
    db.session.commit()


def _post_scores(client: ServiceClient, line_items: tuple[str, ...], user_id: str, grade: Grade,
                 last_timestamp: datetime | None, maximum: float) -> tuple[datetime | None, ServiceError | None, bool]:
    """Post one student's score to every line item (HTTP only, safe in a pool).

    Answers (the last timestamp used, the error if any, whether a line item is missing).
    """
    for url in line_items:
        for _ in range(3):
            timestamp = _timestamp(last_timestamp)
            score = score_body(user_id, grade, maximum, timestamp)
            try:
                client.post_score(url, score, AGS_SCOPES)
                last_timestamp = timestamp
                break
            except ServiceError as exc:
                if exc.status == 409 or (exc.status == 400 and "timestamp" in (exc.body or "").lower()):
                    last_timestamp = timestamp  # the LMS holds a newer or equal one: step past it
                    continue
                if exc.status == 404:
                    return last_timestamp, None, True
                return last_timestamp, exc, False
        else:
            return last_timestamp, ServiceError("The LMS kept refusing the score timestamp.", 409), False
    return last_timestamp, None, False


def _not_older(timestamp: datetime):
    """Return the row's last score timestamp, never moved back: another worker may have posted a newer one."""
    mine = literal(timestamp, UTCDateTime())
    return case((GradeDelivery.last_timestamp > mine, GradeDelivery.last_timestamp), else_=mine)


def score_body(user_id: str, grade: Grade, maximum: float, timestamp: datetime) -> dict:
    """Build the AGS score for a grade: out of the line item's maximum, or a cleared grade when nothing counts.

    AGS: a score without scoreGiven and with gradingProgress NotReady removes the result the LMS held.
    """
    body = {"userId": user_id, "timestamp": _iso_ms(timestamp), "comment": grade.comment}
    if grade.score is None:
        return dict(body, activityProgress="Initialized", gradingProgress="NotReady")
    return dict(body, scoreGiven=round(grade.score * maximum / 100, 4), scoreMaximum=maximum,
                activityProgress="Completed", gradingProgress="FullyGraded")


def _unless_changed(claimed_version: int, state: str):
    """Return the state to write, unless a change arrived while we delivered: then the row stays pending.

    Evaluated by the database in the UPDATE, so a concurrent `queue_grades` is never overwritten.
    """
    return case((GradeDelivery.version == claimed_version, state), else_=DeliveryState.PENDING)


def _failed(row: GradeDelivery, exc: ServiceError, stage: str, claimed_version: int) -> None:
    row.last_status = exc.status
    # Only the typed reason and status are shown: the LMS's own answer may echo anything (it is logged).
    row.last_error = f"{stage}: {exc.message}"
    if exc.body:
        log.warning("grade delivery %s (%s) failed: %s — %s", row.id, stage, exc.message, exc.body[:500])
    row.claimed_until = None
    if exc.transient:
        row.attempts += 1
        row.state = DeliveryState.PENDING
        row.next_attempt_at = clock.now() + timedelta(seconds=_backoff(row.attempts, exc.retry_after))
    else:
        row.state = _unless_changed(claimed_version, DeliveryState.FAILED)  # a 4xx that will not heal: shown, retried on demand


def retry_failed(course_id: int, student_id: int | None = None) -> int:
    """Put failed deliveries back in the queue, now."""
    query = update(GradeDelivery).where(GradeDelivery.course_id == course_id, GradeDelivery.state == DeliveryState.FAILED)
    if student_id is not None:
        query = query.where(GradeDelivery.student_id == student_id)
    count = db.session.execute(query.values(state=DeliveryState.PENDING, attempts=0, next_attempt_at=clock.now())).rowcount
    db.session.commit()
    return count


# -- the worker --------------------------------------------------------------------------------
def run_worker(app: Flask, stop: threading.Event, interval: float | None = None) -> None:
    """Deliver grades until stop is set."""
    interval = interval or app.config["GRADE_WORKER_INTERVAL"]
    try:
        with app.app_context():
            release_dead_leases()
            db.session.remove()
    except Exception:
        log.exception("could not release the leases of dead workers")
    while not stop.is_set():
        handled = 0
        try:
            with app.app_context():
                handled = deliver_due()
                db.session.remove()
        except Exception:  # the worker must survive a bad row or a database hiccup
            log.exception("grade delivery round failed")
        if not handled:
            stop.wait(interval)


def start_worker_thread(app: Flask) -> threading.Event:
    """Run the grade worker in a daemon thread; set the returned event to stop it."""
    stop = threading.Event()
    threading.Thread(target=run_worker, args=(app, stop), name="grade-worker", daemon=True).start()
    return stop
