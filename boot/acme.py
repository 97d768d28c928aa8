"""A local ACME server standing in for Let's Encrypt, so that a booted hub's Caddy runs the real
issuance path: Caddy's own ACME server (`acme_server`, smallstep underneath) on the host.

- The guest reaches it at QEMU's host address, 10.0.2.2, on a port on the host's loopback; its
  own HTTPS certificate comes from the same local CA, whose root the hub is given through
  `acmeRootCertificate` (the hub's Caddy trusts it for that connection only).
- It validates a challenge by connecting to the hub's DNS name. The name resolves, for the ACME
  server and for the harness's own client only, to a loopback address where the guest's ports
  80 and 443 are forwarded (the floating IP's stand-in): each runs in a private mount namespace
  whose /etc/hosts is bind-mounted from a file here. The host's /etc/hosts is never changed.
- Its CA and storage live in `workdir`, so a second boot (a rebuild) sees the same root and the
  certificate the hub kept on its data volume stays trusted.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from boot.guest import end_process, free_port

# QEMU's user network: the guest reaches the host's loopback at this address.
HOST_FROM_GUEST = "10.0.2.2"
# Where the harness forwards the guest's web ports (the floating IP's stand-in): one address of
# 127.0.0.0/8 that nothing else on the host listens on, so ports 80 and 443 are free there.
PUBLIC_ADDRESS = "127.42.0.1"


class AcmeError(RuntimeError):
    pass


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def in_namespace(hosts: Path, command: Sequence[str]) -> list[str]:
    """`command` in a private mount namespace where /etc/hosts is `hosts` (root only)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        raise AcmeError("unshare (util-linux) is not installed")
    script = 'mount --bind "$1" /etc/hosts && shift && exec "$@"'
    return [unshare, "--mount", "--propagation", "private", "sh", "-c", script, "sh", str(hosts), *command]


@dataclass
class LocalAcme:
    """`names`: DNS names the ACME server (and `run`) resolve, each to an address."""

    workdir: Path
    names: Mapping[str, str]
    port: int = 0
    # The address the hub's Caddy dials the ACME server at (a test on the host: 127.0.0.1).
    client_host: str = HOST_FROM_GUEST
    process: subprocess.Popen[bytes] | None = field(init=False, default=None)

    @property
    def hosts(self) -> Path:
        return self.workdir / "hosts"

    @property
    def root_path(self) -> Path:
        return self.workdir / "storage" / "pki" / "authorities" / "local" / "root.crt"

    @property
    def root_pem(self) -> str:
        return self.root_path.read_text()

    @property
    def directory(self) -> str:
        """The directory URL as the guest reaches it."""
        return f"https://{self.client_host}:{self.port}/acme/local/directory"

    def caddyfile(self) -> str:
        # default_sni: a client that dials an IP address sends no server name; from the guest
        # the listener's own address (127.0.0.1) is not the one dialled (10.0.2.2).
        return (
            "{\n"
            "\tadmin off\n"
            "\tskip_install_trust\n"
            "\tauto_https disable_redirects\n"
            f"\tstorage file_system {self.workdir / 'storage'}\n"
            f"\tdefault_sni {self.client_host}\n"
            "}\n\n"
            f"https://{self.client_host}:{self.port} {{\n"
            "\tbind 127.0.0.1\n"
            "\ttls internal\n"
            "\tacme_server\n"
            "}\n"
        )

    def start(self, timeout: float = 60) -> LocalAcme:
        caddy = shutil.which("caddy")
        if caddy is None:
            raise AcmeError("caddy is not installed; `make system-deps` installs it")
        if os.geteuid() != 0:
            raise AcmeError("the local ACME server needs root (a private mount namespace for its /etc/hosts)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        # The port of the last run when it is free: the directory URL is part of the hub's
        # Caddyfile and Caddy keeps certificates per ACME directory, so a rebuild that finds the
        # same URL serves the certificate it kept instead of ordering a new one.
        port_file = self.workdir / "port"
        last = int(port_file.read_text()) if port_file.exists() else 0
        self.port = self.port or free_port(last)
        port_file.write_text(f"{self.port}\n")
        lines = ["127.0.0.1 localhost", *(f"{address} {name}" for name, address in self.names.items())]
        self.hosts.write_text("\n".join(lines) + "\n")
        config = self.workdir / "Caddyfile"
        config.write_text(self.caddyfile())
        log = open(self.workdir / "caddy.log", "ab")  # noqa: SIM115 - kept open for the process
        env = {**os.environ, "HOME": str(self.workdir), "XDG_DATA_HOME": str(self.workdir / "data")}
        self.process = subprocess.Popen(
            in_namespace(self.hosts, [caddy, "run", "--adapter", "caddyfile", "--config", str(config)]),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=env,
        )
        deadline = time.monotonic() + timeout
        while not (self.root_path.exists() and _port_open(self.port)):
            if self.process.poll() is not None:
                raise AcmeError(f"the local ACME server exited {self.process.returncode}: {self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise AcmeError(f"the local ACME server did not start in {timeout:.0f} s: {self.log_tail()}")
            time.sleep(0.5)
        return self

    def log_tail(self, lines: int = 20) -> str:
        path = self.workdir / "caddy.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def issued(self) -> list[str]:
        """The names the log shows an order of which the ACME server completed."""
        return [line for line in self.log_tail(400).splitlines() if "certificate" in line.lower()]

    def run(
        self, command: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 1800
    ) -> subprocess.CompletedProcess[str]:
        """Run `command` as a client of the booted hub: the hub's name resolves to its forwarded
        address, and the local CA's root is the only one trusted (Python's ssl, requests and
        websocket-client all read these variables)."""
        root = str(self.root_path)
        trust = {"SSL_CERT_FILE": root, "REQUESTS_CA_BUNDLE": root, "WEBSOCKET_CLIENT_CA_BUNDLE": root}
        return subprocess.run(
            in_namespace(self.hosts, command),
            env={**os.environ, **(env or {}), **trust},
            text=True,
            capture_output=True,
            timeout=timeout,
            check=False,
        )

    def stop(self) -> None:
        end_process(self.process)
        self.process = None

    def __enter__(self) -> LocalAcme:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
