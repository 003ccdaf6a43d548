"""Claim names, message types, role URIs and scopes of LTI 1.3 and LTI Advantage."""
from enum import StrEnum


class Claim(StrEnum):
    MESSAGE_TYPE = "https://purl.imsglobal.org/spec/lti/claim/message_type"
    VERSION = "https://purl.imsglobal.org/spec/lti/claim/version"
    DEPLOYMENT_ID = "https://purl.imsglobal.org/spec/lti/claim/deployment_id"
    TARGET_LINK_URI = "https://purl.imsglobal.org/spec/lti/claim/target_link_uri"
    RESOURCE_LINK = "https://purl.imsglobal.org/spec/lti/claim/resource_link"
    ROLES = "https://purl.imsglobal.org/spec/lti/claim/roles"
    CONTEXT = "https://purl.imsglobal.org/spec/lti/claim/context"
    TOOL_PLATFORM = "https://purl.imsglobal.org/spec/lti/claim/tool_platform"
    LAUNCH_PRESENTATION = "https://purl.imsglobal.org/spec/lti/claim/launch_presentation"
    CUSTOM = "https://purl.imsglobal.org/spec/lti/claim/custom"
    LIS = "https://purl.imsglobal.org/spec/lti/claim/lis"
    AGS_ENDPOINT = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
    NRPS = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"
    DL_SETTINGS = "https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings"
    DL_CONTENT_ITEMS = "https://purl.imsglobal.org/spec/lti-dl/claim/content_items"
    DL_DATA = "https://purl.imsglobal.org/spec/lti-dl/claim/data"
    DL_MSG = "https://purl.imsglobal.org/spec/lti-dl/claim/msg"


class MessageType(StrEnum):
    RESOURCE_LINK = "LtiResourceLinkRequest"
    DEEP_LINKING = "LtiDeepLinkingRequest"
    DEEP_LINKING_RESPONSE = "LtiDeepLinkingResponse"


LTI_VERSION = "1.3.0"

MEMBERSHIP = "http://purl.imsglobal.org/vocab/lis/v2/membership#"
INSTITUTION = "http://purl.imsglobal.org/vocab/lis/v2/institution/person#"
SYSTEM = "http://purl.imsglobal.org/vocab/lis/v2/system/person#"
LTI_SYSTEM = "http://purl.imsglobal.org/vocab/lti/system/person#"


class Role(StrEnum):
    INSTRUCTOR = MEMBERSHIP + "Instructor"
    TEACHING_ASSISTANT = "http://purl.imsglobal.org/vocab/lis/v2/membership/Instructor#TeachingAssistant"
    CONTENT_DEVELOPER = MEMBERSHIP + "ContentDeveloper"
    LEARNER = MEMBERSHIP + "Learner"
    MENTOR = MEMBERSHIP + "Mentor"
    INSTITUTION_ADMIN = INSTITUTION + "Administrator"
    SYSTEM_ADMIN = SYSTEM + "Administrator"
    SYSTEM_USER = SYSTEM + "User"
    TEST_USER = LTI_SYSTEM + "TestUser"


class Scope(StrEnum):
    LINEITEM = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem"
    LINEITEM_READONLY = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem.readonly"
    SCORE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
    RESULT_READONLY = "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly"
    NRPS = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"


TOOL_SCOPES = [Scope.LINEITEM, Scope.SCORE, Scope.RESULT_READONLY, Scope.NRPS]

PLATFORM_CONFIGURATION = "https://purl.imsglobal.org/spec/lti-platform-configuration"
TOOL_CONFIGURATION = "https://purl.imsglobal.org/spec/lti-tool-configuration"
CANVAS_PLATFORM = "canvas.instructure.com"
