"""The allocation's burn and shelving in `make plan`: config errors, the days left against a
hand-computed case, the warnings, the savings, the JSON fields and `shelved: true` under the diff."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from planner import burn
from planner.__main__ import main as plan_main
from planner.diff import diff_plans
from planner.diff import main as diff_main
from planner.plan import PlanError, plan_stack
from stackconfig.model import StackConfig
from tests.builders import magnum_copy, problems

TODAY = date(2025, 3, 1)
INSTANCE = "openstack:compute/instance:Instance"
VOLUME = "openstack:blockstorage/volume:Volume"


# --- config --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "allowed"),
    [
        ("0", "greater than 0"),
        ("-100", "greater than 0"),
        ("lots", "valid number"),
        ("inf", "finite number"),
    ],
)
def test_allocation_sus_must_be_a_positive_number(value: str, allowed: str) -> None:
    (problem,) = problems(allocationSus=value)
    assert problem.startswith(f"allocationSus = {value!r}: ") and allowed in problem


@pytest.mark.parametrize("value", ["0", "3651", "two weeks"])
def test_allocation_warn_days_is_a_whole_number_of_days(value: str) -> None:
    (problem,) = problems(allocationWarnDays=value)
    assert problem.startswith(f"allocationWarnDays = {value!r}: ")


def test_shelved_is_refused_for_magnum_by_key_value_and_what_is_allowed(tmp_path: Path) -> None:
    with pytest.raises(PlanError) as exc:
        plan_stack("workshop-magnum", stack_file=magnum_copy(tmp_path), overrides={"shelved": True})
    assert "shelved = True: k8s.engine magnum runs its nodes itself" in str(exc.value)
    assert "allowed with engine k3s and the other scenarios" in str(exc.value)


def test_the_keys_are_documented_with_their_defaults() -> None:
    fields = StackConfig.model_fields
    assert fields["allocation_sus"].default is None and fields["allocation_warn_days"].default == 14
    assert fields["shelved"].default is False


# --- the arithmetic ------------------------------------------------------------------------------


def test_dev_days_left_match_the_hand_computed_case() -> None:
    """dev is one m3.small: 2 vCPU × 1 SU = 2 SU/hour. 600 SU last 300 hours = 12.5 days from
    2025-03-01, so the balance is gone on 2025-03-13 (at noon); 12.5 < 14 days: a warning."""
    plan = plan_stack("dev", overrides={"allocationSus": "600"}, today=TODAY)
    a = plan["cost"]["allocation"]
    assert plan["cost"]["su_per_hour"] == 2
    assert a["balance_su"] == 600 and a["days_left"] == 12.5 and a["runs_out_on"] == "2025-03-13"
    assert a["as_of"] == "2025-03-01" and a["warn_days"] == 14
    (warning,) = a["warnings"]
    assert "lasts 12.5 days at 2 SU/hour" in warning and "fewer than allocationWarnDays 14" in warning


@pytest.mark.parametrize(
    ("balance", "warn_days", "warned"),
    [(671.0, 14, True), (672.0, 14, False), (672.0, 15, True), (10_000.0, 14, False)],
)
def test_the_warning_starts_below_allocation_warn_days(balance: float, warn_days: int, warned: bool) -> None:
    # 2 SU/hour: 14 days are 672 SU.
    a = burn.allocation(2, balance, warn_days, 8, 1, TODAY)
    assert bool([w for w in a["warnings"] if "allocationWarnDays" in w]) is warned


def test_a_workshop_that_does_not_fit_warns_and_one_that_fits_only_shelved_says_so() -> None:
    # 10 SU/hour, 3 days of 6 hours: 180 SU shelved between the days; 10 × (48 + 6) = 540 SU not.
    fits_shelved = burn.allocation(10, 400, 1, 6, 3, TODAY)
    assert fits_shelved["workshop_fits_shelved"] and not fits_shelved["workshop_fits_24x7"]
    assert any("fits (180 SU) only if the stack is shelved" in w for w in fits_shelved["warnings"])
    too_small = burn.allocation(10, 170, 1, 6, 3, TODAY)
    assert not too_small["workshop_fits_shelved"]
    assert any("3 days of 6 hours needs 180 SU" in w for w in too_small["warnings"])
    plenty = burn.allocation(10, 10_000, 1, 6, 3, TODAY)
    assert plenty["warnings"] == [] and plenty["workshop_fits_24x7"]


def test_no_balance_no_numbers_and_no_warning() -> None:
    a = burn.allocation(2, None, 14, 8, 1, TODAY)
    assert a["days_left"] is None and a["runs_out_on"] is None and a["warnings"] == []


def test_shelving_between_days_saves_the_hours_outside_the_workshop() -> None:
    """workshop-k8s at 120 SU/hour, 3 days of 6 hours: 24/7 is 120 × 72 = 8640 SU, shelved
    outside the hours 120 × 18 = 2160 SU: 6480 SU saved (75%), 2880 SU a whole day."""
    plan = plan_stack("workshop-k8s", today=TODAY, workshop_hours=6, workshop_days=3)
    c = plan["cost"]
    assert c["su_per_hour"] == 120 and c["su_for_workshop"] == 2160
    s = c["shelving"]
    assert (s["su_running_24x7"], s["su_shelved_between_days"], s["su_saved"]) == (8640, 2160, 6480)
    assert s["saved_percent"] == 75.0 and s["su_saved_per_day_shelved"] == 2880
    assert s["source"] == "https://docs.jetstream-cloud.org/general/access/"
    servers = sorted(r["name"] for r in plan["resources"] if r["type"] == INSTANCE)
    assert sorted(v["name"] for v in s["vms"] if v["shelvable"]) == servers
    assert any("shelved and unshelved as a whole" in caveat for caveat in s["caveats"])


def test_magnum_node_groups_are_not_shelved_by_the_stack(tmp_path: Path) -> None:
    plan = plan_stack(
        "workshop-magnum", stack_file=magnum_copy(tmp_path), overrides={"allocationSus": "9000"}
    )
    vms = plan["cost"]["shelving"]["vms"]
    assert vms and not any(v["shelvable"] for v in vms)
    a, c = plan["cost"]["allocation"], plan["cost"]
    if c["su_per_hour_at_max"] > c["su_per_hour"]:
        assert a["days_left_at_max"] == round(9000 / c["su_per_hour_at_max"] / 24, 1)


# --- make plan: text and JSON --------------------------------------------------------------------


def test_make_plan_prints_the_burn_and_writes_the_json_fields(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack_file = tmp_path / "Pulumi.burn.yaml"
    dev = (Path(__file__).resolve().parent.parent / "Pulumi.dev.yaml").read_text()
    stack_file.write_text(dev + "  jupyterhub-jetstream:allocationSus: 600\n")
    out_json = tmp_path / "plan.json"
    argv = ["--stack", "burn", "--stack-file", str(stack_file), "--out", str(tmp_path / "out")]
    argv += ["--json", str(out_json), "--hours", "6", "--days", "2", "--today", "2025-03-01"]
    assert plan_main(argv) == 0  # a warning, not an error
    text = capsys.readouterr().out
    assert "allocation: 600 SU lasts 12.5 days running 24/7 (from 2025-03-01: runs out on 2025-03-13)" in text
    assert "WARNING: allocationSus 600 SU lasts 12.5 days" in text
    assert "24 SU for a workshop of 2 days of 6 hours" in text
    assert "2 day(s) of 6 hours cost 24 SU with the stack shelved in between, 96 SU running 24/7" in text
    c: dict[str, Any] = json.loads(out_json.read_text())["cost"]
    assert {"allocation", "shelving", "shelved", "workshop_days", "su_per_hour_at_max"} <= set(c)
    assert set(c["allocation"]) == {
        "balance_su",
        "warn_days",
        "as_of",
        "days_left",
        "runs_out_on",
        "days_left_at_max",
        "workshop_fits_24x7",
        "workshop_fits_shelved",
        "warnings",
        "read",
    }
    assert c["allocation"]["read"] is None  # no allocationSusDate: allocationSus is today's
    assert c["allocation"]["days_left"] == 12.5 and c["shelving"]["su_saved"] == 72


def test_make_plan_refuses_hours_outside_a_day(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        plan_main(["--stack", "dev", "--hours", "25"])
    assert "at most 24" in capsys.readouterr().err


# --- shelved: true through Pulumi ----------------------------------------------------------------


@pytest.mark.parametrize("stack", ["dev", "workshop-k8s"])
def test_shelving_updates_every_server_in_place_and_leaves_the_volumes(
    stack: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = plan_stack(stack)
    after = plan_stack(stack, overrides={"shelved": True})
    servers = {r["name"] for r in before["resources"] if r["type"] == INSTANCE}
    assert {r["inputs"]["powerState"] for r in before["resources"] if r["type"] == INSTANCE} == {"active"}
    diff = diff_plans(before, after)
    assert {c.name: c.action for c in diff} == dict.fromkeys(servers, "update")
    assert all(set(c.changed) == {"powerState"} for c in diff)
    assert not [c for c in diff if c.type == VOLUME]
    assert after["cost"]["shelved"] is True
    # And back: unshelving is the same update the other way.
    assert {c.action for c in diff_plans(after, before)} == {"update"}
    assert diff_main(["--stack", stack, "--set", "shelved=true"]) == 0
    out = capsys.readouterr().out
    assert "powerState: active => shelved_offloaded" in out and "Steps that run again: none" in out
