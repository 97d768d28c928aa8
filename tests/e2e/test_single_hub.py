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


def start_server(hub: Hub, name: str) -> dict[str, Any]:
    hub.expect(hub.api("POST", f"/users/{name}/server"), 201, 202)

    def ready() -> dict[str, Any] | None:
        server = user_model(hub, name)["servers"].get("")
        return server if server and server["ready"] else None

    return hub.wait_for(ready, f"{name}'s server to be ready")


def stop_server(hub: Hub, name: str) -> None:
    hub.expect(hub.api("DELETE", f"/users/{name}/server"), 202, 204)
    hub.wait_for(lambda: "" not in user_model(hub, name)["servers"], f"{name}'s server to stop")
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

    server = start_server(hub, username)
    assert server["url"] == f"/user/{username}/"
    servers = hub.pids_of(username, SINGLEUSER)
    assert servers, f"no {SINGLEUSER} process runs as {username}\n{hub.log_tail()}"
    assert_reachable(hub, username)

    kernel = hub.expect(hub.user_api(username, "POST", "/kernels", json={}), 201).json()
    assert kernel.get("id"), kernel
    hub.wait_for(
        lambda: hub.expect(hub.user_api(username, "GET", f"/kernels/{kernel['id']}"), 200)
        .json()
        .get("execution_state")
        in ("idle", "busy"),
        "the kernel to come up",
    )
    assert hub.pids_of(username, "ipykernel"), f"no kernel process runs as {username}"

    stop_server(hub, username)
    assert user_model(hub, username)["servers"] == {}


def test_hub_restart_keeps_users_and_running_servers(hub: Hub, username: str) -> None:
    if hub.api("GET", f"/users/{username}").status_code == 404:
        hub.expect(hub.api("POST", f"/users/{username}"), 201)  # the first test did not run

    # The user lives in the hub's sqlite database on the data volume, not in the process.
    hub.restart()
    assert user_model(hub, username)["name"] == username
    assert hub.api("GET", f"/users/{username}").status_code == 200

    # A second start, after the restart, works.
    start_server(hub, username)
    assert_reachable(hub, username)
    before = hub.pids_of(username, SINGLEUSER)
    assert before

    # cleanup_servers is off: the running server outlives a hub restart and the new hub
    # finds it again, and routes to it through the proxy it starts afresh.
    hub.restart()
    server = user_model(hub, username)["servers"].get("")
    assert server and server["ready"], f"server lost over the restart: {server}\n{hub.log_tail()}"
    assert hub.pids_of(username, SINGLEUSER) == before, "the server was restarted, not kept"
    assert_reachable(hub, username)

    stop_server(hub, username)
    assert user_model(hub, username)["servers"] == {}
