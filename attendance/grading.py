"""The attendance grade of each student: one computation for the pages, reports and the LMS."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import select

from attendance.enrolment import enrolled_at, periods_of
from attendance.models import ABSENT, EXCUSED, LATE, PRESENT, AttendanceRecord, ClassSession
from attendance.policy import Policy, policy_for
from extensions import db


@dataclass
class Grade:
    score: float | None  # 0..100, None when no session counts yet
    counted: int = 0
    present: int = 0
    late: int = 0
    excused: int = 0
    absent: int = 0
    dropped: int = 0
    sessions: int = 0

    @property
    def comment(self) -> str:
        """The grade explained in one sentence, as the LMS shows it."""
        if self.counted == 0:
            return "No attendance counted yet."
        attended = self.present + self.late
        parts = [f"{attended} of {self.counted} sessions attended"]
        if self.late:
            parts.append(f"{self.late} late")
        if self.excused:
            parts.append(f"{self.excused} excused")
        if self.dropped:
            parts.append(f"{self.dropped} lowest dropped")
        return ", ".join(parts)

    def as_json(self) -> dict:
        """Return the grade and its counts as a JSON-ready dict."""
        return {"score": self.score, "comment": self.comment, "counted": self.counted, "present": self.present,
                "late": self.late, "excused": self.excused, "absent": self.absent, "dropped": self.dropped,
                "sessions": self.sessions}


def compute_grades(course_id: int, student_ids: list[int], policy: Policy | None = None) -> dict[int, Grade]:  # noqa: C901 - the per-session rules read best as one loop
    """Grades of several students of a course in two queries."""
    policy = policy or policy_for(course_id)
    denominator, drop = policy.denominator, policy.drop_lowest
    query = select(ClassSession.id, ClassSession.starts_at).where(ClassSession.course_id == course_id)
    if denominator == "closed":
        query = query.where(ClassSession.closed_at.is_not(None))
    sessions = db.session.execute(query).all()
    session_ids = [s.id for s in sessions]
    statuses: dict[int, dict[int, str]] = defaultdict(dict)
    if session_ids and student_ids:
        for record in db.session.execute(select(
                AttendanceRecord.student_id, AttendanceRecord.class_session_id, AttendanceRecord.status).where(
                AttendanceRecord.class_session_id.in_(session_ids), AttendanceRecord.student_id.in_(student_ids))):
            statuses[record.student_id][record.class_session_id] = record.status
    periods = periods_of(course_id, student_ids) if sessions else {}
    points = {PRESENT: policy.points_present, LATE: policy.points_late, ABSENT: policy.points_absent}
    full = policy.points_present or 1.0
    grades = {}
    for student_id in student_ids:
        grade = Grade(score=None, sessions=len(sessions))
        values = []
        for session in sessions:
            status = statuses[student_id].get(session.id)
            if status is None:
                # No record: an absence only if the student was enrolled when it started (not before
                # they joined, not while they had left the course).
                if not enrolled_at(periods.get(student_id), session.starts_at):
                    grade.sessions -= 1
                    continue
                status = ABSENT
            if status == EXCUSED:
                grade.excused += 1
                continue
            setattr(grade, status, getattr(grade, status) + 1)
            values.append(points.get(status, 0.0) / full)
        if drop and len(values) > 1:
            grade.dropped = min(drop, len(values) - 1)
            values = sorted(values)[grade.dropped:]
        grade.counted = len(values)
        if values:
            grade.score = round(100 * sum(values) / len(values), 2)
        grades[student_id] = grade
    return grades
