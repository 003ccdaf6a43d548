"""Deep linking responses: the signed LtiDeepLinkingResponse a platform expects back.

pylti1p3's public builders (`DeepLinkResource`, `LineItem`) describe the content items; the message
is ours and PyJWT signs it: `data` is echoed only when the request had it, no empty field is sent,
and the header names the tool key's RFC 7638 kid.
"""
from __future__ import annotations

import secrets
import time

import jwt
from pylti1p3.deep_link_resource import DeepLinkResource
from pylti1p3.lineitem import LineItem
from pylti1p3.registration import Registration as PyltiRegistration

from lti.constants import LTI_VERSION, Claim, MessageType
from lti.launch import DeepLinkingSettings

RESPONSE_LIFETIME = 600  # seconds the platform has to accept the response


def attendance_resource(url: str, title: str, score_maximum: int, label: str, tag: str) -> DeepLinkResource:
    """Build an ltiResourceLink content item with a graded line item."""
    line_item = LineItem().set_score_maximum(score_maximum).set_label(label).set_tag(tag).set_resource_id(tag)
    return DeepLinkResource().set_url(url).set_title(title).set_lineitem(line_item)


def content_item(resource: DeepLinkResource) -> dict:
    """Return a resource's content item without its empty fields."""
    return {k: v for k, v in resource.to_dict().items() if v not in (None, {}, "")}


def deep_linking_message(registration: PyltiRegistration, deployment_id: str, settings: DeepLinkingSettings,
                         resources: list[DeepLinkResource]) -> dict:
    """Build the LtiDeepLinkingResponse claims for the given content items."""
    now = int(time.time())
    message = {
        "iss": registration.get_client_id(),
        "aud": registration.get_issuer(),
        "azp": registration.get_client_id(),
        "iat": now,
        "exp": now + RESPONSE_LIFETIME,
        "nonce": secrets.token_urlsafe(24),
        Claim.DEPLOYMENT_ID.value: deployment_id,
        Claim.MESSAGE_TYPE.value: MessageType.DEEP_LINKING_RESPONSE.value,
        Claim.VERSION.value: LTI_VERSION,
        Claim.DL_CONTENT_ITEMS.value: [content_item(r) for r in resources],
    }
    if settings.data is not None:
        message[Claim.DL_DATA.value] = settings.data
    return message


def deep_linking_response_jwt(registration: PyltiRegistration, kid: str, deployment_id: str,
                              settings: DeepLinkingSettings, resources: list[DeepLinkResource]) -> str:
    """Sign an LtiDeepLinkingResponse for the given content items with the tool's current key."""
    message = deep_linking_message(registration, deployment_id, settings, resources)
    return jwt.encode(message, registration.get_tool_private_key(), algorithm="RS256", headers={"kid": kid})
