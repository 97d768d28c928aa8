"""`python -m planner --stack dev [--json plan.json]`: plan a stack offline.

Exit status: 0 planned; 2 the stack's configuration is invalid (nothing would be created)."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import pulumi

from planner import report, stackfile
from planner.harness import main_program, run_program

PROJECT_DIR = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make plan", description=__doc__)
    parser.add_argument("--stack", required=True, help="stack name: reads Pulumi.<stack>.yaml")
    parser.add_argument("--json", type=Path, help="also write the machine-readable plan here")
    parser.add_argument("--out", type=Path, help="folder for rendered files (default plan/<stack>)")
    parser.add_argument("--project-dir", type=Path, default=PROJECT_DIR)
    parser.add_argument("--stack-file", type=Path, help="read config from this file instead")
    args = parser.parse_args(argv)

    try:
        stack = stackfile.load(args.project_dir, args.stack, args.stack_file)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        recording = run_program(
            main_program(args.project_dir), stack.project, stack.stack, stack.config, stack.secret_keys
        )
    except pulumi.RunError as exc:
        print(f"error: stack {args.stack!r}: {exc}", file=sys.stderr)
        return 2

    scenario = stack.config.get(f"{stack.project}:scenario", "?")
    plan = report.build_plan(stack.stack, scenario, recording)
    out_dir = args.out or args.project_dir / "plan" / stack.stack
    shutil.rmtree(out_dir, ignore_errors=True)
    files = report.write_artifacts(plan, out_dir)
    (out_dir / "plan.json").write_text(json.dumps(plan, indent=2, sort_keys=False) + "\n")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(plan, indent=2) + "\n")

    custom = [r for r in plan["resources"] if r["custom"]]
    print(f"Plan for stack {stack.stack!r} (scenario {scenario}): {len(custom)} cloud resources\n")
    print(report.tree(plan))
    print()
    for key, value in plan["outputs"].items():
        print(f"output {key}: {value}")
    c = plan["cost"]
    print(
        f"\nCost: {c['su_per_hour']:g} SU/hour ({c['su_per_day']:g} SU/day, "
        f"{c['su_per_30_days']:g} SU per 30 days) while running"
    )
    for i in c["instances"]:
        print(f"  {i['name']}: {i['flavor']} {i['su_per_hour']:g} SU/hour")
    print(
        f"\nRendered files ({len(files)}) under {out_dir.relative_to(Path.cwd()) if out_dir.is_relative_to(Path.cwd()) else out_dir}/"
    )
    print(f"\nNote: {report.PLACEHOLDER_NOTE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
