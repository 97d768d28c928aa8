"""The usage record against the real local single hub (the production-rendered config on
loopback): the hub starts its usage-record service, whose token's scopes are enough to sample;
a sample taken while a user's server runs names it with the `started` the hub's API gives; and
`python -m jshub.usage` sums the record and the running server into that user's server-hours.

Needs root, adduser and configurable-http-proxy (`make system-deps`).
"""

from __future__ import annotations

import csv
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from jshub.hubapi import wait_until
from tests.e2e.conftest import random_username
from tests.jshub_commands import ROOT, run_jshub

sys.path.insert(0, str(ROOT / "hub"))
import jshub_usage

if TYPE_CHECKING:
    from tests.e2e.conftest import Hub

pytestmark = pytest.mark.e2e


def test_the_hub_samples_its_servers_and_the_report_counts_them(hub: Hub, tmp_path: Path) -> None:
    record = Path(hub.paths.usage_record)
    # The service samples once as it starts: with its own token (list:users, read:servers).
    lines = wait_until(
        lambda: record.is_file() and record.read_text().splitlines(),
        "the usage-record service's first sample",
        60,
        hub.diagnose,
    )
    first = json.loads(lines[0])
    assert isinstance(first["servers"], list) and datetime.fromisoformat(first["t"]).tzinfo is not None

    name = random_username()
    assert hub.api("POST", f"/users/{name}").status_code == 201
    server = hub.start_server(name, timeout=120)
    try:
        mine = tmp_path / "usage.jsonl"
        assert jshub_usage.sample(f"{hub.public_url}/hub/api", hub.admin_token, mine) >= 1
        (seen,) = [s for s in json.loads(mine.read_text())["servers"] if s["user"] == name]
        assert seen == {"user": name, "server": "", "started": server["started"]}

        out_csv = tmp_path / "usage.csv"
        done = run_jshub(
            "usage", hub.public_url, hub.admin_token,
            "--record", str(mine), "--flavor", "m3.small", "--cpu", "1", "--csv", str(out_csv),
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        started = datetime.fromisoformat(server["started"].replace("Z", "+00:00"))
        hours = sum(float(r["server_hours"]) for r in csv.DictReader(out_csv.open()) if r["user"] == name)
        # The CSV gives hours to 4 decimals: its rounding may add half of the last one.
        assert 0 < hours <= (datetime.now(UTC) - started).total_seconds() / 3600 + 0.00005
        assert "1 of the 2 vCPUs of a m3.small" in done.stdout
    finally:
        hub.stop_server(name, timeout=60)
        hub.api("DELETE", f"/users/{name}")
