"""Clocks a test moves by hand, so nothing sleeps to let time pass."""
from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Callable

from attendance import clock


class FakeClock:
    """The real Unix time (and monotonic reading) shifted by an offset that `advance` moves forward.

    Call it as a function where a `clock=` parameter takes `time.time`, or put it in place of a
    module's `time` (it answers `time()` and `monotonic()`), e.g.
    `monkeypatch.setattr("itsdangerous.timed.time", clock)`. It keeps running with real time, so
    code that still reads the real clock elsewhere stays in step until the test moves it.
    """

    def __init__(self):
        self.offset = 0.0

    def __call__(self) -> float:
        return self.time()

    def time(self) -> float:
        return time.time() + self.offset

    def monotonic(self) -> float:
        return time.monotonic() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


class MovableClock:
    """`attendance.clock.now` shifted by an offset the test moves forward."""

    def __init__(self, monkeypatch):
        self.offset = timedelta(0)
        real = clock.now
        monkeypatch.setattr(clock, "now", lambda: real() + self.offset)

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)

    def now(self) -> datetime:
        return clock.now()


class Clock:
    """`attendance.clock.now` frozen at a moment the test sets with `at`."""

    def __init__(self, monkeypatch, start: datetime):
        self.now = start
        monkeypatch.setattr("attendance.clock.now", lambda: self.now)

    def at(self, moment: datetime) -> "Clock":
        self.now = moment
        return self


def store_time(store, monkeypatch) -> Callable[[float], None]:
    """A function that lets seconds pass for the expiring store (`lti.store`).

    The database store reads `time.time()`: it gets a fake clock, moved at once. Redis expires keys
    on its own clock, so for it the function sleeps.
    """
    from lti.store import RedisStore

    if isinstance(store, RedisStore):
        return time.sleep
    fake = FakeClock()
    monkeypatch.setattr("lti.store.time", fake)
    return fake.advance
