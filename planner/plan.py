"""Plan one stack: load its file, run the program under mocks, build the plan dict."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pulumi

from catalog import FLAVORS, su
from planner import backup, burn, cost, estimate, monitoring, quota, report, stackfile
from planner.harness import main_program, run_program
from planner.mocks import Stored
from policy.rules import check_plan
from stackconfig import StackConfig, parse, sizing
from stacks.deployed import DeployedResource

PROJECT_DIR = Path(__file__).resolve().parent.parent


class PlanError(Exception):
    """The stack cannot be planned: no such stack file, or invalid configuration."""


def user_guarantees(cfg: StackConfig) -> tuple[float, float] | None:
    """What each user is guaranteed on Jetstream2 (vCPU, GB): the floor packs these, nothing
    else. None when users' servers do not run on Jetstream2."""
    if cfg.scenario == "hpc":
        return None
    if cfg.k8s is not None and cfg.scenario == "k8s":
        return cfg.k8s.user_cpu_guarantee, cfg.k8s.user_memory_guarantee_gb
    if cfg.scenario == "single":
        return 0.0, cfg.user_memory_gb  # one VM shares its cores; memory is set aside
    if cfg.scenario == "swarm" and cfg.swarm is not None:
        # The swarm scheduler packs workers by the reservations; userCpu and userMemoryGb are
        # each container's limits, which notebooks may reach only while others idle.
        return cfg.swarm.user_cpu_reservation, cfg.swarm.user_memory_reservation_gb
    return cfg.user_cpu, cfg.user_memory_gb


def gpu_demand(cfg: StackConfig) -> cost.GpuDemand | None:
    """Users whose servers need a GPU at once. A single hub on a GPU flavor: every user, all
    sharing the VM's one GPU, each with at least MIN_GPU_MEMORY_PER_USER_GB of it. k8s: one
    server per GPU seat, each with whole devices (the device plugin shares none)."""
    if cfg.scenario == "single" and FLAVORS[cfg.hub_flavor].gpu:
        return cost.GpuDemand(
            users=cfg.concurrent_users,
            cpu=0.0,
            mem_gb=cfg.user_memory_gb,
            gpu_memory_gb=sizing.MIN_GPU_MEMORY_PER_USER_GB,
            users_per_gpu=cfg.concurrent_users,
            basis=f"{cfg.concurrent_users} users × ({cfg.user_memory_gb:g} GB, "
            f"{sizing.MIN_GPU_MEMORY_PER_USER_GB:g} GB of GPU memory) sharing one GPU flavor",
        )
    if cfg.scenario == "k8s" and cfg.k8s is not None and sizing.gpu_seats(cfg.k8s):
        seats = sizing.gpu_seats(cfg.k8s)
        cpu, mem = sizing.gpu_user_guarantee(cfg.k8s)
        return cost.GpuDemand(
            users=seats,
            cpu=cpu + sizing.NODE_RESERVED_CPU,
            mem_gb=mem + sizing.NODE_RESERVED_MEMORY_GB,
            gpu_memory_gb=0.0,
            users_per_gpu=1,
            basis=f"{seats} GPU servers × ({cpu:g} vCPU, {mem:g} GB guaranteed, one GPU each, on a node "
            "of their own with its reserve) packed onto GPU flavors",
        )
    return None


def plan_stack(
    stack: str,
    *,
    project_dir: Path = PROJECT_DIR,
    stack_file: Path | None = None,
    overrides: dict[str, Any] | None = None,
    workshop_hours: float = 8,
    workshop_days: int = 1,
    today: date | None = None,
    check_quotas: bool = True,
    image_ids: Mapping[str, str] | None = None,
    deployed: Iterable[DeployedResource] | None = (),
    stored: Mapping[tuple[str, str], Stored] | None = None,
) -> dict[str, Any]:
    """`image_ids`: image name -> the ID the (mocked) cloud resolves it to, where not the
    placeholder: a test's way to move the image behind an unchanged name. `today`: the date the
    allocation's balance is counted from (default: the machine's date). `deployed`: the (type,
    name) of what the stack already holds (`deployed_resources` of an earlier plan); empty for a
    first `pulumi up`, None for a stack whose state cannot be read. `stored`: the IDs and
    outputs of a deployed state (planner.state), which the program is then run on."""
    try:
        loaded = stackfile.load(project_dir, stack, stack_file, overrides)
    except FileNotFoundError as exc:
        raise PlanError(str(exc)) from None
    try:
        recording = run_program(
            main_program(project_dir),
            loaded.project,
            loaded.stack,
            loaded.config,
            loaded.secret_keys,
            image_ids,
            deployed,
            stored,
        )
    except pulumi.RunError as exc:
        raise PlanError(f"stack {stack!r}: {exc}") from None
    cfg = parse(loaded.config, secret_keys=loaded.secret_keys, namespace=loaded.project)
    plan = report.build_plan(loaded.stack, cfg.scenario, recording)
    plan["project"] = loaded.project
    plan["placeholders"] = loaded.placeholders
    plan["deployed_resources"] = None if deployed is None else len(set(deployed))
    plan["warnings"] = recording.warnings
    c = cost.cost(
        plan["resources"],
        cfg.concurrent_users,
        user_guarantees(cfg),
        workshop_hours,
        workshop_days,
        gpu=gpu_demand(cfg),
    )
    c["shelved"] = cfg.shelved
    today = today or date.today()
    balance = cfg.allocation_sus
    if balance is not None and cfg.allocation_sus_date is not None:
        # Read on an earlier day: what the stack has burnt since, running, is gone.
        start_of_today = datetime.combine(today, datetime.min.time(), UTC)
        balance = su.balance_at(balance, cfg.allocation_sus_date, c["cpu_su_per_hour"], start_of_today)
    # Jetstream2 GPU is a balance of its own: allocationSus pays the other flavors' SUs only.
    c["allocation"] = burn.allocation(
        c["cpu_su_per_hour"],
        balance,
        cfg.allocation_warn_days,
        workshop_hours,
        workshop_days,
        today,
        max_su_per_hour=c["cpu_su_per_hour_at_max"],
    )
    c["allocation_gpu"] = burn.allocation(
        c["gpu_su_per_hour"],
        cfg.allocation_gpu_sus,
        cfg.allocation_warn_days,
        workshop_hours,
        workshop_days,
        today,
        max_su_per_hour=c["gpu_su_per_hour_at_max"],
        key="allocationGpuSus",
    )
    c["allocation"]["read"] = (
        None
        if cfg.allocation_sus_date is None
        else {"balance_su": cfg.allocation_sus, "on": cfg.allocation_sus_date.isoformat()}
    )
    c["shelving"] = burn.shelving(
        c["instances"], c["su_per_hour"], workshop_hours, workshop_days, cfg.scenario
    )
    plan["cost"] = c
    plan["estimate"] = estimate.estimate(plan["resources"])
    plan["backup"] = backup.report(cfg, plan["resources"])
    plan["monitoring"] = monitoring.report(cfg, plan["resources"])
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


def deployed_resources(plan: dict[str, Any]) -> list[DeployedResource]:
    """What a stack holds once `plan` is deployed: the (type, name) of each of its resources."""
    return sorted({(r["type"], r["name"]) for r in plan["resources"]})


def deployed_plan(stack: str, **kwargs: Any) -> dict[str, Any]:
    """The stack as deployed: planned once as a first `pulumi up` (nothing exists yet), then
    again as a stack that holds what that first one creates, as `make diff`'s before. `kwargs`
    as for plan_stack (both plans take them)."""
    fresh = plan_stack(stack, **kwargs)
    return plan_stack(stack, deployed=deployed_resources(fresh), **kwargs)


def plan_on(before: dict[str, Any], stack: str, **kwargs: Any) -> dict[str, Any]:
    """`stack` (with `kwargs` as for plan_stack: the change) planned on the deployed `before`:
    as a stack that holds what `before` holds."""
    return plan_stack(stack, deployed=deployed_resources(before), **kwargs)
