"""LTI Dynamic Registration, tolerant of what Moodle and Canvas really send."""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from pylti1p3.dynamic_registration import DynamicRegistration

from extensions import db
from lti.constants import CANVAS_PLATFORM, PLATFORM_CONFIGURATION, TOOL_CONFIGURATION, MessageType
from lti.exceptions import RegistrationError
from lti.models import Deployment, Registration
from lti.platform_keys import USER_AGENT

CLAIMS = ["iss", "sub", "name", "given_name", "family_name", "email", "picture", "locale"]
ALLOWED_ID_TOKEN_ALGS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"]


@dataclass(frozen=True)
class ToolDescription:
    """What the tool says of itself to a platform."""

    name: str
    description: str
    base_url: str
    login_url: str
    launch_url: str
    jwks_url: str
    logo_url: str
    scopes: list[str]


def _strip_keys(value):
    """Moodle 3.10 sent a platform configuration key with a trailing space; accept any such key."""
    if isinstance(value, dict):
        return {k.strip() if isinstance(k, str) else k: v for k, v in value.items()}
    return value


def _message_types(platform_config: dict) -> set[str]:
    """messages_supported holds plain strings (Moodle) or objects with a type (Canvas)."""
    types = set()
    for entry in platform_config.get("messages_supported") or []:
        if isinstance(entry, str):
            types.add(entry)
        elif isinstance(entry, dict) and isinstance(entry.get("type"), str):
            types.add(entry["type"])
    return types


class ToolDynamicRegistration(DynamicRegistration):
    """pylti1p3next's registration flow with Bearer on both calls, typed errors and storage in our tables."""

    def __init__(self, tool: ToolDescription, openid_configuration_url: str, registration_token: str | None,
                 timeout: float):
        self.tool = tool
        self.client_name = tool.name
        self.description = tool.description
        self.openid_configuration_url = openid_configuration_url
        self.registration_token = registration_token or None
        self.timeout = timeout
        self.platform_config: dict = {}
        self.openid_configuration: dict = {}

    # -- what pylti1p3next asks of a subclass ------------------------------------------------
    def get_initiate_login_uri(self) -> str:
        return self.tool.login_url

    def get_jwks_uri(self) -> str:
        return self.tool.jwks_url

    def get_redirect_uris(self) -> list[str]:
        return [self.tool.launch_url]

    def get_domain(self) -> str:
        # Moodle refuses a domain that differs from target_link_uri's host (port included).
        return urlsplit(self.tool.launch_url).netloc

    def get_target_link_uri(self) -> str:
        return self.tool.launch_url

    def get_logo_uri(self) -> str:
        return self.tool.logo_url

    def get_claims(self) -> list[str]:
        return CLAIMS

    def get_openid_configuration_endpoint(self) -> str:
        return self.openid_configuration_url

    def get_registration_token(self) -> str | None:
        return self.registration_token

    def is_canvas(self) -> bool:
        return self.platform_config.get("product_family_code") == "canvas" or \
            "canvas" in str(self.openid_configuration.get("issuer", "")).lower()

    def get_scopes(self) -> list[str]:
        supported = self.openid_configuration.get("scopes_supported")
        if isinstance(supported, list) and supported:
            return [s for s in self.tool.scopes if s in supported]
        return list(self.tool.scopes)

    def get_messages(self) -> list[dict]:
        canvas = self.is_canvas()
        resource = {"type": MessageType.RESOURCE_LINK.value, "target_link_uri": self.tool.launch_url,
                    "label": self.tool.name}
        if canvas:
            resource["placements"] = ["course_navigation"]
        messages = [resource]
        supported = _message_types(self.platform_config)
        if not supported or MessageType.DEEP_LINKING in supported:
            deep = {"type": MessageType.DEEP_LINKING.value, "target_link_uri": self.tool.launch_url,
                    "label": f"Add {self.tool.name}"}
            if canvas:
                deep["placements"] = ["link_selection"]
            messages.append(deep)
        return messages

    def lti_registration_data(self) -> dict:
        data = super().lti_registration_data()
        config = data[TOOL_CONFIGURATION]
        if self.is_canvas():
            config[f"https://{CANVAS_PLATFORM}/lti/privacy_level"] = "public"
        return data

    # -- the flow --------------------------------------------------------------------------
    def _headers(self) -> dict:
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if self.registration_token:
            headers["Authorization"] = f"Bearer {self.registration_token}"
        return headers

    def get_openid_configuration(self) -> dict:
        url = self.openid_configuration_url
        try:
            scheme = urlsplit(url).scheme
        except ValueError:  # e.g. an unclosed IPv6 bracket
            scheme = ""
        if scheme not in ("http", "https"):
            raise RegistrationError("The openid_configuration parameter must be an http(s) URL.")
        try:
            response = requests.get(url, headers=self._headers(), timeout=self.timeout)
            response.raise_for_status()
            config = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise RegistrationError(f"The platform's OpenID configuration could not be read: {exc}") from exc
        config = _strip_keys(config)
        if not isinstance(config, dict):
            raise RegistrationError("The platform's OpenID configuration is not a JSON object.")
        for field in ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri", "registration_endpoint"):
            if not isinstance(config.get(field), str) or not config[field]:
                raise RegistrationError(f'The platform\'s OpenID configuration has no "{field}".')
        self.openid_configuration = config
        self.platform_config = _strip_keys(config.get(PLATFORM_CONFIGURATION)) or {}
        if not isinstance(self.platform_config, dict):
            self.platform_config = {}
        return config

    def register(self) -> Registration:
        """Fetch the platform's configuration, register the tool, and store what the platform answered."""
        config = self.get_openid_configuration()
        try:
            response = requests.post(config["registration_endpoint"], headers=self._headers(),
                                     json=self.lti_registration_data(), timeout=self.timeout)
        except requests.RequestException as exc:
            raise RegistrationError(f"The platform's registration endpoint could not be reached: {exc}") from exc
        if not response.ok:
            raise RegistrationError(
                f"The platform refused the registration (HTTP {response.status_code}): {response.text[:500]}"
            )
        try:
            answer = _strip_keys(response.json())
        except ValueError as exc:
            raise RegistrationError("The platform's registration answer is not JSON.") from exc
        if not isinstance(answer, dict) or not isinstance(answer.get("client_id"), str) or not answer["client_id"]:
            raise RegistrationError("The platform's registration answer has no client_id.")
        return self.complete_registration(config, answer)

    def complete_registration(self, openid_configuration: dict, openid_registration: dict) -> Registration:
        issuer, client_id = openid_configuration["issuer"], openid_registration["client_id"]
        tool_config = _strip_keys(openid_registration.get(TOOL_CONFIGURATION)) or {}
        offered = openid_configuration.get("id_token_signing_alg_values_supported")
        algs = [a for a in (offered if isinstance(offered, list) else []) if a in ALLOWED_ID_TOKEN_ALGS] or ["RS256"]
        if len(issuer) > 255 or not isinstance(client_id, str) or len(client_id) > 255:
            raise RegistrationError("The platform's issuer or client_id is longer than 255 characters.")
        scope = openid_registration.get("scope")
        row = db.session.scalar(
            db.select(Registration).where(Registration.issuer == issuer, Registration.client_id == client_id)
        ) or Registration(issuer=issuer, client_id=client_id)
        row.product_family = str(self.platform_config.get("product_family_code") or "")
        row.name = f'{row.product_family} {self.platform_config.get("version") or ""}'.strip() or issuer
        row.auth_login_url = openid_configuration["authorization_endpoint"]
        row.auth_token_url = openid_configuration["token_endpoint"]
        audience = openid_configuration.get("authorization_server")
        row.auth_audience = audience if isinstance(audience, str) and audience else None
        row.key_set_url = openid_configuration["jwks_uri"]
        row.id_token_algs = algs
        row.scopes = scope.split() if isinstance(scope, str) else []
        row.active = True
        db.session.add(row)
        deployment_id = tool_config.get("deployment_id") if isinstance(tool_config, dict) else None
        if isinstance(deployment_id, (str, int)) and str(deployment_id):
            db.session.flush()
            exists = db.session.scalar(db.select(Deployment).where(
                Deployment.registration_id == row.id, Deployment.deployment_id == str(deployment_id)))
            if exists is None:
                db.session.add(Deployment(registration=row, deployment_id=str(deployment_id)))
            else:
                exists.active = True
        db.session.commit()
        return row
