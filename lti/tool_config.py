"""Registration and deployment lookups, and pylti1p3's tool configuration over our database.

`DatabaseToolConf` implements pylti1p3's public `ToolConfAbstract` interface, registrations keyed by
(issuer, client_id); it hands out pylti1p3 `Registration` objects built with their public setters only.
"""
from __future__ import annotations

from pylti1p3.deployment import Deployment as PyltiDeployment
from pylti1p3.registration import Registration as PyltiRegistration
from pylti1p3.tool_config import ToolConfAbstract
from sqlalchemy import select

from extensions import db
from lti.keys import KeyRing
from lti.models import Deployment, Registration


def find_registration(issuer: str, client_id: str | None) -> Registration | None:
    """Return the active registration for (issuer, client_id); without a client id, only an unambiguous one."""
    query = select(Registration).where(Registration.issuer == issuer, Registration.active.is_(True))
    if client_id:
        return db.session.scalar(query.where(Registration.client_id == client_id))
    rows = db.session.scalars(query.limit(2)).all()
    return rows[0] if len(rows) == 1 else None


def find_deployment(registration: Registration, deployment_id: str) -> Deployment | None:
    """Return the deployment row (active or not) of a registration."""
    return db.session.scalar(
        select(Deployment).where(
            Deployment.registration_id == registration.id, Deployment.deployment_id == deployment_id
        )
    )


class DatabaseToolConf(ToolConfAbstract):
    """Every issuer may have many client ids (Canvas: one issuer, many developer keys)."""

    def __init__(self, key_ring: KeyRing):
        super().__init__()
        self.key_ring = key_ring

    def check_iss_has_one_client(self, iss: str) -> bool:
        """Answer no: an issuer may have several client ids."""
        return False

    def check_iss_has_many_clients(self, iss: str) -> bool:
        """Answer yes: registrations are looked up by issuer and client id."""
        return True

    def to_pylti(self, row: Registration) -> PyltiRegistration:
        """Build pylti1p3's registration object, carrying the tool's current signing key.

        Its `get_kid()` is not ours (we publish RFC 7638 thumbprints): whoever signs with the key takes
        the kid from the key ring, as `lti.deep_linking` does.
        """
        key = self.key_ring.current()
        registration = (
            PyltiRegistration()
            .set_issuer(row.issuer)
            .set_client_id(row.client_id)
            .set_auth_login_url(row.auth_login_url)
            .set_auth_token_url(row.auth_token_url)
            .set_key_set_url(row.key_set_url)
            .set_tool_private_key(key.private_pem)
        )
        if row.auth_audience:
            registration.set_auth_audience(row.auth_audience)
        return registration

    def find_registration_by_issuer(self, iss, *args, **kwargs):
        """Return the issuer's only active registration, or None."""
        row = find_registration(iss, None)
        return self.to_pylti(row) if row else None

    def find_registration_by_params(self, iss, client_id, *args, **kwargs):
        """Return the active registration for (issuer, client id), or None."""
        row = find_registration(iss, client_id)
        return self.to_pylti(row) if row else None

    def find_deployment(self, iss, deployment_id):
        """Return the active deployment of the issuer's only registration, or None."""
        return self.find_deployment_by_params(iss, deployment_id, None)

    def find_deployment_by_params(self, iss, deployment_id, client_id, *args, **kwargs):
        """Return the active deployment of (issuer, client id), or None."""
        row = find_registration(iss, client_id)
        deployment = find_deployment(row, deployment_id) if row else None
        if deployment is None or not deployment.active:
            return None
        return PyltiDeployment().set_deployment_id(deployment.deployment_id)

    def get_jwks(self, iss=None, client_id=None, **kwargs):
        """Return the tool's published public keys."""
        return self.key_ring.jwks()["keys"]
