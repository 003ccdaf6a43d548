"""A course's attendance rules, with the site defaults filling what the course did not set."""
from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from attendance.models import CoursePolicy
from extensions import db


@dataclass(frozen=True)
class Policy:
    points_present: float
    points_late: float
    points_absent: float
    present_minutes: int
    late_minutes: int
    code_rotation_seconds: int
    campus_networks: tuple[str, ...]
    drop_lowest: int = 0
    denominator: str = "closed"  # closed sessions so far, or every scheduled session

    @classmethod
    def of(cls, row) -> "Policy":
        """From a CoursePolicy row, or any row with its column names (None where the course has no policy)."""
        cfg = current_app.config

        def pick(attr, key):
            value = getattr(row, attr, None) if row is not None else None
            return cfg[key] if value is None else value

        networks = getattr(row, "campus_networks", None) if row is not None else None
        return cls(pick("points_present", "POINTS_PRESENT"), pick("points_late", "POINTS_LATE"),
                   pick("points_absent", "POINTS_ABSENT"), pick("present_minutes", "CHECKIN_PRESENT_MINUTES"),
                   pick("late_minutes", "CHECKIN_LATE_MINUTES"), pick("code_rotation_seconds", "CODE_ROTATION_SECONDS"),
                   tuple(cfg["CAMPUS_NETWORKS"] if networks is None else networks),
                   getattr(row, "drop_lowest", None) or 0, getattr(row, "denominator", None) or "closed")


def policy_for(course_id: int) -> Policy:
    return Policy.of(db.session.get(CoursePolicy, course_id))
