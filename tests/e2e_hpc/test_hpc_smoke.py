"""`python -m jshub.smoke` against the real local SLURM hub: the hpc scenario's rendered config,
notebooks as batch jobs submitted over SSH to the loopback login node (community account,
direct connectivity). Every step passes and is timed; the file the smoke test writes is in
the HPC account's home, where the job ran, and nothing is left queued.

Needs root, slurm-wlm, munge, openssh-server and configurable-http-proxy (`make system-deps`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e_hpc.conftest import Hub, LoginNode, squeue, start_hub

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
STEPS = (
    "reach the hub",
    "create user",
    "start server",
    "run a cell",
    "stop server",
    "start server again",
    "file kept after restart",
    "stop server again",
    "delete user",
)


@pytest.fixture(scope="module")
def hub(login_node: LoginNode, scratch: Path) -> Iterator[Hub]:
    hub = start_hub(
        scratch / "hub-smoke",
        login_node,
        "direct",
        {"accountMode": "community", "communityAccount": login_node.account},
    )
    yield hub
    hub.stop()


def test_smoke_test_passes_against_the_slurm_hub(hub: Hub, login_node: LoginNode) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "jshub.smoke", "--timeout", "120", "--user", "e2e-smoke"],
        cwd=ROOT,
        env={**os.environ, "JSHUB_URL": hub.public_url, "JSHUB_TOKEN": hub.admin_token},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{hub.log_tail()}"
    rows = {line.split("  ")[0].strip(): line for line in done.stdout.splitlines()}
    for step in STEPS:
        assert "ok" in rows[step], done.stdout
    # The cell ran in the job, as the community account, in its home on the HPC side.
    assert f"wrote {login_node.home}/jshub-smoke.txt" in rows["run a cell"], done.stdout
    assert (login_node.home / "jshub-smoke.txt").is_file()
    assert hub.api("GET", "/users/e2e-smoke").status_code == 404
    hub.wait_for(lambda: not squeue(login_node.account), "the smoke test's job to leave the queue")
