"""The AGS/NRPS client of a registration, confined to the platform's own hosts."""
from __future__ import annotations

from flask import current_app

from lti.models import Registration
from lti.outbound import url_host
from lti.services import PlatformAccount, ServiceClient


def service_client(registration: Registration) -> ServiceClient:
    """Build a client for the registration's AGS and NRPS, confined to the platform's own hosts."""
    app = current_app
    # The issuer's and token endpoint's hosts, and those the registration lists: Canvas Cloud's
    # issuer is canvas.instructure.com while its services live on the school's host.
    listed = registration.service_hosts or []
    hosts = {url_host(registration.issuer), url_host(registration.auth_token_url)}
    hosts.update((url_host(h) if "://" in h else h.strip().lower()) for h in listed if isinstance(h, str))
    return ServiceClient(
        PlatformAccount(registration.issuer, registration.client_id, registration.auth_token_url,
                        registration.auth_audience, frozenset(hosts - {""})),
        app.extensions["lti_keys"], app.extensions["lti_token_cache"], app.extensions["lti_outbound"])
