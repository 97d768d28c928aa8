"""Load drill: 50 users spawn at once through the real SLURM path (sbatch over SSH to a
loopback login node); every spawn succeeds, every job is cleaned up. Run by `make drills`
(and CI); figures of the runs are in docs/hpc.md."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from bench.hpc_spawn import PREFIX, concurrent, make_accounts, remove_accounts
from tests.conftest import require_tool
from tests.e2e_hpc.conftest import (
    SERVICES,
    Hub,
    LoginNode,
    free_port,
    kill_pids,
    processes_mentioning,
    squeue,
    start_hub,
)

pytestmark = pytest.mark.drill
USERS = 50


@pytest.fixture(scope="module")
def hub() -> Iterator[tuple[Hub, list[str]]]:
    for tool in ("sbatch", "sshd", "munged", "configurable-http-proxy"):
        require_tool(tool, "the SLURM drill drives it for real")
    subprocess.run(["bash", str(SERVICES / "start-slurm.sh")], check=True, capture_output=True)
    root = Path(tempfile.mkdtemp(prefix="jshub-drill-"))
    root.chmod(0o755)
    names: list[str] = []
    started: list[Hub] = []
    try:
        client_key = root / "hub-key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(client_key)], check=True)
        names = make_accounts(root, USERS, client_key)
        port = free_port()
        state = root / "login"
        subprocess.run(
            ["bash", str(SERVICES / "start-login-node.sh"), str(state), str(port), f"{PREFIX}*"],
            check=True,
            capture_output=True,
        )
        host_key = " ".join((state / "host_key.pub").read_text().split()[:2])
        login = LoginNode(state=state, port=port, account=names[0], host_key=host_key, client_key=client_key)
        hub = start_hub(
            root / "hub", login, "direct", {"accountMode": "per-user"}, {"concurrentUsers": USERS}
        )
        started.append(hub)
        for name in names:
            hub.expect(hub.api("POST", f"/users/{name}"), 201)
        yield hub, names
    finally:
        for hub in started:
            hub.stop()
            with contextlib.suppress(requests.RequestException):
                hub.http.close()
        remove_accounts(names)
        kill_pids(processes_mentioning(str(root)))
        shutil.rmtree(root, ignore_errors=True)


def test_fifty_concurrent_spawns_through_slurm_all_succeed(hub: tuple[Hub, list[str]]) -> None:
    server_hub, names = hub
    start = time.monotonic()
    times, errors = concurrent(server_hub, names)  # spawns all, then stops all
    elapsed = time.monotonic() - start
    print(f"\n{USERS} concurrent spawns through SLURM: {len(times)} ready, {len(errors)} failed, "
          f"slowest {max(times, default=0):.1f} s, all stopped after {elapsed:.1f} s")  # fmt: skip
    assert errors == [], errors[:5]
    assert len(times) == USERS
    leftover = [n for n in names if squeue(n)]
    deadline = time.monotonic() + 60
    while leftover and time.monotonic() < deadline:
        time.sleep(2)
        leftover = [n for n in names if squeue(n)]
    assert leftover == [], f"jobs still queued for {leftover[:5]}"
