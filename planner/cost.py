"""SUs: what the plan burns while running, and the floor for the same users.

Jetstream2 charges a running instance its flavor's vCPUs × SU rate per hour; volumes, floating
IPs and shelved instances cost no SUs (docs.jetstream-cloud.org/general/instance-flavors). GPU
flavors spend the allocation's Jetstream2 GPU resource, a balance apart from the CPU one: the
cost says each resource's SUs apart."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from typing import Any

from catalog import FLAVORS, Flavor
from catalog.jetstream2 import GPUS_PER_GPU_INSTANCE
from planner.magnum import node_pools


@dataclass(frozen=True)
class GpuDemand:
    """Users whose servers need a GPU at the same time, and what each is guaranteed: vCPU, GB
    of RAM, GB of GPU memory (0: a whole GPU device each), and how many share one GPU device."""

    users: int
    cpu: float
    mem_gb: float
    gpu_memory_gb: float
    users_per_gpu: int
    basis: str


INSTANCE = "openstack:compute/instance:Instance"


def users_per_vm(flavor: Flavor, cpu: float, mem_gb: float) -> int:
    """How many users' guarantees one VM of this flavor holds (no user spans two VMs)."""
    by_cpu = math.floor(flavor.vcpus / cpu + 1e-9) if cpu > 0 else math.inf
    return int(min(by_cpu, math.floor(flavor.ram_gb / mem_gb + 1e-9)))


def gpu_users_per_vm(flavor: Flavor, demand: GpuDemand) -> int:
    """How many GPU users one VM of a GPU flavor holds: its vCPUs and RAM, its GPU memory at
    `demand.gpu_memory_gb` each, and its one GPU device shared by at most `users_per_gpu`."""
    if not flavor.gpu:
        return 0
    by_gpu_memory = (
        math.floor(flavor.gpu_memory_gb / demand.gpu_memory_gb + 1e-9)
        if demand.gpu_memory_gb > 0
        else math.inf
    )
    return int(
        min(
            users_per_vm(flavor, demand.cpu, demand.mem_gb),
            by_gpu_memory,
            demand.users_per_gpu * GPUS_PER_GPU_INSTANCE,
        )
    )


def floor_su_per_hour(users: int, cpu: float, mem_gb: float) -> tuple[float, dict[str, int]]:
    """The fewest SUs per hour whose VMs cover `users` guarantees of (cpu, mem_gb), packing
    users onto CPU flavors (exact, by dynamic programming over the user count)."""
    options = [(f, users_per_vm(f, cpu, mem_gb)) for f in FLAVORS.values() if not f.gpu]
    options = [(f, n) for f, n in options if n > 0]
    if not options:
        raise ValueError(f"no Jetstream2 flavor holds one user of {cpu:g} vCPU and {mem_gb:g} GB")
    return _pack(users, options)


def gpu_floor_su_per_hour(demand: GpuDemand) -> tuple[float, dict[str, int]]:
    """The fewest GPU SUs per hour whose GPU VMs hold `demand.users` GPU users."""
    options = [(f, gpu_users_per_vm(f, demand)) for f in FLAVORS.values() if f.gpu]
    options = [(f, n) for f, n in options if n > 0]
    if not options:
        raise ValueError(
            f"no Jetstream2 GPU flavor holds one GPU user of {demand.cpu:g} vCPU, {demand.mem_gb:g} GB "
            f"and {demand.gpu_memory_gb:g} GB of GPU memory"
        )
    return _pack(demand.users, options)


def _pack(users: int, options: list[tuple[Flavor, int]]) -> tuple[float, dict[str, int]]:
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
    gpu: GpuDemand | None = None,
) -> dict[str, Any]:
    """`guarantee` is each user's (vCPU, GB) on Jetstream2, or None when users' servers run
    elsewhere (batch jobs on an HPC system are charged to that system's allocation). A workshop
    is `days` days of `hours` hours, the stack running only then. `gpu`: the users who need a
    GPU; with `gpu.users_per_gpu` >= users they are the same users (one VM's shared GPU), and
    the CPU floor counts only the others."""
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
                "resource": flavor.resource,
                "gpu": flavor.gpu,
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
                "resource": flavor.resource,
                "gpu": flavor.gpu,
            }
        )
    per_hour = sum(i["su_per_hour"] for i in instances)
    gpu_per_hour = sum(i["su_per_hour"] for i in instances if i["gpu"])
    cpu_per_hour = per_hour - gpu_per_hour
    mix: dict[str, int] = {}
    gpu_floor, gpu_basis = 0.0, "no user needs a GPU"
    gpu_mix: dict[str, int] = {}
    if gpu is not None and gpu.users > 0:
        gpu_floor, gpu_mix = gpu_floor_su_per_hour(gpu)
        gpu_basis = gpu.basis
    if guarantee is None:
        floor = 0.0
        basis = "users' servers run as batch jobs on the HPC system and are charged there"
    else:
        cpu, mem_gb = guarantee
        # Users who share one GPU VM are all on it: none is left for CPU flavors.
        cpu_users = users if gpu is None or gpu.users_per_gpu < users else 0
        floor, mix = floor_su_per_hour(cpu_users, cpu, mem_gb)
        basis = f"{cpu_users} users × ({cpu:g} vCPU, {mem_gb:g} GB guaranteed) packed onto CPU flavors, nothing else"
    for name, n in gpu_mix.items():
        mix[name] = mix.get(name, 0) + n

    def spend(resource: str) -> dict[str, float]:
        hourly = sum(i["su_per_hour"] for i in instances if i["resource"] == resource)
        return {"su_per_hour": hourly, "su_per_day": hourly * 24, "su_for_workshop": hourly * hours * days}

    def at_max(i: dict[str, Any]) -> float:
        return float(i["su_per_hour"] / i["count"] * i["max_count"]) if i["count"] else 0.0

    resources_used = sorted({i["resource"] for i in instances})
    return {
        "su_per_hour": per_hour,
        "su_per_day": per_hour * 24,
        # Jetstream2 (CPU, and Large Memory) and Jetstream2 GPU are separate balances.
        "cpu_su_per_hour": cpu_per_hour,
        "cpu_su_per_day": cpu_per_hour * 24,
        "cpu_su_for_workshop": cpu_per_hour * hours * days,
        "gpu_su_per_hour": gpu_per_hour,
        "gpu_su_per_day": gpu_per_hour * 24,
        "gpu_su_for_workshop": gpu_per_hour * hours * days,
        "by_resource": {r: spend(r) for r in resources_used},
        "su_per_hour_at_max": sum(at_max(i) for i in instances),
        "cpu_su_per_hour_at_max": sum(at_max(i) for i in instances if not i["gpu"]),
        "gpu_su_per_hour_at_max": sum(at_max(i) for i in instances if i["gpu"]),
        "workshop_hours": hours,
        "workshop_days": days,
        "su_for_workshop": per_hour * hours * days,
        "su_per_user_hour": round(per_hour / users, 3),
        "floor_su_per_hour": floor + gpu_floor,
        "floor_flavors": mix,
        "over_floor": round(per_hour / (floor + gpu_floor), 2) if floor + gpu_floor else None,
        "floor_basis": basis,
        "floor_cpu_su_per_hour": floor,
        "floor_gpu_su_per_hour": gpu_floor,
        "floor_gpu_flavors": gpu_mix,
        "floor_gpu_basis": gpu_basis,
        "instances": instances,
    }
