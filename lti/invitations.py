"""Invitations: the tool-side grant that lets one platform register by LTI Dynamic Registration.

An admin makes an invitation (`flask --app app platform invite`, or the admin page); its URL,
`<TOOL_BASE_URL>/lti/register?invite=<token>`, is pasted into Moodle or Canvas as the tool URL and
the platform appends `openid_configuration` and `registration_token`. The token is single-use and
expiring; only its SHA-256 is stored. A registration claims the invitation before it fetches
anything from the platform, and gives it back if the registration then fails, so a platform that
was down can try again with the same link.
"""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta, timezone

from sqlalchemy import update

from extensions import db
from lti.exceptions import RegistrationError
from lti.models import RegistrationInvite

TOKEN_BYTES = 32
MAX_TOKEN_LENGTH = 128


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_invite(hours: float, *, note: str = "", created_by: str = "") -> str:
    """Store a new invitation valid for `hours` and return its token (shown once, never stored)."""
    if not 0 < hours <= 24 * 365:
        raise ValueError("an invitation lasts between a moment and a year")
    token = secrets.token_urlsafe(TOKEN_BYTES)
    db.session.add(RegistrationInvite(
        token_hash=_hash(token), note=note[:255], created_by=created_by[:255],
        expires_at=datetime.now(timezone.utc) + timedelta(hours=hours)))
    db.session.commit()
    return token


def claim_invite(token: str) -> int:
    """Take an unused, unexpired invitation for one registration attempt; answer its id.

    One atomic UPDATE, so two registrations racing with one link cannot both get it.
    """
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise RegistrationError("This registration link is not valid.", code="invitation_invalid", status=403)
    now = datetime.now(timezone.utc)
    row = db.session.scalar(db.select(RegistrationInvite).where(RegistrationInvite.token_hash == _hash(token)))
    if row is None:
        raise RegistrationError("This registration link is not valid.", code="invitation_invalid", status=403)
    if row.used_at is not None:
        raise RegistrationError("This registration link was already used; ask the tool's administrator for a new one.",
                                code="invitation_used", status=403)
    if row.expires_at <= now:
        raise RegistrationError("This registration link has expired; ask the tool's administrator for a new one.",
                                code="invitation_expired", status=403)
    claimed = db.session.execute(
        update(RegistrationInvite)
        .where(RegistrationInvite.id == row.id, RegistrationInvite.used_at.is_(None))
        .values(used_at=now)
    ).rowcount
    db.session.commit()
    if claimed != 1:
        raise RegistrationError("This registration link was already used; ask the tool's administrator for a new one.",
                                code="invitation_used", status=403)
    return row.id


def release_invite(invite_id: int) -> None:
    """Give back an invitation whose registration failed, so the same link can be tried again."""
    db.session.rollback()
    db.session.execute(update(RegistrationInvite).where(
        RegistrationInvite.id == invite_id, RegistrationInvite.registration_id.is_(None)).values(used_at=None))
    db.session.commit()


def complete_invite(invite_id: int, registration_id: int) -> None:
    """Record which registration an invitation produced (in the caller's transaction)."""
    db.session.execute(update(RegistrationInvite).where(RegistrationInvite.id == invite_id)
                       .values(registration_id=registration_id))


def invite_url(base_url: str, token: str) -> str:
    """Return the URL an LMS admin pastes into the platform's tool URL field."""
    return f"{base_url}/lti/register?invite={token}"
