"""attendance/codes.py: derivation, alphabet, rotation periods, grace and matching."""
from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta, timezone

import pytest

from attendance import codes
from attendance.codes import ALPHABET, EPOCH, LENGTH, code_for, current_code, matches, normalize, period_of

SECRET = "00112233445566778899aabbccddeeff" * 2
OTHER_SECRET = "ff" * 32
ROTATION = 15
GRACE = 5


def at(seconds: float) -> datetime:
    """A moment some seconds after the codes' epoch."""
    return EPOCH + timedelta(seconds=seconds)


def test_the_alphabet_has_32_distinct_symbols_without_look_alikes():
    assert len(ALPHABET) == len(set(ALPHABET)) == 32
    assert not set(ALPHABET) & set("0O1I")  # L stays: with 1 and I gone it has no twin
    assert 256 % len(ALPHABET) == 0  # one byte maps onto a symbol without bias


@pytest.mark.parametrize("secret, period", [(SECRET, 0), (SECRET, 1), (SECRET, 123456), (OTHER_SECRET, 0),
                                            (codes.new_secret(), 2**40)])
def test_a_code_is_the_hmac_of_its_period_mapped_onto_the_alphabet(secret, period):
    digest = hmac.new(bytes.fromhex(secret), period.to_bytes(8, "big"), hashlib.sha256).digest()
    expected = "".join(ALPHABET[b % 32] for b in digest[:LENGTH])
    assert code_for(secret, period) == expected
    assert len(expected) == LENGTH and set(expected) <= set(ALPHABET)


def test_codes_differ_across_periods_and_secrets():
    by_period = {code_for(SECRET, p) for p in range(200)}
    assert len(by_period) == 200  # 2^30 codes: two alike in 200 periods would be a broken derivation
    assert code_for(SECRET, 7) != code_for(OTHER_SECRET, 7)
    assert code_for(SECRET, 7) == code_for(SECRET, 7)


def test_new_secrets_are_fresh_256_bit_hex():
    first, second = codes.new_secret(), codes.new_secret()
    assert first != second and len(bytes.fromhex(first)) == 32


@pytest.mark.parametrize("moment, rotation, period", [
    (at(0), 15, 0),
    (at(14.999), 15, 0),
    (at(15), 15, 1),
    (at(29.5), 15, 1),
    (at(30), 30, 1),
    (at(-0.001), 15, -1),
    (at(86_400), 15, 5760),
    (at(86_400).astimezone(timezone(timedelta(hours=5))), 15, 5760),  # the same instant in another zone
])
def test_period_of(moment, rotation, period):
    assert period_of(moment, rotation) == period


@pytest.mark.parametrize("moment, rotation, period, expires", [
    (at(0), 15, 0, at(15)),
    (at(14), 15, 0, at(15)),
    (at(15), 15, 1, at(30)),
    (at(95), 30, 3, at(120)),
])
def test_current_code_and_when_it_rotates_out(moment, rotation, period, expires):
    issued = current_code(SECRET, moment, rotation)
    assert (issued.code, issued.period, issued.expires_at) == (code_for(SECRET, period), period, expires)


@pytest.mark.parametrize("typed, normalized", [
    ("ABCDEF", "ABCDEF"),
    ("abcdef", "ABCDEF"),
    (" abc-def ", "ABCDEF"),
    ("ab c\td-ef", "ABCDEF"),
    ("", ""),
])
def test_normalize_forgives_case_spaces_and_dashes(typed, normalized):
    assert normalize(typed) == normalized


PERIOD = 1000  # the rotation period the moments below fall in; it starts at at(PERIOD * ROTATION)
START = PERIOD * ROTATION


@pytest.mark.parametrize("typed_period, seconds_into_period, accepted", [
    (PERIOD, 0, True),  # the code on screen
    (PERIOD, ROTATION - 0.001, True),
    (PERIOD - 1, 0, True),  # the previous code, just rotated out
    (PERIOD - 1, GRACE - 0.001, True),  # still within the grace period
    (PERIOD - 1, GRACE, False),  # grace is over
    (PERIOD - 1, ROTATION - 1, False),
    (PERIOD - 2, 0, False),  # two codes ago
    (PERIOD + 1, ROTATION - 0.001, False),  # the next code: nothing can be read ahead
])
def test_matches_the_current_code_and_the_previous_one_within_grace(typed_period, seconds_into_period, accepted):
    moment = at(START + seconds_into_period)
    assert matches(SECRET, code_for(SECRET, typed_period), moment, ROTATION, GRACE) is accepted


@pytest.mark.parametrize("mangle, accepted", [
    (str.lower, True),
    (lambda code: f"{code[:3]}-{code[3:]}", True),
    (lambda code: f" {code[:3]} {code[3:]} ", True),
    (lambda code: code[:-1], False),  # too short
    (lambda code: code + "A", False),  # too long
    (lambda code: "", False),
])
def test_matches_forgives_typing_but_not_length(mangle, accepted):
    moment = at(START + 1)
    assert matches(SECRET, mangle(code_for(SECRET, PERIOD)), moment, ROTATION, GRACE) is accepted


def test_another_sessions_code_does_not_match():
    moment = at(START + 1)
    assert not matches(SECRET, code_for(OTHER_SECRET, PERIOD), moment, ROTATION, GRACE)


def test_no_grace_means_only_the_current_code():
    moment = at(START)
    assert not matches(SECRET, code_for(SECRET, PERIOD - 1), moment, ROTATION, 0)
