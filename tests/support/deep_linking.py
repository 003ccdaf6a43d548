"""Deep linking as the teacher and the LMS see it: confirming the choice, and the JWT posted back."""
from __future__ import annotations

import html as htmlmod
import re

from tests.support.launch import meta


def confirm_deep_link(client, page: str, title="Attendance — Tuesdays"):
    """Confirm the deep linking page's choice, as the teacher presses the button."""
    token = meta(page, "launch-token")
    return client.post("/deep-link/confirm", data={"launch_token": token, "title": title})


def returned_jwt(response) -> tuple[str, str]:
    """(the platform's return URL, the signed JWT) of the page that posts the deep linking response back."""
    page = response.get_data(as_text=True)
    action = htmlmod.unescape(re.search(r'<form id="deep-link-return" method="post" action="([^"]+)"', page).group(1))
    token = re.search(r'name="JWT" value="([^"]+)"', page).group(1)
    return action, token
