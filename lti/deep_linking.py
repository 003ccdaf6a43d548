"""Deep linking responses: the signed LtiDeepLinkingResponse a platform expects back."""
from __future__ import annotations

import secrets
import time

from pylti1p3.deep_link import DeepLink
from pylti1p3.deep_link_resource import DeepLinkResource
from pylti1p3.lineitem import LineItem

from lti.constants import LTI_VERSION, Claim, MessageType
from lti.launch import DeepLinkingSettings


class ToolDeepLink(DeepLink):
    """pylti1p3's DeepLink, fixed: `data` is echoed only when the request had it, no empty `custom`."""

    def __init__(self, registration, deployment_id: str, settings: dict, kid: str):
        super().__init__(registration, deployment_id, settings)
        self.kid = kid

    def get_message_jwt(self, resources):
        now = int(time.time())
        message = {
            "iss": self._registration.get_client_id(),
            "aud": self._registration.get_issuer(),
            "azp": self._registration.get_client_id(),
            "iat": now,
            "exp": now + 600,
            "nonce": secrets.token_urlsafe(24),
            Claim.DEPLOYMENT_ID.value: self._deployment_id,
            Claim.MESSAGE_TYPE.value: MessageType.DEEP_LINKING_RESPONSE.value,
            Claim.VERSION.value: LTI_VERSION,
            Claim.DL_CONTENT_ITEMS.value: [self._item(r) for r in resources],
        }
        if "data" in self._deep_link_settings and self._deep_link_settings["data"] is not None:
            message[Claim.DL_DATA.value] = self._deep_link_settings["data"]
        return message

    @staticmethod
    def _item(resource: DeepLinkResource) -> dict:
        item = {k: v for k, v in resource.to_dict().items() if v not in (None, {}, "")}
        return item

    def encode_jwt(self, message):
        import jwt

        return jwt.encode(message, self._registration.get_tool_private_key(), algorithm="RS256", headers={"kid": self.kid})


def attendance_resource(url: str, title: str, score_maximum: int, label: str, tag: str) -> DeepLinkResource:
    """An ltiResourceLink content item with a graded line item."""
    line_item = LineItem().set_score_maximum(score_maximum).set_label(label).set_tag(tag).set_resource_id(tag)
    return DeepLinkResource().set_url(url).set_title(title).set_lineitem(line_item)


def deep_linking_response_jwt(pylti_registration, kid: str, deployment_id: str,
                              settings: DeepLinkingSettings, resources: list[DeepLinkResource]) -> str:
    """Sign an LtiDeepLinkingResponse for the given content items."""
    raw = {"deep_link_return_url": settings.return_url}
    if settings.data is not None:
        raw["data"] = settings.data
    return ToolDeepLink(pylti_registration, deployment_id, raw, kid).get_response_jwt(resources)
