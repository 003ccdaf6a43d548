"""The rules of a check-in, with time under the test's control (attendance.clock.now is the only "now"):
rotating codes and their grace, the present / late / closed window, check-in opened, stopped and
closed, the geofence, shared devices, the wrong-code rate limits, ad-hoc and weekly sessions and the
course's timezone.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from attendance import codes
from attendance.geo import haversine_m
from tests.support.api import assert_error
from tests.support.checkin import ROOM, T0, Course, clock, course, iso, north_of_room, platform, status_of, submit  # noqa: F401 - platform, clock and course are fixtures
from tests.support.launch import register_platform

UTC = timezone.utc



def period(moment: datetime) -> int:
    return codes.period_of(moment, 15)


# -- codes: rotation and grace -----------------------------------------------------------------
def test_code_rotates_every_rotation_period(course, clock):
    session_id = course.new_session()
    clock.at(T0 + timedelta(seconds=1))
    first = course.generate(session_id)
    assert first["rotation_seconds"] == 15
    assert first["expires_at"] == "2030-01-07T09:00:15Z"
    assert len(first["code"]) == 6 and set(first["code"]) <= set(codes.ALPHABET)
    clock.at(T0 + timedelta(seconds=14.9))
    assert course.generate(session_id)["code"] == first["code"]  # same period, same code
    clock.at(T0 + timedelta(seconds=15))
    second = course.generate(session_id)
    assert second["code"] != first["code"]
    assert second["expires_at"] == "2030-01-07T09:00:30Z"
    clock.at(T0 + timedelta(seconds=30))
    third = course.generate(session_id)
    assert third["code"] not in (first["code"], second["code"])
    # codes differ between sessions
    other = course.new_session()
    assert course.generate(other)["code"] != third["code"]


def test_previous_code_counts_within_the_grace_and_not_after(course, clock):
    session_id = course.new_session()
    clock.at(T0 + timedelta(seconds=1))
    old = course.generate(session_id)["code"]
    turn = T0 + timedelta(seconds=15)
    clock.at(turn + timedelta(seconds=4.9))
    assert submit(course.student(1), old).status_code == 201
    clock.at(turn + timedelta(seconds=5.1))
    assert_error(submit(course.student(2), old), 400, "invalid_attendance_code")
    assert course.records(session_id) == 1
    current = course.generate(session_id)["code"]
    assert current != old
    assert submit(course.student(2), current).status_code == 201


def test_codes_from_two_periods_ago_or_from_the_future_never_count(course, clock):
    session_id = course.new_session()
    clock.at(T0 + timedelta(seconds=1))
    course.generate(session_id)
    p = period(T0)
    clock.at(T0 + timedelta(seconds=30.5))  # 0.5 s after the second turn: grace for period p+1 only
    assert_error(submit(course.student(1), course.code_of_period(session_id, p)), 400, "invalid_attendance_code")
    assert submit(course.student(2), course.code_of_period(session_id, p + 1)).status_code == 201  # in grace
    assert_error(submit(course.student(3), course.code_of_period(session_id, p + 3)), 400, "invalid_attendance_code")
    assert course.records(session_id) == 1


def test_code_is_forgiving_about_case_spaces_and_dashes(course, clock):
    session_id = course.new_session()
    code = course.generate(session_id)["code"]
    typed = f" {code[:3].lower()}-{code[3:]} "
    assert submit(course.student(1), typed).status_code == 201


# -- the window --------------------------------------------------------------------------------
def test_present_then_late_then_closed(course, clock):
    session_id = course.new_session()
    clock.at(T0 - timedelta(minutes=5))
    course.generate(session_id)  # opened before the start: the window counts from the start
    results = []
    for n, offset in enumerate([timedelta(minutes=9, seconds=59), timedelta(minutes=10, seconds=1),
                                timedelta(minutes=29, seconds=59), timedelta(minutes=30, seconds=1)]):
        clock.at(T0 + offset)
        # The code on the screen now (pressing "Start check-in" again after the window would open a new one).
        response = submit(course.student(n), course.code_of_period(session_id, period(clock.now)))
        results.append((response.status_code, (response.get_json().get("attendance") or {}).get("status")
                        or response.get_json()["error"]["code"]))
    assert results == [(201, "present"), (201, "late"), (201, "late"), (409, "checkin_closed")]
    assert course.records(session_id) == 3
    statuses = {s["student"]["name"]: s["status"] for s in course.submissions(session_id)}
    assert statuses == {"Student 0": "present", "Student 1": "late", "Student 2": "late"}


def test_opening_check_in_late_moves_the_window(course, clock):
    session_id = course.new_session()
    opened = T0 + timedelta(minutes=20)
    clock.at(opened)
    course.generate(session_id)
    clock.at(opened + timedelta(minutes=9))  # T0 + 29 min: late by the start, present by the opening
    assert status_of(submit(course.student(1), course.generate(session_id)["code"])) == "present"
    clock.at(opened + timedelta(minutes=25))
    assert status_of(submit(course.student(2), course.generate(session_id)["code"])) == "late"
    clock.at(opened + timedelta(minutes=30, seconds=1))
    assert_error(submit(course.student(3), course.code_of_period(session_id, period(clock.now))), 409, "checkin_closed")


def test_course_policy_changes_the_window(course, clock):
    settings = course.teacher.post("/api/course-settings/", json={"present_minutes": 2, "late_minutes": 5})
    assert settings.status_code == 200
    session_id = course.new_session()
    clock.at(T0)
    course.generate(session_id)
    clock.at(T0 + timedelta(minutes=3))
    assert status_of(submit(course.student(1), course.generate(session_id)["code"])) == "late"
    clock.at(T0 + timedelta(minutes=5, seconds=1))
    assert_error(submit(course.student(2), course.code_of_period(session_id, period(clock.now))), 409, "checkin_closed")


def test_no_check_in_before_the_teacher_opens_it(course, clock):
    session_id = course.new_session()
    clock.at(T0 + timedelta(minutes=1))
    right_code = course.code_of_period(session_id, period(clock.now))  # even the right code
    assert_error(submit(course.student(1), right_code), 400, "invalid_attendance_code")
    assert course.records(session_id) == 0


def test_stop_checkin_refuses_then_generate_code_reopens(course, clock):
    session_id = course.new_session()
    clock.at(T0 + timedelta(minutes=1))
    code = course.generate(session_id)["code"]
    stopped = course.teacher.post("/api/stop-checkin/", json={"class_session_id": session_id})
    assert stopped.status_code == 200 and stopped.get_json()["class_session"]["checkin_open"] is False
    refused = submit(course.student(1), code)
    assert_error(refused, 400, "invalid_attendance_code")  # a stopped or closed session accepts no code
    assert course.records(session_id) == 0
    code = course.generate(session_id)["code"]  # open again
    assert submit(course.student(1), code).status_code == 201


def test_close_session_refuses_check_ins_and_new_codes(course, clock):
    session_id = course.new_session()
    clock.at(T0 + timedelta(minutes=1))
    code = course.generate(session_id)["code"]
    course.student(1)
    assert course.teacher.post("/api/close-session/", json={"class_session_id": session_id}).status_code == 200
    refused = submit(course.student(1), code)
    assert_error(refused, 400, "invalid_attendance_code")  # a stopped or closed session accepts no code
    assert [s["status"] for s in course.submissions(session_id)] == ["absent"]
    assert_error(course.teacher.post("/api/generate-code/", json={"class_session_id": session_id}), 409,
                 "session_closed")


# -- the geofence ------------------------------------------------------------------------------
def _checked_in(course, session_id, n, **where) -> dict:
    response = submit(course.student(n), course.generate(session_id)["code"], **where)
    assert response.status_code == 201, response.get_json()
    return next(s for s in course.submissions(session_id) if s["id"] == response.get_json()["attendance"]["id"])


def test_geofence_inside_outside_and_missing(course, clock):
    session_id = course.new_session()
    clock.at(T0 + timedelta(minutes=1))
    inside = _checked_in(course, session_id, 1, latitude=ROOM[0], longitude=ROOM[1], accuracy_m=10)
    assert (inside["status"], inside["location_flag"]) == ("present", "inside")
    assert inside["risk"]["reasons"] == [] and inside["risk"]["level"] == "low"

    far = north_of_room(1000)
    outside = _checked_in(course, session_id, 2, latitude=far[0], longitude=far[1], accuracy_m=10)
    assert outside["status"] == "present"  # kept and flagged, never silently refused
    assert outside["location_flag"] == "outside"
    assert abs(outside["distance_m"] - 1000) < 2
    assert outside["risk"]["score"] > inside["risk"]["score"] and outside["risk"]["level"] in ("medium", "high")
    assert any("outside" in reason.lower() for reason in outside["risk"]["reasons"])

    missing = _checked_in(course, session_id, 3)
    assert (missing["status"], missing["location_flag"]) == ("present", "missing")
    assert any("location" in reason.lower() for reason in missing["risk"]["reasons"])
    assert course.records(session_id) == 3


@pytest.mark.parametrize("metres, accuracy, flag", [
    (120, 30, "inside"),      # 120 m from the centre, radius 100, accuracy 30: benefit of the doubt
    (120, None, "outside"),   # no accuracy reported: no widening
    (120, 10, "outside"),
    (190, 500, "inaccurate"),  # accuracy capped at 100 m: inside 200 m, but the fix is poor
    (250, 500, "outside"),    # the cap: 250 > 100 + 100
    (10, 200, "inaccurate"),  # poor accuracy is flagged even at the centre
    (10, 149, "inside"),
])
def test_geofence_accuracy_widening_and_cap(course, clock, metres, accuracy, flag):
    session_id = course.new_session()
    clock.at(T0 + timedelta(minutes=1))
    lat, lon = north_of_room(metres)
    assert abs(haversine_m(lat, lon, *ROOM) - metres) < 0.5
    where = {"latitude": lat, "longitude": lon, **({"accuracy_m": accuracy} if accuracy is not None else {})}
    record = _checked_in(course, session_id, 1, **where)
    assert record["location_flag"] == flag
    assert record["status"] == "present"
    if flag == "inaccurate":
        assert any("imprecise" in r.lower() or "accura" in r.lower() for r in record["risk"]["reasons"])
    if flag == "inside":
        assert record["risk"]["reasons"] == []


def test_session_without_a_classroom_has_no_geofence(course, clock):
    session_id = course.new_session(geofence=False)
    clock.at(T0 + timedelta(minutes=1))
    record = _checked_in(course, session_id, 1, latitude=0.0, longitude=0.0)
    assert record["location_flag"] == "no_geofence" and record["risk"]["reasons"] == []


def test_seed_aliases_simulated_latitude_and_longitude(course, clock):
    session_id = course.new_session()
    clock.at(T0 + timedelta(minutes=1))
    response = course.student(1).post("/api/submit-attendance/", data={
        "attendance_code": course.generate(session_id)["code"], "simulated_latitude": str(ROOM[0]),
        "simulated_longitude": str(ROOM[1])})
    assert response.status_code == 201
    assert response.get_json()["attendance"]["location_flag"] == "inside"


def test_same_device_for_two_students_is_a_risk(course, clock):
    session_id = course.new_session()
    clock.at(T0 + timedelta(minutes=1))
    first = _checked_in(course, session_id, 1, latitude=ROOM[0], longitude=ROOM[1], device_id="phone-A")
    second = _checked_in(course, session_id, 2, latitude=ROOM[0], longitude=ROOM[1], device_id="phone-A")
    third = _checked_in(course, session_id, 3, latitude=ROOM[0], longitude=ROOM[1], device_id="phone-B")
    assert not any("device" in r.lower() for r in first["risk"]["reasons"])
    assert any("device" in r.lower() for r in second["risk"]["reasons"])
    assert second["risk"]["score"] > first["risk"]["score"]
    assert not any("device" in r.lower() for r in third["risk"]["reasons"])
    # Scoring again with everything known now flags the first one too.
    rescored = course.teacher.post("/api/run-ai-validation/", json={"class_session_id": session_id})
    results = rescored.get_json()["results"]
    by_id = {r["attendance_id"]: r for r in results}
    assert any("device" in r.lower() for r in by_id[first["id"]]["reasons"])
    assert not any("device" in r.lower() for r in by_id[third["id"]]["reasons"])


# -- rate limits on wrong codes ----------------------------------------------------------------
@pytest.fixture
def limited(make_app, platform, clock):
    def build(**settings) -> Course:
        app = make_app(**settings)
        register_platform(app, platform)
        return Course(app, platform)

    return build


def test_wrong_codes_are_limited_per_student(limited, clock):
    course = limited(WRONG_CODE_LIMIT_STUDENT="3 per minute")
    session_id = course.new_session()
    clock.at(T0 + timedelta(minutes=1))
    course.generate(session_id)
    a, b = course.student(1), course.student(2)
    for _ in range(3):
        assert_error(submit(a, "WRONG1"), 400, "invalid_attendance_code")
    body = assert_error(submit(a, "WRONG1"), 429, "rate_limited")
    assert set(body) == {"success", "error"}
    assert_error(submit(b, "WRONG1"), 400, "invalid_attendance_code")  # another student is not blocked
    assert course.records(session_id) == 0


def test_right_codes_and_other_refusals_are_not_counted(limited, clock):
    course = limited(WRONG_CODE_LIMIT_STUDENT="3 per minute")
    sessions = [course.new_session() for _ in range(5)]
    clock.at(T0 + timedelta(minutes=1))
    student = course.student(1)
    for _ in range(2):
        assert_error(submit(student, "WRONG1"), 400, "invalid_attendance_code")
    for session_id in sessions:  # five right codes: more than the limit, none counted
        response = submit(student, course.generate(session_id)["code"], class_session_id=session_id)
        assert response.status_code == 201, response.get_json()
    assert_error(submit(student, course.generate(sessions[0])["code"]), 409, "already_submitted")
    assert student.post("/api/submit-attendance/", json={"attendance_code": "X", "latitude": 91}).status_code == 422
    assert_error(submit(student, "WRONG1"), 400, "invalid_attendance_code")  # the third wrong code
    assert_error(submit(student, "WRONG1"), 429, "rate_limited")


def test_wrong_codes_are_limited_per_address_across_students(limited, clock):
    course = limited(WRONG_CODE_LIMIT_ADDRESS="5 per minute", WRONG_CODE_LIMIT_STUDENT="100 per minute")
    session_id = course.new_session()
    clock.at(T0 + timedelta(minutes=1))
    course.generate(session_id)
    students = [course.student(n) for n in range(3)]
    answers = [submit(students[i % 3], "WRONG1").status_code for i in range(6)]
    assert answers == [400, 400, 400, 400, 400, 429]
    body = submit(students[0], "WRONG1").get_json()
    assert body["error"]["code"] == "rate_limited"
    # Another network address is not blocked.
    other = students[1].post("/api/submit-attendance/", json={"attendance_code": "WRONG1"},
                             environ_base={"REMOTE_ADDR": "10.9.8.7"})
    assert_error(other, 400, "invalid_attendance_code")


def test_the_default_address_limit_lets_a_lecture_hall_through(limited, clock):
    """One NAT address, many students each mistyping once or twice: nobody is blocked by the address."""
    course = limited()
    session_id = course.new_session()
    clock.at(T0 + timedelta(minutes=1))
    course.generate(session_id)
    for n in range(25):
        student = course.student(n)
        for _ in range(2):
            assert_error(submit(student, "WRONG1"), 400, "invalid_attendance_code")
        assert submit(student, course.generate(session_id)["code"]).status_code == 201
    assert course.records(session_id) == 25


# -- ad-hoc and weekly sessions, the course's timezone -----------------------------------------
def test_generate_code_without_a_session_creates_one_ad_hoc_and_reuses_it(course, clock):
    clock.at(T0 + timedelta(minutes=3))
    before = course.sessions()
    first = course.generate()
    assert course.sessions() == before + 1
    clock.at(T0 + timedelta(minutes=4))
    second = course.generate()
    assert second["class_session_id"] == first["class_session_id"] and course.sessions() == before + 1
    listed = {s["id"]: s for s in course.teacher.get("/api/class-sessions/").get_json()["class_sessions"]}
    adhoc = listed[first["class_session_id"]]
    assert adhoc["is_adhoc"] is True and adhoc["checkin_open"] is True
    assert adhoc["starts_at"] == "2030-01-07T09:03:00Z"
    assert submit(course.student(1), second["code"]).get_json()["attendance"]["status"] == "present"
    # Once closed, the next call starts a new one.
    course.teacher.post("/api/close-session/", json={"class_session_id": first["class_session_id"]})
    third = course.generate()
    assert third["class_session_id"] != first["class_session_id"] and course.sessions() == before + 2


def test_weekly_repeat_creates_one_session_per_week(course, clock):
    response = course.teacher.post("/api/class-sessions/", json={
        "title": "Weekly", "starts_at": iso(T0), "ends_at": iso(T0 + timedelta(hours=2)),
        "repeat_weekly_until": iso(T0 + timedelta(weeks=3, hours=1))})
    assert response.status_code == 201, response.get_json()
    created = response.get_json()["class_sessions"]
    assert [s["starts_at"] for s in created] == [iso(T0 + timedelta(weeks=w)) for w in range(4)]
    assert [s["ends_at"] for s in created] == [iso(T0 + timedelta(weeks=w, hours=2)) for w in range(4)]
    assert len({s["series_id"] for s in created}) == 1 and created[0]["series_id"]
    assert course.sessions() == 4
    assert len({s["id"] for s in created}) == 4


def test_naive_times_are_in_the_course_timezone(course, clock):
    settings = course.teacher.post("/api/course-settings/", json={"timezone": "Europe/Lisbon"})
    assert settings.status_code == 200 and settings.get_json()["settings"]["timezone"] == "Europe/Lisbon"

    def create(starts, ends):
        response = course.teacher.post("/api/class-sessions/", json={"title": "T", "starts_at": starts,
                                                                     "ends_at": ends})
        assert response.status_code == 201, response.get_json()
        return response.get_json()["class_session"]

    summer = create("2030-07-01T09:00:00", "2030-07-01T10:30:00")  # Lisbon is UTC+1 in summer
    assert (summer["starts_at"], summer["ends_at"]) == ("2030-07-01T08:00:00Z", "2030-07-01T09:30:00Z")
    assert summer["timezone"] == "Europe/Lisbon"
    winter = create("2030-01-07T09:00:00", "2030-01-07T10:00:00")  # UTC+0 in winter
    assert winter["starts_at"] == "2030-01-07T09:00:00Z"
    explicit = create("2030-07-01T09:00:00+02:00", "2030-07-01T10:00:00+02:00")  # an offset wins
    assert explicit["starts_at"] == "2030-07-01T07:00:00Z"


def test_weekly_repeat_keeps_the_local_time_across_daylight_saving(course, clock):
    course.teacher.post("/api/course-settings/", json={"timezone": "Europe/Lisbon"})
    response = course.teacher.post("/api/class-sessions/", json={
        "title": "W", "starts_at": "2030-03-25T09:00:00", "ends_at": "2030-03-25T10:00:00",
        "repeat_weekly_until": "2030-04-02T09:00:00"})  # Lisbon moves to UTC+1 on 31 March 2030
    starts = [s["starts_at"] for s in response.get_json()["class_sessions"]]
    assert starts == ["2030-03-25T09:00:00Z", "2030-04-01T08:00:00Z"]
