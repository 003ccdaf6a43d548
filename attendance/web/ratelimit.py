"""Wrong-code limits on the `limits` library: strict per student, loose per network address.

Only wrong codes are counted; a right code costs one read per limit. Counters live in Redis when
`REDIS_URL` is set (shared by every process), in process memory otherwise (the embedded mode's
single process).
"""
from __future__ import annotations

import time

from flask import current_app
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

from attendance.errors import ApiError


class WrongCodeLimiter:
    def __init__(self, storage_uri: str, prefix: str):
        self.strategy = FixedWindowRateLimiter(storage_from_string(storage_uri))
        self.prefix = prefix

    def _limits(self, student_id: int, address: str | None):
        cfg = current_app.config
        return [(parse(cfg["WRONG_CODE_LIMIT_STUDENT"]), f"{self.prefix}student:{student_id}"),
                (parse(cfg["WRONG_CODE_LIMIT_ADDRESS"]), f"{self.prefix}address:{address or '-'}")]

    def check(self, student_id: int, address: str | None) -> None:
        """Raise 429 rate_limited when the student or the address has used up its wrong codes."""
        for limit, key in self._limits(student_id, address):
            if not self.strategy.test(limit, key):
                reset = self.strategy.get_window_stats(limit, key).reset_time
                raise ApiError("rate_limited", "Too many wrong codes. Wait a moment, then try again.", 429,
                               headers={"Retry-After": str(max(1, int(reset - time.time() + 0.999)))})

    def count_wrong(self, student_id: int, address: str | None) -> None:
        """Count one wrong code against the student and the address."""
        for limit, key in self._limits(student_id, address):
            self.strategy.hit(limit, key)


def wrong_codes() -> WrongCodeLimiter:
    """Return the application's wrong-code limiter."""
    return current_app.extensions["attendance_wrong_codes"]
