"""Benchmark: time from a spawn request to a ready notebook on the local single-node swarm
(tests/e2e/swarm_local.py), for 1 and 10 users spawning at the same moment. Needs root,
docker.io and debootstrap, like the end-to-end test. Figures go into docs/swarm.md.

    python -m bench.swarm_spawn [--users 1 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time

from tests.e2e.swarm_local import (
    LocalSwarmHub,
    build_images,
    environment_ready,
    random_user,
    start_dockerd,
)

# Ten notebooks must fit one 2-vCPU machine at their reservations, and the hub must allow ten.
BENCH_STACK = {
    "concurrentUsers": 10,
    "swarm": {
        "workerCount": 1,
        "homeQuotaGb": 5,
        "userCpuReservation": 0.1,
        "userMemoryReservationGb": 0.125,
    },
}


def spawn_round(hub: LocalSwarmHub, users: list[str]) -> list[float]:
    for user in users:
        hub.expect(hub.api("POST", f"/users/{user}"), 201)
    barrier = threading.Barrier(len(users))
    seconds: dict[str, float] = {}
    errors: list[BaseException] = []

    def spawn(user: str) -> None:
        try:
            barrier.wait()
            start = time.perf_counter()
            # Polled once a second: ten clients polling faster slow the hub they measure.
            hub.start_server(user, timeout=300, poll_s=1.0)
            seconds[user] = time.perf_counter() - start
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=spawn, args=(u,)) for u in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for user in users:
        hub.stop_server(user, timeout=120)
        hub.expect(hub.api("DELETE", f"/users/{user}"), 204)
    if errors:
        raise errors[0]
    return [seconds[u] for u in users]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    reason = environment_ready()
    if reason:
        sys.exit(f"cannot run: {reason}")

    start_dockerd()
    image, timings = build_images()
    print(f"images: base {timings['base_image_s']:.1f}s, hub {timings['hub_image_s']:.1f}s (cached when 0)")
    hub = LocalSwarmHub.create(image, **BENCH_STACK)
    try:
        started = time.perf_counter()
        hub.start()
        print(f"hub service up and answering in {time.perf_counter() - started:.1f}s\n")
        print(f"{'users':>6} {'rounds':>7} {'median s':>9} {'p90 s':>7} {'max s':>7}")
        for count in args.users:
            samples: list[float] = []
            for _ in range(args.rounds):
                samples += spawn_round(hub, [random_user() for _ in range(count)])
            samples.sort()
            p90 = samples[min(len(samples) - 1, int(0.9 * len(samples)))]
            print(
                f"{count:6d} {args.rounds:7d} {statistics.median(samples):9.2f} {p90:7.2f} {samples[-1]:7.2f}"
            )
    finally:
        hub.close()


if __name__ == "__main__":
    main()
