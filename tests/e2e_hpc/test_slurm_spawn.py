"""Notebooks as SLURM jobs submitted over SSH, for real: the hpc scenario's rendered hub config
spawns a server as a batch job of the login node's account, the server answers through the
proxy and runs a kernel inside the job, a cancelled job and a job out of wall time show as a
stopped server with the reason and a new spawn works, and a request beyond the limits is
refused with nothing left queued. Both connectivity modes: direct (hub reaches the compute
node, the notebook calls the hub API port) and ssh-tunnel (through the login node; the
notebook calls the hub at its public address)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e_hpc.conftest import Hub, LoginNode, kill_pids, processes_mentioning, squeue, start_hub
from tests.e2e_hpc.jobs import assert_server_in_job, job_of, refuses

pytestmark = pytest.mark.e2e


def tunnels(hub: Hub) -> list[int]:
    """ssh -L processes of this hub (their command line names its scratch folder)."""
    found = []
    for pid in processes_mentioning(str(hub.root)):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"-L" in argv:
            found.append(pid)
    return found


@pytest.fixture(scope="module")
def direct_hub(login_node: LoginNode, scratch: Path) -> Iterator[Hub]:
    hub = start_hub(
        scratch / "hub-direct",
        login_node,
        "direct",
        {"accountMode": "community", "communityAccount": login_node.account},
    )
    yield hub
    hub.stop()


@pytest.fixture(scope="module")
def tunnel_hub(login_node: LoginNode, scratch: Path) -> Iterator[Hub]:
    hub = start_hub(scratch / "hub-tunnel", login_node, "ssh-tunnel", {"accountMode": "per-user"})
    yield hub
    hub.stop()


@pytest.mark.drill
def test_direct_spawn_runs_in_a_job_and_a_cancelled_job_stops_the_server(
    direct_hub: Hub, login_node: LoginNode
) -> None:
    hub, name = direct_hub, "alice"  # community account: any hub user runs as the gateway account
    hub.expect(hub.api("POST", f"/users/{name}"), 201)
    server = hub.start_server(name, {"partition": "debug", "cores": 2, "memory_gb": 1, "wall_hours": 0.25})
    assert server["url"] == f"/user/{name}/"
    job_id = assert_server_in_job(hub, login_node, name)
    detail = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True).stdout
    assert "NumCPUs=2" in detail and "TimeLimit=00:15:00" in detail and "Partition=debug" in detail, detail
    # The community account keeps each hub user's files in a folder of their own.
    assert (login_node.home / "jupyterhub" / name).is_dir()

    subprocess.run(["scancel", job_id], check=True)
    hub.wait_for(lambda: hub.server(name) is None, "the hub to notice the cancelled job", timeout=45)
    assert f"batch job {job_id} CANCELLED" in hub.log_text(), hub.log_tail()

    hub.start_server(name)
    assert_server_in_job(hub, login_node, name)
    hub.stop_server(name)
    hub.wait_for(lambda: not squeue(login_node.account), "the job to leave the queue")


@pytest.mark.drill
def test_a_job_that_reaches_its_wall_time_stops_the_server_with_the_reason(
    direct_hub: Hub, login_node: LoginNode
) -> None:
    hub, name = direct_hub, "dave"
    hub.expect(hub.api("POST", f"/users/{name}"), 201)
    # The shortest wall time the spawner accepts (0.01 h) rounds up to SLURM's one minute.
    hub.start_server(name, {"partition": "debug", "cores": 1, "memory_gb": 1, "wall_hours": 0.01})
    job_id = assert_server_in_job(hub, login_node, name)
    detail = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True).stdout
    assert "TimeLimit=00:01:00" in detail, detail
    # SLURM ends the job a minute in (its time-limit sweep runs every 30 s); the hub's poll
    # (every 15 s) then marks the server stopped and keeps the reason for the user's next form.
    hub.wait_for(lambda: hub.server(name) is None, "the hub to notice the job's wall time", timeout=240)
    reason = f"batch job {job_id} TIMEOUT: the job reached its wall time of 00:01:00"
    assert reason in hub.log_text(), hub.log_tail()
    assert not squeue(login_node.account), f"the job is still queued: {squeue(login_node.account)}"
    # Nothing is left behind: a new spawn works.
    hub.start_server(name)
    assert_server_in_job(hub, login_node, name)
    hub.stop_server(name)
    hub.wait_for(lambda: not squeue(login_node.account), "the job to leave the queue")


def test_the_progress_page_shows_the_queue_while_a_job_waits(direct_hub: Hub, login_node: LoginNode) -> None:
    hub, name = direct_hub, "carol"
    hub.expect(hub.api("POST", f"/users/{name}"), 201)
    # A partition that is down keeps the job pending (reason PartitionDown) until it is up.
    subprocess.run(["scontrol", "update", "PartitionName=compute", "State=DOWN"], check=True)
    try:
        hub.expect(hub.api("POST", f"/users/{name}/server", data=json.dumps({"partition": "compute"})), 202)
        messages: list[str] = []
        with hub.http.get(
            f"{hub.public_url}/hub/api/users/{name}/server/progress", stream=True, timeout=(5, 60)
        ) as events:
            for line in events.iter_lines(decode_unicode=True):
                if not line or not line.startswith("data:"):
                    continue
                event = json.loads(line[5:])
                assert not event.get("failed"), event
                messages.append(event.get("message", ""))
                if "is PENDING in partition compute: the partition is down" in messages[-1]:
                    subprocess.run(["scontrol", "update", "PartitionName=compute", "State=UP"], check=True)
                if event.get("ready"):
                    break
    finally:
        subprocess.run(["scontrol", "update", "PartitionName=compute", "State=UP"], check=True)
    assert any("is PENDING in partition compute: the partition is down" in m for m in messages), messages
    assert any("is running on localhost; waiting for the notebook server" in m for m in messages), messages
    assert_server_in_job(hub, login_node, name)
    hub.stop_server(name)
    hub.wait_for(lambda: not squeue(login_node.account), "the job to leave the queue")


def test_requests_beyond_the_limits_are_refused_and_nothing_stays_queued(
    direct_hub: Hub, login_node: LoginNode
) -> None:
    hub, name = direct_hub, "bob"
    hub.expect(hub.api("POST", f"/users/{name}"), 201)
    # Beyond the operator's limit: refused by the hub before anything reaches SLURM.
    refuses(
        hub, login_node, name, {"partition": "debug", "cores": 64}, "cores = 64 is outside what partition"
    )
    refuses(hub, login_node, name, {"partition": "nope"}, "partition 'nope' is not offered here")
    refuses(hub, login_node, name, {"cores": 1, "nprocs": 999}, "unknown options ['nprocs']")
    # Within the operator's limit but more than any node has: SLURM would never start it, so
    # the spawner cancels the job and says why.
    refuses(hub, login_node, name, {"partition": "compute", "cores": 256}, "will never start this job")


def test_ssh_tunnel_spawn_per_user_account(tunnel_hub: Hub, login_node: LoginNode) -> None:
    hub = tunnel_hub
    name = login_node.account  # per-user: the hub user's HPC account is usernamePattern {username}
    hub.expect(hub.api("POST", f"/users/{name}"), 201)
    server = hub.start_server(name)
    job_id = assert_server_in_job(hub, login_node, name)
    # The hub reaches the notebook through a local forward, not the compute node directly.
    model = hub.expect(hub.api("GET", f"/users/{name}", params={"include_stopped_servers": "1"}), 200).json()
    assert server["ready"] and model["servers"][""]["ready"]
    assert tunnels(hub), "no ssh -L tunnel process"

    # The hub restarts (its state is in its database): it finds the job and its tunnel again.
    hub.restart()
    hub.wait_for(lambda: (hub.server(name) or {}).get("ready"), "the restarted hub to find the running job")
    hub.expect(hub.user_api(name, "GET", "/status"), 200)
    # A tunnel that dropped is opened again when the hub next checks the job.
    kill_pids(tunnels(hub))
    hub.wait_for(lambda: not tunnels(hub), "the tunnel to be gone")
    response = hub.api("POST", f"/users/{name}/server", data=json.dumps({}))
    assert response.status_code == 400 and "already running" in response.text, response.text
    assert tunnels(hub), "the tunnel was not opened again"
    hub.expect(hub.user_api(name, "GET", "/status"), 200)
    assert job_of(login_node, name) == job_id

    # A cancelled job: the next spawn request notices it and starts a fresh job.
    subprocess.run(["scancel", job_id], check=True)
    hub.wait_for(lambda: not squeue(login_node.account), "the cancelled job to leave the queue")
    hub.start_server(name)
    new_job = assert_server_in_job(hub, login_node, name)
    assert new_job != job_id
    assert f"batch job {job_id} CANCELLED" in hub.log_text(), hub.log_tail()

    hub.stop_server(name)
    hub.wait_for(lambda: not squeue(login_node.account), "the job to leave the queue")
    hub.wait_for(lambda: not tunnels(hub), "the tunnel to close")
