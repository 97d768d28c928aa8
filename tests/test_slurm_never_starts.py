"""The SLURM spawner cancels a job that can never start, and one that waits past its queue
timeout: start() runs its real queue loop, with its squeue and scancel going through the real
run_command to a stand-in login node (an `ssh` that runs the command here, and stand-in SLURM
commands that log their arguments one per line)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

# The module as the hub loads it (from its config folder).
from tests.slurm_spawner import jshub_slurm, spawner

JOB_ID = "4242"


@pytest.fixture
def login_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Stand-in ssh and SLURM commands; `squeue` answers with the line in the file `queue`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tools = {
        # ssh ... -p PORT -l USER HOST COMMAND: run COMMAND in a shell here, as the login node would.
        "ssh": 'exec bash -c "${@: -1}"',
        "squeue": f'printf "%s\\n" squeue "$@" >>{tmp_path}/calls; cat {tmp_path}/queue',
        "scancel": f'printf "%s\\n" scancel "$@" >>{tmp_path}/calls',
    }
    for name, body in tools.items():
        (bin_dir / name).write_text(f"#!/bin/bash\n{body}\n")
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return tmp_path


def start_with_queue(login_node: Path, queue_line: str, **traits: Any) -> Any:
    (login_node / "queue").write_text(queue_line + "\n")
    # req_keepvars is set so that formatting a command does not ask the (absent) hub for its
    # environment; only sbatch uses it.
    s = spawner(ssh_command=str(login_node / "bin" / "ssh"), req_keepvars="", **traits)
    s.user_options = {"partition": "shared", "cores": 16}

    async def submitted() -> str:
        # sbatch needs the hub's environment for the batch script; the queue loop is under test.
        s.job_id = JOB_ID
        return JOB_ID

    s.submit_batch_script = submitted
    return s


def calls(login_node: Path) -> list[str]:
    path = login_node / "calls"
    return path.read_text().splitlines() if path.exists() else []


def test_a_job_slurm_will_never_start_is_cancelled_at_once(login_node: Path) -> None:
    s = start_with_queue(login_node, "PENDING n/a N/A PartitionConfig")
    with pytest.raises(jshub_slurm.RequestError) as info:
        asyncio.run(asyncio.wait_for(s.start(), 30))
    message = str(info.value)
    assert "will never start this job (PartitionConfig: the partition cannot satisfy the request" in message
    assert "it was cancelled" in message and info.value.status_code == 400
    # One squeue of our job, then one scancel of exactly it.
    assert calls(login_node) == ["squeue", "-h", "-j", JOB_ID, "-o", "%T %B %S %r", "scancel", JOB_ID]
    assert s.job_id == "" and s.job_status == ""


def test_a_job_that_waits_too_long_is_cancelled(login_node: Path) -> None:
    s = start_with_queue(login_node, "PENDING n/a N/A Priority", queue_timeout=0)
    with pytest.raises(jshub_slurm.JobError, match="waited in the queue for 0 minutes without starting"):
        asyncio.run(asyncio.wait_for(s.start(), 30))
    assert calls(login_node)[-2:] == ["scancel", JOB_ID]
    assert s.job_id == ""


def test_a_job_that_may_still_start_is_not_cancelled(login_node: Path) -> None:
    s = start_with_queue(login_node, "PENDING n/a N/A Resources", queue_timeout=3600)

    async def a_few_polls() -> None:
        task = asyncio.ensure_future(s.start())
        await asyncio.sleep(1.5)
        assert not task.done()
        task.cancel()

    asyncio.run(a_few_polls())
    seen = calls(login_node)
    assert seen.count("squeue") >= 2 and "scancel" not in seen
    assert s.job_id == JOB_ID
