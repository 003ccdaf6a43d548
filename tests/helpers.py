"""Compatibility: the API helpers live in `tests/support/api.py`; import them from there."""
from tests.support.api import ApiUser, assert_error, fast_launch, launch_as

__all__ = ["ApiUser", "assert_error", "fast_launch", "launch_as"]
