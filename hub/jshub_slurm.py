"""JetstreamSlurmSpawner: batchspawner's SlurmSpawner, driven over SSH to an HPC login node.

The hub VM installs this file next to jupyterhub_config.py, which configures the traits below
from the stack's `hpc` section. Every `sbatch`, `squeue`, `scontrol` and `scancel` runs on the
login node through `ssh` with a pinned host key; users' choices are checked against the
operator's limits before anything reaches the queue.
"""

from __future__ import annotations

import asyncio
import html
import math
import os
import re
import shlex
import socket
import time
from dataclasses import dataclass
from typing import Any

import jinja2
from batchspawner import JobStatus, SlurmSpawner
from jupyterhub.utils import random_port
from tornado import web
from traitlets import Dict, Float, Integer, List, Unicode, default

# SLURM pending reasons that waiting does not cure: the request exceeds what the partition,
# account or QOS allows. Such a job is cancelled at once instead of sitting in the queue.
NEVER_STARTS = re.compile(
    r"^(PartitionConfig|PartitionNodeLimit|PartitionTimeLimit|BadConstraints|InvalidAccount|InvalidQOS"
    r"|AccountNotAllowed|QOSNotAllowed|(QOS|Assoc)Max\w*PerJob\w*)$"
)
REASONS = {
    "None": "being scheduled",
    "Priority": "jobs with higher priority are ahead of it",
    "Resources": "waiting for free nodes",
    "Dependency": "waiting for another job",
    "ReqNodeNotAvail": "the nodes it needs are unavailable (maintenance?)",
    "PartitionConfig": "the partition cannot satisfy the request (cores, memory or GPUs)",
    "PartitionTimeLimit": "the wall time exceeds the partition's limit",
    "PartitionNodeLimit": "the node count exceeds the partition's limit",
    "BadConstraints": "no node has the requested features",
    "PartitionDown": "the partition is down",
    "PartitionInactive": "the partition is not accepting jobs now",
    "BeginTime": "waiting for its start time",
    "JobHeldUser": "held by the account owner",
    "JobHeldAdmin": "held by the administrators",
    "QOSMaxJobsPerUserLimit": "the account already runs as many jobs as its QOS allows",
    "AssocGrpCPULimit": "the account's group is at its CPU limit",
}
ENDED = {
    "CANCELLED": "the job was cancelled",
    "TIMEOUT": "the job reached its wall time",
    "FAILED": "the job failed",
    "OUT_OF_MEMORY": "the job ran out of memory",
    "NODE_FAIL": "the compute node failed",
    "PREEMPTED": "the job was preempted",
    "BOOT_FAIL": "the compute node failed to boot",
    "DEADLINE": "the job reached its deadline",
    "COMPLETED": "the notebook server exited",
}

BATCH_SCRIPT = """\
#!/bin/bash
#SBATCH --job-name={{ job_name }}
#SBATCH --output=jupyterhub-%j.log
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --partition={{ partition }}
#SBATCH --cpus-per-task={{ cores }}
#SBATCH --mem={{ memory_mb }}M
#SBATCH --time={{ walltime }}
{% if gres %}
#SBATCH --gres={{ gres }}
{% endif %}
{% if account %}
#SBATCH --account={{ account }}
{% endif %}
{% for option in sbatch_options %}
#SBATCH {{ option }}
{% endfor %}
# A JupyterHub notebook server for hub user {{ hub_user }}, submitted by the hub over SSH.
set -eo pipefail

# Environment setup from the stack's hpc.environmentSetup.
{% for line in environment_setup %}
{{ line }}
{% endfor %}

# What the notebook server needs to find and authenticate with the hub.
{% for name, value in environment %}
export {{ name }}={{ value | sh }}
{% endfor %}
{% if workdir %}
mkdir -p "$HOME"/{{ workdir | sh }}
cd "$HOME"/{{ workdir | sh }}
{% endif %}
exec {{ command }}
"""

_ENV = jinja2.Environment(
    undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True
)
_ENV.filters["sh"] = lambda value: shlex.quote(str(value))
_SCRIPT = _ENV.from_string(BATCH_SCRIPT)


def render_batch_script(**values: Any) -> str:
    """The batch script for one request; shellcheck-clean (tests/test_hpc_renderers.py)."""
    return _SCRIPT.render(**values)


class JobError(web.HTTPError):
    """A spawn that cannot go on, with a message the user sees on the spawn page and in the
    API's answer (JupyterHub shows an HTTPError's message; other errors become "error")."""

    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(self.status, message.replace("%", "%%"))
        self.message = message

    def __str__(self) -> str:
        return self.message


class RequestError(JobError):
    """A user's request the operator's limits do not allow; the message says what would."""

    status = 400


@dataclass(frozen=True)
class Request:
    partition: str
    cores: int
    memory_gb: float
    gpus: int
    wall_hours: float

    @property
    def walltime(self) -> str:
        minutes = max(1, math.ceil(self.wall_hours * 60))
        return f"{minutes // 60:02d}:{minutes % 60:02d}:00"

    @property
    def memory_mb(self) -> int:
        return max(1, round(self.memory_gb * 1024))


@dataclass(frozen=True)
class JobInfo:
    """One line of `squeue -o '%T %B %S %r'`."""

    state: str = ""
    host: str = ""
    start: str = ""
    reason: str = ""

    @classmethod
    def parse(cls, line: str) -> JobInfo:
        fields = (line or "").split()
        fields += [""] * (4 - len(fields))
        return cls(*fields[:4])


def _number(options: dict[str, Any], key: str, kind: type, default: Any) -> Any:
    value = options.get(key, default)
    if isinstance(value, list):  # form data arrives as lists of strings
        value = value[0] if value else default
    if value in ("", None):
        value = default
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise RequestError(f"{key} = {value!r} is not a number") from None
    if isinstance(number, float) and not math.isfinite(number):
        raise RequestError(f"{key} = {value!r} is not a finite number")
    return number


class JetstreamSlurmSpawner(SlurmSpawner):
    login_host = Unicode(help="HPC login node that runs sbatch, squeue and scancel.").tag(config=True)
    login_port = Integer(22).tag(config=True)
    ssh_key_file = Unicode(help="Private key the hub logs in to the login node with.").tag(config=True)
    known_hosts_file = Unicode(help="known_hosts holding the login node's pinned host key.").tag(config=True)
    control_dir = Unicode(help="Folder for SSH connection-sharing sockets (one per HPC account).").tag(
        config=True
    )
    ssh_command = Unicode("ssh").tag(config=True)
    account_mode = Unicode("per-user").tag(config=True)
    username_pattern = Unicode("{username}").tag(config=True)
    community_account = Unicode("").tag(config=True)
    slurm_account = Unicode("").tag(config=True)
    partitions = List(
        Dict(), help="[{name, max_cores, max_memory_gb, max_gpus, max_wall_hours, gpu_gres}]"
    ).tag(config=True)
    default_cores = Integer(1).tag(config=True)
    default_memory_gb = Float(2.0).tag(config=True)
    default_wall_hours = Float(1.0).tag(config=True)
    environment_setup = List(Unicode()).tag(config=True)
    sbatch_options = List(Unicode()).tag(config=True)
    connectivity = Unicode("ssh-tunnel", help="direct or ssh-tunnel").tag(config=True)
    queue_timeout = Integer(600, help="Seconds a job may wait in the queue before it is cancelled.").tag(
        config=True
    )
    job_hub_url = Unicode(
        "",
        help="The hub's URL as the compute nodes reach it (e.g. https://hub.example.org/hub/); empty: "
        "the hub's own connect URL. The proxy keeps routing to the hub on loopback either way.",
    ).tag(config=True)

    batch_query_cmd = Unicode("squeue -h -j {job_id} -o '%T %B %S %r'").tag(config=True)
    batch_cancel_cmd = Unicode("scancel {job_id}").tag(config=True)
    state_exechost_re = Unicode(r"^\S+\s+(\S+)").tag(config=True)
    # The SSH hop is added by run_command, around the whole command.
    exec_prefix = Unicode("").tag(config=True)
    req_srun = Unicode("").tag(config=True)

    # What start() resolved, what the job said last, and the tunnel in ssh-tunnel mode.
    request: Request | None = None
    end_reason = Unicode("")
    tunnel_port = Integer(0)
    remote_ip = Unicode("")
    remote_port = Integer(0)
    _tunnel: asyncio.subprocess.Process | None = None

    @default("req_username")
    def _req_username_default(self) -> str:
        return self.login_user

    @default("req_homedir")
    def _req_homedir_default(self) -> str:
        return ""  # the hub has no account for its users; the job runs in the HPC home

    def user_env(self, env: dict[str, str]) -> dict[str, str]:
        return env  # no local account to take USER, HOME, SHELL from

    @property
    def login_user(self) -> str:
        if self.account_mode == "community":
            return self.community_account
        return self.username_pattern.replace("{username}", self.user.name)

    # --- SSH ------------------------------------------------------------------------------

    def ssh_argv(self, *, share: bool = True) -> list[str]:
        argv = [
            self.ssh_command,
            "-i", self.ssh_key_file,
            "-o", "IdentitiesOnly=yes",
            "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={self.known_hosts_file}",
            "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "ConnectTimeout=20",
            "-o", "ServerAliveInterval=30",
        ]  # fmt: skip
        if share and self.control_dir:
            # One shared connection per HPC account: a queue poll costs a channel, not a login.
            argv += [
                "-o",
                "ControlMaster=auto",
                "-o",
                f"ControlPath={self.control_dir}/%C",
                "-o",
                "ControlPersist=300",
            ]
        else:
            argv += ["-o", "ControlMaster=no", "-o", "ControlPath=none"]
        return [*argv, "-p", str(self.login_port), "-l", self.login_user, self.login_host]

    async def run_command(self, cmd: str, input: str | None = None, env: dict[str, str] | None = None) -> str:
        """Run `cmd` in the login node's shell: quoted once more, so it means there what it would
        mean locally. The hub's own environment does not travel."""
        if self.control_dir:
            os.makedirs(self.control_dir, mode=0o700, exist_ok=True)
        remote = shlex.join(self.ssh_argv()) + " " + shlex.quote(cmd.strip())
        ssh_env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
        try:
            return str(await super().run_command(remote, input=input, env=ssh_env))
        except RuntimeError as exc:
            raise RuntimeError(f"on {self.login_user}@{self.login_host}: {exc}") from None

    # --- the request ------------------------------------------------------------------------

    def limits(self, name: str) -> dict[str, Any]:
        for partition in self.partitions:
            if partition["name"] == name:
                return partition
        allowed = ", ".join(p["name"] for p in self.partitions)
        raise RequestError(f"partition {name!r} is not offered here; choose one of: {allowed}")

    def resolve_request(self, options: dict[str, Any]) -> Request:
        """Check a user's choices against the operator's limits; raise RequestError saying what
        is allowed. Unknown keys are refused: nothing but these five reaches the batch script."""
        known = {"partition", "cores", "memory_gb", "gpus", "wall_hours"}
        unknown = sorted(set(options) - known)
        if unknown:
            raise RequestError(f"unknown options {unknown}; allowed: {sorted(known)}")
        partition = options.get("partition") or self.partitions[0]["name"]
        if isinstance(partition, list):
            partition = partition[0]
        limits = self.limits(str(partition))
        request = Request(
            partition=str(partition),
            cores=_number(options, "cores", int, self.default_cores),
            memory_gb=_number(options, "memory_gb", float, self.default_memory_gb),
            gpus=_number(options, "gpus", int, 0),
            wall_hours=_number(options, "wall_hours", float, self.default_wall_hours),
        )
        checks = (
            ("cores", request.cores, 1, limits["max_cores"]),
            ("memory_gb", request.memory_gb, 0.001, limits["max_memory_gb"]),
            ("gpus", request.gpus, 0, limits.get("max_gpus", 0)),
            ("wall_hours", request.wall_hours, 0.01, limits["max_wall_hours"]),
        )
        for key, value, low, high in checks:
            if not low <= value <= high:
                raise RequestError(
                    f"{key} = {value:g} is outside what partition {request.partition!r} allows here "
                    f"({low:g} to {high:g}); ask for less, or choose another partition"
                )
        return request

    def options_from_form(self, formdata: dict[str, list[str]]) -> dict[str, Any]:
        request = self.resolve_request({k: v for k, v in formdata.items() if not k.startswith("_")})
        return {
            "partition": request.partition,
            "cores": request.cores,
            "memory_gb": request.memory_gb,
            "gpus": request.gpus,
            "wall_hours": request.wall_hours,
        }

    @default("options_form")
    def _options_form_default(self) -> str:
        options = "\n".join(
            f'<option value="{p["name"]}">{p["name"]} (up to {p["max_cores"]} cores, {p["max_memory_gb"]:g} GB, '
            f"{p.get('max_gpus', 0)} GPUs, {p['max_wall_hours']:g} h)</option>"
            for p in self.partitions
        )
        most = {
            key: max(p.get(key, 0) for p in self.partitions)
            for key in ("max_cores", "max_memory_gb", "max_gpus", "max_wall_hours")
        }
        return f"""
<div class="form-group">
  <label for="partition">Partition</label>
  <select class="form-control" name="partition" id="partition">{options}</select>
</div>
<div class="form-group">
  <label for="cores">CPU cores</label>
  <input class="form-control" type="number" name="cores" id="cores" min="1" max="{most["max_cores"]}"
    value="{self.default_cores}">
</div>
<div class="form-group">
  <label for="memory_gb">Memory (GB)</label>
  <input class="form-control" type="number" name="memory_gb" id="memory_gb" min="0.5" step="0.5"
    max="{most["max_memory_gb"]:g}" value="{self.default_memory_gb:g}">
</div>
<div class="form-group">
  <label for="gpus">GPUs</label>
  <input class="form-control" type="number" name="gpus" id="gpus" min="0" max="{most["max_gpus"]}" value="0">
</div>
<div class="form-group">
  <label for="wall_hours">Wall time (hours)</label>
  <input class="form-control" type="number" name="wall_hours" id="wall_hours" min="0.25" step="0.25"
    max="{most["max_wall_hours"]:g}" value="{self.default_wall_hours:g}">
</div>
<p>The notebook runs as a batch job on {self.login_host}; it waits in the queue like any other job.</p>
"""

    async def get_options_form(self) -> str:
        """The form, headed by why the previous job ended when it ended on its own (cancelled,
        failed, out of wall time): the hub's own pages only say the server is not running."""
        form = str(await super().get_options_form())
        if self.end_reason:
            form = f'<div class="alert alert-warning">Your last notebook job ended: {html.escape(self.end_reason)}</div>\n{form}'
        return form

    # --- the batch script ---------------------------------------------------------------------

    def job_environment(self) -> list[tuple[str, str]]:
        """Only what the notebook needs from the hub: its API URL, token and identity. The hub's
        PATH or secrets never reach the compute node."""
        env = self.get_env()
        keep = [k for k in sorted(env) if k.startswith(("JUPYTERHUB_", "JPY_")) or k in self.environment]
        own = self.hub.url  # e.g. http://127.0.0.1:8081/hub/
        public = self.job_hub_url.rstrip("/") + "/" if self.job_hub_url else own
        return [
            (k, public + str(env[k])[len(own) :] if str(env[k]).startswith(own) else str(env[k]))
            for k in keep
        ]

    def workdir(self) -> str:
        # A community account's home is shared: each hub user works in a folder of their own.
        return f"jupyterhub/{self.user.name}" if self.account_mode == "community" else ""

    async def _get_batch_script(self, **subvars: Any) -> str:
        # The script is rendered from the resolved request only; user_options never reach it.
        assert self.request is not None
        limits = self.limits(self.request.partition)
        command = shlex.join([self.batchspawner_singleuser_cmd, *self.cmd, *self.get_args()])
        return render_batch_script(
            job_name=f"jupyterhub-{self.user.name}",
            hub_user=self.user.name,
            partition=self.request.partition,
            cores=self.request.cores,
            memory_mb=self.request.memory_mb,
            walltime=self.request.walltime,
            gres=f"{limits.get('gpu_gres', 'gpu')}:{self.request.gpus}" if self.request.gpus else "",
            account=self.slurm_account,
            sbatch_options=self.sbatch_options,
            environment_setup=self.environment_setup,
            environment=self.job_environment(),
            workdir=self.workdir(),
            command=command,
        )

    # --- queue state --------------------------------------------------------------------------

    @property
    def job(self) -> JobInfo:
        return JobInfo.parse(self.job_status)

    async def job_end_reason(self) -> str:
        """Why a job is no longer in the queue, in words a user can act on."""
        job_id = self.job_id
        try:
            out = await self.run_command(f"scontrol show job -o {shlex.quote(job_id)}")
        except RuntimeError:
            return f"batch job {job_id} is no longer known to SLURM on {self.login_host}"
        fields = dict(f.split("=", 1) for f in out.split() if "=" in f)
        state = fields.get("JobState", "UNKNOWN")
        text = f"batch job {job_id} {state}: {ENDED.get(state, 'the job ended')}"
        if state == "TIMEOUT":
            text += f" of {fields.get('TimeLimit', '?')}"
        if fields.get("ExitCode", "0:0") != "0:0":
            text += f" (exit code {fields['ExitCode']})"
        if fields.get("Reason", "None") not in ("None", ""):
            text += f", reason {fields['Reason']}"
        return text + f"; its log is jupyterhub-{job_id}.log in the HPC home of {self.login_user}"

    def queue_message(self) -> str:
        job = self.job
        if not self.job_id:
            return f"Submitting a batch job to {self.login_host}"
        if self.state_ispending():
            partition = self.request.partition if self.request else "?"
            text = f"Job {self.job_id} is {job.state} in partition {partition}: {REASONS.get(job.reason, job.reason)}"
            if job.start and job.start not in ("N/A", "n/a"):
                text += f"; SLURM estimates it starts at {job.start} (login node's time)"
            return text
        if self.state_isrunning():
            return f"Job {self.job_id} is running on {job.host}; waiting for the notebook server to start"
        return f"Job {self.job_id}: {job.state or 'state not known yet'}"

    async def progress(self) -> Any:
        last = ""
        while True:
            message = self.queue_message()
            if message != last:
                yield {"message": message}
                last = message
            if self.state_isrunning() and self.port:
                return
            await asyncio.sleep(1)

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> tuple[str, int]:
        try:
            self.request = self.resolve_request(dict(self.user_options or {}))
        except RequestError as exc:
            raise RequestError(f"Cannot submit the notebook job: {exc}") from None
        self.end_reason = ""
        self.ip = self.traits()["ip"].default_value
        self.port = 0
        if self.server:
            self.server.port = 0

        try:
            await self.submit_batch_script()
        except RuntimeError as exc:
            raise JobError(f"Could not submit the notebook job: {exc}") from None
        if not self.job_id:
            raise JobError(f"sbatch on {self.login_host} printed no job ID")
        submitted = time.monotonic()
        deadline = submitted + self.queue_timeout
        while True:
            status = await self.query_job_status()
            if status == JobStatus.RUNNING:
                break
            if status == JobStatus.PENDING:
                reason = self.job.reason
                if NEVER_STARTS.match(reason):
                    await self._give_up()
                    raise RequestError(
                        f"SLURM on {self.login_host} will never start this job ({reason}: "
                        f"{REASONS.get(reason, 'the request exceeds a limit')}); it was cancelled. "
                        "Ask for fewer cores or GPUs, less memory or a shorter wall time."
                    )
                if time.monotonic() > deadline:
                    await self._give_up()
                    raise JobError(
                        f"Job waited in the queue for {self.queue_timeout // 60} minutes without starting; "
                        "it was cancelled. Try a smaller request or another partition."
                    )
            elif status != JobStatus.UNKNOWN:
                reason = await self.job_end_reason()
                self.clear_state()
                raise JobError(f"The notebook job ended before its server started: {reason}")
            await asyncio.sleep(self.queue_poll_delay(time.monotonic() - submitted))

        host = self.state_gethost()
        if not host:
            raise JobError(f"SLURM did not say where job {self.job_id} runs ({self.job_status!r})")
        self.ip = host
        # The server reports its port to the hub's API (batchspawner-singleuser) once it runs.
        checked = time.monotonic()
        while self.port == 0:
            await asyncio.sleep(0.1)  # a local attribute the hub's API sets: no remote cost
            if time.monotonic() - checked > 5:
                checked = time.monotonic()
                if await self.query_job_status() not in (JobStatus.RUNNING, JobStatus.UNKNOWN):
                    reason = await self.job_end_reason()
                    self.clear_state()
                    raise JobError(f"The notebook job ended before its server started: {reason}")
        self.remote_ip, self.remote_port = host, int(self.port)
        if self.connectivity == "ssh-tunnel":
            await self.open_tunnel()
            self.log.info("Job %s of %s runs at %s:%s, tunnelled to 127.0.0.1:%s",
                          self.job_id, self.user.name, host, self.remote_port, self.tunnel_port)  # fmt: skip
            return "127.0.0.1", self.tunnel_port
        self.log.info("Job %s of %s runs at %s:%s", self.job_id, self.user.name, host, self.port)
        return host, int(self.port)

    def queue_poll_delay(self, waited: float) -> float:
        """Seconds until the next squeue: quick while a job is likely to start any moment, then
        gentler on the login node for a job that waits in the queue."""
        if waited < 15:
            return 0.25
        if waited < 120:
            return float(self.startup_poll_interval)
        return max(5.0, float(self.startup_poll_interval))

    async def _give_up(self) -> None:
        try:
            await self.cancel_batch_job()
        finally:
            self.clear_state()

    async def poll(self) -> int | None:
        status = await self.query_job_status()
        if status in (JobStatus.PENDING, JobStatus.UNKNOWN):
            return None
        if status == JobStatus.RUNNING:
            if self.connectivity == "ssh-tunnel" and self.tunnel_port and not self._tunnel_alive():
                await self.open_tunnel()  # the hub restarted, or the login node dropped the link
            return None
        if self.job_id:
            self.end_reason = await self.job_end_reason()
            self.log.warning("Server of %s stopped: %s", self.user.name, self.end_reason)
        await self.close_tunnel()
        self.clear_state()
        return 1

    async def stop(self, now: bool = False) -> None:
        try:
            if self.job_id:
                await super().stop(now=now)
        finally:
            await self.close_tunnel()

    # --- the tunnel (ssh-tunnel mode) ----------------------------------------------------------

    def _tunnel_alive(self) -> bool:
        if self._tunnel is not None and self._tunnel.returncode is None:
            return True
        try:
            with socket.create_connection(("127.0.0.1", self.tunnel_port), timeout=1):
                return True  # a tunnel a previous hub process started is still up
        except OSError:
            return False

    async def open_tunnel(self) -> None:
        """Forward a loopback port on the hub to the notebook through the login node; the compute
        node needs no route to the hub and no inbound port."""
        await self.close_tunnel()
        port = self.tunnel_port or random_port()
        argv = self.ssh_argv(share=False)
        argv[-1:-1] = [
            "-N",
            "-o",
            "ExitOnForwardFailure=yes",
            "-L",
            f"127.0.0.1:{port}:{self.remote_ip}:{self.remote_port}",
        ]
        ssh_env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
        self._tunnel = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE, env=ssh_env, start_new_session=True,
        )  # fmt: skip
        self.tunnel_port = port
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._tunnel.returncode is not None:
                assert self._tunnel.stderr is not None
                error = (await self._tunnel.stderr.read()).decode(errors="replace").strip()
                self._tunnel = None
                raise JobError(f"SSH tunnel through {self.login_host} failed: {error}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return
            except OSError:
                await asyncio.sleep(0.1)
        raise JobError(f"SSH tunnel through {self.login_host} did not open within 30 s")

    async def close_tunnel(self) -> None:
        tunnel, self._tunnel = self._tunnel, None
        if tunnel is None or tunnel.returncode is not None:
            return
        tunnel.terminate()
        try:
            await asyncio.wait_for(tunnel.wait(), 5)
        except TimeoutError:
            tunnel.kill()
            await tunnel.wait()

    # --- state the hub keeps in its database -----------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        if self.tunnel_port:
            state.update(tunnel_port=self.tunnel_port, remote_ip=self.remote_ip, remote_port=self.remote_port)
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self.tunnel_port = int(state.get("tunnel_port", 0))
        self.remote_ip = state.get("remote_ip", "")
        self.remote_port = int(state.get("remote_port", 0))

    def clear_state(self) -> None:
        super().clear_state()
        self.tunnel_port = 0
        self.remote_ip = ""
        self.remote_port = 0
