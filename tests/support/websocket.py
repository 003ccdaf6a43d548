"""WebSocket clients and real-HTTP launches for tests that talk to a served tool."""
from __future__ import annotations

import base64
import json
import os
import re
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import requests
import simple_websocket

from tests.support.platform import Platform


def session_body(title="Lecture") -> dict:
    """A class session that started a minute ago, for an hour, with a classroom location."""
    now = datetime.now(timezone.utc)
    return {"title": title, "starts_at": (now - timedelta(minutes=1)).isoformat(),
            "ends_at": (now + timedelta(hours=1)).isoformat(), "latitude": 41.5369, "longitude": -8.4239}


class WebSocketClient(simple_websocket.Client):
    """simple-websocket's client, minus a race: frames that arrive in the same read as the 101 response stay
    in wsproto's buffer until more bytes come (the tool's "connected" message could wait for the next ping)."""

    def handshake(self):
        super().handshake()
        self._handle_events()


class Socket:
    """A WebSocket client that keeps every message it got, pings aside."""

    def __init__(self, url: str):
        self.ws = WebSocketClient.connect(url)
        self.seen: list[dict] = []

    def next(self, timeout: float = 5.0) -> dict | None:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            raw = self.ws.receive(timeout=left)
            if raw is None:
                return None
            message = json.loads(raw)
            if message.get("type") == "ping":
                continue
            self.seen.append(message)
            return message

    def wait_for(self, kind: str, match=lambda m: True, timeout: float = 10.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = self.next(deadline - time.monotonic())
            if message is not None and message.get("type") == kind and match(message):
                return message
        raise AssertionError(f"no {kind} message within {timeout} s; got {self.seen}")

    def close(self):
        self.ws.close()


def handshake_status(url: str) -> tuple[int, dict | None]:
    """Status and JSON body of a WebSocket upgrade request (http:// URL)."""
    headers = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
               "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode()}
    response = requests.get(url, headers=headers, timeout=10, stream=True)
    try:
        body = response.json() if response.status_code != 101 else None
    finally:
        response.close()
    return response.status_code, body


def http_launch(base: str, platform: Platform, role: str, **claims) -> str:
    """An OIDC login + launch over real HTTP; answers the launch token."""
    login = requests.get(f"{base}/lti/login", allow_redirects=False, timeout=10,
                         params=platform.login_params(f"{base}/lti/launch"))
    assert login.status_code == 302, login.text[:300]
    auth = {k: v[0] for k, v in parse_qs(urlsplit(login.headers["Location"]).query).items()}
    cookie = login.headers["Set-Cookie"].split(";", 1)[0]
    claims = platform.claims(role, nonce=auth["nonce"], ags=False, nrps=False, **claims)
    token = platform.sign(claims)
    launch = requests.post(f"{base}/lti/launch", headers={"Cookie": cookie}, timeout=10,
                           data={"id_token": token, "state": auth["state"]})
    assert launch.status_code == 200, launch.text[:500]
    found = re.search(r'<meta name="launch-token" content="([^"]+)"', launch.text)
    assert found, launch.text[:500]
    return found.group(1)
