"""Benchmark: what the users' environment (userEnvironment) costs where it could live. On the
root disk (the project's choice) every new or rebuilt server builds it again: the cost is the
build's time. On the data volume it would be built once and kept: the cost is its size there
(beside the homes), and the step's re-run on a rebuilt server with the environment in place.
Both measured with the rendered users-env script, pip from PyPI, in a scratch folder; sudo and
cloud-init are stood in (run as root; nothing boots). The figures go into the README.

    python -m bench.users_env [--packages numpy==2.1.3 ...] [--runs 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from renderers.user_env import UsersEnvSpec, render_users_env_script

ROOT = Path(__file__).resolve().parent.parent


def run_step(spec: UsersEnvSpec, bin_dir: Path) -> float:
    started = time.monotonic()
    result = subprocess.run(
        ["bash", "-c", render_users_env_script(spec)],
        env={"PATH": f"{bin_dir}:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(bin_dir.parent)},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"users-env failed:\n{result.stdout}{result.stderr}")
    return time.monotonic() - started


def size_mb(path: Path) -> float:
    out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True).stdout
    return int(out.split()[0]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", nargs="+", default=["numpy==2.1.3"])
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    builds, reruns, sizes = [], [], []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="jshub-bench-users-env-") as scratch:
            bin_dir = Path(scratch) / "stub-bin"
            bin_dir.mkdir()
            for name, body in {"sudo": 'exec "$@"', "cloud-init": "exit 0"}.items():
                (bin_dir / name).write_text(f"#!/bin/bash\n{body}\n")
                (bin_dir / name).chmod(0o755)
            spec = UsersEnvSpec(root=f"{scratch}/users-env", packages=tuple(args.packages))
            builds.append(run_step(spec, bin_dir))
            reruns.append(run_step(spec, bin_dir))
            sizes.append(size_mb(Path(spec.env_dir())))
    print(
        json.dumps(
            {
                "packages": args.packages,
                "runs": args.runs,
                "build_s": [round(b, 1) for b in builds],
                "build_median_s": round(statistics.median(builds), 1),
                "rerun_with_env_in_place_s": round(statistics.median(reruns), 2),
                "size_mb": round(statistics.median(sizes), 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
