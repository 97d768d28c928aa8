"""How long `make plan STACK=workshop-k8s` takes as the cluster grows: the planner's own steps
(load the stack, run the real program under mocks, build the plan, write its JSON and rendered
files) for the workshop stack with its workerCount set to 3, 30 and 300.

    .venv/bin/python -m bench.k8s_plan_time [--workers 3 30 300] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from planner import report, stackfile
from planner.harness import main_program, run_program

PROJECT_DIR = Path(__file__).resolve().parent.parent
STACK = "workshop-k8s"


def plan_once(workers: int, out_dir: Path) -> tuple[float, int]:
    """Seconds for one plan with `workers` workers, and the number of resources it holds."""
    start = time.perf_counter()
    stack = stackfile.load(PROJECT_DIR, STACK)
    key = f"{stack.project}:k8s"
    section = json.loads(stack.config[key])
    section["workerCount"] = workers
    config = {**stack.config, key: json.dumps(section)}
    recording = run_program(main_program(PROJECT_DIR), stack.project, stack.stack, config, stack.secret_keys)
    plan = report.build_plan(stack.stack, "k8s", recording)
    report.write_artifacts(plan, out_dir)
    (out_dir / "plan.json").write_text(json.dumps(plan, indent=2) + "\n")
    return time.perf_counter() - start, len(plan["resources"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.k8s_plan_time", description=__doc__)
    parser.add_argument("--workers", type=int, nargs="+", default=[3, 30, 300])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    rows = []
    for workers in args.workers:
        times, resources = [], 0
        for i in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                seconds, resources = plan_once(workers, Path(tmp) / f"run{i}")
            times.append(seconds)
        rows.append((workers, resources, statistics.median(times), min(times), max(times)))

    print(f"make plan STACK={STACK}, median of {args.repeat} runs (Python {sys.version.split()[0]})")
    print(f"{'workers':>8} {'resources':>10} {'median s':>9} {'min s':>7} {'max s':>7}")
    for workers, resources, median, low, high in rows:
        print(f"{workers:>8} {resources:>10} {median:>9.2f} {low:>7.2f} {high:>7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
