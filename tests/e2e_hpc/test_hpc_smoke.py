"""`python -m jshub.smoke` against the real local SLURM hub: the hpc scenario's rendered config,
notebooks as batch jobs submitted over SSH to the loopback login node (community account,
direct connectivity). Every step passes and is timed; the file the smoke test writes is in
the HPC account's home, where the job ran, and nothing is left queued.

Needs root, slurm-wlm, munge, openssh-server and configurable-http-proxy (`make system-deps`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e_hpc.conftest import Hub, LoginNode, squeue, start_hub
from tests.jshub_commands import SMOKE_STEPS, run_jshub, smoke_rows

pytestmark = pytest.mark.e2e


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
    done = run_jshub("smoke", hub.public_url, hub.admin_token, "--timeout", "120", "--user", "e2e-smoke")
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{hub.log_tail()}"
    rows = smoke_rows(done.stdout)
    for step in SMOKE_STEPS:
        assert "ok" in rows[step], done.stdout
    # The cell ran in the job, as the community account, in its home on the HPC side.
    assert f"wrote {login_node.home}/jshub-smoke.txt" in rows["run a cell"], done.stdout
    assert (login_node.home / "jshub-smoke.txt").is_file()
    assert hub.api("GET", "/users/e2e-smoke").status_code == 404
    hub.wait_for(lambda: not squeue(login_node.account), "the smoke test's job to leave the queue")
