"""Run the operators' commands (`python -m jshub.smoke`, `python -m jshub.users`) against a
real local hub, as an operator would: the hub's address and token in the environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# What the smoke test must report, each with "ok", in this order.
SMOKE_STEPS = (
    "reach the hub",
    "create user",
    "start server",
    "run a cell",
    "stop server",
    "start server again",
    "file kept after restart",
    "stop server again",
    "delete user",
)


def run_jshub(command: str, url: str, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m jshub.<command> ARGS` with JSHUB_URL and JSHUB_TOKEN set."""
    return subprocess.run(
        [sys.executable, "-m", f"jshub.{command}", *args],
        cwd=ROOT,
        env={**os.environ, "JSHUB_URL": url, "JSHUB_TOKEN": token},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def smoke_rows(stdout: str) -> dict[str, str]:
    """The smoke test's table, by step name."""
    return {line.split("  ")[0].strip(): line for line in stdout.splitlines()}
