"""Benchmark: time from a spawn request to a ready notebook on the local single-node swarm
(tests/e2e/swarm_local.py), for 1 and 10 users spawning at the same moment, against a floor
measured in the same run: the same notebook server (jupyterhub-singleuser and JupyterLab at the
hub requirements' pins) started by LocalProcessSpawner from the single hub's rendered config on
loopback, as many at once. What the swarm adds is the ratio; what is left is the machine.
Needs root, docker.io, debootstrap, adduser and configurable-http-proxy, like the end-to-end
tests. Figures go into docs/swarm.md.

    python -m bench.swarm_spawn [--users 1 10] [--rounds 3] [--no-swarm | --no-floor]

A notebook is ready when the hub reports it ready and it answers through the proxy.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import threading
import time
from collections.abc import Callable

from tests.e2e.conftest import STACK as SINGLE_STACK
from tests.e2e.conftest import local_hub, random_username
from tests.e2e.swarm_local import (
    LocalSwarmHub,
    build_images,
    environment_ready,
    random_user,
    start_dockerd,
)
from tests.hubclient import HubClient

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

# The floor: the single hub's rendered config, sized for ten, with LocalProcessSpawner named
# explicitly (whatever the single hub's own spawner is) so that it starts the bare process.
FLOOR_STACK = {**SINGLE_STACK, "concurrentUsers": 10, "hubFlavor": "m3.quad"}
LOCAL_PROCESS = 'c.JupyterHub.spawner_class = "jupyterhub.spawner.LocalProcessSpawner"\n'


def spawn_round(hub: HubClient, users: list[str]) -> list[float]:
    for user in users:
        # Twice at most: on the single hub this makes a Unix account, and another job making one
        # at the same moment can take the UID adduser picked.
        if hub.api("POST", f"/users/{user}").status_code != 201:
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
            hub.wait_for(
                lambda: hub.user_api(user, "GET", "/status").status_code == 200,
                f"{user}'s server to answer through the proxy",
                60,
                1.0,
            )
            seconds[user] = time.perf_counter() - start
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=spawn, args=(u,)) for u in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Printed as measured: on a loaded machine the stops below may time out.
    print(f"  {len(users)} at once: {sorted(round(v, 2) for v in seconds.values())}", flush=True)
    for user in users:
        hub.stop_server(user, timeout=300)
        hub.expect(hub.api("DELETE", f"/users/{user}"), 204)
    if errors:
        raise errors[0]
    return [seconds[u] for u in users]


def measure(
    hub: HubClient, counts: list[int], rounds: int, names: Callable[[], str]
) -> dict[int, list[float]]:
    samples: dict[int, list[float]] = {}
    for count in counts:
        samples[count] = []
        for _ in range(rounds):
            samples[count] += spawn_round(hub, [names() for _ in range(count)])
    return samples


def floor(counts: list[int], rounds: int) -> dict[int, list[float]]:
    proxy_command = shutil.which("configurable-http-proxy")
    if proxy_command is None:
        sys.exit("cannot measure the floor: configurable-http-proxy is not installed")
    with local_hub(FLOOR_STACK, proxy_command, extra_config=LOCAL_PROCESS) as hub:
        return measure(hub, counts, rounds, random_username)


def swarm(counts: list[int], rounds: int) -> dict[int, list[float]]:
    start_dockerd()
    image, timings = build_images()
    print(f"images: base {timings['base_image_s']:.1f}s, hub {timings['hub_image_s']:.1f}s (cached when 0)")
    hub = LocalSwarmHub.create(image, **BENCH_STACK)
    try:
        started = time.perf_counter()
        hub.start()
        print(f"hub service up and answering in {time.perf_counter() - started:.1f}s")
        return measure(hub, counts, rounds, random_user)
    finally:
        hub.close()


def row(label: str, count: int, samples: list[float], load: tuple[float, float]) -> str:
    samples = sorted(samples)
    p90 = samples[min(len(samples) - 1, int(0.9 * len(samples)))]
    return (
        f"{label:28} {count:6d} {len(samples):8d} {statistics.median(samples):9.2f} {p90:7.2f} "
        f"{samples[-1]:7.2f}   {load[0]:.2f} -> {load[1]:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-swarm", action="store_true", help="measure the floor only")
    parser.add_argument("--no-floor", action="store_true", help="measure the swarm only")
    args = parser.parse_args()
    reason = environment_ready()
    if reason:
        sys.exit(f"cannot run: {reason}")

    results: dict[str, tuple[dict[int, list[float]], tuple[float, float]]] = {}
    for label, part, skip in (
        ("LocalProcessSpawner (floor)", floor, args.no_floor),
        ("local swarm", swarm, args.no_swarm),
    ):
        if skip:
            continue
        before = os.getloadavg()[0]
        samples = part(args.users, args.rounds)
        results[label] = (samples, (before, os.getloadavg()[0]))
    print(
        f"\nrequest to ready on {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    print(f"{'spawner':28} {'users':>6} {'samples':>8} {'median s':>9} {'p90 s':>7} {'max s':>7}   loadavg")
    for label, (samples, load) in results.items():
        for count, values in samples.items():
            print(row(label, count, values, load))
    if len(results) == 2:
        floor_samples, _ = results["LocalProcessSpawner (floor)"]
        swarm_samples, _ = results["local swarm"]
        for count in args.users:
            ratio = statistics.median(swarm_samples[count]) / statistics.median(floor_samples[count])
            print(f"{count} at once: swarm / floor = {ratio:.2f}")


if __name__ == "__main__":
    main()
