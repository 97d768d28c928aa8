"""A real HPC path on loopback: single-node SLURM (tests/services/start-slurm.sh), an sshd as the
login node (tests/services/start-login-node.sh) that only a throwaway Unix account may log in
to, and JupyterHub running the hpc scenario's jupyterhub_config.py as the production renderer
writes it, with only host names, ports and paths changed: the stack's hub-config script writes
it (with the spawner module), and the proxy runs on its own, as its unit runs it.

Needs root, slurm-wlm, munge, openssh-server and configurable-http-proxy (`make system-deps`);
without them the tests skip, or fail when the CI variable is set. Teardown cancels the
account's jobs, ends every process this run started and removes the account.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pwd
import secrets
import shutil
import signal
import string
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

import stackconfig
from renderers.hub_config import HubConfigSpec, HubPaths, SlurmSpawnerSpec, hub_vm_files
from tests.conftest import require_root, require_tool, run_account
from tests.hubclient import HubClient, free_port
from tests.notebook_env import notebook_env
from tests.vmhub_local import ConfigWriter, LocalProxy

ROOT = Path(__file__).resolve().parent.parent.parent
SERVICES = ROOT / "tests" / "services"
START_SLURM = SERVICES / "start-slurm.sh"
ADMIN = run_account("e2e-admin")
PARTITION_LIMITS = {"name": "debug", "maxCores": 4, "maxMemoryGb": 4, "maxWallHours": 1}
# Limits above what the test node has (64 CPUs): SLURM itself must refuse, not the hub.
BIG_PARTITION = {"name": "compute", "maxCores": 512, "maxMemoryGb": 64, "maxWallHours": 1}


def stack(
    connectivity: str, login_port: int, host_key: str, hpc: dict[str, Any], top: dict[str, Any]
) -> dict[str, Any]:
    """The hpc stack a gateway operator would write, pointed at the loopback login node."""
    section = {
        "loginHost": "127.0.0.1",
        "loginPort": login_port,
        "hostKey": host_key,
        "partitions": [PARTITION_LIMITS, BIG_PARTITION],
        "defaultCores": 1,
        "defaultMemoryGb": 1,
        "defaultWallHours": 0.5,
        # The HPC side's Python environment is the hub's (it has jupyterhub and batchspawner).
        "environmentSetup": [f'export PATH="{notebook_env()}/bin:$PATH"'],
        "connectivity": connectivity,
        **hpc,
    }
    if connectivity == "direct":
        section["computeCidrs"] = ["127.0.0.0/8"]
    return {
        "scenario": "hpc",
        "allocation": "cis230000",
        "letsEncryptEmail": "ops@example.org",
        "adminCidrs": ["203.0.113.7/32"],
        "keyPair": "e2e",
        "auth": {"type": "github", "clientId": "e2e-client-id", "admins": [ADMIN]},
        "oauthClientSecret": "e2e-not-a-real-secret",
        "hpc": section,
        **top,
    }


def processes_mentioning(text: str) -> list[int]:
    """PIDs whose command line contains `text` (a path unique to this run)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(int(entry.name))
    return found


def kill_pids(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def squeue(account: str) -> list[str]:
    out = subprocess.run(
        ["squeue", "-h", "-u", account, "-o", "%i %j %T"], capture_output=True, text=True, check=False
    ).stdout
    return [line for line in out.splitlines() if line.strip()]


@dataclasses.dataclass
class LoginNode:
    """sshd on loopback, standing in for the HPC login node, and the account jobs run as."""

    state: Path
    port: int
    account: str
    host_key: str
    client_key: Path

    @property
    def uid(self) -> int:
        return pwd.getpwnam(self.account).pw_uid

    @property
    def home(self) -> Path:
        return Path(pwd.getpwnam(self.account).pw_dir)


@pytest.fixture(scope="module")
def slurm() -> None:
    require_root("it starts SLURM and sshd and creates a Unix account")
    for tool, why in (
        ("slurmctld", "the SLURM controller"),
        ("slurmd", "the SLURM node daemon"),
        ("sbatch", "SLURM's client commands"),
        ("munged", "SLURM's authentication"),
    ):
        require_tool(tool, why)
    # The script bounds each of its waits (the lock, a busy queue, a restart, the node's
    # registration) and says which one ran out; this timeout only backs those up.
    subprocess.run(["bash", str(START_SLURM)], check=True, timeout=900)


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="jshub-hpc-"))
    root.chmod(0o755)
    yield root
    kill_pids(processes_mentioning(str(root)))
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def login_node(slurm: None, scratch: Path) -> Iterator[LoginNode]:
    require_tool("sshd", "the stand-in login node")
    require_tool("ssh", "the hub's SSH client")
    account = "jshpc" + "".join(secrets.choice(string.ascii_lowercase) for _ in range(6))
    home = scratch / "home" / account
    home.parent.mkdir(mode=0o755)
    subprocess.run(
        ["useradd", "--create-home", "--home-dir", str(home), "--shell", "/bin/bash", account],
        check=True,
        capture_output=True,
    )
    try:
        # No password, but not locked: sshd (without PAM) refuses locked accounts even with a key.
        subprocess.run(["usermod", "-p", "*", account], check=True, capture_output=True)
        state = scratch / "login"
        client_key = scratch / "hub-key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(client_key)], check=True)
        ssh_dir = home / ".ssh"
        ssh_dir.mkdir(mode=0o700)
        (ssh_dir / "authorized_keys").write_text(Path(f"{client_key}.pub").read_text())
        (ssh_dir / "authorized_keys").chmod(0o600)
        shutil.chown(ssh_dir, account, account)
        shutil.chown(ssh_dir / "authorized_keys", account, account)
        port = free_port()
        subprocess.run(
            ["bash", str(SERVICES / "start-login-node.sh"), str(state), str(port), account],
            check=True,
            timeout=30,
        )
        host_key = " ".join((state / "host_key.pub").read_text().split()[:2])
        yield LoginNode(state=state, port=port, account=account, host_key=host_key, client_key=client_key)
    finally:
        subprocess.run(["scancel", "-u", account], check=False, capture_output=True)
        pid_file = scratch / "login" / "sshd.pid"
        if pid_file.exists():
            kill_pids([int(pid_file.read_text().split()[0])])
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            subprocess.run(["pkill", "-KILL", "-u", account], check=False)
            if (
                not squeue(account)
                and subprocess.run(["pgrep", "-u", account], capture_output=True).returncode
            ):
                break
            time.sleep(0.3)
        subprocess.run(["userdel", "--remove", account], check=False, capture_output=True)


@dataclasses.dataclass
class Hub(HubClient):
    """One JupyterHub process running a rendered hpc config, as its systemd unit would."""

    root: Path
    paths: HubPaths
    config_file: Path
    public_url: str
    admin_token: str
    log_path: Path
    proxy: LocalProxy
    extra_args: list[str] = dataclasses.field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if not self.proxy.running():
            self.proxy.start()
        env = {
            "PATH": ":".join(self.proxy.path),
            "LANG": "C.UTF-8",
            "HOME": pwd.getpwuid(os.getuid()).pw_dir,
            "OAUTH_CLIENT_SECRET": "e2e-dummy-client-secret",
            "JSHUB_ADMIN_TOKEN": self.admin_token,
            "CONFIGPROXY_AUTH_TOKEN": self.proxy.token,
        }
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    f"{self.paths.venv}/bin/jupyterhub",
                    "--config",
                    str(self.config_file),
                    *self.extra_args,
                ],
                cwd=self.paths.state_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait_for(self._answers, "the hub to answer through the proxy")

    def _answers(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"jupyterhub exited with {self.process.returncode}\n{self.log_tail()}")
        try:
            return self.http.get(f"{self.public_url}/hub/api/", timeout=5).status_code == 200
        except requests.ConnectionError:
            return False

    def stop(self) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.proxy.stop()
        self.http.close()

    def restart(self) -> None:
        """SIGTERM the hub process only, as systemd does (KillMode=process), then start it; the
        proxy, a service of its own, keeps running."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(30)
        self.start()


def local_proxy(spec: HubConfigSpec, root: Path) -> LocalProxy:
    assert spec.proxy is not None, "a hub VM's config runs the proxy as a service of its own"
    path = [f"{spec.paths.venv}/bin", "/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"]
    for tool in ("configurable-http-proxy", "node"):
        found = shutil.which(tool)
        if found and os.path.dirname(found) not in path:
            path.append(os.path.dirname(found))
    return LocalProxy(spec.proxy, secrets.token_hex(32), root / "proxy.log", path)


def start_hub(
    root: Path,
    login: LoginNode,
    connectivity: str,
    hpc: dict[str, Any] | None = None,
    top: dict[str, Any] | None = None,
    extra_args: dict[str, str] | None = None,
) -> Hub:
    """Render the hpc config with the production renderer and run it; host names, ports and
    paths are the only changes (`hpc` and `top` are stack config, as an operator writes it;
    `extra_args` are command-line overrides, used only by the benchmark's floor)."""
    root.mkdir(mode=0o755)
    data_root = root / "data"
    (data_root / "hub").mkdir(parents=True, mode=0o700)
    config_dir = root / "etc"
    config_dir.mkdir(mode=0o755)
    paths = HubPaths(
        data_root=str(data_root),
        venv=str(notebook_env()),
        config_dir=str(config_dir),
        proxy_command=require_tool("configurable-http-proxy", "the hub's proxy"),
        add_user_command="/bin/false",
        run_dir=str(root / "run"),
        caddyfile=str(root / "caddy" / "Caddyfile"),
    )
    cfg = stackconfig.parse(
        stack(connectivity, login.port, login.host_key, hpc or {}, top or {}),
        secret_keys=["oauthClientSecret"],
    )
    public_port, hub_port, proxy_api_port = free_port(), free_port(), free_port()
    spec = HubConfigSpec.from_config(cfg, paths=paths)
    assert isinstance(spec.spawner, SlurmSpawnerSpec)
    public_url = f"http://127.0.0.1:{public_port}"
    # Production: http://<hub fqdn>:8081/hub/ (direct) or https://<hub fqdn>/hub/ (ssh-tunnel).
    job_hub_url = f"http://127.0.0.1:{hub_port}/hub/" if connectivity == "direct" else f"{public_url}/hub/"
    spec = dataclasses.replace(
        spec,
        bind_url=public_url,
        hub_bind_url=f"http://127.0.0.1:{hub_port}",
        hub_connect_url=f"http://127.0.0.1:{hub_port}" if spec.hub_connect_url else None,
        proxy_api_url=f"http://127.0.0.1:{proxy_api_port}",
        spawner=dataclasses.replace(spec.spawner, job_hub_url=job_hub_url),
    )
    # What hub-config puts on the VM (the config, the spawner module), written by its script.
    ConfigWriter(root, paths).apply(hub_vm_files(spec, cfg.hub_fqdn, cfg.lets_encrypt_email))
    assert (config_dir / "jshub_slurm.py").is_file()
    # What BatchBridge puts there: the key and known_hosts.
    hpc_dir = Path(paths.hpc_dir)
    hpc_dir.mkdir(mode=0o700)
    shutil.copy(login.client_key, spec.spawner.key_file)
    os.chmod(spec.spawner.key_file, 0o600)
    Path(spec.spawner.known_hosts_file).write_text(spec.spawner.known_hosts)

    hub = Hub(
        root=root,
        paths=paths,
        config_file=Path(paths.config_file),
        public_url=public_url,
        proxy=local_proxy(spec, root),
        admin_token=secrets.token_hex(32),
        log_path=root / "jupyterhub.log",
        extra_args=[f"--{key}={value}" for key, value in (extra_args or {}).items()],
    )
    hub.start()
    return hub
