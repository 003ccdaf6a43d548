"""attendance/risk.py: what each signal adds, the levels, the reasons a teacher reads."""
from __future__ import annotations

import pytest

from attendance.risk import WEIGHTS, RiskSignals, level_of, score_check_in

CALM = RiskSignals(location_flag="inside", distance_m=12, accuracy_m=10, on_campus=True,
                   seconds_before_window_end=600)


def signals(**changes) -> RiskSignals:
    """A calm check-in with some signals changed."""
    return RiskSignals(**{**CALM.__dict__, **changes})


def test_a_calm_check_in_scores_nothing():
    result = score_check_in(CALM)
    assert (result.score, result.level, result.reasons) == (0, "low", [])


@pytest.mark.parametrize("changes, score, reason", [
    ({"location_flag": "outside", "distance_m": 1534}, WEIGHTS["outside"],
     "Checked in 1.5 km from the classroom (outside the geofence)."),
    ({"location_flag": "outside", "distance_m": 240.4}, WEIGHTS["outside"],
     "Checked in 240 m from the classroom (outside the geofence)."),
    ({"location_flag": "outside", "distance_m": None}, WEIGHTS["outside"],
     "Checked in ? from the classroom (outside the geofence)."),
    ({"location_flag": "missing", "distance_m": None, "accuracy_m": None}, WEIGHTS["missing"],
     "No location was shared."),
    ({"location_flag": "inaccurate", "accuracy_m": 2500}, WEIGHTS["inaccurate"],
     "The location was very imprecise (±2.5 km)."),
    ({"same_device_count": 2}, WEIGHTS["shared_device"],
     "The same device checked in for 2 other student(s) in this session."),
    ({"same_ip_count": 3, "on_campus": None}, WEIGHTS["shared_ip"],
     "The same network address as 3 other student(s), off the campus network."),
    ({"on_campus": False}, WEIGHTS["off_campus"], "The network address is outside the campus networks."),
    ({"seconds_before_window_end": 119}, WEIGHTS["late_in_window"],
     "Checked in during the last minutes of the check-in window."),
    ({"seconds_before_window_end": 0}, WEIGHTS["late_in_window"],
     "Checked in during the last minutes of the check-in window."),
])
def test_each_signal_alone(changes, score, reason):
    result = score_check_in(signals(**changes))
    assert result.score == score
    assert result.reasons == [reason]
    assert result.level == level_of(score)


@pytest.mark.parametrize("changes", [
    {"location_flag": "no_geofence"},
    {"location_flag": None},
    {"same_ip_count": 40, "on_campus": True},  # a campus NAT: a whole hall shares one address
    {"on_campus": None},  # no campus networks configured
    {"seconds_before_window_end": 120},
    {"seconds_before_window_end": -1},  # after the window: not this signal's business
    {"seconds_before_window_end": None},
])
def test_what_adds_nothing(changes):
    assert score_check_in(signals(**changes)).score == 0


def test_an_off_campus_shared_address_counts_both_signals():
    result = score_check_in(signals(same_ip_count=1, on_campus=False))
    assert result.score == WEIGHTS["shared_ip"] + WEIGHTS["off_campus"]
    assert len(result.reasons) == 2


def test_signals_add_up_to_at_most_100_in_a_fixed_order():
    result = score_check_in(RiskSignals(location_flag="outside", distance_m=900, same_device_count=1,
                                        same_ip_count=1, on_campus=False, seconds_before_window_end=30))
    assert sum(WEIGHTS[n] for n in ("outside", "shared_device", "shared_ip", "off_campus", "late_in_window")) > 100
    assert (result.score, result.level) == (100, "high")
    assert [r.split()[0] for r in result.reasons] == ["Checked", "The", "The", "The", "Checked"]
    assert "900 m" in result.reasons[0] and "last minutes" in result.reasons[-1]


@pytest.mark.parametrize("score, level", [(0, "low"), (29, "low"), (30, "medium"), (59, "medium"),
                                          (60, "high"), (100, "high")])
def test_levels(score, level):
    assert level_of(score) == level
