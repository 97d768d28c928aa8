"""The server options and hubExtraConfig on the single hub, run by a real JupyterHub on loopback
from the production-rendered settings: named servers up to the per-user limit, the idle culler
started by the hub with the stack's options (read back from the running process as the culler
itself parses them), JupyterHub 5 sharing between two users, and a setting the stack file added
reaching a user's kernel.

Needs root, adduser and configurable-http-proxy (`make system-deps`), as tests/e2e/test_single_hub.py."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests
from jupyterhub_idle_culler import IdleCuller

from tests.e2e.conftest import STACK, random_username

if TYPE_CHECKING:
    from tests.e2e.conftest import Hub

pytestmark = pytest.mark.e2e

HUB_STACK = {
    **STACK,
    "maxServerAgeHours": 12,
    "cullIdleUsers": True,
    "namedServersPerUser": 2,
    "sharing": True,
    "hubExtraConfig": {"Spawner": {"environment": {"COURSE": "bio101"}}},
}


def new_user(hub: Hub) -> str:
    name = random_username()
    hub.expect(hub.api("POST", f"/users/{name}"), 201)
    hub.account(name)
    return name


def user_token(hub: Hub, name: str) -> str:
    """A token of `name`'s own, with the user's permissions (the admin service may issue it)."""
    response = hub.expect(hub.api("POST", f"/users/{name}/tokens", json={"note": "e2e"}), 201)
    return str(response.json()["token"])


def as_user(hub: Hub, token: str, method: str, url: str, **kwargs: Any) -> requests.Response:
    session = requests.Session()
    session.trust_env = False
    with session:
        return session.request(
            method,
            url,
            headers={"Authorization": f"token {token}"},
            timeout=30,
            allow_redirects=False,
            **kwargs,
        )


def start_named(hub: Hub, name: str, server: str) -> requests.Response:
    return hub.api("POST", f"/users/{name}/servers/{server}", data=json.dumps({}))


def wait_named_ready(hub: Hub, name: str, server: str) -> None:
    def ready() -> bool:
        servers = hub.expect(hub.api("GET", f"/users/{name}"), 200).json()["servers"]
        return bool(servers.get(server, {}).get("ready"))

    hub.wait_for(ready, f"{name}'s server {server!r} to be ready")


def test_named_servers_up_to_the_per_user_limit(hub: Hub) -> None:
    name = new_user(hub)
    for server in ("analysis", "scratch"):
        hub.expect(start_named(hub, name, server), 201, 202)
        wait_named_ready(hub, name, server)
    status = hub.expect(hub.user_api(f"{name}/analysis", "GET", "/status"), 200).json()
    assert "started" in status
    # A stopped named server still counts; a third is refused until one is deleted.
    hub.expect(hub.api("DELETE", f"/users/{name}/servers/scratch"), 202, 204)
    hub.wait_for(
        lambda: not hub.expect(hub.api("GET", f"/users/{name}"), 200).json()["servers"].get("scratch"),
        "the scratch server to stop",
    )
    refused = hub.expect(start_named(hub, name, "third"), 400)
    assert "maximum of 2 named servers" in refused.text
    hub.expect(hub.api("DELETE", f"/users/{name}/servers/scratch", json={"remove": True}), 202, 204)
    hub.expect(start_named(hub, name, "third"), 201, 202)
    wait_named_ready(hub, name, "third")
    for server in ("analysis", "third"):
        hub.expect(hub.api("DELETE", f"/users/{name}/servers/{server}", json={"remove": True}), 202, 204)


def culler_argv(hub: Hub) -> list[str] | None:
    """The command line of the idle culler the hub runs as a managed service (its child)."""
    assert hub.process is not None
    found = subprocess.run(
        ["pgrep", "-f", "-P", str(hub.process.pid), "jupyterhub_idle_culler"], capture_output=True, text=True
    )
    pids = found.stdout.split()
    if not pids:
        return None
    return Path(f"/proc/{pids[0]}/cmdline").read_bytes().decode().rstrip("\0").split("\0")


def test_the_hub_runs_the_culler_with_the_stacks_options(hub: Hub) -> None:
    argv = hub.wait_for(lambda: culler_argv(hub), "the idle culler to run")
    assert argv[1:3] == ["-m", "jupyterhub_idle_culler"], argv
    culler = IdleCuller()
    culler.parse_command_line(argv[3:])
    assert culler.max_age == 12 * 3600
    assert culler.cull_users and not culler.cull_admin_users
    assert culler.remove_named_servers


def test_a_user_shares_a_server_with_another(hub: Hub) -> None:
    owner, guest = new_user(hub), new_user(hub)
    hub.start_server(owner)
    owner_token = user_token(hub, owner)
    url = f"{hub.public_url}/user/{owner}/api/status"
    # The server remembers what a token may do for minutes: a token of its own for each look.
    assert as_user(hub, user_token(hub, guest), "GET", url).status_code == 403
    # The owner, with the sharing scopes the stack gives users, shares the server by name.
    shared = as_user(
        hub, owner_token, "POST", f"{hub.public_url}/hub/api/shares/{owner}/", json={"user": guest}
    )
    assert shared.status_code == 200, shared.text
    assert shared.json()["user"]["name"] == guest
    guest_token = user_token(hub, guest)
    reached = as_user(hub, guest_token, "GET", url)
    assert reached.status_code == 200 and "started" in reached.json(), reached.text
    # The guest cannot share what is not theirs.
    third = new_user(hub)
    refused = as_user(
        hub, guest_token, "POST", f"{hub.public_url}/hub/api/shares/{owner}/", json={"user": third}
    )
    assert refused.status_code in (403, 404), refused.text
    hub.stop_server(owner)


def test_hub_extra_config_reaches_the_users_kernel(hub: Hub) -> None:
    name = new_user(hub)
    hub.start_server(name)
    kernel = hub.expect(hub.user_api(name, "POST", "/kernels", json={}), 201).json()
    out = hub.run_in_kernel(name, kernel["id"], "import os; print(os.environ['COURSE'])")
    assert out.strip() == "bio101"
    hub.stop_server(name)


def test_options_change_in_place_and_running_servers_stay(hub: Hub) -> None:
    """Turning named servers off and on again is the hub-config step and a hub restart: the
    running server keeps its process, and the hub takes the new settings."""
    name = new_user(hub)
    hub.start_server(name)
    pids = hub.pids_of(name, "jupyterhub-singleuser")
    try:
        asked = hub.write_config(STACK)
        assert asked == ["systemctl restart jupyterhub.service"], asked
        hub.restart()
        refused = hub.expect(start_named(hub, name, "extra"), 400)
        assert "Named servers are not enabled" in refused.text
        argv = hub.wait_for(lambda: culler_argv(hub), "the idle culler to run")
        assert not [flag for flag in argv if flag.startswith("--max-age")], argv
    finally:
        hub.write_config(HUB_STACK)
        hub.restart()
    assert hub.pids_of(name, "jupyterhub-singleuser") == pids
    hub.expect(start_named(hub, name, "extra"), 201, 202)
    wait_named_ready(hub, name, "extra")
    hub.expect(hub.api("DELETE", f"/users/{name}/servers/extra", json={"remove": True}), 202, 204)
    hub.stop_server(name)
