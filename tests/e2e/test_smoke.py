"""`python -m jshub.smoke` against the real local single hub (the production-rendered config on
loopback): every step passes and is timed; with a token the hub refuses, it exits 1 naming
the step that failed.

Needs root, adduser and configurable-http-proxy (`make system-deps`).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.jshub_commands import SMOKE_STEPS, run_jshub, smoke_rows

if TYPE_CHECKING:
    from tests.e2e.conftest import Hub

pytestmark = pytest.mark.e2e


def smoke(hub: Hub, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_jshub("smoke", hub.public_url, token, "--timeout", "120", *args)


def test_smoke_test_passes_against_the_single_hub(hub: Hub) -> None:
    done = smoke(hub, hub.admin_token, "--user", "e2e-smoke")
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{hub.log_tail()}"
    rows = smoke_rows(done.stdout)
    for step in SMOKE_STEPS:
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
