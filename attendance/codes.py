"""Rotating attendance codes derived from a per-session secret: nothing stored, nothing to read ahead.

The code for period p is HMAC-SHA256(secret, p) mapped onto an alphabet without look-alike
characters. A code stays valid for `grace` seconds after it rotated out, so a code typed at the
turn still counts. Six characters from 32 give 2^30 codes: hopeless to guess under the rate limit.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L confusion: 32 symbols
LENGTH = 6
EPOCH = datetime(2020, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class IssuedCode:
    code: str
    period: int
    expires_at: datetime


def new_secret() -> str:
    """Return a fresh per-session secret."""
    return secrets.token_hex(32)


def period_of(moment: datetime, rotation: int) -> int:
    """Return the number of the rotation period that holds a moment."""
    return int((moment - EPOCH).total_seconds() // rotation)


def code_for(secret: str, period: int) -> str:
    """Derive the code of one period."""
    digest = hmac.new(bytes.fromhex(secret), period.to_bytes(8, "big"), hashlib.sha256).digest()
    return "".join(ALPHABET[b % len(ALPHABET)] for b in digest[:LENGTH])  # 256 % 32 == 0: unbiased


def current_code(secret: str, moment: datetime, rotation: int) -> IssuedCode:
    """Return the code shown at moment, and when it rotates out."""
    period = period_of(moment, rotation)
    return IssuedCode(code_for(secret, period), period, EPOCH + timedelta(seconds=(period + 1) * rotation))


def normalize(typed: str) -> str:
    """Forgive case, spaces and dashes."""
    return "".join(ch for ch in typed.upper() if ch.isalnum())


def matches(secret: str, typed: str, moment: datetime, rotation: int, grace: int) -> bool:
    """Whether typed is the code valid at moment (or the previous one, within the grace period)."""
    typed = normalize(typed)
    if len(typed) != LENGTH:
        return False
    period = period_of(moment, rotation)
    if hmac.compare_digest(typed, code_for(secret, period)):
        return True
    started = EPOCH + timedelta(seconds=period * rotation)
    return (moment - started).total_seconds() < grace and hmac.compare_digest(typed, code_for(secret, period - 1))
