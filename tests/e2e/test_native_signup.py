"""The single hub's rendered config with native sign-up (nativeauthenticator), run by a real
JupyterHub on loopback: a participant signs up through the form, cannot log in until an admin
approves them, and can afterwards; a wrong password is refused.

Needs root, adduser and configurable-http-proxy (`make system-deps`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.e2e.conftest import STACK, random_username
from tests.e2e.workshop_forms import browser, login, submit

if TYPE_CHECKING:
    import requests

    from tests.e2e.conftest import Hub

pytestmark = pytest.mark.e2e

INSTRUCTOR = "instructor"
HUB_STACK = {
    **{k: v for k, v in STACK.items() if k != "oauthClientSecret"},
    "auth": {"type": "native", "admins": [INSTRUCTOR]},
}


def sign_up(hub: Hub, username: str, password: str) -> requests.Response:
    return submit(
        browser(),
        f"{hub.public_url}/hub/signup",
        {"username": username, "signup_password": password, "signup_password_confirmation": password},
    )


def test_sign_up_then_admin_approval_then_login(hub: Hub) -> None:
    # The instructor (an admin) is approved as they sign up, and logs in.
    admin_password = "instructor-pass-9271"
    assert "The signup was successful" in sign_up(hub, INSTRUCTOR, admin_password).text
    admin = browser()
    assert login(hub, admin, INSTRUCTOR, admin_password).status_code == 302

    name, password = random_username(), "participant-pass-3318"
    signed = sign_up(hub, name, password)
    assert signed.status_code == 200 and "sent to the admin" in signed.text, signed.text[:600]
    # Not approved yet: the right password does not let them in (nativeauthenticator shows
    # the form again with its reason, 200, where JupyterHub's own form answers 403).
    waiting = login(hub, browser(), name, password)
    assert waiting.status_code != 302 and "has not been authorized" in waiting.text
    assert hub.api("GET", f"/users/{name}").status_code == 404

    # The admin approves them on the authorization page (a link the page shows).
    approve = admin.get(f"{hub.public_url}/hub/authorize/{name}", allow_redirects=False, timeout=30)
    assert approve.status_code == 302, f"{approve.status_code}: {approve.text[:400]}"

    wrong = login(hub, browser(), name, "participant-pass-wrong")
    assert wrong.status_code != 302 and "Invalid username or password" in wrong.text
    accepted = login(hub, browser(), name, password)
    assert accepted.status_code == 302, f"{accepted.status_code}: {accepted.text[:400]}\n{hub.log_tail()}"
    assert hub.expect(hub.api("GET", f"/users/{name}"), 200).json()["admin"] is False
    assert hub.account(name).pw_dir == f"{hub.paths.home_root}/{name}"


def test_only_an_admin_approves(hub: Hub) -> None:
    name, password = random_username(), "participant-pass-5521"
    sign_up(hub, name, password)
    other = random_username()
    sign_up(hub, other, "participant-pass-7781")
    # Someone who is not an admin (here: not logged in) cannot approve anyone.
    anonymous = browser().get(f"{hub.public_url}/hub/authorize/{name}", allow_redirects=False, timeout=30)
    assert anonymous.status_code in (302, 403) and "/hub/login" in anonymous.headers.get(
        "Location", "/hub/login"
    )
    assert login(hub, browser(), name, password).status_code != 302
