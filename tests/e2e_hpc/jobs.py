"""What the SLURM spawn tests check of a user's server (tests/e2e_hpc/test_slurm_spawn.py,
test_slurm_gpus.py): it runs as a batch job of the login node's account, and a request the hub
refuses leaves nothing queued."""

from __future__ import annotations

import json
from typing import Any

from tests.e2e_hpc.conftest import Hub, LoginNode, squeue


def job_of(login: LoginNode, hub_user: str) -> str:
    jobs = [line.split() for line in squeue(login.account)]
    mine = [
        job_id
        for job_id, job_name, state in jobs
        if job_name == f"jupyterhub-{hub_user}" and state == "RUNNING"
    ]
    assert len(mine) == 1, f"expected one running job for {hub_user}, squeue says {jobs}"
    return mine[0]


def assert_server_in_job(hub: Hub, login: LoginNode, name: str) -> str:
    status = hub.expect(hub.user_api(name, "GET", "/status"), 200).json()
    assert "started" in status, status
    job_id = job_of(login, name)
    printed = hub.run_code(name, "import os; print(os.getuid(), os.environ.get('SLURM_JOB_ID'))")
    assert printed.split() == [str(login.uid), job_id], f"kernel says {printed!r}"
    return job_id


def refuses(hub: Hub, login: LoginNode, name: str, options: dict[str, Any], words: str) -> None:
    response = hub.api("POST", f"/users/{name}/server", data=json.dumps(options))

    def failed() -> str | None:
        if response.status_code >= 400:
            return response.text
        url = f"{hub.public_url}/hub/api/users/{name}/server/progress"
        with hub.http.get(url, stream=True, timeout=(5, 60)) as events:
            for line in events.iter_lines(decode_unicode=True):
                if line and line.startswith("data:") and json.loads(line[5:]).get("failed"):
                    return line
        return None

    text = hub.wait_for(failed, f"the spawn of {options} to fail")
    assert words in text, text
    assert hub.server(name) is None
    assert not squeue(login.account), f"something is left queued: {squeue(login.account)}"
