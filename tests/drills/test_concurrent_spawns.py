"""Load drill: 50 users spawn at once through the real SLURM path (sbatch over SSH to a
loopback login node); every spawn succeeds, every job is cleaned up. Run by `make drills`
(and CI); figures of the runs are in docs/hpc.md."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.hpc_spawn import concurrent, per_user_login_node
from tests.conftest import require_root, require_tool
from tests.e2e_hpc.conftest import Hub, squeue, start_hub

pytestmark = pytest.mark.drill
USERS = 50


@pytest.fixture(scope="module")
def hub() -> Iterator[tuple[Hub, list[str]]]:
    require_root("the drill creates Unix accounts and starts SLURM and an sshd")
    for tool in ("sbatch", "sshd", "munged", "configurable-http-proxy"):
        require_tool(tool, "the SLURM drill drives it for real")
    root = Path(tempfile.mkdtemp(prefix="jshub-drill-"))
    root.chmod(0o755)
    try:
        with per_user_login_node(root, USERS) as (login, names):
            hub = start_hub(
                root / "hub", login, "direct", {"accountMode": "per-user"}, {"concurrentUsers": USERS}
            )
            try:
                for name in names:
                    hub.expect(hub.api("POST", f"/users/{name}"), 201)
                yield hub, names
            finally:
                hub.stop()
    finally:
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
