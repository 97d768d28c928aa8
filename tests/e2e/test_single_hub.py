"""The single-VM hub's jupyterhub_config.py, as the production renderer writes it, run by a
real JupyterHub on loopback: users get Unix accounts with private homes, their servers start
as those accounts, answer through the proxy and run kernels, and the hub's state survives a
restart of the hub process.

Needs root, adduser and configurable-http-proxy (`make system-deps`); without them the tests
skip, or fail when the CI variable is set.
"""

from __future__ import annotations

import pwd
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests.e2e.conftest import Hub

pytestmark = pytest.mark.e2e

SINGLEUSER = "jupyterhub-singleuser"


def user_model(hub: Hub, name: str) -> dict[str, Any]:
    return hub.expect(hub.api("GET", f"/users/{name}"), 200).json()


def stop_server(hub: Hub, name: str) -> None:
    hub.stop_server(name)
    hub.wait_for(lambda: not hub.pids_of(name), f"every process of {name} to exit")


def assert_reachable(hub: Hub, name: str) -> None:
    """The server answers at /user/NAME/ on the public port, i.e. through the proxy."""
    status = hub.expect(hub.user_api(name, "GET", "/status"), 200).json()
    assert "started" in status, status


def test_user_gets_account_home_server_and_kernel(hub: Hub, username: str) -> None:
    created = hub.expect(hub.api("POST", f"/users/{username}"), 201).json()
    assert created["name"] == username

    # The hub ran the rendered add-user script: a real account, its home on the data volume.
    account = pwd.getpwnam(username)
    home = Path(hub.paths.home_root) / username
    assert account.pw_dir == str(home)
    info = home.stat()
    assert stat.S_ISDIR(info.st_mode)
    assert info.st_uid == account.pw_uid, f"{home} is owned by UID {info.st_uid}, not {username}"
    assert stat.S_IMODE(info.st_mode) == 0o700, f"{home} has mode {stat.S_IMODE(info.st_mode):o}"

    server = hub.start_server(username)
    assert server["url"] == f"/user/{username}/"
    assert hub.pids_of(username, SINGLEUSER), f"no {SINGLEUSER} process runs as {username}\n{hub.log_tail()}"
    assert_reachable(hub, username)

    kernel = hub.expect(hub.user_api(username, "POST", "/kernels", json={}), 201).json()
    assert kernel.get("id"), kernel
    assert hub.pids_of(username, "ipykernel"), f"no kernel process runs as {username}"
    # The kernel runs code, as the user, in their home (notebook_dir is ~).
    out = hub.run_in_kernel(username, kernel["id"], "import os; print(os.getuid(), os.getcwd())")
    assert out.split() == [str(account.pw_uid), str(home)]
    assert hub.expect(hub.user_api(username, "GET", f"/kernels/{kernel['id']}"), 200).json()[
        "execution_state"
    ] in ("idle", "busy")

    stop_server(hub, username)
    assert user_model(hub, username)["servers"] == {}


@pytest.mark.drill
def test_hub_restart_keeps_users_and_running_servers(hub: Hub, username: str) -> None:
    if hub.api("GET", f"/users/{username}").status_code == 404:
        hub.expect(hub.api("POST", f"/users/{username}"), 201)  # the first test did not run
    hub.start_server(username)
    running = hub.pids_of(username, SINGLEUSER)
    assert running

    # Restart the hub process only, as systemd does. The user lives in the hub's sqlite
    # database on the data volume; cleanup_servers is off, so the running server outlives
    # the hub and the new hub finds it again and routes to it through its new proxy.
    hub.restart()
    assert user_model(hub, username)["name"] == username
    # (The hub may go on checking servers in the background after init_spawners_timeout.)
    hub.wait_for(
        lambda: (user_model(hub, username)["servers"].get("") or {}).get("ready"),
        f"the restarted hub to find {username}'s running server",
    )
    assert hub.pids_of(username, SINGLEUSER) == running, "the server was restarted, not kept"
    assert_reachable(hub, username)
    stop_server(hub, username)

    # A second start, by the restarted hub, works.
    hub.start_server(username)
    assert_reachable(hub, username)
    stop_server(hub, username)
    assert user_model(hub, username)["servers"] == {}
