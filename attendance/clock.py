"""The one source of "now" for the product, so tests can move time."""
from datetime import datetime, timezone


def now() -> datetime:
    return datetime.now(timezone.utc)
