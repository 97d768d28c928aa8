"""The single-VM hub's jupyterhub_config.py and settings, as the production renderer writes them,
run by a real JupyterHub on loopback: users get Unix accounts with private homes, their servers start
as those accounts, answer through the proxy and run kernels, and the hub's state survives a
restart of the hub process. A change of the hub's config (a new admin) goes through the script
the stack's hub-config command runs and a hub restart, which running servers survive; after a
rebuilt root disk the hub recreates users' accounts with the UIDs that own their homes.

Needs root, adduser and configurable-http-proxy (`make system-deps`); without them the tests
skip, or fail when the CI variable is set.
"""

from __future__ import annotations

import json
import os
import pwd
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.e2e.conftest import ADMIN, STACK, random_username

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
    account = hub.account(username)
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


def ensure_user(hub: Hub, name: str) -> None:
    if hub.api("GET", f"/users/{name}").status_code == 404:
        hub.expect(hub.api("POST", f"/users/{name}"), 201)


def user_token(hub: Hub, name: str) -> str:
    """A token of `name`'s own, minted by the admin service (it holds the `tokens` scope)."""
    return str(
        hub.expect(hub.api("POST", f"/users/{name}/tokens", json={"note": "e2e"}), 201).json()["token"]
    )


def as_user(hub: Hub, token: str, method: str, path: str) -> int:
    return hub.http.request(
        method, f"{hub.public_url}/hub/api{path}", headers={"Authorization": f"token {token}"}, timeout=30
    ).status_code


def test_new_admin_applies_in_place_and_running_servers_survive(hub: Hub, username: str) -> None:
    """Day 2: the operator adds an admin to the stack and runs `pulumi up`. The hub-config
    script writes the new config and asks for a restart of the hub only; the proxy (its own
    service) keeps routing to the running server all along."""
    ensure_user(hub, username)
    hub.start_server(username)
    running = hub.pids_of(username, SINGLEUSER)
    assert running
    assert hub.proxy is not None
    proxy_pid = hub.proxy.pid
    new_admin = random_username()
    assert hub.api("GET", f"/users/{new_admin}").status_code == 404

    stack = {**STACK, "auth": {**STACK["auth"], "admins": [ADMIN, new_admin]}}
    asked = hub.write_config(stack)
    assert asked == ["systemctl restart jupyterhub.service"], asked
    settings = json.loads((Path(hub.paths.config_dir) / "jupyterhub_settings.json").read_text())
    assert new_admin in settings["Authenticator"]["admin_users"]
    # While the hub restarts, the running server keeps answering through the proxy, to a
    # client it already knows (the server caches the hub's answer about a token).
    assert_reachable(hub, username)
    down = time.monotonic()
    hub.stop()
    assert hub.process is not None and hub.process.returncode == 0, hub.log_tail()
    assert_reachable(hub, username)
    hub.start()
    # Seconds, not minutes: users' sessions go on meanwhile; logins and spawns wait.
    downtime = time.monotonic() - down
    print(f"\nhub API down for {downtime:.1f} s during the config change", file=sys.stderr)
    assert downtime < 60

    assert hub.proxy.running() and hub.proxy.pid == proxy_pid, "the proxy was restarted"
    assert hub.pids_of(username, SINGLEUSER) == running, "the server was restarted, not kept"
    hub.wait_for(
        lambda: (user_model(hub, username)["servers"].get("") or {}).get("ready"),
        f"the restarted hub to find {username}'s running server",
    )
    assert_reachable(hub, username)

    # The new admin exists and has admin rights: with a token of their own they may list every
    # user and read another user's model; a user who is no admin may not.
    assert user_model(hub, new_admin)["admin"] is True
    admin_token = user_token(hub, new_admin)
    assert as_user(hub, admin_token, "GET", "/users") == 200
    assert as_user(hub, admin_token, "GET", f"/users/{username}") == 200
    plain_token = user_token(hub, username)
    assert user_model(hub, username)["admin"] is False
    assert as_user(hub, plain_token, "GET", f"/users/{new_admin}") in (403, 404)
    stop_server(hub, username)


def test_accounts_come_back_with_their_uids_after_the_root_disk_is_rebuilt(hub: Hub) -> None:
    """A rebuild (new image) keeps the data volume but not /etc/passwd. On its next start the
    hub adds every user it knows (Authenticator.add_user), and the add-user script gives each
    account the UID that owns its home, so files stay the user's own."""
    name = random_username()
    ensure_user(hub, name)
    home = Path(hub.paths.home_root) / name
    uid = hub.account(name).pw_uid
    notes = home / "notes.txt"
    notes.write_text("kept\n")
    notes.chmod(0o600)
    os.chown(notes, uid, pwd.getpwnam(name).pw_gid)

    hub.stop()
    # What the rebuilt root disk lacks: the account (its home stays on the data volume).
    subprocess.run(["userdel", name], check=True, capture_output=True)
    assert home.stat().st_uid == uid
    hub.start()

    account = hub.account(name)
    assert account.pw_uid == uid and account.pw_dir == str(home)
    # The home of a user the hub no longer knows has no account after a rebuild: a new user
    # never gets its UID (and with it those files).
    orphan_uid = max(entry.pw_uid for entry in pwd.getpwall() if entry.pw_uid < 60000) + 50
    orphan = Path(hub.paths.home_root) / "e2e-gone"
    orphan.mkdir(mode=0o700)
    os.chown(orphan, orphan_uid, orphan_uid)
    newcomer = random_username()
    ensure_user(hub, newcomer)
    assert hub.account(newcomer).pw_uid > orphan_uid

    hub.start_server(name)
    kernel = hub.expect(hub.user_api(name, "POST", "/kernels", json={}), 201).json()
    out = hub.run_in_kernel(
        name, kernel["id"], "print(open('notes.txt').read().strip(), __import__('os').getuid())"
    )
    assert out.split() == ["kept", str(uid)]
    stop_server(hub, name)


def _alembic(hub: Hub, *args: str) -> str:
    from jupyterhub import dbutil

    db_url = f"sqlite:///{hub.paths.state_dir}/jupyterhub.sqlite"
    with dbutil._temp_alembic_ini(db_url) as ini:
        result = subprocess.run(
            [sys.executable, "-m", "alembic", "-c", ini, *args], capture_output=True, text=True, check=True
        )
    return result.stdout.strip()


def test_a_database_from_an_older_jupyterhub_is_backed_up_and_upgraded_on_start(hub: Hub) -> None:
    """A JupyterHub version bump that changes the schema: the hub VM's config sets upgrade_db,
    so the hub copies the sqlite database aside on the data volume and upgrades it, instead of
    refusing to start."""
    name = random_username()
    ensure_user(hub, name)
    hub.stop()
    head = _alembic(hub, "current").split()[0]
    _alembic(hub, "downgrade", "-1")  # the schema an older JupyterHub left
    older = _alembic(hub, "current").split()[0]
    assert older != head
    state = Path(hub.paths.state_dir)
    before = {p.name for p in state.glob("jupyterhub.sqlite*")}

    # Without upgrade_db the same config and database do not start.
    refused = subprocess.run(
        [
            f"{hub.paths.venv}/bin/jupyterhub",
            "--config",
            str(hub.config_file),
            "--JupyterHub.upgrade_db=False",
        ],
        cwd=state,
        env=hub.env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert refused.returncode != 0 and "upgrade" in (refused.stdout + refused.stderr).lower()

    hub.start()
    assert _alembic(hub, "current").split()[0] == head
    backups = {p.name for p in state.glob("jupyterhub.sqlite.*")} - before
    assert len(backups) == 1, backups
    assert user_model(hub, name)["name"] == name
