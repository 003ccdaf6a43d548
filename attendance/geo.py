"""Distances on the Earth and the geofence verdict for a check-in."""
from __future__ import annotations

import math
from dataclasses import dataclass

EARTH_RADIUS_M = 6_371_008.8


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


@dataclass(frozen=True)
class GeofenceVerdict:
    flag: str  # inside, outside, missing, inaccurate, no_geofence
    distance_m: float | None


def judge(latitude: float | None, longitude: float | None, accuracy_m: float | None,
          room: tuple[float, float, float] | None, accuracy_cap_m: float, poor_accuracy_m: float) -> GeofenceVerdict:
    """Compare a reported position with the classroom circle, giving GPS drift the benefit of the doubt."""
    if latitude is None or longitude is None:
        return GeofenceVerdict("missing", None)
    if room is None:
        return GeofenceVerdict("no_geofence", None)
    distance = haversine_m(latitude, longitude, room[0], room[1])
    slack = min(accuracy_m or 0.0, accuracy_cap_m)  # reported accuracy widens the circle, up to a cap
    if distance > room[2] + slack:
        return GeofenceVerdict("outside", distance)
    if accuracy_m is not None and accuracy_m > poor_accuracy_m:
        return GeofenceVerdict("inaccurate", distance)
    return GeofenceVerdict("inside", distance)
