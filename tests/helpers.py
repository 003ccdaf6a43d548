"""Small helpers for API tests: launch as a role, call the API with the launch token."""
from __future__ import annotations

from tests.conftest import meta


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
