"""`python -m jshub.usage`: server-hours and SUs per user and day, from the hub's API, a sampled
usage record and SLURM's accounting; the SU share of a server; the stack's usage_basis output."""

from __future__ import annotations

import csv
import io
import json
import os
import stat
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from catalog import FLAVORS
from catalog.su import server_su_per_hour
from jshub import usage
from jshub.hubapi import HubAPI
from planner.harness import run_program
from planner.plan import PROJECT_DIR, main_program
from planner.stackfile import load
from renderers.hub_config import HubConfigSpec, hub_config_files
from renderers.hub_settings import SETTINGS_FILE
from tests.conftest import make_config
from tests.fakehub import FakeHub
from tests.stubs import stub

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "hub"))
import jshub_usage

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def test_a_server_is_charged_its_cpu_share_of_its_vm() -> None:
    assert server_su_per_hour(1, FLAVORS["m3.small"]) == 1.0  # half of a 2 SU/hour VM
    assert server_su_per_hour(0.5, FLAVORS["m3.xl"]) == 0.5
    assert server_su_per_hour(2, FLAVORS["r3.large"]) == 4.0  # 2 SU per vCPU-hour
    assert server_su_per_hour(8, FLAVORS["m3.small"]) == 2.0  # never more than the whole VM
    rate, basis = usage.vm_basis("m3.quad", 1)
    assert rate == 1.0
    assert "1 of the 4 vCPUs of a m3.quad (4 SU/hour) = 1 SU per server-hour" in basis


def test_a_span_across_midnight_counts_on_both_days() -> None:
    span = usage.Span("alice", at(14), at(16.5), 0.5, "alice/@x")  # 23:00 to 01:30
    rows = usage.by_day([span])
    assert [(r.day, r.user, r.server_hours, r.sus) for r in rows] == [
        (date(2026, 12, 7), "alice", 1.0, 0.5),
        (date(2026, 12, 8), "alice", 1.5, 0.75),
    ]
    assert [r.day for r in usage.by_day([span], since=date(2026, 12, 8))] == [date(2026, 12, 8)]


def test_a_record_counts_each_server_from_its_start_to_the_last_sample_that_saw_it() -> None:
    first = [{"name": "alice", "servers": {"": {"started": iso(at(-0.5))}}}]
    restarted = [
        {"name": "alice", "servers": {"": {"started": iso(at(1))}}},
        {"name": "bob", "servers": {}},  # no server: nothing recorded
    ]
    lines = [
        usage.sample_line(at(0), first),
        usage.sample_line(at(0.5), first),
        '{"t": "2026-12-07T09:4',  # a write cut short
        usage.sample_line(at(1.25), restarted),
    ]
    spans = usage.spans_from_samples(lines, su_per_hour=2.0)
    assert sorted((s.start, s.end) for s in spans) == [(at(-0.5), at(0.5)), (at(1), at(1.25))]
    (row,) = usage.by_day(spans)
    assert (row.user, row.server_hours, row.sus) == ("alice", 1.25, 2.5)


def test_the_same_server_in_the_record_and_running_now_counts_once() -> None:
    models = [{"name": "alice", "servers": {"": {"started": iso(at(0))}}}]
    recorded = usage.spans_from_samples([usage.sample_line(at(1), models)], 1.0)
    live = usage.spans_from_api(models, at(2), 1.0)
    (row,) = usage.by_day(usage.merge(recorded, live))
    assert row.server_hours == 2.0


def test_sacct_jobs_count_their_cores() -> None:
    # sacct --parsable2 as SLURM prints it: a finished job, one running, one still pending.
    text = (
        "11|alice|2026-12-07T09:00:00|2026-12-07T11:00:00|2\n"
        "12|bob|2026-12-07T10:00:00|Unknown|4\n"
        "13|carol|Unknown|Unknown|1\n"
    )
    spans = usage.spans_from_sacct(text, now=at(3), su_per_core_hour=1.0)
    rows = {r.user: r for r in usage.by_day(spans)}
    assert set(rows) == {"alice", "bob"}
    assert (rows["alice"].server_hours, rows["alice"].sus) == (2.0, 4.0)
    assert (rows["bob"].server_hours, rows["bob"].sus) == (2.0, 8.0)
    command = usage.sacct_command(date(2026, 12, 1))
    assert command[0] == "sacct" and "--format=JobID,User,Start,End,AllocCPUS" in command


def test_table_and_csv_say_the_same() -> None:
    rows = usage.by_day(
        [usage.Span("bob", at(0), at(1.5), 0.25, "b"), usage.Span("al", at(0), at(1), 0.25, "a")]
    )
    parsed = list(csv.DictReader(io.StringIO(usage.to_csv(rows))))
    assert parsed == [
        {"day": "2026-12-07", "user": "al", "server_hours": "1.0000", "sus": "0.2500"},
        {"day": "2026-12-07", "user": "bob", "server_hours": "1.5000", "sus": "0.3750"},
    ]
    text = usage.table(rows, "the basis")
    assert text.splitlines()[-2].split() == ["total", "2.50", "0.62"]
    assert text.endswith("SUs: the basis")


def test_against_a_hub_sample_then_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sampled while alice's and bob's servers ran; alice's stops (gone from the API), bob's
    still runs: the report has alice from the record and bob from the API."""
    monkeypatch.setenv("PATH", str(tmp_path))  # no pulumi: the basis comes from the flags
    record = tmp_path / "usage.jsonl"
    with FakeHub(tmp_path / "homes") as hub:
        hub.clock = lambda: datetime.now(UTC) - timedelta(hours=2)
        api = ["--url", hub.url, "--token", hub.token]
        for name in ("alice", "bob", "carol"):
            assert HubAPI(hub.url, hub.token).api("POST", f"/users/{name}").status_code == 201
        client = HubAPI(hub.url, hub.token)
        for name in ("alice", "bob"):
            assert client.api("POST", f"/users/{name}/server").status_code == 201
        assert usage.main(["sample", "--record", str(record), *api]) == 0
        assert client.api("DELETE", "/users/alice/server").status_code == 204
        out_csv = tmp_path / "usage.csv"
        code = usage.main(
            ["--record", str(record), "--flavor", "m3.quad", "--cpu", "2", "--csv", str(out_csv), *api]
        )
    assert code == 0
    hours: dict[str, float] = {}
    sus: dict[str, float] = {}
    for row in csv.DictReader(out_csv.open()):  # two days' rows when the two hours span midnight
        hours[row["user"]] = hours.get(row["user"], 0) + float(row["server_hours"])
        sus[row["user"]] = sus.get(row["user"], 0) + float(row["sus"])
    assert set(hours) == {"alice", "bob"}
    # Both started two hours ago (by the hub's clock); alice's was last seen at the sample.
    assert abs(hours["alice"] - 2.0) < 0.02
    assert abs(hours["bob"] - 2.0) < 0.02
    assert abs(sus["bob"] - 2 * hours["bob"]) < 1e-3
    printed = capsys.readouterr().out
    assert "2 of the 4 vCPUs of a m3.quad" in printed and "alice" in printed


def test_no_basis_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("JSHUB_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("JSHUB_TOKEN", "t")
    assert usage.main([]) == 2


@pytest.mark.parametrize(
    ("stack", "expected"),
    [
        ("dev", {"flavor": "m3.small", "cpu": 1.0}),
        ("persistent-swarm", {"flavor": "m3.medium", "cpu": 0.5}),
        ("workshop-k8s", {"flavor": "m3.xl", "cpu": 0.5}),
        ("gateway-hpc", None),
    ],
)
def test_each_stack_exports_what_a_server_takes_of_its_vm(
    stack: str, expected: dict[str, object] | None
) -> None:
    sf = load(PROJECT_DIR, stack)
    recording = run_program(main_program(PROJECT_DIR), sf.project, stack, sf.config, sf.secret_keys)
    outputs = recording.outputs
    if expected is None:
        assert "usage_basis" not in outputs
        return
    basis = outputs["usage_basis"]
    assert {k: basis[k] for k in ("flavor", "cpu")} == expected
    assert basis["flavor"] in basis["basis"]
    records = {"dev": "/data/hub/usage.jsonl", "persistent-swarm": "/export/hub/usage.jsonl"}
    assert basis.get("record") == records.get(stack)  # the k8s hub keeps none


def test_the_hubs_record_is_what_the_report_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """hub/jshub_usage.py samples the hub's API; jshub.usage, over SSH (a stand-in `ssh` that
    runs the command here), reads the record it wrote."""
    record = tmp_path / "data" / "hub" / "usage.jsonl"
    with FakeHub(tmp_path / "homes") as hub:
        hub.clock = lambda: datetime.now(UTC) - timedelta(hours=1)
        client = HubAPI(hub.url, hub.token)
        for name in ("alice", "bob"):
            assert client.api("POST", f"/users/{name}").status_code == 201
        assert client.api("POST", "/users/alice/server").status_code == 201
        assert jshub_usage.sample(f"{hub.url}/hub/api", hub.token, record) == 1
        assert client.api("DELETE", "/users/alice/server").status_code == 204
        assert stat.S_IMODE(record.stat().st_mode) == 0o600
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        # ssh DEST sudo -n cat PATH: the stand-in drops the options, the host and sudo.
        stub(bin_dir, "ssh", 'shift 5; echo "$@" > "$(dirname "$0")/asked"; shift 2; exec "$@"')
        monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
        out_csv = tmp_path / "usage.csv"
        argv = ["--url", hub.url, "--token", hub.token, "--flavor", "m3.small", "--cpu", "1"]
        argv += ["--ssh", "ubuntu@203.0.113.5", "--record-path", str(record), "--csv", str(out_csv)]
        assert usage.main(argv) == 0
    assert (bin_dir / "asked").read_text().split() == ["sudo", "-n", "cat", str(record)]
    hours = sum(float(r["server_hours"]) for r in csv.DictReader(out_csv.open()) if r["user"] == "alice")
    assert abs(hours - 1.0) < 0.02


def test_the_vm_and_swarm_hubs_run_the_usage_record_with_the_scopes_it_needs() -> None:
    for cfg in (make_config(), make_config(scenario="swarm", swarm={"workerCount": 2})):
        spec = HubConfigSpec.from_config(cfg)
        files = hub_config_files(spec)
        assert "jshub_usage.py" in files
        settings = json.loads(files[SETTINGS_FILE])["JupyterHub"]
        (service,) = [s for s in settings["services"] if s.get("name") == "usage-record"]
        assert service["command"][1:3] == ["-m", "jshub_usage"]
        assert f"--record={spec.paths.usage_record}" in service["command"]
        assert service["cwd"] == spec.paths.config_dir
        (role,) = [r for r in settings["load_roles"] if r.get("name") == "usage-record"]
        assert role == {
            "name": "usage-record",
            "scopes": ["list:users", "read:servers"],
            "services": ["usage-record"],
        }
