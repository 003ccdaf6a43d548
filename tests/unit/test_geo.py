"""attendance/geo.py: great-circle distances and the geofence verdict."""
from __future__ import annotations

import math

import pytest

from attendance.geo import EARTH_RADIUS_M, GeofenceVerdict, haversine_m, judge

METRES_PER_DEGREE = EARTH_RADIUS_M * math.pi / 180  # along a meridian
ROOM_LAT, ROOM_LON = 41.5369, -8.4239
RADIUS = 100.0
ROOM = (ROOM_LAT, ROOM_LON, RADIUS)
CAP = 50.0  # reported accuracy widens the circle by at most this much
POOR = 100.0  # accuracy worse than this is flagged


def north(metres: float) -> tuple[float, float]:
    """A point due north of the room's middle, some metres away."""
    return ROOM_LAT + metres / METRES_PER_DEGREE, ROOM_LON


@pytest.mark.parametrize("a, b, metres", [
    ((0.0, 0.0), (0.0, 0.0), 0.0),
    ((0.0, 0.0), (1.0, 0.0), METRES_PER_DEGREE),
    ((0.0, 0.0), (0.0, 1.0), METRES_PER_DEGREE),  # on the equator a degree of longitude is as long
    ((60.0, 0.0), (60.0, 1.0), 55_597.5),  # at 60° it is about half as long
    ((0.0, 0.0), (0.0, 180.0), math.pi * EARTH_RADIUS_M),  # antipodes
    ((90.0, 0.0), (-90.0, 0.0), math.pi * EARTH_RADIUS_M),
    ((ROOM_LAT, ROOM_LON), north(250), 250.0),
])
def test_haversine(a, b, metres):
    assert haversine_m(*a, *b) == pytest.approx(metres, rel=1e-4, abs=0.01)
    assert haversine_m(*b, *a) == pytest.approx(haversine_m(*a, *b))  # symmetric


@pytest.mark.parametrize("metres, accuracy, flag", [
    (0, 10, "inside"),
    (99, 10, "inside"),
    (100, None, "inside"),  # on the circle
    (101, None, "outside"),  # no accuracy reported: no slack
    (101, 0, "outside"),
    (120, 30, "inside"),  # 30 m of reported accuracy widens the circle to 130 m
    (131, 30, "outside"),
    (149, 80, "inside"),  # the widening is capped at 50 m ...
    (151, 80, "outside"),
    (151, 5000, "outside"),  # ... however vague the reading
    (40, 150, "inaccurate"),  # inside, but the reading is too vague to trust
    (40, POOR, "inside"),  # at the threshold is still good enough
    (5000, 5000, "outside"),  # outside wins over inaccurate
])
def test_judge_against_the_classroom_circle(metres, accuracy, flag):
    verdict = judge(*north(metres), accuracy, ROOM, CAP, POOR)
    assert verdict.flag == flag
    assert verdict.distance_m == pytest.approx(metres, abs=0.01)


@pytest.mark.parametrize("latitude, longitude, room", [
    (None, None, ROOM),
    (None, ROOM_LON, ROOM),
    (ROOM_LAT, None, ROOM),
    (None, None, None),  # no location wins over no geofence
])
def test_a_missing_location_is_missing(latitude, longitude, room):
    assert judge(latitude, longitude, 10, room, CAP, POOR) == GeofenceVerdict("missing", None)


def test_a_session_without_a_classroom_has_no_geofence():
    assert judge(*north(5000), 10, None, CAP, POOR) == GeofenceVerdict("no_geofence", None)
