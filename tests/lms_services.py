"""Compatibility: the loopback LMS lives in `tests/support/lms_services.py`; import it from there."""
from tests.support.lms_services import SCOPE_LINEITEM, SCOPE_NRPS, SCOPE_SCORE, LmsServices

__all__ = ["SCOPE_LINEITEM", "SCOPE_NRPS", "SCOPE_SCORE", "LmsServices"]
