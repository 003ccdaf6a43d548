"""attendance/grading.py `compute_grades`: statuses, drop-lowest, both denominators, enrolment periods.

Rows are written straight into a small database (the `app` fixture's); the rules are given as a
`Policy`, so the site's settings play no part.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from attendance.grading import compute_grades
from attendance.models import AttendanceRecord, ClassSession, Course, EnrollmentPeriod, User
from attendance.policy import Policy
from extensions import db
from lti.models import Registration

T = datetime(2030, 1, 7, 9, 0, tzinfo=timezone.utc)
RULES = Policy(points_present=1.0, points_late=0.5, points_absent=0.0, present_minutes=10, late_minutes=30,
               code_rotation_seconds=15, campus_networks=())


def rules(**changes) -> Policy:
    return Policy(**{**RULES.__dict__, **changes})


class GradeBook:
    """One course in the database: sessions a day apart, one student, their records and enrolment periods."""

    def __init__(self):
        registration = Registration(issuer="https://lms.example.edu", client_id="c", auth_login_url="https://x/a",
                                    key_set_url="https://x/k")
        db.session.add(registration)
        db.session.flush()
        self.course = Course(registration_id=registration.id, context_id="course-1")
        self.student = User(registration_id=registration.id, sub="s0")
        db.session.add_all([self.course, self.student])
        db.session.flush()

    def sessions(self, statuses, *, closed=True) -> list[int]:
        """One session per status (None: no record), starting on consecutive days from T."""
        ids = []
        offset = len(db.session.query(ClassSession).all())
        for n, status in enumerate(statuses):
            starts = T + timedelta(days=offset + n)
            session = ClassSession(course_id=self.course.id, title=f"Day {offset + n}", starts_at=starts,
                                   ends_at=starts + timedelta(hours=1), code_secret="00" * 32,
                                   closed_at=starts + timedelta(hours=1) if closed else None)
            db.session.add(session)
            db.session.flush()
            if status is not None:
                db.session.add(AttendanceRecord(class_session_id=session.id, student_id=self.student.id,
                                                status=status, source="teacher"))
            ids.append(session.id)
        db.session.flush()
        return ids

    def enrolled(self, *periods) -> None:
        """Enrolment periods given in days from T (None: still enrolled)."""
        for start, end in periods:
            db.session.add(EnrollmentPeriod(course_id=self.course.id, user_id=self.student.id,
                                            started_at=T + timedelta(days=start),
                                            ended_at=None if end is None else T + timedelta(days=end)))
        db.session.flush()

    def grade(self, policy: Policy = RULES):
        return compute_grades(self.course.id, [self.student.id], policy)[self.student.id]


@pytest.fixture
def book(app):
    with app.app_context():
        yield GradeBook()
        db.session.rollback()


@pytest.mark.parametrize("statuses, score, counts", [
    ([], None, dict(counted=0, sessions=0)),
    (["present"], 100.0, dict(counted=1, present=1)),
    (["late"], 50.0, dict(counted=1, late=1)),
    (["absent"], 0.0, dict(counted=1, absent=1)),
    ([None], 0.0, dict(counted=1, absent=1)),  # no record in a closed session: absent
    (["excused"], None, dict(counted=0, excused=1, sessions=1)),  # nothing counts: no grade, not zero
    (["present", "late"], 75.0, dict(counted=2, present=1, late=1)),
    (["present", "absent", "late"], 50.0, dict(counted=3, present=1, late=1, absent=1)),
    (["present", "excused"], 100.0, dict(counted=1, present=1, excused=1, sessions=2)),  # excused: not counted
    (["late", "late", "present"], 66.67, dict(counted=3, late=2, present=1)),  # rounded to 2 places
])
def test_statuses(book, statuses, score, counts):
    book.sessions(statuses)
    grade = book.grade()
    assert grade.score == score
    expected = {"present": 0, "late": 0, "excused": 0, "absent": 0, "dropped": 0, "sessions": len(statuses), **counts}
    assert {k: getattr(grade, k) for k in expected} == expected


@pytest.mark.parametrize("policy, statuses, score", [
    (rules(points_present=2.0, points_late=1.0), ["late"], 50.0),  # points relative to a present
    (rules(points_late=0.25), ["present", "late"], 62.5),
    (rules(points_late=1.0), ["late"], 100.0),
    (rules(points_absent=0.25), ["absent"], 25.0),
])
def test_points(book, policy, statuses, score):
    book.sessions(statuses)
    assert book.grade(policy).score == score


@pytest.mark.parametrize("drop, statuses, score, dropped", [
    (1, ["absent", "present", "late"], 75.0, 1),  # the absence goes: (1 + 0.5) / 2
    (2, ["absent", "present", "late"], 100.0, 2),
    (5, ["absent", "present", "late"], 100.0, 2),  # never the last counted session
    (1, ["present"], 100.0, 0),  # one session: nothing to drop
    (1, ["absent", "excused"], 0.0, 0),  # an excused session is not a value to drop
    (1, [None, None, "present"], 50.0, 1),
])
def test_drop_lowest(book, drop, statuses, score, dropped):
    book.sessions(statuses)
    grade = book.grade(rules(drop_lowest=drop))
    assert (grade.score, grade.dropped) == (score, dropped)


@pytest.mark.parametrize("denominator, score, sessions", [
    ("closed", 100.0, 1),  # only the closed session counts so far
    ("scheduled", 50.0, 2),  # every session of the course counts; the open one without a record as absent
])
def test_denominators(book, denominator, score, sessions):
    book.sessions(["present"])
    book.sessions([None], closed=False)
    grade = book.grade(rules(denominator=denominator))
    assert (grade.score, grade.sessions) == (score, sessions)


@pytest.mark.parametrize("periods, score, sessions", [
    ([], 25.0, 4),  # no history: always enrolled, every missing record an absence
    ([(0, None)], 25.0, 4),
    ([(2, None)], 50.0, 2),  # joined on day 2: days 0 and 1 do not count
    ([(2.5, None)], 100.0, 1),  # joined after day 2's session started
    ([(0, 1)], 50.0, 2),  # left as day 1's session started: day 0 absent, day 3's present record counts
    ([(0, 1), (2, None)], 33.33, 3),  # away during day 1's session only
])
def test_sessions_without_a_record_count_only_while_enrolled(book, periods, score, sessions):
    book.sessions([None, None, None, "present"])  # days 0..3
    book.enrolled(*periods)
    grade = book.grade()
    assert (grade.score, grade.sessions) == (score, sessions)


def test_a_record_counts_even_outside_enrolment(book):
    book.sessions(["late"])
    book.enrolled((5, None))
    assert book.grade().score == 50.0


def test_several_students_at_once(book):
    ids = book.sessions(["present", None])
    other = User(registration_id=book.course.registration_id, sub="s1")
    db.session.add(other)
    db.session.flush()
    db.session.add(AttendanceRecord(class_session_id=ids[1], student_id=other.id, status="late", source="teacher"))
    db.session.flush()
    grades = compute_grades(book.course.id, [book.student.id, other.id], RULES)
    assert {uid: g.score for uid, g in grades.items()} == {book.student.id: 50.0, other.id: 25.0}
    assert compute_grades(book.course.id, [], RULES) == {}
