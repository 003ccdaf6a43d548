"""The explainable risk score of a check-in: 0 (nothing odd) to 100 (most suspicious).

Every signal adds points and a reason a teacher can read. The fraud model gets its own work later;
everything calls `score_check_in`, so it can be replaced in one place.
"""
from __future__ import annotations

from dataclasses import dataclass, field

WEIGHTS = {
    "outside": 45,
    "missing": 30,
    "inaccurate": 15,
    "shared_device": 40,
    "shared_ip": 15,
    "off_campus": 15,
    "late_in_window": 10,
}
REASONS = {
    "outside": "Checked in {distance} from the classroom (outside the geofence).",
    "missing": "No location was shared.",
    "inaccurate": "The location was very imprecise (±{accuracy}).",
    "shared_device": "The same device checked in for {n} other student(s) in this session.",
    "shared_ip": "The same network address as {n} other student(s), off the campus network.",
    "off_campus": "The network address is outside the campus networks.",
    "late_in_window": "Checked in during the last minutes of the check-in window.",
}


@dataclass(frozen=True)
class RiskSignals:
    location_flag: str | None
    distance_m: float | None = None
    accuracy_m: float | None = None
    same_device_count: int = 0
    same_ip_count: int = 0
    on_campus: bool | None = None  # None: no campus networks configured
    seconds_before_window_end: float | None = None


@dataclass(frozen=True)
class RiskResult:
    score: int
    level: str
    reasons: list[str] = field(default_factory=list)


def _metres(value: float | None) -> str:
    if value is None:
        return "?"
    return f"{value / 1000:.1f} km" if value >= 1000 else f"{value:.0f} m"


def level_of(score: int) -> str:
    """Map a risk score to its level: low, medium or high."""
    return "high" if score >= 60 else "medium" if score >= 30 else "low"


def score_check_in(signals: RiskSignals) -> RiskResult:
    """Add up the signals into a score, a level and the reasons."""
    hits: list[tuple[str, str]] = []
    if signals.location_flag in ("outside", "missing", "inaccurate"):
        hits.append((signals.location_flag, REASONS[signals.location_flag].format(
            distance=_metres(signals.distance_m), accuracy=_metres(signals.accuracy_m))))
    if signals.same_device_count:
        hits.append(("shared_device", REASONS["shared_device"].format(n=signals.same_device_count)))
    if signals.same_ip_count and signals.on_campus is not True:
        # Behind a campus NAT a whole hall shares one address: that alone means nothing.
        hits.append(("shared_ip", REASONS["shared_ip"].format(n=signals.same_ip_count)))
    if signals.on_campus is False:
        hits.append(("off_campus", REASONS["off_campus"]))
    if signals.seconds_before_window_end is not None and 0 <= signals.seconds_before_window_end < 120:
        hits.append(("late_in_window", REASONS["late_in_window"]))
    score = min(100, sum(WEIGHTS[name] for name, _ in hits))
    return RiskResult(score=score, level=level_of(score), reasons=[text for _, text in hits])
