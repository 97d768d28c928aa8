"""`python -m jshub.users` against the real local single hub: a roster created twice gives the
same hub (and one Unix account per user), a bad line is reported with its number while the
others proceed, warm-up starts servers never more than the limit at once, and remove deletes
only with --yes.

Needs root, adduser and configurable-http-proxy (`make system-deps`).
"""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from jshub.hubapi import HubAPI
from tests.e2e.conftest import random_username
from tests.jshub_commands import run_jshub

if TYPE_CHECKING:
    from tests.e2e.conftest import Hub

pytestmark = pytest.mark.e2e


def users(hub: Hub, *args: str) -> subprocess.CompletedProcess[str]:
    return run_jshub("users", hub.public_url, hub.admin_token, *args)


@pytest.fixture(scope="module")
def names() -> list[str]:
    return [random_username() for _ in range(3)]


@pytest.fixture(scope="module")
def roster(names: list[str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("roster") / "roster.csv"
    path.write_text(
        "username,admin\n"
        f"{names[0]},true\n"
        "# a comment, and a blank line\n"
        "\n"
        f"{names[1]}\n"
        "Not A Name\n"
        f"{names[2]},false\n"
        f"{names[1]}\n"
    )
    return path


def model(hub: Hub, name: str) -> dict[str, object]:
    return hub.expect(hub.api("GET", f"/users/{name}"), 200).json()


def test_create_twice_gives_the_same_hub_and_reports_bad_lines(
    hub: Hub, names: list[str], roster: Path
) -> None:
    first = users(hub, "create", str(roster))
    assert first.returncode == 1, first.stdout + first.stderr  # the bad lines
    assert "line 6: 'Not A Name': not a username" in first.stderr
    assert f"line 8: '{names[1]}': {names[1]} is already on line 5" in first.stderr
    assert "create: created 3, failed 2" in first.stdout
    assert [model(hub, n)["admin"] for n in names] == [True, False, False]
    uids = [hub.account(n).pw_uid for n in names]

    second = users(hub, "create", str(roster))
    assert second.returncode == 1
    assert "create: already there 3, failed 2" in second.stdout
    assert [model(hub, n)["admin"] for n in names] == [True, False, False]
    assert [hub.account(n).pw_uid for n in names] == uids

    listed = users(hub, "list", str(roster))
    lines = {line.split()[0]: line for line in listed.stdout.splitlines()[1:]}
    assert set(lines) == set(names)
    assert "admin" in lines[names[0]] and "none" in lines[names[1]]


def test_warm_up_starts_servers_within_the_concurrency_limit(
    hub: Hub, names: list[str], roster: Path
) -> None:
    # Watch the hub from the outside while the command runs: how many servers start at once.
    watcher = HubAPI(hub.public_url, hub.admin_token)
    starting: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            servers = [watcher.server(n) for n in names]
            starting.append(sum(1 for s in servers if s is not None and not s["ready"]))
            stop.wait(0.1)

    thread = threading.Thread(target=watch)
    thread.start()
    try:
        done = users(hub, "warm-up", str(roster), "--concurrency", "2", "--timeout", "120")
    finally:
        stop.set()
        thread.join()
    assert done.returncode == 1, done.stdout + done.stderr  # the two bad lines, again
    assert "warm-up: started 3, failed 2, at most 2 at once" in done.stdout, done.stdout + done.stderr
    assert "warm-up [" in done.stderr and "3/3" in done.stderr  # the progress bar
    assert max(starting) == 2, f"servers starting at once, as the hub reported them: {starting}"
    for name in names:
        assert (hub.server(name) or {}).get("ready"), name
        assert hub.pids_of(name, "jupyterhub-singleuser")

    again = users(hub, "warm-up", str(roster), "--concurrency", "2")
    assert "warm-up: already running 3, failed 2" in again.stdout


def test_remove_needs_yes_then_removes_and_is_idempotent(hub: Hub, names: list[str], roster: Path) -> None:
    dry = users(hub, "remove", str(roster))
    assert dry.returncode == 1 and "add --yes" in dry.stderr
    assert all(hub.api("GET", f"/users/{n}").status_code == 200 for n in names)

    done = users(hub, "remove", str(roster), "--yes")
    assert "remove: removed 3, failed 2" in done.stdout, done.stdout + done.stderr
    assert all(hub.api("GET", f"/users/{n}").status_code == 404 for n in names)
    hub.wait_for(lambda: not any(hub.pids_of(n) for n in names), "the removed users' servers to exit")

    again = users(hub, "remove", str(roster), "--yes")
    assert "remove: not there 3, failed 2" in again.stdout
