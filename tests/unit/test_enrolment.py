"""attendance/enrolment.py `enrolled_at`: whether enrolment periods cover a moment."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from attendance.enrolment import enrolled_at

T = datetime(2030, 1, 7, 9, 0, tzinfo=timezone.utc)


def day(n: float) -> datetime:
    return T + timedelta(days=n)


JOINED_ON_DAY_2 = [(day(2), None)]
LEFT_ON_DAY_5 = [(day(0), day(5))]
AWAY_DAYS_3_TO_6 = [(day(0), day(3)), (day(6), None)]


@pytest.mark.parametrize("periods, moment, enrolled", [
    (None, day(0), True),  # no recorded history: always enrolled
    ([], day(-100), True),
    (JOINED_ON_DAY_2, day(1), False),
    (JOINED_ON_DAY_2, day(2), True),  # from the moment they joined
    (JOINED_ON_DAY_2, day(400), True),  # still a member
    (LEFT_ON_DAY_5, day(4.99), True),
    (LEFT_ON_DAY_5, day(5), False),  # not from the moment they left
    (LEFT_ON_DAY_5, day(-1), False),
    (AWAY_DAYS_3_TO_6, day(1), True),
    (AWAY_DAYS_3_TO_6, day(3), False),
    (AWAY_DAYS_3_TO_6, day(5.9), False),
    (AWAY_DAYS_3_TO_6, day(6), True),  # came back
])
def test_enrolled_at(periods, moment, enrolled):
    assert enrolled_at(periods, moment) is enrolled
