"""A course's attendance rules, with the site defaults filling what the course did not set."""
from __future__ import annotations

from dataclasses import dataclass, replace

from flask import current_app

from attendance.errors import ApiError
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
    """Return a course's policy, site defaults filling what it leaves unset."""
    return Policy.of(db.session.get(CoursePolicy, course_id))


def window_errors(present_minutes: int, late_minutes: int, *, late_field: str = "late_minutes") -> dict:
    """Field errors of a check-in window: the late window may not end before the present one."""
    if late_minutes < present_minutes:
        return {late_field: [f"Must not be shorter than the present window ({present_minutes} minutes)."]}
    return {}


def checked_policy(course_id: int, changes: dict) -> Policy:
    """Apply changes to the course's policy and check it as a whole; 422 naming the fields that clash.

    One validator for every way a policy changes (course settings, grade policy): a field is judged
    with the others as they will be, not only with those sent alongside it.
    """
    merged = replace(policy_for(course_id), **{k: v for k, v in changes.items() if k in Policy.__dataclass_fields__})
    fields = window_errors(merged.present_minutes, merged.late_minutes)
    if merged.points_late > merged.points_present:
        fields["points_late"] = [f"Must not be more than points_present ({merged.points_present:g})."]
    if merged.points_absent > merged.points_late:
        fields["points_absent"] = [f"Must not be more than points_late ({merged.points_late:g})."]
    if fields:
        raise ApiError("validation_error", "These settings contradict each other.", 422, fields)
    return merged
