"""`python -m planner --stack dev [--json plan.json]`: plan a stack offline.

Exit status: 0 planned; 1 planned, but a mandatory policy rule is violated; 2 the stack cannot
be planned (invalid configuration, or it does not fit the allocation's quotas)."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from datetime import date
from pathlib import Path
from typing import Any

from planner import backup, burn, diagram, monitoring, report, state
from planner.plan import PROJECT_DIR, PlanError, plan_on, plan_stack


def _quota_use(q: dict[str, Any]) -> str:
    """`cores 2/150`; a quota the allocation leaves unset is shown as unchecked, not as None."""
    limit = "unchecked" if q["quota"] is None else f"{q['quota']:g}"
    return f"{q['key']} {q['needed']:g}/{limit}"


def _workshop(c: dict[str, Any]) -> str:
    if c["workshop_days"] == 1:
        return f"{c['workshop_hours']:g} hours"
    return f"{c['workshop_days']} days of {c['workshop_hours']:g} hours"


def _positive(text: str) -> float:
    value = float(text)
    if not 0 < value <= 24:
        raise argparse.ArgumentTypeError(f"{text}: hours of a workshop day, more than 0 and at most 24")
    return value


def _days(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 366:
        raise argparse.ArgumentTypeError(f"{text}: days of a workshop, 1 to 366")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make plan", description=__doc__)
    parser.add_argument("--stack", required=True, help="stack name: reads Pulumi.<stack>.yaml")
    parser.add_argument("--json", type=Path, help="also write the machine-readable plan here")
    parser.add_argument(
        "--export",
        type=Path,
        metavar="FILE",
        help="also write the plan as `pulumi stack export` would once deployed (for make diff STATE=)",
    )
    parser.add_argument("--out", type=Path, help="folder for rendered files (default plan/<stack>)")
    parser.add_argument("--project-dir", type=Path, default=PROJECT_DIR)
    parser.add_argument("--stack-file", type=Path, help="read config from this file instead")
    parser.add_argument(
        "--hours", type=_positive, default=8, help="hours of use per workshop day (default 8)"
    )
    parser.add_argument("--days", type=_days, default=1, help="days of the workshop (default 1)")
    parser.add_argument(
        "--today", type=date.fromisoformat, help="count the allocation from this date (YYYY-MM-DD)"
    )
    args = parser.parse_args(argv)

    try:
        plan = plan_stack(
            args.stack,
            project_dir=args.project_dir,
            stack_file=args.stack_file,
            workshop_hours=args.hours,
            workshop_days=args.days,
            today=args.today,
        )
    except PlanError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    scenario = plan["scenario"]
    out_dir = args.out or args.project_dir / "plan" / args.stack
    shutil.rmtree(out_dir, ignore_errors=True)
    # A plan with no VM (Magnum) renders no file, and nothing else makes the folder.
    out_dir.mkdir(parents=True, exist_ok=True)
    files = report.write_artifacts(plan, out_dir)
    (out_dir / "architecture.svg").write_text(diagram.render_svg(plan))
    (out_dir / "plan.json").write_text(json.dumps(plan, indent=2, sort_keys=False) + "\n")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(plan, indent=2) + "\n")

    if args.export:
        args.export.parent.mkdir(parents=True, exist_ok=True)
        # As the stack is once this plan is deployed: planned again on what it then holds.
        deployed = plan_on(
            plan,
            args.stack,
            project_dir=args.project_dir,
            stack_file=args.stack_file,
            workshop_hours=args.hours,
            workshop_days=args.days,
            today=args.today,
        )
        args.export.write_text(json.dumps(state.export_plan(deployed, plan["project"]), indent=2) + "\n")

    custom = [r for r in plan["resources"] if r["custom"]]
    print(f"Plan for stack {args.stack!r} (scenario {scenario}): {len(custom)} cloud resources\n")
    print(report.tree(plan))
    print()
    for key, value in plan["outputs"].items():
        print(f"output {key}: {value}")
    c = plan["cost"]
    print(
        f"\nCost: {c['su_per_hour']:g} SU/hour while running: {c['su_per_day']:g} SU/day, "
        f"{c['su_for_workshop']:g} SU for a workshop of {_workshop(c)}, "
        f"{c['su_per_user_hour']:g} SU per concurrent user-hour"
    )
    if c["gpu_su_per_hour"]:
        # Two balances: Jetstream2 (CPU) and Jetstream2 GPU are separate ACCESS resources.
        for kind in ("cpu", "gpu"):
            print(
                f"  {kind.upper()} SUs: {c[f'{kind}_su_per_hour']:g}/hour, {c[f'{kind}_su_per_day']:g}/day, "
                f"{c[f'{kind}_su_for_workshop']:g} for the workshop"
            )
        for resource, spend in c["by_resource"].items():
            print(f"  from the allocation's {resource} resource: {spend['su_per_hour']:g} SU/hour")
    for i in c["instances"]:
        count = f"{i['count']} × " if i["count"] != 1 else ""
        bound = f" (the autoscaler may grow it to {i['max_count']})" if i["max_count"] > i["count"] else ""
        print(f"  {i['name']}: {count}{i['flavor']} {i['su_per_hour']:g} SU/hour{bound}")
    floor = ", ".join(f"{n} × {f}" for f, n in sorted(c["floor_flavors"].items())) or "no VM"
    print(f"  floor for the same users: {c['floor_su_per_hour']:g} SU/hour ({floor}); {c['floor_basis']}")
    if c["floor_gpu_su_per_hour"]:
        print(f"    of which GPU: {c['floor_gpu_su_per_hour']:g} SU/hour; {c['floor_gpu_basis']}")
    if c["shelved"]:
        print("  shelved now (shelved: true): the servers burn 0 SU/hour until unshelved")
    print("\n".join(burn.lines(c)))
    e = plan["estimate"]
    print(
        f"\nTime to a working hub: about {e['critical_path_s'] / 60:.0f} min on the critical path "
        f"({e['serial_s'] / 60:.0f} min if every step ran in turn)"
    )
    print("  critical path: " + " -> ".join(e["critical_path"]))
    for wait in e["explicit_waits_on_critical_path"]:
        print(f"  ! {wait['to']} waits for {wait['from']} without a data dependency (+{wait['extra_s']} s)")
    print("\nQuotas: " + ", ".join(_quota_use(q) for q in plan["quotas"]))
    print("\n" + "\n".join(backup.lines(plan["backup"])))
    print("\n" + "\n".join(monitoring.lines(plan["monitoring"])))
    print(
        f"\nRendered files ({len(files)}) under {out_dir.relative_to(Path.cwd()) if out_dir.is_relative_to(Path.cwd()) else out_dir}/"
    )
    print(f"\nNote: {report.PLACEHOLDER_NOTE}")
    violations = plan["policy_violations"]
    if violations:
        print(f"\nPolicy violations ({len(violations)}):", file=sys.stderr)
        for v in violations:
            print(f"  {v['enforcement']}: {v['rule']}: {v['resource']}: {v['message']}", file=sys.stderr)
    else:
        print("\nPolicy: no violation of the policy pack's rules (policy/).")
    if plan["placeholders"]:
        print(
            f"\nBefore `pulumi up`: the stack file still holds example values marked REPLACE_ME for "
            f"{', '.join(plan['placeholders'])}. Set yours (`pulumi config set`, with --path for "
            "nested keys and --secret for secrets)."
        )
    return 1 if any(v["enforcement"] == "mandatory" for v in violations) else 0


if __name__ == "__main__":
    sys.exit(main())
