"""The one source of "now" for the product, so tests can move time."""
from datetime import datetime, timezone


def now() -> datetime:
    """Return the current time, timezone-aware in UTC."""
    return datetime.now(timezone.utc)
