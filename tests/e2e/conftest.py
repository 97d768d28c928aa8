"""Fixtures for end-to-end tests that run the rendered JupyterHub config for real on loopback.

The hub runs as root, creates real Unix accounts through the rendered add-user script and
starts notebook servers as those accounts, exactly as on a hub VM. Its proxy runs as a process
of its own, as jshub-proxy.service runs it, and its config is written by the script the
stack's hub-config command runs. Everything lives in a scratch folder under the system temp
dir; teardown stops every process and removes every account the hub created, even when a
test fails half way.
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
from components.hub import hub_env_file, workshop_secrets
from renderers import render
from renderers.hub_config import HubConfigSpec, HubPaths, LocalSpawnerSpec, hub_vm_files
from renderers.scripts import render_add_user_script
from tests.conftest import require_root, require_tool, run_account
from tests.hubclient import HubClient, free_port
from tests.notebook_env import notebook_env
from tests.vmhub_local import ConfigWriter, LocalProxy

SCRATCH_PREFIX = "jshub-e2e-"
# The admin's Unix account, one per test run: two runs on one machine never share (or
# remove) each other's account.
ADMIN = run_account("e2e-admin")

# The smallest stack a user could deploy with GitHub login; the e2e tests change only paths,
# host names and ports of what the production renderer makes of it.
STACK = {
    "scenario": "single",
    "allocation": "cis230000",
    "letsEncryptEmail": "ops@example.org",
    "adminCidrs": ["203.0.113.7/32"],
    "keyPair": "e2e",
    "auth": {"type": "github", "clientId": "e2e-client-id", "admins": [ADMIN]},
    "oauthClientSecret": "e2e-not-a-real-secret",
}


# --- small utilities ----------------------------------------------------------------------


def random_username() -> str:
    return "e2e-" + "".join(secrets.choice(string.ascii_lowercase) for _ in range(6))


def pids_of(user: str, pattern: str | None = None) -> set[int]:
    cmd = ["pgrep", "-u", user] + (["-f", pattern] if pattern else [])
    out = subprocess.run(cmd, capture_output=True, text=True, check=False).stdout
    return {int(p) for p in out.split()}


def _stale_scratch_home(home: str) -> bool:
    """A home in a scratch folder of an earlier run that no longer exists (it crashed)."""
    tmp = Path(tempfile.gettempdir())
    path = Path(home)
    if tmp not in path.parents:
        return False
    scratch = path.relative_to(tmp).parts[0]
    return scratch.startswith(SCRATCH_PREFIX) and not (tmp / scratch).exists()


def remove_account(user: str) -> None:
    """Kill every process of `user`, then delete the account, its group and its home."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        subprocess.run(["pkill", "-KILL", "-u", user], check=False)
        if not pids_of(user):
            break
        time.sleep(0.2)
    if shutil.which("userdel"):
        cmd = ["userdel", "--remove", user]
    else:
        cmd = ["deluser", "--quiet", "--remove-home", user]
    subprocess.run(cmd, capture_output=True, check=False)


# --- the hub --------------------------------------------------------------------------------


@dataclasses.dataclass
class Hub(HubClient):
    """One JupyterHub process run from a rendered config file, as the systemd unit runs it."""

    root: Path
    paths: HubPaths
    config_file: Path
    public_url: str
    admin_token: str
    proxy_command: str
    log_path: Path
    writer: ConfigWriter
    # Loopback ports instead of the VM's 8000/8081/8001: the only change to the rendered spec.
    ports: dict[str, str]
    # The stack the hub runs: the module's HUB_STACK (e.g. another login type), else STACK.
    stack: dict[str, Any] = dataclasses.field(default_factory=lambda: STACK)
    # The read-only jshub-metrics service's token, as the stack writes it with monitoring on.
    metrics_token: str = dataclasses.field(default_factory=lambda: secrets.token_hex(32))
    proxy: LocalProxy | None = None
    process: subprocess.Popen[bytes] | None = None
    groups: list[int] = dataclasses.field(default_factory=list)  # one per hub started

    # the hub's files, as the stack's hub-config command writes them

    def spec(self, stack: dict[str, Any]) -> HubConfigSpec:
        cfg = stackconfig.parse(stack, secret_keys=list(stack))
        spec = HubConfigSpec.from_config(cfg, paths=self.paths)
        changes: dict[str, Any] = dict(self.ports)
        if isinstance(spec.spawner, LocalSpawnerSpec):
            # No systemd as PID 1 here: servers run as plain processes (their limits are tested
            # with systemd in a real VM: tests/e2e/test_limits_vm.py).
            changes["spawner"] = dataclasses.replace(spec.spawner, systemd_units=False)
        return dataclasses.replace(spec, **changes)

    def write_config(self, stack: dict[str, Any]) -> list[str]:
        """Run the hub-config script for `stack`; return the services it asked to restart."""
        cfg = stackconfig.parse(stack, secret_keys=list(stack))
        return self.writer.apply(hub_vm_files(self.spec(stack), cfg.hub_fqdn, cfg.lets_encrypt_email))

    # process control

    def env(self) -> dict[str, str]:
        # What the rendered systemd unit gives the hub: its PATH, and the secrets its
        # EnvironmentFile holds, as the stack writes them. Nothing else leaks in from the runner.
        cfg = stackconfig.parse(self.stack, secret_keys=list(self.stack))
        secrets_file = hub_env_file(
            "e2e-dummy-client-secret",
            self.admin_token,
            self.proxy_token,
            workshop_secrets(cfg),
            metrics_token=self.metrics_token,
        )
        return {
            "PATH": ":".join(self.env_path()),
            "LANG": "C.UTF-8",
            "HOME": pwd.getpwuid(os.getuid()).pw_dir,
            **dict(line.split("=", 1) for line in secrets_file.splitlines()),
        }

    @property
    def proxy_token(self) -> str:
        assert self.proxy is not None
        return self.proxy.token

    def start_proxy(self) -> None:
        """Start the proxy as its unit does: before the hub, and on its own."""
        proxy = self.spec(self.stack).proxy
        assert proxy is not None, "a hub VM's config runs the proxy as a service of its own"
        path = self.env_path()
        self.proxy = LocalProxy(proxy, secrets.token_hex(32), self.root / "proxy.log", path)
        self.proxy.start()

    def env_path(self) -> list[str]:
        unit = render("jupyterhub.service.j2", paths=self.paths, env_file="/unused", proxy_unit="p")
        path = next(
            line.removeprefix("Environment=PATH=").split(":")
            for line in unit.splitlines()
            if line.startswith("Environment=PATH=")
        )
        for tool in (self.proxy_command, shutil.which("node")):
            if tool and os.path.dirname(tool) not in path:
                path.append(os.path.dirname(tool))
        return path

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, "hub already running"
        with self.log_path.open("ab") as log:
            log.write(f"\n===== jupyterhub start {time.strftime('%H:%M:%S')} =====\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [f"{self.paths.venv}/bin/jupyterhub", "--config", str(self.config_file)],
                cwd=self.paths.state_dir,
                env=self.env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                process_group=0,  # a group of its own, which its services join
            )
            self.groups.append(self.process.pid)
        self.wait_for(self._answers, "the hub to answer GET /hub/api/ through the proxy")

    def _answers(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"jupyterhub exited with code {self.process.returncode}\n{self.log_tail()}")
        try:
            response = self.http.get(f"{self.public_url}/hub/api/", timeout=5)
        except requests.ConnectionError:
            return False
        return response.status_code == 200 and "version" in response.json()

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM the hub process only, as systemd does (KillMode=process), and wait."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)

    def kill_groups(self) -> None:
        """SIGKILL whatever is left of every hub started (the hub, its services) and the proxy."""
        for group in self.groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGKILL)
        if self.process is not None and self.process.poll() is None:
            self.process.wait(10)
        if self.proxy is not None:
            self.proxy.stop()

    def restart(self) -> None:
        self.stop()
        assert self.process is not None
        assert self.process.returncode == 0, (
            f"jupyterhub exited with code {self.process.returncode} on SIGTERM\n{self.log_tail()}"
        )
        self.start()

    def account(self, name: str, timeout: float = 30) -> pwd.struct_passwd:
        """The user's Unix account once the hub has made it: a login, a new user in the API or
        the hub's start only queues it (hub/jshub_accounts.py); a spawn waits for it."""

        def made() -> pwd.struct_passwd | None:
            try:
                return pwd.getpwnam(name)
            except KeyError:
                return None

        return self.wait_for(made, f"the Unix account of {name}", timeout=timeout, poll_s=0.1)

    @staticmethod
    def pids_of(user: str, pattern: str | None = None) -> set[int]:
        """Processes running as `user` (whose command line matches `pattern`)."""
        return pids_of(user, pattern)


@pytest.fixture(scope="module")
def hub(request: pytest.FixtureRequest) -> Iterator[Hub]:
    """A JupyterHub running the production-rendered config, on free loopback ports."""
    require_root("the hub creates Unix accounts and spawns servers as them")
    require_tool("adduser", "the hub's add-user script creates accounts with it")
    require_tool("pgrep", "the tests find each user's processes")
    proxy_command = require_tool("configurable-http-proxy", "the hub's proxy")
    with local_hub(getattr(request.module, "HUB_STACK", STACK), proxy_command) as running:
        yield running


@contextlib.contextmanager
def local_hub(stack: dict[str, Any], proxy_command: str, extra_config: str | None = None) -> Iterator[Hub]:
    """The hub VM's day 1 on loopback for `stack`: its files written by the hub-config script,
    the proxy started as its unit starts it, then the hub. `extra_config`, when given, is
    Python run after the rendered config (benchmarks swap the spawner there; tests never do).
    Everything, the accounts the hub made included, is removed on exit."""
    root = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX))
    # The shared folder's admin group, one per hub: named after the scratch folder.
    shared_group = root.name
    accounts_before = {entry.pw_name for entry in pwd.getpwall()}
    hub: Hub | None = None

    def teardown() -> None:
        if hub is not None:
            hub.stop(timeout=15)
            hub.kill_groups()
            hub.http.close()
        # Servers leave the hub's process group (and cleanup_servers is off): kill them by owner
        # along with the accounts the hub created: those with a home in this scratch folder,
        # and any an earlier run that crashed left behind.
        home_root = f"{root}/data/home/"
        for entry in pwd.getpwall():
            mine = entry.pw_dir.startswith(home_root) and entry.pw_name not in accounts_before
            if mine or _stale_scratch_home(entry.pw_dir):
                remove_account(entry.pw_name)
        # The shared folder's admin group, which the hub's shared-access script made.
        subprocess.run(["groupdel", shared_group], capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)

    try:
        # Notebook servers run as their user's account: every folder above a home must be
        # traversable by others. The hub's state is private to root, as on the VM.
        root.chmod(0o755)
        data_root = root / "data"
        data_root.mkdir(mode=0o755)
        (data_root / "hub").mkdir(mode=0o700)
        (data_root / "home").mkdir(mode=0o755)
        config_dir = root / "etc"
        config_dir.mkdir(mode=0o755)
        sbin = root / "sbin"
        sbin.mkdir(mode=0o755)
        (root / "caddy").mkdir(mode=0o755)

        paths = HubPaths(
            data_root=str(data_root),
            venv=str(notebook_env()),
            config_dir=str(config_dir),
            proxy_command=proxy_command,
            add_user_command=str(sbin / "jshub-add-user"),
            shared_access_command=str(sbin / "jshub-shared-access"),
            shared_group=shared_group,
            home_quota_command=str(sbin / "jshub-home-quota"),
            systemd_dir=str(root / "systemd"),
            caddyfile=str(root / "caddy" / "Caddyfile"),
            users_env_root=str(root / "users-env"),
        )
        add_user = Path(paths.add_user_command)
        add_user.write_text(render_add_user_script(paths.home_root))
        add_user.chmod(0o755)

        public_port, hub_port, proxy_api_port = free_port(), free_port(), free_port()
        hub = Hub(
            root=root,
            paths=paths,
            config_file=Path(paths.config_file),
            public_url=f"http://127.0.0.1:{public_port}",
            admin_token=secrets.token_hex(32),
            proxy_command=proxy_command,
            log_path=root / "jupyterhub.log",
            writer=ConfigWriter(root, paths),
            ports={
                "bind_url": f"http://127.0.0.1:{public_port}",
                "hub_bind_url": f"http://127.0.0.1:{hub_port}",
                "proxy_api_url": f"http://127.0.0.1:{proxy_api_port}",
            },
            stack=stack,
        )
        # Day 1 on a VM: the config arrives (hub-config), the secrets arrive and the units start.
        asked = hub.write_config(stack)
        assert asked == [
            "systemctl restart jupyterhub.service",
            "systemctl reload-or-restart caddy.service",
        ], asked
        if extra_config is not None:
            wrapper = root / "etc" / "jupyterhub_config_extra.py"
            wrapper.write_text(f"load_subconfig({str(hub.config_file)!r})\n{extra_config}")
            hub.config_file = wrapper
        hub.start_proxy()
        hub.start()
        yield hub
    finally:
        teardown()


@pytest.fixture(scope="module")
def username() -> str:
    """A fresh name for the hub user (and Unix account) the tests create."""
    while True:
        name = random_username()
        try:
            pwd.getpwnam(name)
        except KeyError:
            return name
