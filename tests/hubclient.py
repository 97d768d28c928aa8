"""What every test of a real JupyterHub does from the outside, whichever way the hub runs (a
process on loopback, a process driving SLURM, a swarm service): the admin's REST API and kernel
websocket of `jshub.hubapi` (what the operators' commands use too), with the hub's own log as
the diagnostics when something times out or answers otherwise."""

from __future__ import annotations

import socket
from pathlib import Path

from jshub.hubapi import TIMEOUT_S, HubAPI, wait_until

__all__ = ["TIMEOUT_S", "HubClient", "free_port", "wait_until"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class HubClient(HubAPI):
    """A hub under test. A subclass provides `public_url` (the proxy's public address),
    `admin_token`, and either a `log_path` or its own `diagnose()`."""

    log_path: Path

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_text()
        except OSError as exc:
            return f"(no hub log: {exc})"
        tail = "\n".join(text.splitlines()[-lines:])
        return f"--- last {lines} lines of {self.log_path} ---\n{tail}"

    def diagnose(self) -> str:
        """What to show when a test fails: by default the end of the hub's log."""
        return self.log_tail()
