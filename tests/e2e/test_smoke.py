"""`python -m jshub.smoke` against the real local single hub (the production-rendered config on
loopback): every step passes and is timed; with a token the hub refuses, it exits 1 naming
the step that failed.

Needs root, adduser and configurable-http-proxy (`make system-deps`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.e2e.conftest import Hub

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
STEPS = (
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


def smoke(hub: Hub, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "JSHUB_URL": hub.public_url, "JSHUB_TOKEN": token}
    return subprocess.run(
        [sys.executable, "-m", "jshub.smoke", "--timeout", "120", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_smoke_test_passes_against_the_single_hub(hub: Hub) -> None:
    done = smoke(hub, hub.admin_token, "--user", "e2e-smoke")
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{hub.log_tail()}"
    rows = {line.split("  ")[0].strip(): line for line in done.stdout.splitlines()}
    for step in STEPS:
        assert "ok" in rows[step], done.stdout
    assert "Python 3." in rows["run a cell"]
    assert rows["total"].split()[-1].replace(".", "").isdigit()
    # The user is gone from the hub; the file it wrote stays in its home on the data volume.
    assert hub.api("GET", "/users/e2e-smoke").status_code == 404
    assert (Path(hub.paths.home_root) / "e2e-smoke" / "jshub-smoke.txt").is_file()


def test_smoke_test_names_the_step_that_failed(hub: Hub) -> None:
    done = smoke(hub, "not-a-token-the-hub-knows", "--user", "e2e-smoke-bad")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "smoke test FAILED at step 'create user'" in done.stderr
    assert "403" in done.stderr
    assert "reach the hub" in done.stdout and "FAILED" in done.stdout
