"""Grade delivery to the LMS (AGS) in depth: policy, line items, the outbox, failures, restarts, workers, tokens.

Everything talks to a real loopback LMS (`tests/support/lms_services.py`) that checks what Moodle and Canvas
check; nothing in the tool is mocked. Time is moved with `attendance.clock.now` where backoff matters.
"""
from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from sqlalchemy import select
from werkzeug.wrappers import Response

from attendance import clock
from attendance.lms.grade_worker import deliver_due
from attendance.lms.outbox import queue_grades
from attendance.models import AttendanceRecord, ClassSession, Course, Enrollment, GradeDelivery, ResourceLink, User
from extensions import db
from lti.services import TokenCache
from tests.support.api import launch_as
from tests.support.clock import FakeClock, MovableClock
from tests.support.launch import meta, register_platform
from tests.support.lms import (
    ags_claims,
    ags_token_requests,
    close,
    deliver_all,
    deliveries,
    grades_by_sub,
    mark,
    new_session,
    posts_by_user,
    service_posts,
    start_course,
)
from tests.support.lms_services import LmsServices
from tests.support.platform import Platform
from tests.support.processes import flask_cli, free_port, serve

AGS = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
NRPS = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"
POSTGRES = bool(os.environ.get("DATABASE_URL"))


# -- helpers ---------------------------------------------------------------------------------
def bulk_course(app, lms, launcher, n: int, *, status_of=lambda i: "present", platform=None) -> int:
    """A teacher launch (course + resource link with AGS), then n students with one closed session, in bulk."""
    launch_as(launcher, platform or lms.platform, "instructor", sub="t", claims=ags_claims(lms), nrps=False)
    with app.app_context():
        course = db.session.scalar(select(Course))
        now = datetime.now(timezone.utc)
        session = ClassSession(course_id=course.id, title="Bulk", starts_at=now - timedelta(hours=2),
                               ends_at=now - timedelta(hours=1), code_secret="x" * 32, closed_at=now)
        users = [User(registration_id=course.registration_id, sub=f"u{i:05d}", name=f"U {i}") for i in range(n)]
        db.session.add(session)
        db.session.add_all(users)
        db.session.flush()
        db.session.add_all([Enrollment(course_id=course.id, user_id=u.id, role="student", source="roster")
                            for u in users])
        db.session.add_all([AttendanceRecord(class_session_id=session.id, student_id=u.id, status=status_of(i),
                                             source="teacher") for i, u in enumerate(users)])
        db.session.flush()
        assert queue_grades(course.id) == n
        db.session.commit()
        return course.id


# -- grade policy ------------------------------------------------------------------------------
def test_policy_late_weight_excused_drop_lowest_and_denominator(app, launcher, lms):
    """Each policy knob moves the grade as documented; each change re-queues every student."""
    teacher, ids, _ = start_course(launcher, lms, ["s0", "s1"])
    sessions = [new_session(teacher, days) for days in (4, 3, 2, 1)]
    for session, status in zip(sessions, ["present", "late", "excused", "absent"]):
        mark(teacher, session, ids["s0"], status)
        mark(teacher, session, ids["s1"], "present")
        close(teacher, session)
    new_session(teacher, 2, future=True)  # scheduled, not yet held: only the "scheduled" denominator counts it
    deliver_all(app)
    # Defaults: present 1, late 0.5, excused not counted, absent 0, over closed sessions: 1.5 / 3.
    graded = grades_by_sub(teacher, ids)
    assert graded["s0"]["grade"]["score"] == 50.0
    assert graded["s0"]["grade"]["comment"] == "2 of 3 sessions attended, 1 late, 1 excused"
    assert (graded["s0"]["grade"]["counted"], graded["s0"]["grade"]["excused"]) == (3, 1)
    assert graded["s1"]["grade"]["score"] == 100.0
    assert lms.final_scores() == {"s0": 50.0, "s1": 100.0}
    assert all(g["sync"]["state"] == "delivered" and g["sync"]["up_to_date"] for g in graded.values())

    steps = [
        ({"points_late": 0.25}, 41.67, "2 of 3 sessions attended, 1 late, 1 excused"),       # 1.25 / 3
        ({"drop_lowest": 1}, 62.5, "2 of 2 sessions attended, 1 late, 1 excused, 1 lowest dropped"),  # the 0 goes
        ({"drop_lowest": 0, "denominator": "scheduled"}, 31.25,                              # 1.25 / 4
         "2 of 4 sessions attended, 1 late, 1 excused"),
    ]
    for change, expected, comment in steps:
        posted_before = len(lms.scores)
        response = teacher.post("/api/grade-policy/", json=change)
        assert response.status_code == 200, response.get_json()
        for key, value in change.items():
            assert response.get_json()["policy"][key] == value
        rows = deliveries(app)
        assert {rows[ids[s]].state for s in ids} == {"pending"}  # every student re-queued, even s1 whose grade may not move
        graded = grades_by_sub(teacher, ids)
        assert graded["s0"]["grade"]["score"] == expected
        assert graded["s0"]["grade"]["comment"] == comment
        assert graded["s0"]["sync"]["pending"] is True
        assert deliver_all(app) == 2
        assert len(lms.scores) == posted_before + 2
        assert lms.final_scores()["s0"] == expected
        assert [s["comment"] for s in lms.scores if s["userId"] == "s0"][-1] == comment
    # s1 was present at all four closed sessions but not at the scheduled one.
    assert lms.final_scores()["s1"] == 80.0
    assert teacher.get("/api/grade-policy/").get_json()["policy"]["denominator"] == "scheduled"
    assert not lms.refused


def test_grades_endpoint_shows_grade_explanation_and_sync_state(app, launcher, lms):
    teacher, ids, students = start_course(launcher, lms, ["s0", "s1"])
    session = new_session(teacher)
    mark(teacher, session, ids["s0"], "late")
    graded = grades_by_sub(teacher, ids)
    assert graded["s0"]["grade"]["score"] is None  # no closed session yet
    assert graded["s0"]["grade"]["comment"] == "No attendance counted yet."
    assert graded["s1"]["sync"] == {"state": "none", "pending": False}
    close(teacher, session)
    graded = grades_by_sub(teacher, ids)
    assert graded["s0"]["grade"]["score"] == 50.0 and graded["s0"]["grade"]["comment"] == "1 of 1 sessions attended, 1 late"
    assert graded["s1"]["grade"]["score"] == 0.0 and graded["s1"]["grade"]["comment"] == "0 of 1 sessions attended"
    assert graded["s0"]["sync"]["state"] == "pending" and graded["s0"]["sync"]["up_to_date"] is False
    deliver_all(app)
    graded = grades_by_sub(teacher, ids)
    for sub, score in (("s0", 50.0), ("s1", 0.0)):
        sync = graded[sub]["sync"]
        assert (sync["state"], sync["delivered_score"], sync["up_to_date"], sync["last_status"]) == \
            ("delivered", score, True, 200)
        assert sync["delivered_at"] and sync["last_error"] is None
    body = teacher.get("/api/grades/").get_json()
    assert body["ags"] is True and body["roster"]["source"] == "launches"
    # A student may see neither the gradebook nor the policy.
    assert students["s0"].get("/api/grades/").status_code == 403
    assert students["s0"].post("/api/grade-policy/", json={"drop_lowest": 1}).status_code == 403
    assert students["s0"].post("/api/grades/retry/", json={}).status_code == 403


def test_policy_input_is_validated(app, launcher, lms):
    teacher, _, _ = start_course(launcher, lms, ["s0"])
    for bad in ({"denominator": "everything"}, {"drop_lowest": -1}, {"points_late": "lots"}):
        response = teacher.post("/api/grade-policy/", json=bad)
        assert response.status_code == 422, (bad, response.get_json())
        assert response.get_json()["error"]["code"] == "validation_error"
    assert teacher.get("/api/grade-policy/").get_json()["policy"]["denominator"] == "closed"


# -- line items --------------------------------------------------------------------------------
@pytest.mark.parametrize("lms", ["moodle", "canvas"], indirect=True)
def test_line_item_from_the_launch_claim_is_used_as_is(app, launcher, lms):
    """A deep-linked activity's launch carries `lineitem`: no search, no creation, scores go there."""
    url = lms.item_url(7)
    lms.line_items[url] = {"id": url, "label": "Attendance (deep linked)", "scoreMaximum": 100}
    teacher, ids, _ = start_course(launcher, lms, ["s0"], lineitem=url)
    session = new_session(teacher)
    mark(teacher, session, ids["s0"], "present")
    close(teacher, session)
    assert deliver_all(app) == 1
    assert [s["lineitem"] for s in lms.scores] == [url]
    assert not lms.platform.requests_to(lms.base + "/lineitems")  # never listed, never created
    assert list(lms.line_items) == [url]
    # The score URL kept the line item's query string (Moodle's ?type_id=1).
    [post] = service_posts(lms.platform, "/scores")
    assert post[1] == urlsplit(url).path + "/scores" + lms.query


@pytest.mark.parametrize("lms", ["moodle", "canvas"], indirect=True)
def test_line_item_found_by_resource_link_and_tag(app, launcher, lms):
    target, other_link, other_tag = lms.item_url(1), lms.item_url(2), lms.item_url(3)
    lms.line_items[other_link] = {"id": other_link, "label": "Attendance", "scoreMaximum": 100,
                                  "tag": "attendance", "resourceLinkId": "link-2"}
    lms.line_items[other_tag] = {"id": other_tag, "label": "Quiz", "scoreMaximum": 10,
                                 "tag": "quiz", "resourceLinkId": "link-1"}
    lms.line_items[target] = {"id": target, "label": "Attendance", "scoreMaximum": 100,
                              "tag": "attendance", "resourceLinkId": "link-1"}
    teacher, ids, _ = start_course(launcher, lms, ["s0"])
    session = new_session(teacher)
    close(teacher, session)
    deliver_all(app)
    assert [s["lineitem"] for s in lms.scores] == [target]
    assert len(lms.line_items) == 3
    listing = service_posts(lms.platform, "/lineitems", "GET")
    assert len(listing) == 1
    query = parse_qs(urlsplit(listing[0][1]).query)
    assert query["resource_link_id"] == ["link-1"] and query["tag"] == ["attendance"]
    if lms.flavour == "moodle":
        assert query["type_id"] == ["1"]  # the container URL's own query string survives
    assert not service_posts(lms.platform, "/lineitems")


@pytest.mark.parametrize("lms", ["moodle", "canvas"], indirect=True)
def test_line_item_created_once_across_many_deliveries(app, launcher, lms):
    teacher, ids, _ = start_course(launcher, lms, ["s0", "s1"])
    for round_ in range(5):
        session = new_session(teacher, 5 - round_)
        mark(teacher, session, ids["s0"], ["present", "late", "absent"][round_ % 3])
        close(teacher, session)
        assert deliver_all(app) == 2
    assert len(lms.line_items) == 1
    assert len(service_posts(lms.platform, "/lineitems")) == 1
    assert len(service_posts(lms.platform, "/lineitems", "GET")) == 1  # looked up once, then remembered
    assert len(lms.scores) == 10 and not lms.refused
    [item] = lms.line_items.values()
    assert item["resourceLinkId"] == "link-1" and item["tag"] == "attendance"
    assert {s["lineitem"] for s in lms.scores} == {item["id"]}


@pytest.mark.parametrize("lms", ["moodle", "canvas"], indirect=True)
def test_deleted_line_item_is_recreated_once_and_the_score_lands(app, launcher, lms):
    teacher, ids, _ = start_course(launcher, lms, ["s0", "s1", "s2"])
    session = new_session(teacher, 2)
    close(teacher, session)
    deliver_all(app)
    assert lms.final_scores() == {"s0": 0.0, "s1": 0.0, "s2": 0.0}
    lms.delete_line_items()  # a teacher deleted the gradebook column
    session = new_session(teacher, 1)
    for sub in ids:
        mark(teacher, session, ids[sub], "present")
    close(teacher, session)
    assert deliver_all(app) == 3
    assert lms.final_scores() == {"s0": 50.0, "s1": 50.0, "s2": 50.0}
    assert len(lms.line_items) == 1
    assert len(service_posts(lms.platform, "/lineitems")) == 2  # the original and ONE re-creation
    [item] = lms.line_items.values()
    assert all(s["lineitem"] == item["id"] for s in lms.scores)
    graded = grades_by_sub(teacher, ids)
    assert {g["sync"]["state"] for g in graded.values()} == {"delivered"}


# -- outbox semantics --------------------------------------------------------------------------
@pytest.mark.parametrize("lms", ["moodle", "canvas"], indirect=True)
def test_several_changes_collapse_into_one_post_of_the_latest_grade(app, launcher, lms):
    teacher, ids, _ = start_course(launcher, lms, ["s0", "s1"])
    session = new_session(teacher)
    mark(teacher, session, ids["s1"], "present")
    close(teacher, session)
    for status in ("present", "late", "excused", "absent", "late"):
        mark(teacher, session, ids["s0"], status)
    with app.app_context():
        row = db.session.scalar(select(GradeDelivery).filter_by(student_id=ids["s0"]))
        assert row.version >= 6 and row.state == "pending"
    assert deliver_all(app) == 2
    posts = posts_by_user(lms)
    assert [p["scoreGiven"] for p in posts["s0"]] == [50.0]
    assert [p["comment"] for p in posts["s0"]] == ["1 of 1 sessions attended, 1 late"]
    assert [p["scoreGiven"] for p in posts["s1"]] == [100.0]
    assert deliver_all(app) == 0  # nothing left to send
    row = deliveries(app)[ids["s0"]]
    assert row.delivered_version == row.version and row.state == "delivered"


def test_a_change_made_while_the_score_is_in_flight_is_sent_afterwards(app, launcher, lms):
    """The worker posts the grade as it was; a change committed meanwhile must not be marked delivered."""
    teacher, ids, _ = start_course(launcher, lms, ["s0"])
    session = new_session(teacher)
    close(teacher, session)
    original = lms._lineitem
    changed = []

    def change_during_post(request):
        if request.path.endswith("/scores") and not changed:
            changed.append(True)
            mark(teacher, session, ids["s0"], "present")  # the teacher corrects it while the LMS is answering
        return original(request)

    lms._lineitem = change_during_post
    with app.app_context():
        assert deliver_due() == 1
    assert changed and lms.final_scores() == {"s0": 0.0}
    row = deliveries(app)[ids["s0"]]
    assert row.state == "pending" and row.delivered_version < row.version
    assert grades_by_sub(teacher, ids)["s0"]["sync"]["up_to_date"] is False
    assert deliver_all(app) == 1
    assert lms.final_scores() == {"s0": 100.0}
    row = deliveries(app)[ids["s0"]]
    assert row.state == "delivered" and row.delivered_version == row.version


@pytest.mark.parametrize("lms", ["moodle", "canvas"], indirect=True)
def test_timestamps_strictly_increase_even_within_one_second(app, launcher, lms):
    teacher, ids, _ = start_course(launcher, lms, ["s0"])
    session = new_session(teacher)
    close(teacher, session)
    started = time.time()
    for status in ("present", "late", "absent", "present"):
        deliver_all(app)
        mark(teacher, session, ids["s0"], status)
    deliver_all(app)
    assert time.time() - started < 5  # several deliveries to one student inside a few seconds
    assert not lms.refused  # no Moodle 409, no Canvas 400
    stamps = [datetime.fromisoformat(s["timestamp"].replace("Z", "+00:00")) for s in lms.scores]
    assert len(stamps) == 5
    assert all(b > a for a, b in zip(stamps, stamps[1:]))
    assert all(int(b.timestamp()) > int(a.timestamp()) for a, b in zip(stamps, stamps[1:]))  # Moodle's second
    assert all(s["timestamp"].endswith("Z") and "." in s["timestamp"] for s in lms.scores)  # sub-second ISO 8601
    assert lms.final_scores() == {"s0": 100.0}


@pytest.mark.parametrize("lms", ["moodle", "canvas"], indirect=True)
def test_timestamps_increase_when_the_clock_stands_still(app, launcher, lms, monkeypatch):
    frozen = datetime.now(timezone.utc).replace(microsecond=250000)
    teacher, ids, _ = start_course(launcher, lms, ["s0"])
    session = new_session(teacher)
    monkeypatch.setattr(clock, "now", lambda: frozen)
    close(teacher, session)
    for status in ("present", "late", "absent"):
        deliver_all(app)
        mark(teacher, session, ids["s0"], status)
    deliver_all(app)
    assert not lms.refused
    assert len(lms.scores) == 4 and lms.final_scores() == {"s0": 0.0}
    seconds = [int(datetime.fromisoformat(s["timestamp"].replace("Z", "+00:00")).timestamp()) for s in lms.scores]
    assert seconds == sorted(set(seconds))


@pytest.mark.parametrize("lms", ["moodle", "canvas"], indirect=True)
def test_lms_holding_a_newer_timestamp_is_stepped_past(app, launcher, lms):
    """A score already in the LMS at this very second (another tool instance, a restore) is not a failure."""
    teacher, ids, _ = start_course(launcher, lms, ["s0"])
    session = new_session(teacher)
    mark(teacher, session, ids["s0"], "present")
    close(teacher, session)
    deliver_all(app)
    [item] = lms.line_items
    ahead = datetime.now(timezone.utc) + timedelta(seconds=1.5)
    lms.scores.append({"userId": "s0", "scoreGiven": 1.0, "lineitem": item,
                       "timestamp": ahead.isoformat(timespec="milliseconds").replace("+00:00", "Z")})
    mark(teacher, session, ids["s0"], "late")
    deliver_all(app)
    assert lms.final_scores() == {"s0": 50.0}
    assert deliveries(app)[ids["s0"]].state == "delivered"


# -- failures ----------------------------------------------------------------------------------
@pytest.mark.parametrize("lms", ["moodle", "canvas"], indirect=True)
def test_outage_then_recovery_delivers_every_final_grade_exactly_once(app, launcher, lms, monkeypatch):
    moving = MovableClock(monkeypatch)
    teacher, ids, _ = start_course(launcher, lms, ["s0", "s1", "s2"])
    first = new_session(teacher, 3)
    mark(teacher, first, ids["s0"], "present")
    close(teacher, first)
    assert deliver_all(app) == 3
    lms.outage = 503
    second = new_session(teacher, 2)
    mark(teacher, second, ids["s0"], "late")
    mark(teacher, second, ids["s1"], "present")
    close(teacher, second)
    before = moving.now()
    with app.app_context():
        assert deliver_due() == 3
    rows = deliveries(app)
    for sub in ids:
        row = rows[ids[sub]]
        assert (row.state, row.attempts, row.last_status) == ("pending", 1, 503)
        assert "503" in row.last_error
        assert row.next_attempt_at > before
    with app.app_context():
        assert deliver_due() == 0  # backing off: nothing is due yet
    graded = grades_by_sub(teacher, ids)
    assert graded["s0"]["sync"]["pending"] and graded["s0"]["sync"]["attempts"] == 1
    assert "503" in graded["s0"]["sync"]["last_error"]
    # Still down a minute later: the attempts count up.
    moving.advance(60)
    with app.app_context():
        assert deliver_due() == 3
    assert {row.attempts for row in deliveries(app).values()} == {2}
    # More changes while the LMS is down, then it comes back.
    third = new_session(teacher, 1)
    mark(teacher, third, ids["s2"], "present")
    close(teacher, third)
    mark(teacher, second, ids["s2"], "excused")
    with app.app_context():
        deliver_due()  # still down
    lms.outage = None
    recovered = time.time()
    moving.advance(120)
    deliver_all(app)
    expected = {sub: g["grade"]["score"] for sub, g in grades_by_sub(teacher, ids).items()}
    assert expected == {"s0": 50.0, "s1": 33.33, "s2": 50.0}
    assert lms.final_scores() == expected
    after = defaultdict(list)
    for score in lms.scores:
        if score["received_at"] >= recovered:
            after[score["userId"]].append(score["scoreGiven"])
    assert after == {sub: [value] for sub, value in expected.items()}  # each exactly once, in its final value
    assert not lms.refused
    for g in grades_by_sub(teacher, ids).values():
        assert (g["sync"]["state"], g["sync"]["attempts"], g["sync"]["last_error"]) == ("delivered", 0, None)
    assert deliver_all(app) == 0


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_transient_statuses_are_retried_not_failed(app, launcher, lms, monkeypatch, status):
    moving = MovableClock(monkeypatch)
    teacher, ids, _ = start_course(launcher, lms, ["s0"])
    close(teacher, new_session(teacher))
    lms.outage = status
    deliver_all(app)
    row = deliveries(app)[ids["s0"]]
    assert (row.state, row.attempts, row.last_status) == ("pending", 1, status)
    lms.outage = None
    moving.advance(60)
    deliver_all(app)
    assert lms.final_scores() == {"s0": 0.0}


def test_retry_after_is_honoured(app, launcher, lms):
    teacher, ids, _ = start_course(launcher, lms, ["s0", "s1"])
    close(teacher, new_session(teacher))
    lms.outage, lms.outage_retry_after = 503, "7"
    before = clock.now()
    with app.app_context():
        assert deliver_due() == 2
    for row in deliveries(app).values():
        assert row.state == "pending" and row.attempts == 1
        assert row.next_attempt_at >= before + timedelta(seconds=7)
        assert row.next_attempt_at <= clock.now() + timedelta(seconds=30)


def test_backoff_grows_and_is_capped(app, launcher, lms, monkeypatch):
    app.config["GRADE_RETRY_MAX_SECONDS"] = 5
    moving = MovableClock(monkeypatch)
    teacher, ids, _ = start_course(launcher, lms, ["s0"])
    close(teacher, new_session(teacher))
    lms.outage = 503
    delays = []
    for _ in range(6):
        before = moving.now()
        with app.app_context():
            assert deliver_due() == 1
        delays.append((deliveries(app)[ids["s0"]].next_attempt_at - before).total_seconds())
        moving.advance(10)
    assert all(0.4 <= d <= 5.5 for d in delays), delays
    assert max(delays[3:]) >= 2.4  # grew past the first attempt's 1-2 s
    assert deliveries(app)[ids["s0"]].attempts == 6


@pytest.mark.parametrize("lms, status, answer, words", [
    ("canvas", 412, {"errors": [{"message": "User not found in course or is not a student"}]}, "is not a student"),
    ("moodle", 400, {"error": "User is not enrolled"}, "User is not enrolled"),
], indirect=["lms"])
def test_a_refusal_that_will_not_heal_is_failed_shown_and_retried_on_demand(app, launcher, lms, status, answer, words,
                                                                           caplog):
    original = lms._lineitem
    refusing = {"s1"}

    def picky(request):
        if request.path.endswith("/scores") and json.loads(request.get_data()).get("userId") in refusing:
            return Response(json.dumps(answer), status=status, mimetype="application/json")
        return original(request)

    lms._lineitem = picky
    teacher, ids, _ = start_course(launcher, lms, ["s0", "s1"])
    session = new_session(teacher)
    mark(teacher, session, ids["s0"], "present")
    mark(teacher, session, ids["s1"], "late")
    close(teacher, session)
    deliver_all(app)
    assert lms.final_scores() == {"s0": 100.0}
    graded = grades_by_sub(teacher, ids)
    sync = graded["s1"]["sync"]
    assert (sync["state"], sync["last_status"], sync["pending"], sync["up_to_date"]) == ("failed", status, False, False)
    assert sync["last_error"] == f"score: HTTP {status}"  # the typed reason and status only
    assert words not in sync["last_error"]  # the LMS's own words go to the log, never to a page
    assert words in caplog.text
    assert graded["s0"]["sync"]["state"] == "delivered"
    assert deliver_all(app) == 0  # not retried on its own: it would fail the same way
    posts = len(service_posts(lms.platform, "/scores"))
    # The teacher fixes it in the LMS and presses "retry now".
    refusing.clear()
    response = teacher.post("/api/grades/retry/", json={"student_id": ids["s1"]})
    assert response.status_code == 200 and response.get_json()["requeued"] == 1
    assert grades_by_sub(teacher, ids)["s1"]["sync"]["state"] == "pending"
    assert deliver_all(app) == 1
    assert len(service_posts(lms.platform, "/scores")) == posts + 1
    assert lms.final_scores() == {"s0": 100.0, "s1": 50.0}
    sync = grades_by_sub(teacher, ids)["s1"]["sync"]
    assert (sync["state"], sync["last_error"], sync["up_to_date"]) == ("delivered", None, True)
    # Retry with no failures re-queues nothing.
    assert teacher.post("/api/grades/retry/", json={}).get_json()["requeued"] == 0


def test_a_new_change_to_a_failed_student_is_sent_again(app, launcher, lms):
    original = lms._lineitem
    lms._lineitem = lambda request: (Response("{}", status=412, mimetype="application/json")
                                     if request.path.endswith("/scores") else original(request))
    teacher, ids, _ = start_course(launcher, lms, ["s0"])
    session = new_session(teacher)
    close(teacher, session)
    deliver_all(app)
    assert deliveries(app)[ids["s0"]].state == "failed"
    lms._lineitem = original
    mark(teacher, session, ids["s0"], "present")
    deliver_all(app)
    assert lms.final_scores() == {"s0": 100.0}


# -- kill between the commit and the delivery ---------------------------------------------------
def _http_launch(base: str, platform: Platform, role: str, sub: str, claims: dict) -> str:
    """A real OIDC login + launch over HTTP; answer the launch token."""
    login = requests.get(f"{base}/lti/login", allow_redirects=False, timeout=10,
                         params=platform.login_params(f"{base}/lti/launch"))
    assert login.status_code == 302, login.text[:300]
    auth = {k: v[0] for k, v in parse_qs(urlsplit(login.headers["Location"]).query).items()}
    body = platform.claims(role, nonce=auth["nonce"], sub=sub, name=f"Student {sub}", nrps=False)
    body.update(claims)
    launch = requests.post(f"{base}/lti/launch", headers={"Cookie": login.headers["Set-Cookie"].split(";", 1)[0]},
                           data={"id_token": platform.sign(body), "state": auth["state"]}, timeout=10)
    assert launch.status_code == 200, launch.text[:500]
    return meta(launch.text, "launch-token")


class _Tool:
    """`python app.py` on a fixed port, with its launch tokens."""

    def __init__(self, env):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = dict(env, TOOL_BASE_URL=self.base)
        self.proc = None

    def start(self):
        self.proc = serve(self.env, self.port)

    def kill(self):
        self.proc.kill()  # SIGKILL: no cleanup, no flush, no goodbye
        self.proc.wait(timeout=10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except Exception:  # noqa: BLE001
                self.proc.kill()

    def api(self, token, path, body):
        response = requests.post(self.base + path, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=15)
        assert response.ok, response.text[:500]
        return response.json()


@pytest.fixture
def served(tool_env):
    tool = _Tool(tool_env)
    platform = Platform(product="moodle")
    lms = LmsServices(platform, tool_jwks=lambda: requests.get(tool.base + "/lti/jwks", timeout=5).json())
    tool.start()
    flask_cli(tool.env, "platform", "add", "--issuer", platform.issuer, "--client-id", platform.client_id,
              "--auth-login-url", platform.auth_url, "--token-url", platform.token_url,
              "--key-set-url", platform.jwks_url, "--deployment-id", platform.deployment_id)
    yield tool, lms
    tool.stop()
    platform.stop()


def _class_to_close(tool, lms):
    claims = ags_claims(lms)
    teacher = _http_launch(tool.base, lms.platform, "instructor", "t", claims)
    _http_launch(tool.base, lms.platform, "learner", "s0", claims)
    now = datetime.now(timezone.utc)
    session = tool.api(teacher, "/api/class-sessions/", {
        "title": "L", "starts_at": (now - timedelta(hours=1)).isoformat(),
        "ends_at": now.isoformat()})["class_session"]["id"]
    return teacher, session


def _wait_for(predicate, seconds: float) -> float | None:
    started = time.time()
    while time.time() - started < seconds:
        if predicate():
            return time.time() - started
        time.sleep(0.1)
    return None


def test_killed_between_commit_and_delivery_delivers_after_restart(served):
    tool, lms = served
    teacher, session = _class_to_close(tool, lms)
    lms.outage = 503  # the LMS is down when the grade changes ...
    assert tool.api(teacher, "/api/close-session/", {"class_session_id": session})["absent_count"] == 1
    tool.kill()  # ... and the tool dies right after the commit
    assert lms.scores == []
    lms.outage = None
    tool.start()
    elapsed = _wait_for(lambda: lms.final_scores() == {"s0": 0.0}, 15)
    assert elapsed is not None, f"not delivered after restart; LMS saw {lms.scores}"
    assert elapsed <= 10, elapsed
    assert not lms.refused
    # The process keeps delivering later changes too.
    tool.api(teacher, "/api/mark-attendance/", {"class_session_id": session,
                                                "student_id": _student_id(tool, teacher), "status": "present"})
    assert _wait_for(lambda: lms.final_scores() == {"s0": 100.0}, 10) is not None


def _student_id(tool, teacher) -> int:
    response = requests.get(tool.base + "/api/students/", headers={"Authorization": f"Bearer {teacher}"}, timeout=10)
    [student] = response.json()["students"]
    return student["id"]


def test_killed_while_the_lms_hangs_delivers_soon_after_restart(served):
    tool, lms = served
    teacher, session = _class_to_close(tool, lms)
    gate = threading.Event()
    hanging = {"on": True}
    list_items = lms.platform.handlers[lms.base + "/lineitems"]

    def hang(request):  # the LMS accepts the connection and never answers (until released)
        if hanging["on"]:
            gate.wait(30)
            return Response("{}", status=504)
        return list_items(request)

    lms.platform.handlers[lms.base + "/lineitems"] = hang
    seen = len(lms.platform.requests)
    assert tool.api(teacher, "/api/close-session/", {"class_session_id": session})["absent_count"] == 1
    assert _wait_for(lambda: any(r[1].split("?")[0].endswith("/lineitems") for r in lms.platform.requests[seen:]), 10)
    tool.kill()  # the worker dies holding its lease, mid-call
    hanging["on"] = False
    gate.set()
    tool.start()
    elapsed = _wait_for(lambda: lms.final_scores() == {"s0": 0.0}, 15)
    assert elapsed is not None and elapsed <= 10, f"not delivered within 10 s of the restart (LMS saw {lms.scores})"


# -- workers -----------------------------------------------------------------------------------
@pytest.mark.skipif(not POSTGRES, reason="row locking with SKIP LOCKED needs PostgreSQL")
def test_two_workers_deliver_every_row_exactly_once(app, launcher, lms):
    course_id = bulk_course(app, lms, launcher, 200, status_of=lambda i: ["present", "late", "absent"][i % 3])
    with app.app_context():  # the line item exists already: this test is about rows, not line items
        link = db.session.scalar(select(ResourceLink).filter_by(course_id=course_id))
        url = lms.item_url(1)
        lms.line_items[url] = {"id": url, "label": "Attendance", "scoreMaximum": 100, "tag": "attendance",
                               "resourceLinkId": "link-1"}
        link.ags_lineitem_url = url
        db.session.commit()
    barrier = threading.Barrier(2)
    handled = [0, 0]
    errors = []

    def worker(index):
        try:
            with app.app_context():
                barrier.wait()
                while True:
                    count = deliver_due(limit=10)
                    db.session.remove()
                    if not count:
                        break
                    handled[index] += count
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert sum(handled) == 200 and min(handled) > 0, handled  # both really worked
    counts = Counter(s["userId"] for s in lms.scores)
    assert len(counts) == 200 and set(counts.values()) == {1}
    assert not lms.refused
    assert {row.state for row in deliveries(app).values()} == {"delivered"}
    expected = {f"u{i:05d}": [100.0, 50.0, 0.0][i % 3] for i in range(200)}
    assert lms.final_scores() == expected


@pytest.mark.skipif(not POSTGRES, reason="concurrent workers on one database need PostgreSQL")
def test_two_workers_create_one_line_item_for_a_new_link(app, launcher, lms):
    bulk_course(app, lms, launcher, 40)
    create = lms.platform.handlers[lms.base + "/lineitems"]

    def slow(request):  # a real LMS takes a while to make a gradebook column
        if request.method == "POST":
            time.sleep(0.5)
        return create(request)

    lms.platform.handlers[lms.base + "/lineitems"] = slow
    barrier = threading.Barrier(2)
    errors = []

    def worker():
        try:
            with app.app_context():
                barrier.wait()
                while deliver_due(limit=5):
                    db.session.remove()
        except Exception as exc:  # noqa: BLE001 - a crash in a worker must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and not any(t.is_alive() for t in threads), errors
    assert len(Counter(s["userId"] for s in lms.scores)) == 40
    assert len(lms.line_items) == 1, list(lms.line_items.values())


# -- the token cache ---------------------------------------------------------------------------
def test_a_thousand_score_posts_use_one_token(app, launcher, lms):
    bulk_course(app, lms, launcher, 1000, status_of=lambda i: "present" if i % 2 else "absent")
    assert deliver_all(app, rounds=20) == 1000
    assert len(lms.scores) == 1000 and len(set(s["userId"] for s in lms.scores)) == 1000
    assert len(ags_token_requests(lms)) == 1
    # Every call carried that one token.
    bearers = {r[2].get("Authorization") for r in lms.platform.requests if "/lineitems" in r[1]}
    assert len(bearers) == 1


def test_two_canvas_client_ids_on_one_issuer_get_separate_tokens(app, launcher, canvas):
    other = Platform(issuer=canvas.issuer, client_id="10000000000002", product="canvas",
                     deployment_id="7:0123456789abcdef0123456789abcdef01234567")
    register_platform(app, other)
    try:
        jwks = lambda: app.test_client().get("/lti/jwks").get_json()  # noqa: E731
        lms_a, lms_b = LmsServices(canvas, tool_jwks=jwks), LmsServices(other, tool_jwks=jwks)
        users = {}
        for lms in (lms_a, lms_b):
            teacher, ids, _ = start_course(launcher, lms, ["s0"])
            users[lms.platform.client_id] = (teacher, ids)
            close(teacher, new_session(teacher, 2))
        deliver_all(app)
        for lms in (lms_a, lms_b):  # a second round, alternating between the two client ids
            teacher, ids = users[lms.platform.client_id]
            session = new_session(teacher, 1)
            mark(teacher, session, ids["s0"], "present")
            close(teacher, session)
        deliver_all(app)
        for lms in (lms_a, lms_b):
            assert len(ags_token_requests(lms)) == 1, lms.platform.client_id
            assert lms.final_scores() == {"s0": 50.0}
            tokens = {r[2]["Authorization"][7:] for r in lms.platform.requests if "/lineitems" in r[1]}
            assert tokens and tokens <= set(lms.tokens), "a token of the other client id was sent here"
        assert not set(lms_a.tokens) & set(lms_b.tokens)
        client_ids = {assertion_sub(r["client_assertion"]) for r in lms_a.token_requests + lms_b.token_requests}
        assert client_ids == {"10000000000001", "10000000000002"}
    finally:
        other.stop()


def assertion_sub(assertion: str) -> str:
    import jwt

    return jwt.decode(assertion, options={"verify_signature": False})["sub"]


def test_a_401_renews_the_token_once(app, launcher, lms):
    teacher, ids, _ = start_course(launcher, lms, ["s0"])
    session = new_session(teacher)
    close(teacher, session)
    deliver_all(app)
    assert len(ags_token_requests(lms)) == 1
    lms.tokens.clear()  # the LMS revoked the token before it expired
    mark(teacher, session, ids["s0"], "present")
    deliver_all(app)
    assert len(ags_token_requests(lms)) == 2
    assert lms.final_scores() == {"s0": 100.0}
    assert len(service_posts(lms.platform, "/scores")) == 3  # one refused with the old token, one accepted
    # A token that is refused every time is renewed once per call, not in a loop.
    lms.revoke_tokens_on_scores()
    mark(teacher, session, ids["s0"], "late")
    posts, tokens = len(service_posts(lms.platform, "/scores")), len(ags_token_requests(lms))
    deliver_all(app)
    assert len(service_posts(lms.platform, "/scores")) == posts + 2
    assert len(ags_token_requests(lms)) == tokens + 1
    row = deliveries(app)[ids["s0"]]
    assert row.state != "delivered" and row.last_status == 401
    assert lms.final_scores() == {"s0": 100.0}


def test_token_is_renewed_shortly_before_it_expires(app, launcher, lms):
    token_clock = FakeClock()
    app.extensions["lti_token_cache"] = TokenCache(clock=token_clock)
    lms.token_lifetime = 61  # the tool renews TOKEN_MARGIN (60 s) early: this token is as good as expired
    teacher, ids, _ = start_course(launcher, lms, ["s0"])
    session = new_session(teacher)
    close(teacher, session)
    deliver_all(app)
    mark(teacher, session, ids["s0"], "present")
    token_clock.advance(1.1)
    deliver_all(app)
    assert len(ags_token_requests(lms)) == 2
    lms.token_lifetime = 3600  # the next one is good for an hour
    mark(teacher, session, ids["s0"], "late")
    token_clock.advance(1.1)
    deliver_all(app)
    assert len(ags_token_requests(lms)) == 3
    mark(teacher, session, ids["s0"], "absent")
    token_clock.advance(1.1)
    deliver_all(app)
    assert len(ags_token_requests(lms)) == 3
    assert not lms.refused and lms.final_scores() == {"s0": 0.0}
