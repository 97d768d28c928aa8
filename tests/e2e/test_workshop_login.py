"""The single hub's rendered config with the workshop's shared-password login, run by a real
JupyterHub on loopback and used as a participant uses it: the login form (its XSRF cookie and
field included) lets in the right password under a name the participant picks, with a Unix
account and a server of their own, and refuses a wrong password, an admin name without the
admin password, and the VM's own accounts.

Needs root, adduser and configurable-http-proxy (`make system-deps`).
"""

from __future__ import annotations

import pwd
from typing import TYPE_CHECKING

import pytest

from tests.e2e.conftest import STACK, random_username
from tests.e2e.workshop_forms import browser, login

if TYPE_CHECKING:
    from tests.e2e.conftest import Hub

pytestmark = pytest.mark.e2e

PASSWORD = "e2e-workshop-pass"
ADMIN_PASSWORD = "e2e-admin-password-" + "k" * 20
INSTRUCTOR = "instructor"
HUB_STACK = {
    **{k: v for k, v in STACK.items() if k != "oauthClientSecret"},
    "auth": {"type": "shared-password", "allowAll": True, "admins": [INSTRUCTOR]},
    "workshopPassword": PASSWORD,
    "workshopAdminPassword": ADMIN_PASSWORD,
}


def test_the_right_password_logs_a_participant_in_and_a_wrong_one_does_not(hub: Hub) -> None:
    name = random_username()
    refused = login(hub, browser(), name, "not-the-password")
    assert refused.status_code == 403 and "Invalid username or password" in refused.text
    assert hub.api("GET", f"/users/{name}").status_code == 404, "a refused login made a user"

    session = browser()
    accepted = login(hub, session, name, PASSWORD)
    assert accepted.status_code == 302, f"{accepted.status_code}: {accepted.text[:400]}\n{hub.log_tail()}"
    model = hub.expect(hub.api("GET", f"/users/{name}"), 200).json()
    assert model["admin"] is False
    # The session cookie the form set is the participant's own.
    whoami = session.get(f"{hub.public_url}/hub/api/user", timeout=30)
    assert whoami.status_code == 200 and whoami.json()["name"] == name
    # And it starts their server, which answers through the proxy as them: the login queued
    # the participant's Unix account (home on the data volume), which the spawn waited for.
    hub.start_server(name)
    assert pwd.getpwnam(name).pw_dir == f"{hub.paths.home_root}/{name}"
    assert hub.pids_of(name, "jupyterhub-singleuser")
    hub.stop_server(name)


def test_admins_need_the_admin_password(hub: Hub) -> None:
    assert login(hub, browser(), INSTRUCTOR, PASSWORD).status_code == 403
    assert login(hub, browser(), INSTRUCTOR, ADMIN_PASSWORD).status_code == 302
    assert hub.expect(hub.api("GET", f"/users/{INSTRUCTOR}"), 200).json()["admin"] is True
    # The admin password is no participant's password.
    assert login(hub, browser(), random_username(), ADMIN_PASSWORD).status_code == 403


@pytest.mark.parametrize("name", ["root", "daemon", "Has Space"])
def test_system_accounts_and_bad_names_are_refused(hub: Hub, name: str) -> None:
    response = login(hub, browser(), name, PASSWORD)
    assert response.status_code == 403, f"{name!r} logged in with the shared password"
    assert hub.api("GET", f"/users/{name.lower()}").status_code == 404


def test_the_form_without_its_xsrf_token_is_refused(hub: Hub) -> None:
    session = browser()
    response = session.post(
        f"{hub.public_url}/hub/login",
        data={"username": random_username(), "password": PASSWORD},
        allow_redirects=False,
        timeout=30,
    )
    assert response.status_code == 403
