"""LTI Dynamic Registration, tolerant of what Moodle and Canvas really send."""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import current_app
from pylti1p3.dynamic_registration import DynamicRegistration

from extensions import db
from lti.constants import CANVAS_PLATFORM, PLATFORM_CONFIGURATION, TOOL_CONFIGURATION, MessageType
from lti.exceptions import RegistrationError
from lti.models import Deployment, Registration
from lti.outbound import OutboundError, check_platform_url, url_host
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
                 timeout: float, *, allow_networks=(), pending: bool = False):
        self.tool = tool
        self.allow_networks = allow_networks
        self.pending = pending  # open registration: the platform waits for an admin's approval
        self.client_name = tool.name
        self.description = tool.description
        self.openid_configuration_url = openid_configuration_url
        self.registration_token = registration_token or None
        self.timeout = timeout
        self.platform_config: dict = {}
        self.openid_configuration: dict = {}

    # -- what pylti1p3next asks of a subclass ------------------------------------------------
    def get_initiate_login_uri(self) -> str:
        """Return the tool's OIDC login URL."""
        return self.tool.login_url

    def get_jwks_uri(self) -> str:
        """Return the URL of the tool's public key set."""
        return self.tool.jwks_url

    def get_redirect_uris(self) -> list[str]:
        """Return the URLs the platform may post id_tokens to."""
        return [self.tool.launch_url]

    def get_domain(self) -> str:
        # Moodle refuses a domain that differs from target_link_uri's host (port included).
        """Return the tool's host (with port), as Moodle compares it."""
        return urlsplit(self.tool.launch_url).netloc

    def get_target_link_uri(self) -> str:
        """Return the tool's launch URL."""
        return self.tool.launch_url

    def get_logo_uri(self) -> str:
        """Return the tool's logo URL."""
        return self.tool.logo_url

    def get_claims(self) -> list[str]:
        """Return the id_token claims the tool asks for."""
        return CLAIMS

    def get_openid_configuration_endpoint(self) -> str:
        """Return the platform's OpenID configuration URL."""
        return self.openid_configuration_url

    def get_registration_token(self) -> str | None:
        """Return the registration access token, if the platform gave one."""
        return self.registration_token

    def is_canvas(self) -> bool:
        """Tell whether the platform is Canvas."""
        return self.platform_config.get("product_family_code") == "canvas" or \
            "canvas" in str(self.openid_configuration.get("issuer", "")).lower()

    def get_scopes(self) -> list[str]:
        """Return the tool's scopes, narrowed to those the platform supports."""
        supported = self.openid_configuration.get("scopes_supported")
        if isinstance(supported, list) and supported:
            return [s for s in self.tool.scopes if s in supported]
        return list(self.tool.scopes)

    def get_messages(self) -> list[dict]:
        """Return the messages the tool accepts, deep linking only where supported."""
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
        """Return the registration request, with Canvas's privacy level on Canvas."""
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
        """Fetch and check the platform's OpenID configuration."""
        url = self.openid_configuration_url
        try:
            scheme = urlsplit(url).scheme
        except ValueError:  # e.g. an unclosed IPv6 bracket
            scheme = ""
        if scheme not in ("http", "https"):
            raise RegistrationError("The openid_configuration parameter must be an http(s) URL.")
        try:
            response = current_app.extensions["lti_outbound"].get(url, headers=self._headers(), timeout=self.timeout)
            config = response.raise_for_status().json()
        except OutboundError as exc:  # the reason only: the platform's answer is logged, never shown
            raise RegistrationError(f"The platform's OpenID configuration could not be read: {exc.reason}.") from exc
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
            response = current_app.extensions["lti_outbound"].post(
                config["registration_endpoint"], headers=self._headers(), json=self.lti_registration_data(),
                timeout=self.timeout)
        except OutboundError as exc:
            raise RegistrationError(
                f"The platform's registration endpoint could not be reached: {exc.reason}.") from exc
        if not response.ok:
            current_app.logger.warning("registration refused by %s (HTTP %s): %s", config["registration_endpoint"],
                                       response.status_code, response.text[:500])
            raise RegistrationError(f"The platform refused the registration (HTTP {response.status_code}).")
        try:
            answer = _strip_keys(response.json())
        except OutboundError as exc:
            raise RegistrationError("The platform's registration answer is not JSON.") from exc
        if not isinstance(answer, dict) or not isinstance(answer.get("client_id"), str) or not answer["client_id"]:
            raise RegistrationError("The platform's registration answer has no client_id.")
        return self.complete_registration(config, answer)

    def complete_registration(self, openid_configuration: dict, openid_registration: dict) -> Registration:
        """Store a NEW platform from its configuration and answer; an existing (issuer, client id) is refused.

        Changing a known platform's URLs or re-activating it is an admin action, never a registration's.
        """
        issuer, client_id = openid_configuration["issuer"], openid_registration["client_id"]
        if len(issuer) > 255 or not isinstance(client_id, str) or len(client_id) > 255:
            raise RegistrationError("The platform's issuer or client_id is longer than 255 characters.")
        urls = {field: self.checked_url(field, openid_configuration[field])
                for field in ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri")}
        exists = db.session.scalar(db.select(Registration.id).where(
            Registration.issuer == issuer, Registration.client_id == client_id))
        if exists is not None:
            raise RegistrationError(
                "This platform (issuer and client id) is already registered with the tool. Changing a registration "
                "is done by the tool's administrator.", code="already_registered", status=409)
        tool_config = _strip_keys(openid_registration.get(TOOL_CONFIGURATION)) or {}
        offered = openid_configuration.get("id_token_signing_alg_values_supported")
        algs = [a for a in (offered if isinstance(offered, list) else []) if a in ALLOWED_ID_TOKEN_ALGS] or ["RS256"]
        scope = openid_registration.get("scope")
        row = Registration(issuer=issuer, client_id=client_id)
        row.product_family = str(self.platform_config.get("product_family_code") or "")
        row.name = f'{row.product_family} {self.platform_config.get("version") or ""}'.strip() or issuer
        row.auth_login_url = urls["authorization_endpoint"]
        row.auth_token_url = urls["token_endpoint"]
        row.auth_audience = _audience(openid_configuration.get("authorization_server"), row.auth_token_url)
        row.key_set_url = urls["jwks_uri"]
        row.id_token_algs = algs
        row.scopes = scope.split() if isinstance(scope, str) else []
        row.service_hosts = sorted({url_host(self.openid_configuration_url),
                                    url_host(openid_configuration["registration_endpoint"])} - {""})
        row.active = not self.pending
        row.pending_approval = self.pending
        db.session.add(row)
        deployment_id = tool_config.get("deployment_id") if isinstance(tool_config, dict) else None
        if isinstance(deployment_id, (str, int)) and str(deployment_id):
            db.session.add(Deployment(registration=row, deployment_id=str(deployment_id)[:255]))
        db.session.flush()
        return row

    def checked_url(self, field: str, url: str) -> str:
        """Check a platform URL the tool may store and later call: https, or http to an allowed address."""
        try:
            check_platform_url(url, self.allow_networks)
        except OutboundError as exc:
            raise RegistrationError(f'The platform\'s "{field}" is not acceptable: {exc.reason}.') from exc
        return url


def _audience(authorization_server, token_url: str) -> str | None:
    """Return the token request audience the platform named, only when it is on the token endpoint's host.

    Otherwise a platform could make the tool sign a client assertion valid at someone else's LMS.
    """
    if not isinstance(authorization_server, str) or not authorization_server:
        return None
    if url_host(authorization_server) != url_host(token_url):
        return None
    return authorization_server
