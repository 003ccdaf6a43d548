"""attendance/policy.py: site defaults under a course's rules, the window rule, clashing settings."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from attendance.errors import ApiError
from attendance.policy import Policy, checked_policy, window_errors

SITE = {"POINTS_PRESENT": 1.0, "POINTS_LATE": 0.5, "POINTS_ABSENT": 0.0, "CHECKIN_PRESENT_MINUTES": 10,
        "CHECKIN_LATE_MINUTES": 30, "CODE_ROTATION_SECONDS": 15, "CAMPUS_NETWORKS": ["10.0.0.0/8"]}
SITE_POLICY = Policy(1.0, 0.5, 0.0, 10, 30, 15, ("10.0.0.0/8",), 0, "closed")
NO_COURSE = 999_999  # no CoursePolicy row: the site's settings throughout


@pytest.fixture
def site(app):
    """An app context whose site settings are SITE."""
    app.config.update(SITE)
    with app.app_context():
        yield


def row(**columns) -> SimpleNamespace:
    """A CoursePolicy-like row: every column None unless given."""
    names = ("points_present", "points_late", "points_absent", "present_minutes", "late_minutes",
             "code_rotation_seconds", "campus_networks", "drop_lowest", "denominator")
    return SimpleNamespace(**{name: columns.get(name) for name in names})


@pytest.mark.parametrize("course_row, policy", [
    (None, SITE_POLICY),
    (row(), SITE_POLICY),
    (row(points_late=0.25), Policy(1.0, 0.25, 0.0, 10, 30, 15, ("10.0.0.0/8",))),
    (row(points_present=2.0, points_absent=0.0), Policy(2.0, 0.5, 0.0, 10, 30, 15, ("10.0.0.0/8",))),
    (row(present_minutes=5, late_minutes=20, code_rotation_seconds=30),
     Policy(1.0, 0.5, 0.0, 5, 20, 30, ("10.0.0.0/8",))),
    (row(campus_networks=[]), Policy(1.0, 0.5, 0.0, 10, 30, 15, ())),  # an empty list is set, not unset
    (row(campus_networks=["192.0.2.0/24"]), Policy(1.0, 0.5, 0.0, 10, 30, 15, ("192.0.2.0/24",))),
    (row(drop_lowest=2, denominator="scheduled"), Policy(1.0, 0.5, 0.0, 10, 30, 15, ("10.0.0.0/8",), 2, "scheduled")),
    (row(points_absent=0.0, present_minutes=0), Policy(1.0, 0.5, 0.0, 0, 30, 15, ("10.0.0.0/8",))),  # 0 is a value
    (SimpleNamespace(points_late=0.75), Policy(1.0, 0.75, 0.0, 10, 30, 15, ("10.0.0.0/8",))),  # missing columns
])
def test_policy_of_fills_unset_columns_from_the_site(site, course_row, policy):
    assert Policy.of(course_row) == policy


@pytest.mark.parametrize("present, late, late_field, errors", [
    (10, 30, "late_minutes", {}),
    (10, 10, "late_minutes", {}),
    (0, 0, "late_minutes", {}),
    (10, 9, "late_minutes", {"late_minutes": ["Must not be shorter than the present window (10 minutes)."]}),
    (15, 5, "checkin_late_minutes",
     {"checkin_late_minutes": ["Must not be shorter than the present window (15 minutes)."]}),
])
def test_window_errors(present, late, late_field, errors):
    assert window_errors(present, late, late_field=late_field) == errors


@pytest.mark.parametrize("changes, merged", [
    ({}, SITE_POLICY),
    ({"points_late": 1.0}, Policy(1.0, 1.0, 0.0, 10, 30, 15, ("10.0.0.0/8",))),  # late may equal present
    ({"points_present": 2.0, "points_late": 1.5, "points_absent": 1.5},
     Policy(2.0, 1.5, 1.5, 10, 30, 15, ("10.0.0.0/8",))),
    ({"present_minutes": 30}, Policy(1.0, 0.5, 0.0, 30, 30, 15, ("10.0.0.0/8",))),
    ({"drop_lowest": 1, "not_a_policy_field": "ignored"}, Policy(1.0, 0.5, 0.0, 10, 30, 15, ("10.0.0.0/8",), 1)),
])
def test_checked_policy_merges_changes_into_the_current_rules(site, changes, merged):
    assert checked_policy(NO_COURSE, changes) == merged


@pytest.mark.parametrize("changes, fields", [
    ({"points_late": 1.5}, {"points_late"}),  # more than present (1, the site's)
    ({"points_present": 0.25}, {"points_late"}),  # judged with the site's late points (0.5)
    ({"points_absent": 0.75}, {"points_absent"}),  # more than late
    ({"points_late": 0.0, "points_absent": 0.25}, {"points_absent"}),
    ({"present_minutes": 31}, {"late_minutes"}),  # the present window now outlasts the site's late one
    ({"late_minutes": 5}, {"late_minutes"}),
    ({"points_present": 0.1, "points_absent": 0.6, "late_minutes": 1}, {"points_late", "points_absent", "late_minutes"}),
])
def test_checked_policy_refuses_settings_that_clash(site, changes, fields):
    with pytest.raises(ApiError) as refused:
        checked_policy(NO_COURSE, changes)
    assert (refused.value.code, refused.value.status) == ("validation_error", 422)
    assert set(refused.value.fields) == fields
