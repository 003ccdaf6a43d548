"""Compatibility: the platform simulator lives in `tests/support/platform.py`; import it from there."""
from tests.support.platform import LTI, ROLE, Platform, new_rsa_key

__all__ = ["LTI", "ROLE", "Platform", "new_rsa_key"]
