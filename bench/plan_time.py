"""Benchmark: `make plan` wall time and peak memory against the floor of importing the SDKs
the planner uses. Run with `make bench`; figures go into the README, not into a test.

    python -m bench.plan_time [--runs 7] [--stack dev ...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SDK_IMPORTS = (
    "import pulumi, pulumi_openstack, pulumi_command, pulumi_tls, pulumi_random, pydantic, jinja2, yaml"
)


def measure(argv: list[str], runs: int) -> tuple[float, float, float]:
    """Median and best wall seconds, and peak RSS (MiB) of the command over `runs` runs."""
    times, peaks = [], []
    for _ in range(runs):
        start = time.perf_counter()
        # /usr/bin/time is not always present; read the child's rusage instead.
        pid = os.fork()
        if pid == 0:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.execv(argv[0], argv)
        _, status, usage = os.wait4(pid, 0)
        times.append(time.perf_counter() - start)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"command failed: {' '.join(argv)}")
        peaks.append(usage.ru_maxrss / 1024)
    return statistics.median(times), min(times), max(peaks)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--stack", action="append", help="stacks to plan (default: every Pulumi.*.yaml)")
    args = parser.parse_args()
    stacks = args.stack or sorted(p.name[7:-5] for p in ROOT.glob("Pulumi.*.yaml"))

    floor = measure([sys.executable, "-c", SDK_IMPORTS], args.runs)
    print(f"{'what':32} {'median s':>9} {'best s':>8} {'peak MiB':>9} {'× floor':>8}")
    print(f"{'import the SDKs (floor)':32} {floor[0]:9.3f} {floor[1]:8.3f} {floor[2]:9.0f} {1:8.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        for stack in stacks:
            argv = [sys.executable, "-m", "planner", "--stack", stack, "--out", f"{tmp}/{stack}"]
            subprocess.run(argv, cwd=ROOT, check=True, capture_output=True)  # warm the caches
            cwd = Path.cwd()
            os.chdir(ROOT)
            try:
                result = measure(argv, args.runs)
            finally:
                os.chdir(cwd)
            print(
                f"{'make plan STACK=' + stack:32} {result[0]:9.3f} {result[1]:8.3f} {result[2]:9.0f} {result[0] / floor[0]:8.2f}"
            )


if __name__ == "__main__":
    main()
