"""The allocation's burn on a deployed stack: allocationSus read on allocationSusDate, counted
down at the stack's SU/hour; the stack's SU/hour held to the servers the program registers; the
AllocationRunningOut rule (checked and unit-tested by the real promtool, VM hubs and the cluster),
and the smoke test's warning when few days remain."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import subprocess
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from catalog.su import Burn
from jshub import smoke
from planner.harness import run_program
from planner.plan import PROJECT_DIR, main_program, plan_stack
from planner.stackfile import load
from renderers import k8s_monitoring as km
from renderers.monitoring import MonitoringSpec, alert_rules, render_rules
from stackconfig import ConfigError, parse, sizing
from stacks.monitoring import monitoring_spec
from tests.conftest import make_config, require_tool
from tests.fakehub import FakeHub

STACKS = ("dev", "gateway-hpc", "persistent-swarm", "workshop-k8s")
# promtool's unit tests start at the Unix epoch: a balance read that day, 20 days at 26 SU/hour.
EPOCH_BURN = Burn(su_per_hour=26, balance_su=26 * 24 * 20, as_of=date(1970, 1, 1), warn_days=14)


def vm_spec(burn: Burn | None) -> MonitoringSpec:
    return MonitoringSpec(
        hub_target="127.0.0.1:8000",
        data_mount="/data",
        retention_days=15,
        volume_full_percent=85,
        spawn_failures_per_hour=3,
        backup_max_age_hours=None,
        allocation=burn,
    )


K8S_SPEC = km.K8sMonitoringSpec(
    fqdn="hub.example.org",
    hub_namespace="jupyterhub",
    retention_days=15,
    volume_full_percent=85,
    spawn_failures_per_hour=3,
    backup_max_age_hours=None,
    storage_class="ceph-block",
    allocation=EPOCH_BURN,
)


def test_days_left_count_down_from_the_day_the_balance_was_read() -> None:
    assert EPOCH_BURN.days_left_at(datetime(1970, 1, 1, tzinfo=UTC)) == 20
    assert EPOCH_BURN.days_left_at(datetime(1970, 1, 7, 12, tzinfo=UTC)) == 13.5
    assert Burn.from_output(EPOCH_BURN.output()) == EPOCH_BURN
    assert dataclasses.replace(EPOCH_BURN, su_per_hour=0).days_left_at(datetime.now(UTC)) is None


# A GPU worker group beside the CPU workers: its SUs are the Jetstream2 GPU balance's, not
# allocationSus's.
GPU_WORKERS = {
    "k8s.gpuWorkerCount": 2,
    "k8s.gpuWorkerFlavor": "g3.medium",
    "k8s.profiles": [
        {"displayName": "Python", "default": True},
        {"displayName": "GPU", "gpus": 1, "cpuGuarantee": 2, "memoryGuaranteeGb": 4},
    ],
}


@pytest.mark.parametrize(
    ("stack", "extra"),
    [*((s, {}) for s in STACKS), ("workshop-k8s", GPU_WORKERS)],
    ids=[*STACKS, "workshop-k8s-gpu"],
)
def test_the_stacks_su_per_hour_is_what_its_servers_burn(stack: str, extra: dict[str, object]) -> None:
    """sizing.stack_su_per_hour (what the deployed stack's alert and smoke test count with) is
    the planner's sum over the servers the program registers, CPU and GPU balances apart."""
    today = date(2026, 12, 8)
    overrides = {"allocationSus": 5000, "allocationSusDate": "2026-12-01", **extra}
    plan = plan_stack(stack, overrides=overrides, today=today)
    sf = load(PROJECT_DIR, stack, overrides=overrides)
    cfg = parse(sf.config, secret_keys=sf.secret_keys, namespace=sf.project)
    rate = plan["cost"]["cpu_su_per_hour"]
    assert sizing.stack_su_per_hour(cfg) == rate > 0
    assert sizing.stack_su_per_hour(cfg, gpu=True) == plan["cost"]["gpu_su_per_hour"]
    assert (plan["cost"]["gpu_su_per_hour"] > 0) == bool(extra)
    assert plan["outputs"]["allocation_burn"] == {
        "su_per_hour": rate,
        "balance_su": 5000.0,
        "as_of": "2026-12-01",
        "warn_days": 14,
    }
    # make plan counts the balance down from the day it was read: seven days gone at that rate.
    allocation = plan["cost"]["allocation"]
    assert allocation["balance_su"] == pytest.approx(5000 - rate * 24 * 7)
    assert allocation["read"] == {"balance_su": 5000.0, "on": "2026-12-01"}


def test_no_burn_output_without_the_day_the_balance_was_read() -> None:
    sf = load(PROJECT_DIR, "dev", overrides={"allocationSus": 5000})
    recording = run_program(main_program(PROJECT_DIR), sf.project, "dev", sf.config, sf.secret_keys)
    assert "allocation_burn" not in recording.outputs


def test_a_date_without_a_balance_is_refused_naming_both() -> None:
    with pytest.raises(ConfigError) as info:
        make_config(allocationSusDate="2026-12-01")
    (problem,) = [str(p) for p in info.value.problems]
    assert problem.startswith("allocationSusDate = '2026-12-01'") and "allocationSus" in problem
    with pytest.raises(ConfigError) as info:
        make_config(allocationSus=100, allocationSusDate="soon")
    assert "allocationSusDate = 'soon'" in str(info.value.problems[0])


def test_monitoring_gets_the_rule_only_with_a_burn() -> None:
    cfg = make_config(allocationSus=5000, allocationSusDate="2026-12-01", monitoring={"enabled": True})
    spec = monitoring_spec(cfg, "/data")
    assert spec.allocation == sizing.burn(cfg)
    assert "AllocationRunningOut" in {r["alert"] for r in alert_rules(spec)}
    assert "AllocationRunningOut" not in {r["alert"] for r in alert_rules(vm_spec(None))}


def _check_rules(promtool: str, path: Path) -> None:
    done = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("where", ["vm", "k8s"])
def test_promtool_fires_allocation_running_out_when_the_arithmetic_says(tmp_path: Path, where: str) -> None:
    promtool = require_tool("promtool", "runs the alert rules' unit tests")
    rules = tmp_path / "rules.yml"
    text = render_rules(vm_spec(EPOCH_BURN)) if where == "vm" else km.render_rules(K8S_SPEC)
    rules.write_text(text)
    _check_rules(promtool, rules)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    # 20 days at the start, 14 left after 6 days: quiet at 5 d 23 h, firing at 6 d 1 h.
    assert EPOCH_BURN.days_left_at(epoch + timedelta(days=5, hours=23)) > 14  # type: ignore[operator]
    assert EPOCH_BURN.days_left_at(epoch + timedelta(days=6, hours=1)) < 14  # type: ignore[operator]
    summary = next(
        r for r in yaml.safe_load(text)["groups"][0]["rules"] if r["alert"] == "AllocationRunningOut"
    )
    expected: list[dict[str, Any]] = [
        {"exp_labels": {"severity": "warning"}, "exp_annotations": summary["annotations"]}
    ]
    suite = {
        "rule_files": [str(rules)],
        "evaluation_interval": "1h",
        "tests": [
            {
                "interval": "1h",
                "input_series": [],
                "alert_rule_test": [
                    {"eval_time": "143h", "alertname": "AllocationRunningOut", "exp_alerts": []},
                    {"eval_time": "145h", "alertname": "AllocationRunningOut", "exp_alerts": expected},
                ],
            }
        ],
    }
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(suite))
    done = subprocess.run(
        [promtool, "test", "rules", str(tmp_path / "tests.yml")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_smoke_says_the_days_left_and_warns_when_few() -> None:
    now = datetime(2026, 12, 8, tzinfo=UTC)
    plenty = Burn(2, 2 * 24 * 30, date(2026, 12, 8), 14).output()
    few = Burn(26, 26 * 24 * 30, date(2026, 11, 20), 14).output()  # 18 of 30 days gone
    (line,) = smoke.allocation_lines(plenty, now)
    assert line.startswith("allocation: 30.0 days left at 2 SU/hour")
    (line,) = smoke.allocation_lines(few, now)
    assert line.startswith("WARNING: allocation: 12.0 days left at 26 SU/hour")
    assert "fewer than allocationWarnDays 14" in line and "runs out about 2026-12-20" in line
    assert smoke.allocation_lines(None, now) == []


def test_the_smoke_test_warns_from_the_stacks_output_and_still_passes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    burn = Burn(26, 26 * 24 * 3, datetime.now(UTC).date(), 14).output()
    with FakeHub(tmp_path / "homes") as hub:
        script = tmp_path / "bin" / "pulumi"
        script.parent.mkdir()
        outputs = {"url": hub.url, "admin_token": hub.token, "allocation_burn": burn}
        script.write_text(f"#!/bin/sh\necho '{json.dumps(outputs)}'\n")
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
        monkeypatch.setenv("PATH", f"{script.parent}:{os.environ['PATH']}")
        monkeypatch.delenv("JSHUB_URL", raising=False)
        monkeypatch.delenv("JSHUB_TOKEN", raising=False)
        code = smoke.main(["--timeout", "10", "--hub-timeout", "5"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "smoke test passed" in out
    assert "WARNING: allocation:" in out and "fewer than allocationWarnDays 14" in out
