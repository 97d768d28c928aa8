"""SUs: what the plan burns while running, and the floor for the same users.

Jetstream2 charges a running instance its flavor's vCPUs × SU rate per hour; volumes, floating
IPs and shelved instances cost no SUs (docs.jetstream-cloud.org/general/instance-flavors)."""

from __future__ import annotations

import math
from functools import cache
from typing import Any

from catalog import FLAVORS, Flavor
from planner.magnum import node_pools

INSTANCE = "openstack:compute/instance:Instance"


def users_per_vm(flavor: Flavor, cpu: float, mem_gb: float) -> int:
    """How many users' guarantees one VM of this flavor holds (no user spans two VMs)."""
    by_cpu = math.floor(flavor.vcpus / cpu + 1e-9) if cpu > 0 else math.inf
    return int(min(by_cpu, math.floor(flavor.ram_gb / mem_gb + 1e-9)))


def floor_su_per_hour(users: int, cpu: float, mem_gb: float) -> tuple[float, dict[str, int]]:
    """The fewest SUs per hour whose VMs cover `users` guarantees of (cpu, mem_gb), packing
    users onto CPU flavors (exact, by dynamic programming over the user count)."""
    options = [(f, users_per_vm(f, cpu, mem_gb)) for f in FLAVORS.values() if f.gpu_fraction == 0]
    options = [(f, n) for f, n in options if n > 0]
    if not options:
        raise ValueError(f"no Jetstream2 flavor holds one user of {cpu:g} vCPU and {mem_gb:g} GB")

    @cache
    def best(n: int) -> tuple[float, tuple[str, ...]]:
        if n <= 0:
            return 0.0, ()
        return min(
            ((f.su_per_hour + best(n - per)[0], (f.name, *best(n - per)[1])) for f, per in options),
            key=lambda x: x[0],
        )

    for n in range(0, users + 1, 50):  # fill the cache bottom-up: no deep recursion
        best(n)
    total, names = best(users)
    mix: dict[str, int] = {}
    for name in names:
        mix[name] = mix.get(name, 0) + 1
    return total, mix


def cost(
    resources: list[dict[str, Any]],
    users: int,
    guarantee: tuple[float, float] | None,
    hours: float,
    days: int = 1,
) -> dict[str, Any]:
    """`guarantee` is each user's (vCPU, GB) on Jetstream2, or None when users' servers run
    elsewhere (batch jobs on an HPC system are charged to that system's allocation). A workshop
    is `days` days of `hours` hours, the stack running only then."""
    instances = []
    for r in resources:
        if r["type"] != INSTANCE or not r["custom"]:
            continue
        flavor = FLAVORS[r["inputs"]["flavorName"]]
        instances.append(
            {
                "name": r["name"],
                "flavor": flavor.name,
                "count": 1,
                "max_count": 1,
                "su_per_hour": flavor.su_per_hour,
                "magnum": False,
            }
        )
    # A Magnum cluster's nodes cost what they run now; the autoscaler's bound is reported beside.
    for pool in node_pools(resources):
        flavor = FLAVORS[pool.flavor]
        instances.append(
            {
                "name": pool.name,
                "flavor": flavor.name,
                "count": pool.count,
                "max_count": pool.max_count,
                "su_per_hour": flavor.su_per_hour * pool.count,
                "magnum": True,
            }
        )
    per_hour = sum(i["su_per_hour"] for i in instances)
    mix: dict[str, int] = {}
    if guarantee is None:
        floor = 0.0
        basis = "users' servers run as batch jobs on the HPC system and are charged there"
    else:
        cpu, mem_gb = guarantee
        floor, mix = floor_su_per_hour(users, cpu, mem_gb)
        basis = (
            f"{users} users × ({cpu:g} vCPU, {mem_gb:g} GB guaranteed) packed onto CPU flavors, nothing else"
        )
    return {
        "su_per_hour": per_hour,
        "su_per_day": per_hour * 24,
        "su_per_hour_at_max": sum(
            i["su_per_hour"] / i["count"] * i["max_count"] for i in instances if i["count"]
        ),
        "workshop_hours": hours,
        "workshop_days": days,
        "su_for_workshop": per_hour * hours * days,
        "su_per_user_hour": round(per_hour / users, 3),
        "floor_su_per_hour": floor,
        "floor_flavors": mix,
        "over_floor": round(per_hour / floor, 2) if floor else None,
        "floor_basis": basis,
        "instances": instances,
    }
