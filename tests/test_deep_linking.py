"""Deep linking: a teacher adds the Attendance activity from the LMS's activity chooser."""

import jwt
import pytest

from tests.support.deep_linking import confirm_deep_link, returned_jwt
from tests.support.launch import body_attr

DL_SETTINGS = "https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings"


def _verify(client, token: str, platform) -> dict:
    jwks = client.get("/lti/jwks").get_json()
    kid = jwt.get_unverified_header(token)["kid"]
    key = jwt.PyJWK(next(k for k in jwks["keys"] if k["kid"] == kid))
    return jwt.decode(token, key=key, algorithms=["RS256"], audience=platform.issuer)


@pytest.mark.parametrize("product", ["moodle", "canvas"])
def test_teacher_adds_attendance_activity(request, client, launcher, product):
    platform = request.getfixturevalue(product)
    page = launcher.launch(platform, "instructor", message_type="LtiDeepLinkingRequest").get_data(as_text=True)
    assert body_attr(page, "data-role") == "teacher"
    assert 'id="deep-link-form"' in page
    response = confirm_deep_link(client, page)
    assert response.status_code == 200
    action, token = returned_jwt(response)
    assert action == platform.url + "/deep_link_return"
    claims = _verify(client, token, platform)
    assert claims["iss"] == platform.client_id
    assert claims["https://purl.imsglobal.org/spec/lti/claim/message_type"] == "LtiDeepLinkingResponse"
    assert claims["https://purl.imsglobal.org/spec/lti/claim/version"] == "1.3.0"
    assert claims["https://purl.imsglobal.org/spec/lti/claim/deployment_id"] == platform.deployment_id
    assert claims["https://purl.imsglobal.org/spec/lti-dl/claim/data"] == "opaque-platform-data"
    [item] = claims["https://purl.imsglobal.org/spec/lti-dl/claim/content_items"]
    assert item["type"] == "ltiResourceLink"
    assert item["title"] == "Attendance — Tuesdays"
    assert item["url"] == "http://localhost/lti/launch"
    assert item["lineItem"] == {"scoreMaximum": 100, "label": "Attendance", "tag": "attendance",
                                "resourceId": "attendance"}
    assert "custom" not in item


def test_data_is_not_invented_when_the_request_had_none(client, launcher, moodle):
    settings = moodle.claims("instructor", message_type="LtiDeepLinkingRequest")[DL_SETTINGS]
    settings.pop("data")
    page = launcher.launch(moodle, "instructor", message_type="LtiDeepLinkingRequest",
                           claims={DL_SETTINGS: settings}).get_data(as_text=True)
    _, token = returned_jwt(confirm_deep_link(client, page))
    assert "https://purl.imsglobal.org/spec/lti-dl/claim/data" not in _verify(client, token, moodle)


def test_confirmation_cannot_be_replayed(client, launcher, moodle):
    page = launcher.launch(moodle, "instructor", message_type="LtiDeepLinkingRequest").get_data(as_text=True)
    assert confirm_deep_link(client, page).status_code == 200
    again = confirm_deep_link(client, page)
    assert again.status_code == 404
    assert again.get_json()["error"]["code"] == "not_found"


def test_student_cannot_add_activity(client, launcher, moodle):
    page = launcher.launch(moodle, "learner", message_type="LtiDeepLinkingRequest").get_data(as_text=True)
    assert body_attr(page, "data-role") == "none"
    assert 'id="deep-link-form"' not in page
    response = confirm_deep_link(client, page)
    assert response.status_code == 404


def test_forged_launch_token_is_refused(client):
    response = client.post("/deep-link/confirm", data={"launch_token": "forged.token", "title": "x"})
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "authentication_required"
