"""Map a launch's LTI roles to the tool's role: membership (course) roles first."""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from lti.constants import INSTITUTION, LTI_SYSTEM, MEMBERSHIP, SYSTEM


class Role(StrEnum):
    """The tool's roles, which LTI roles map to."""

    TEACHER = "teacher"
    STUDENT = "student"
    ADMIN = "admin"
    NONE = "none"


TEACHER, STUDENT, ADMIN, NONE = Role.TEACHER, Role.STUDENT, Role.ADMIN, Role.NONE

_MEMBERSHIP_SUBROLE = "http://purl.imsglobal.org/vocab/lis/v2/membership/"
_TEACHER_ROLES = {"Instructor", "ContentDeveloper"}
_STUDENT_ROLES = {"Learner"}
# LTI 1.1 URNs that some platforms still send beside (or instead of) the LTI 1.3 vocabulary.
_LEGACY = {
    "urn:lti:role:ims/lis/Instructor": ("membership", "Instructor"),
    "urn:lti:role:ims/lis/TeachingAssistant": ("membership", "Instructor"),
    "urn:lti:role:ims/lis/ContentDeveloper": ("membership", "ContentDeveloper"),
    "urn:lti:role:ims/lis/Learner": ("membership", "Learner"),
    "urn:lti:instrole:ims/lis/Administrator": ("institution", "Administrator"),
    "urn:lti:sysrole:ims/lis/Administrator": ("system", "Administrator"),
}


@dataclass(frozen=True)
class RoleMapping:
    role: str  # teacher, student, admin or none
    is_admin: bool
    is_teaching_assistant: bool
    is_test_user: bool


def _parse(uri: str) -> tuple[str, str] | None:
    """Return (vocabulary, name) for a role URI or short name; sub-roles give their principal role."""
    uri = uri.strip()
    if uri in _LEGACY:
        return _LEGACY[uri]
    if uri.startswith(MEMBERSHIP):
        return "membership", uri[len(MEMBERSHIP):]
    if uri.startswith(_MEMBERSHIP_SUBROLE):  # .../membership/Instructor#TeachingAssistant
        return "membership", uri[len(_MEMBERSHIP_SUBROLE):].split("#", 1)[0]
    if uri.startswith(INSTITUTION):
        return "institution", uri[len(INSTITUTION):]
    if uri.startswith(SYSTEM):
        return "system", uri[len(SYSTEM):]
    if uri.startswith(LTI_SYSTEM):
        return "lti-system", uri[len(LTI_SYSTEM):]
    if uri and "/" not in uri and ":" not in uri:
        # Short names are context (membership) roles: "Instructor", "Learner", "Instructor#TeachingAssistant".
        return "membership", uri.split("#", 1)[0]
    return None


def map_roles(roles: list[str] | tuple[str, ...]) -> RoleMapping:
    """Map LTI roles to teacher / student / admin / none, plus admin rights."""
    parsed = [p for p in (_parse(r) for r in roles if isinstance(r, str)) if p]
    membership = {name for vocab, name in parsed if vocab == "membership"}
    is_admin = any(vocab in ("institution", "system") and name == "Administrator" for vocab, name in parsed)
    is_test_user = ("lti-system", "TestUser") in parsed
    is_ta = any("TeachingAssistant" in r for r in roles if isinstance(r, str))
    if membership & _TEACHER_ROLES:
        role = TEACHER
    elif membership & _STUDENT_ROLES or is_test_user:
        role = STUDENT
    elif is_admin:
        role = ADMIN
    else:
        role = NONE
    return RoleMapping(role=role, is_admin=is_admin, is_teaching_assistant=is_ta, is_test_user=is_test_user)
