"""The local SLURM the hpc tests run against (tests/services/start-slurm.sh): every test module
and every run on the machine calls the start script, so a second call while SLURM answers must
return at once, and nothing the script started may keep its lock (a daemon that inherited the
lock's descriptor made every later call wait until it timed out).

Needs root, slurm-wlm and munge (`make system-deps`).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e_hpc.conftest import START_SLURM

pytestmark = pytest.mark.e2e

LOCK = Path("/etc/slurm/slurm.conf.lock")


def lock_holders() -> list[str]:
    """The processes with the start script's lock file open, as 'pid command'."""
    holders = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fds = list((proc / "fd").iterdir())
            if any(os.readlink(fd) == str(LOCK) for fd in fds):
                command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
                holders.append(f"{proc.name} {command}")
        except OSError:  # the process ended while it was read
            continue
    return holders


def test_no_daemon_keeps_the_start_scripts_lock(slurm: None) -> None:
    assert lock_holders() == []


def test_a_second_start_returns_at_once_while_slurm_answers(slurm: None) -> None:
    started = time.monotonic()
    done = subprocess.run(["bash", str(START_SLURM)], capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    # Only the checks run (the lock, the config compared, sinfo): well under the node's
    # registration wait, which a run that restarts or waits would exceed.
    assert elapsed < 15, f"took {elapsed:.1f} s: {done.stderr}"
