"""The typed launch handed to the product: views read properties, never claim URLs."""
from __future__ import annotations

from dataclasses import dataclass, field

from lti.constants import Claim, MessageType
from lti.roles import ADMIN, STUDENT, TEACHER, map_roles


@dataclass(frozen=True)
class Context:
    id: str
    title: str = ""
    label: str = ""


@dataclass(frozen=True)
class ResourceLink:
    id: str
    title: str = ""


@dataclass(frozen=True)
class AgsEndpoint:
    scopes: tuple[str, ...]
    lineitems_url: str | None
    lineitem_url: str | None


@dataclass(frozen=True)
class NrpsEndpoint:
    context_memberships_url: str
    service_versions: tuple[str, ...]


@dataclass(frozen=True)
class DeepLinkingSettings:
    return_url: str
    accept_types: tuple[str, ...]
    accept_presentation_document_targets: tuple[str, ...]
    accept_multiple: bool
    data: str | None
    title: str = ""
    text: str = ""


def _str(value) -> str:
    return value if isinstance(value, str) else ""


def _strings(value) -> tuple[str, ...]:
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class Launch:
    """A validated LTI 1.3 launch."""

    registration_id: int
    deployment_pk: int
    issuer: str
    client_id: str
    deployment_id: str
    claims: dict = field(repr=False)

    @property
    def message_type(self) -> str:
        """The LTI message type."""
        return _str(self.claims.get(Claim.MESSAGE_TYPE))

    @property
    def is_deep_linking(self) -> bool:
        """Whether this is a deep linking request."""
        return self.message_type == MessageType.DEEP_LINKING

    @property
    def sub(self) -> str:
        """The user's id on the platform."""
        return _str(self.claims.get("sub"))

    @property
    def name(self) -> str:
        """The user's full name, or given and family names joined."""
        full = _str(self.claims.get("name")).strip()
        if full:
            return full
        parts = [_str(self.claims.get("given_name")).strip(), _str(self.claims.get("family_name")).strip()]
        return " ".join(p for p in parts if p)

    @property
    def given_name(self) -> str:
        """The user's given name."""
        return _str(self.claims.get("given_name"))

    @property
    def family_name(self) -> str:
        """The user's family name."""
        return _str(self.claims.get("family_name"))

    @property
    def email(self) -> str:
        """The user's email address."""
        return _str(self.claims.get("email"))

    @property
    def picture(self) -> str:
        """The URL of the user's picture."""
        return _str(self.claims.get("picture"))

    @property
    def locale(self) -> str:
        """The user's locale."""
        return _str(self.claims.get("locale"))

    @property
    def roles(self) -> tuple[str, ...]:
        """The role URIs of the launch."""
        roles = self.claims.get(Claim.ROLES)
        return tuple(r for r in roles if isinstance(r, str)) if isinstance(roles, list) else ()

    @property
    def role(self) -> str:
        """The tool role the LTI roles map to."""
        return map_roles(self.roles).role

    @property
    def is_admin(self) -> bool:
        """Whether the roles include an administrator's."""
        return map_roles(self.roles).is_admin

    @property
    def is_teacher(self) -> bool:
        """Whether the user acts as a teacher."""
        return self.role == TEACHER

    @property
    def is_student(self) -> bool:
        """Whether the user acts as a student."""
        return self.role == STUDENT

    @property
    def is_account_admin(self) -> bool:
        """Whether the user acts as an administrator outside a course role."""
        return self.role == ADMIN

    @property
    def is_test_user(self) -> bool:
        """Whether the platform marks the user as a test user (student view)."""
        return map_roles(self.roles).is_test_user

    @property
    def context(self) -> Context | None:
        """The course the launch comes from, or None."""
        ctx = _dict(self.claims.get(Claim.CONTEXT))
        if not _str(ctx.get("id")):
            return None
        return Context(id=ctx["id"], title=_str(ctx.get("title")), label=_str(ctx.get("label")))

    @property
    def resource_link(self) -> ResourceLink | None:
        """The resource link launched, or None."""
        link = _dict(self.claims.get(Claim.RESOURCE_LINK))
        if not _str(link.get("id")):
            return None
        return ResourceLink(id=link["id"], title=_str(link.get("title")))

    @property
    def platform_name(self) -> str:
        """The platform's name."""
        return _str(_dict(self.claims.get(Claim.TOOL_PLATFORM)).get("name"))

    @property
    def platform_product(self) -> str:
        """The platform's product family code (moodle, canvas, ...)."""
        return _str(_dict(self.claims.get(Claim.TOOL_PLATFORM)).get("product_family_code"))

    @property
    def custom(self) -> dict:
        """The custom parameters."""
        return _dict(self.claims.get(Claim.CUSTOM))

    @property
    def return_url(self) -> str:
        """Where the platform expects the user back."""
        return _str(_dict(self.claims.get(Claim.LAUNCH_PRESENTATION)).get("return_url"))

    @property
    def ags(self) -> AgsEndpoint | None:
        """The assignment and grade services endpoint, or None."""
        claim = _dict(self.claims.get(Claim.AGS_ENDPOINT))
        if not claim:
            return None
        scopes = claim.get("scope") if isinstance(claim.get("scope"), list) else []
        return AgsEndpoint(
            scopes=tuple(s for s in scopes if isinstance(s, str)),
            lineitems_url=_str(claim.get("lineitems")) or None,
            lineitem_url=_str(claim.get("lineitem")) or None,
        )

    @property
    def nrps(self) -> NrpsEndpoint | None:
        """The names and roles service endpoint, or None."""
        claim = _dict(self.claims.get(Claim.NRPS))
        url = _str(claim.get("context_memberships_url"))
        if not url:
            return None
        versions = claim.get("service_versions") if isinstance(claim.get("service_versions"), list) else []
        return NrpsEndpoint(context_memberships_url=url, service_versions=tuple(str(v) for v in versions))

    @property
    def deep_linking_settings(self) -> DeepLinkingSettings | None:
        """The deep linking settings, or None without a return URL."""
        claim = _dict(self.claims.get(Claim.DL_SETTINGS))
        if not _str(claim.get("deep_link_return_url")):
            return None
        multiple = claim.get("accept_multiple")
        return DeepLinkingSettings(
            return_url=claim["deep_link_return_url"],
            accept_types=_strings(claim.get("accept_types")),
            accept_presentation_document_targets=_strings(claim.get("accept_presentation_document_targets")),
            accept_multiple=multiple is True or multiple == "true",
            data=claim["data"] if "data" in claim and claim["data"] is not None else None,
            title=_str(claim.get("title")),
            text=_str(claim.get("text")),
        )
