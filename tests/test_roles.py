"""Role mapping: membership roles first, admin rights from institution/system Administrator."""
import pytest

from lti.roles import map_roles
from tests.support.platform import ROLE


@pytest.mark.parametrize("roles, role, admin", [
    ([ROLE["instructor"]], "teacher", False),
    ([ROLE["instructor"], ROLE["ta"], ROLE["system_user"]], "teacher", False),   # Canvas TA
    ([ROLE["ta"]], "teacher", False),                                           # sub-role alone
    (["http://purl.imsglobal.org/vocab/lis/v2/membership#ContentDeveloper"], "teacher", False),
    (["Instructor"], "teacher", False),
    (["ContentDeveloper"], "teacher", False),
    (["Learner"], "student", False),
    ([ROLE["learner"], ROLE["institution_student"], ROLE["system_user"]], "student", False),
    ([ROLE["learner"], ROLE["test_user"], ROLE["system_user"]], "student", False),  # Canvas Student View
    ([ROLE["test_user"]], "student", False),
    ([ROLE["learner"], ROLE["instructor"]], "teacher", False),                   # teacher wins
    ([ROLE["instructor"], ROLE["institution_admin"], ROLE["system_admin"]], "teacher", True),  # Moodle site admin
    ([ROLE["learner"], ROLE["system_admin"]], "student", True),
    ([ROLE["institution_admin"], ROLE["system_user"]], "admin", True),           # Canvas account admin
    ([ROLE["system_admin"]], "admin", True),
    (["urn:lti:role:ims/lis/Instructor"], "teacher", False),                    # LTI 1.1 URNs
    (["urn:lti:instrole:ims/lis/Administrator"], "admin", True),
    ([ROLE["institution_instructor"]], "none", False),                          # institution role is not a course role
    ([ROLE["system_user"]], "none", False),
    ([ROLE["mentor"]], "none", False),
    (["http://purl.imsglobal.org/vocab/lis/v2/membership#Administrator"], "none", False),
    (["not a role", "", "urn:x"], "none", False),
    ([], "none", False),
])
def test_map_roles(roles, role, admin):
    mapping = map_roles(roles)
    assert (mapping.role, mapping.is_admin) == (role, admin)


def test_flags():
    assert map_roles([ROLE["instructor"], ROLE["ta"]]).is_teaching_assistant
    assert not map_roles([ROLE["instructor"]]).is_teaching_assistant
    assert map_roles([ROLE["learner"], ROLE["test_user"]]).is_test_user
