"""GPU partitions for real: the local SLURM's node has two GPUs as GRES (stand-in devices, from
tests/services/start-slurm.sh), and the hpc scenario's rendered hub config spawns a notebook job
that asks for one. The job gets it (SLURM says so, and the kernel sees the GPU it was given), a
request above the partition's maxGpus is refused by the hub with the reason, and a
request within the operator's limit but beyond what the node has is refused without anything
left queued."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e_hpc.conftest import Hub, LoginNode, squeue, start_hub
from tests.e2e_hpc.jobs import assert_server_in_job, refuses

pytestmark = pytest.mark.e2e

# The node start-slurm.sh makes has 2 GPUs (JSHUB_SLURM_GPUS) in every partition.
NODE_GPUS = 2
PARTITIONS = [
    {"name": "debug", "maxCores": 2, "maxMemoryGb": 2, "maxWallHours": 1},
    {"name": "gpu", "maxCores": 2, "maxMemoryGb": 2, "maxGpus": 1, "maxWallHours": 1},
    # The operator allows more GPUs than the node has: SLURM itself must refuse, not the hub.
    {"name": "compute", "maxCores": 2, "maxMemoryGb": 2, "maxGpus": 4, "maxWallHours": 1},
]


def node_gpus() -> int:
    out = subprocess.run(
        ["scontrol", "show", "node", "-o", "localhost"], capture_output=True, text=True, check=True
    ).stdout
    fields = dict(f.split("=", 1) for f in out.split() if "=" in f)
    gres = fields.get("Gres", "")
    return int(gres.split(":")[-1]) if gres.startswith("gpu:") else 0


@pytest.fixture(scope="module")
def gpu_hub(login_node: LoginNode, scratch: Path) -> Iterator[Hub]:
    assert node_gpus() == NODE_GPUS, "the local SLURM's node has no GPUs: see tests/services/start-slurm.sh"
    hub = start_hub(
        scratch / "hub-gpu",
        login_node,
        "direct",
        {"accountMode": "community", "communityAccount": login_node.account, "partitions": PARTITIONS},
    )
    yield hub
    hub.stop()


def test_a_notebook_in_a_gpu_partition_gets_the_gpu_it_asks_for(gpu_hub: Hub, login_node: LoginNode) -> None:
    hub, name = gpu_hub, "gina"
    hub.expect(hub.api("POST", f"/users/{name}"), 201)
    hub.start_server(name, {"partition": "gpu", "cores": 1, "memory_gb": 1, "gpus": 1, "wall_hours": 0.25})
    job_id = assert_server_in_job(hub, login_node, name)
    detail = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True).stdout
    assert "Partition=gpu" in detail and "TresPerNode=gres:gpu:1" in detail, detail
    # SLURM hands the job one of the node's two devices; the kernel, inside the job, sees which.
    printed = hub.run_code(
        name, "import os; print(os.environ.get('SLURM_JOB_GPUS'), os.environ.get('CUDA_VISIBLE_DEVICES'))"
    )
    job_gpus, visible = printed.split()
    assert job_gpus in {"0", "1"} and visible == "0", f"kernel says {printed!r}"
    hub.stop_server(name)
    hub.wait_for(lambda: not squeue(login_node.account), "the job to leave the queue")


def test_more_gpus_than_the_partition_allows_are_refused_with_the_reason(
    gpu_hub: Hub, login_node: LoginNode
) -> None:
    hub, name = gpu_hub, "gus"
    hub.expect(hub.api("POST", f"/users/{name}"), 201)
    # The hub refuses before anything reaches SLURM (the form's own path, options_from_form, is
    # the same check: tests/test_hpc.py).
    reason = "gpus = 2 is outside what partition 'gpu' allows here (0 to 1); ask for less"
    refuses(hub, login_node, name, {"partition": "gpu", "gpus": 2}, reason)
    refuses(
        hub, login_node, name, {"partition": "debug", "gpus": 1}, "partition 'debug' allows here (0 to 0)"
    )


def test_more_gpus_than_the_node_has_is_refused_and_nothing_stays_queued(
    gpu_hub: Hub, login_node: LoginNode
) -> None:
    hub, name = gpu_hub, "gwen"
    hub.expect(hub.api("POST", f"/users/{name}"), 201)
    # SLURM refuses it at submission (no node of the partition has 3 GPUs); the spawn fails with
    # SLURM's words, as for any request SLURM cannot satisfy.
    refuses(
        hub,
        login_node,
        name,
        {"partition": "compute", "gpus": NODE_GPUS + 1},
        "Requested node configuration is not available",
    )
