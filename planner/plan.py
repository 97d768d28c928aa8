"""Plan one stack: load its file, run the program under mocks, build the plan dict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi

from planner import cost, estimate, quota, report, stackfile
from planner.harness import main_program, run_program
from policy.rules import check_plan
from stackconfig import parse

PROJECT_DIR = Path(__file__).resolve().parent.parent


class PlanError(Exception):
    """The stack cannot be planned: no such stack file, or invalid configuration."""


def plan_stack(
    stack: str,
    *,
    project_dir: Path = PROJECT_DIR,
    stack_file: Path | None = None,
    overrides: dict[str, Any] | None = None,
    workshop_hours: float = 8,
    check_quotas: bool = True,
) -> dict[str, Any]:
    try:
        loaded = stackfile.load(project_dir, stack, stack_file, overrides)
    except FileNotFoundError as exc:
        raise PlanError(str(exc)) from None
    try:
        recording = run_program(
            main_program(project_dir), loaded.project, loaded.stack, loaded.config, loaded.secret_keys
        )
    except pulumi.RunError as exc:
        raise PlanError(f"stack {stack!r}: {exc}") from None
    cfg = parse(loaded.config, secret_keys=loaded.secret_keys, namespace=loaded.project)
    plan = report.build_plan(loaded.stack, cfg.scenario, recording)
    # A single VM shares its cores among users; only memory is set aside for each.
    cpu_guarantee = 0.0 if cfg.scenario == "single" else cfg.user_cpu
    plan["cost"] = cost.cost(
        plan["resources"], cfg.concurrent_users, cpu_guarantee, cfg.user_memory_gb, workshop_hours
    )
    plan["estimate"] = estimate.estimate(plan["resources"])
    # The policy pack's own rules, on the planned inputs (secrets known by their markers).
    plan["policy_violations"] = [
        {"rule": v.rule, "resource": v.resource, "message": v.message, "enforcement": v.enforcement}
        for v in check_plan(plan["resources"], allow_world_ssh=cfg.allow_ssh_from_anywhere)
    ]
    lines = quota.check(plan["resources"], cfg.quotas)
    plan["quotas"] = [{"key": q.key, "needed": q.needed, "quota": q.quota, "fits": q.fits} for q in lines]
    over = [quota.describe(q) for q in lines if not q.fits]
    if check_quotas and over:
        raise PlanError(f"stack {stack!r} does not fit the allocation:\n  - " + "\n  - ".join(over))
    return plan
