"""Benchmark: `make plan` wall time and peak memory of each example stack against its floor:
importing, in a fresh interpreter, every SDK module (everything from site-packages) that the
stack's plan loads. Run with `make bench`; figures go into the README, not into a test.

    python -m bench.plan_time [--runs 7] [--stack dev ...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Run a plan in-process, then list every module it loaded from site-packages, in load order.
# pulumi, pulumi-openstack and pydantic load their submodules lazily, so importing only the
# top-level packages would understate what the SDKs cost a plan.
_LIST_SDK_MODULES = """
import json, runpy, site, sys
stack, out, listing = sys.argv[1:4]
sys.argv = ["planner", "--stack", stack, "--out", out]
try:
    runpy.run_module("planner", run_name="__main__", alter_sys=True)
except SystemExit as done:
    assert not done.code, f"plan of {stack} failed"
roots = tuple(site.getsitepackages())
names = [n for n, m in list(sys.modules.items()) if (getattr(m, "__file__", None) or "").startswith(roots)]
open(listing, "w").write(json.dumps(names))
"""

_IMPORT_ALL = """
import importlib, json, sys
failed = []
for name in json.load(open(sys.argv[1])):
    try:
        importlib.import_module(name)
    except Exception:
        failed.append(name)
assert not failed, f"could not import {failed}"
"""


def sdk_modules(stack: str, tmp: Path) -> Path:
    """A file listing the third-party modules a plan of `stack` loads."""
    listing = tmp / f"{stack}-modules.json"
    subprocess.run(
        [sys.executable, "-c", _LIST_SDK_MODULES, stack, str(tmp / f"{stack}-list"), str(listing)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return listing


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

    print(f"median and best of {args.runs} runs; the floor of a stack imports every module its plan loads")
    print("from site-packages (the SDKs), in the order the plan loads them")
    print(
        f"{'stack':18} {'SDK modules':>11} {'floor s':>8} {'plan s':>7} {'best s':>7} {'peak MiB':>9} {'× floor':>8}"
    )
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for stack in stacks:
            listing = sdk_modules(stack, tmp)
            modules = len(json.loads(listing.read_text()))
            floor = measure([sys.executable, "-c", _IMPORT_ALL, str(listing)], args.runs)
            argv = [sys.executable, "-m", "planner", "--stack", stack, "--out", str(tmp / stack)]
            cwd = Path.cwd()
            os.chdir(ROOT)
            try:
                result = measure(argv, args.runs)
            finally:
                os.chdir(cwd)
            print(
                f"{stack:18} {modules:>11} {floor[0]:8.3f} {result[0]:7.3f} {result[1]:7.3f} "
                f"{result[2]:9.0f} {result[0] / floor[0]:8.2f}"
            )


if __name__ == "__main__":
    main()
