"""What a hub VM's systemd and the stack's hub-config command do, done on loopback for the real
hub tests (tests/e2e, tests/e2e_hpc): start configurable-http-proxy as its own process from
the command line its unit runs, and write the hub's files with the very script the stack runs
over SSH. Only what has no meaning off a VM is stubbed: `cloud-init status --wait` (nothing
boots), `sudo` (the tests run as root already) and `systemctl` (the harness is the service
manager: the stub records what the script asks for, the test then does it)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import requests

from renderers.hub_config import HUB_REQUIREMENTS, HubFile, HubPaths, ProxySpec
from renderers.scripts import render_hub_config_script


class LocalProxy:
    """configurable-http-proxy started as jshub-proxy.service starts it: its own process (group),
    its token from the environment, outliving any hub."""

    def __init__(self, spec: ProxySpec, token: str, log_path: Path, path: Sequence[str]) -> None:
        self.spec = spec
        self.token = token
        self.log_path = log_path
        self.path = list(path)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.spec.argv(),
                env={"PATH": ":".join(self.path), "CONFIGPROXY_AUTH_TOKEN": self.token},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                process_group=0,
            )
        deadline = time.monotonic() + timeout
        session = requests.Session()
        session.trust_env = False
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"the proxy exited with {self.process.returncode}: {self.log_path.read_text()}"
                )
            with contextlib.suppress(requests.ConnectionError):
                response = session.get(
                    f"{self.spec.api_url}/api/routes",
                    headers={"Authorization": f"token {self.token}"},
                    timeout=5,
                )
                if response.status_code == 200:
                    return
            time.sleep(0.2)
        raise AssertionError(f"the proxy did not answer on {self.spec.api_url} within {timeout:g}s")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)


class ConfigWriter:
    """Runs the hub-config script against a scratch folder. The venv's packages are already
    installed (they are the test runner's): the requirements file is put there first, as the
    first hub-config run would have, so the script has nothing to install; it may never run pip
    on the shared venv (the stub sudo refuses)."""

    def __init__(self, root: Path, paths: HubPaths) -> None:
        self.paths = paths
        self.bin_dir = root / "stub-bin"
        self.bin_dir.mkdir(mode=0o755)
        self.log = root / "systemctl.log"
        for name, body in {
            "sudo": 'case "$1" in */pip) echo "refusing to install into the shared venv" >&2; exit 1;; esac\n'
            'exec "$@"',
            "cloud-init": "exit 0",
            "systemctl": 'echo "systemctl $*" >>"$JSHUB_SYSTEMCTL_LOG"',
        }.items():
            stub = self.bin_dir / name
            stub.write_text(f"#!/bin/bash\n{body}\n")
            stub.chmod(0o755)
        requirements = Path(paths.config_dir) / "requirements.txt"
        requirements.write_text(HUB_REQUIREMENTS.read_text())

    def apply(self, files: Sequence[HubFile]) -> list[str]:
        """Run the script; return the service-manager calls it made."""
        self.log.write_text("")
        result = subprocess.run(
            ["bash", "-c", render_hub_config_script(files, self.paths)],
            env={
                "PATH": f"{self.bin_dir}:/usr/sbin:/usr/bin:/sbin:/bin",
                "JSHUB_SYSTEMCTL_LOG": str(self.log),
            },
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, (
            f"hub-config failed ({result.returncode}):\n{result.stdout}{result.stderr}"
        )
        return self.log.read_text().splitlines()
