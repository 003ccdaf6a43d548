"""A launched user calling the JSON API with their launch token, and the contract's error shape."""
from __future__ import annotations

from tests.support.launch import meta


class ApiUser:
    """A launched user calling the API with their Bearer launch token."""

    def __init__(self, client, token: str):
        self.client = client
        self.token = token

    def headers(self, extra=None):
        return {"Authorization": f"Bearer {self.token}", **(extra or {})}

    def get(self, path, **params):
        return self.client.get(path, query_string=params, headers=self.headers())

    def post(self, path, json=None, data=None, **kw):
        if data is not None:
            return self.client.post(path, data=data, headers=self.headers(), **kw)
        return self.client.post(path, json=json or {}, headers=self.headers(), **kw)


def launch_as(launcher, platform, role="instructor", **kwargs) -> ApiUser:
    response = launcher.launch(platform, role, **kwargs)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return ApiUser(launcher.client, meta(response.get_data(as_text=True), "launch-token"))


def fast_launch(launcher, platform, role="instructor", *, with_page=False, **claims):
    """A real OIDC login + launch, without AGS and NRPS claims unless asked (grades and rosters have their own tests).

    Answers the API user, and the launched page's HTML too when with_page is True.
    """
    claims.setdefault("ags", False)
    claims.setdefault("nrps", False)
    auth = launcher.start(platform)
    response = launcher.post(platform.sign(platform.claims(role, nonce=auth["nonce"], **claims)), auth["state"])
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    html = response.get_data(as_text=True)
    user = ApiUser(launcher.client, meta(html, "launch-token"))
    return (user, html) if with_page else user


def assert_error(response, status: int, code: str, field: str | None = None) -> dict:
    """The contract's error shape: {"success": false, "error": {"code", "message", ["fields"]}}, no trace."""
    text = response.get_data(as_text=True)
    assert response.status_code == status, f"expected {status} {code}, got {response.status_code}: {text[:400]}"
    assert response.mimetype == "application/json", text[:400]
    body = response.get_json()
    assert body["success"] is False, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], body
    assert "Traceback" not in text and "File \"" not in text
    if field is not None:
        assert isinstance(body["error"].get("fields"), dict), body
        assert field in body["error"]["fields"], body
    return body
