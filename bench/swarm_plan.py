"""Benchmark: `make plan STACK=persistent-swarm` wall time as the swarm grows (5, 50, 500
workers by default). Each run is a fresh process, as `make plan` is; the figures go into
docs/swarm.md, never into a test.

    python -m bench.swarm_plan [--workers 5 50 500] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STACK = "persistent-swarm"


def plan_once(workers: int, out: Path) -> int:
    """Plan persistent-swarm with `workers` workers, as `python -m planner` does; return the
    number of resources. Runs in the child process."""
    from planner import report, stackfile
    from planner.harness import main_program, run_program

    stack = stackfile.load(ROOT, STACK)
    key = f"{stack.project}:swarm"
    swarm = json.loads(stack.config[key])
    swarm["workerCount"] = workers
    config = {**stack.config, key: json.dumps(swarm)}
    recording = run_program(main_program(ROOT), stack.project, stack.stack, config, stack.secret_keys)
    plan = report.build_plan(stack.stack, "swarm", recording)
    report.write_artifacts(plan, out)
    (out / "plan.json").write_text(json.dumps(plan, indent=2) + "\n")
    return len(plan["resources"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, nargs="+", default=[5, 50, 500])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child is not None:
        with tempfile.TemporaryDirectory() as tmp:
            print(plan_once(args.child, Path(tmp)))
        return

    print(f"{'workers':>8} {'resources':>10} {'median s':>9} {'best s':>8} {'ms/worker':>10}")
    rows = []
    for workers in args.workers:
        times = []
        count = 0
        for _ in range(args.runs):
            start = time.perf_counter()
            result = subprocess.run(
                [sys.executable, "-m", "bench.swarm_plan", "--child", str(workers)],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            )
            times.append(time.perf_counter() - start)
            count = int(result.stdout.strip().splitlines()[-1])
        median = statistics.median(times)
        rows.append((workers, median))
        print(f"{workers:8d} {count:10d} {median:9.2f} {min(times):8.2f} {1000 * median / workers:10.1f}")
    if len(rows) >= 2:
        (w0, t0), (w1, t1) = rows[0], rows[-1]
        print(f"\nmarginal cost per worker between {w0} and {w1}: {1000 * (t1 - t0) / (w1 - w0):.1f} ms")


if __name__ == "__main__":
    main()
