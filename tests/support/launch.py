"""Store a simulated platform's registration and launch the tool from it, as an LMS and a browser would."""
from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

from extensions import db
from lti.models import Deployment, Registration
from tests.support.platform import Platform

TOOL = "http://localhost"  # the tool's public origin in tests (TOOL_BASE_URL)


def register_platform(app, platform: Platform, *, deployments=None, active=True, **fields) -> int:
    """Store a registration (and deployments) for the simulated platform; return its id."""
    with app.app_context():
        row = Registration(
            issuer=platform.issuer, client_id=platform.client_id, name=platform.product,
            product_family=platform.product, auth_login_url=platform.auth_url,
            auth_token_url=platform.token_url, key_set_url=platform.jwks_url, active=active, **fields)
        db.session.add(row)
        for deployment_id in (deployments if deployments is not None else [platform.deployment_id]):
            db.session.add(Deployment(registration=row, deployment_id=deployment_id))
        db.session.commit()
        return row.id


class Launcher:
    """Drives the OIDC login + launch against the tool as a platform and browser would."""

    def __init__(self, client):
        self.client = client

    def login(self, platform: Platform, **params):
        base = self.client.application.config["TOOL_BASE_URL"]  # the tool's public origin, not the test client's host
        return self.client.get("/lti/login?" + platform.login_query(base + "/lti/launch", **params))

    @staticmethod
    def auth_request(response) -> dict:
        """The parameters the tool sent to the platform's auth endpoint."""
        assert response.status_code == 302, response.get_data(as_text=True)[:500]
        return {k: v[0] for k, v in parse_qs(urlsplit(response.headers["Location"]).query).items()}

    def start(self, platform: Platform, **params) -> dict:
        return self.auth_request(self.login(platform, **params))

    def post(self, id_token: str | None, state: str | None, **extra):
        form = {k: v for k, v in {"id_token": id_token, "state": state, **extra}.items() if v is not None}
        return self.client.post("/lti/launch", data=form)

    def launch(self, platform: Platform, role="instructor", *, claims: dict | None = None, remove=(), **claim_kwargs):
        """Full login + launch; claims overrides and removals apply to the id_token."""
        auth = self.start(platform)
        body = platform.claims(role, nonce=auth["nonce"], **claim_kwargs)
        body.update(claims or {})
        for key in remove:
            body.pop(key, None)
        return self.post(platform.sign(body), auth["state"])


def meta(html: str, name: str) -> str | None:
    """The content of a <meta name=...> tag."""
    match = re.search(rf'<meta name="{re.escape(name)}" content="([^"]*)"', html)
    return match.group(1) if match else None


def body_attr(html: str, attr: str) -> str | None:
    """The value of an attribute of the page's <body> tag."""
    match = re.search(rf'<body[^>]*\b{re.escape(attr)}="([^"]*)"', html)
    return match.group(1) if match else None
