"""Rules that span several keys. Each returns problems naming the key a user should change."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from catalog import FLAVORS
from catalog.jetstream2 import LETSENCRYPT_MAX_CN
from stackconfig.errors import Problem
from stackconfig.model import HUB_OVERHEAD_GB, StackConfig


def hub_name_fits_certificate(cfg: StackConfig) -> list[Problem]:
    if len(cfg.hub_fqdn) <= LETSENCRYPT_MAX_CN:
        return []
    return [
        Problem(
            "hubHostname",
            f"the hub's name {cfg.hub_fqdn!r} is {len(cfg.hub_fqdn)} characters; Let's Encrypt "
            f"allows at most {LETSENCRYPT_MAX_CN}: shorten hubHostname or dnsZone",
            cfg.hub_hostname,
        )
    ]


def ssh_not_open_to_world(cfg: StackConfig) -> list[Problem]:
    world = [c for c in cfg.admin_cidrs if ipaddress.ip_network(c).prefixlen == 0]
    if not world or cfg.allow_ssh_from_anywhere:
        return []
    return [
        Problem(
            "adminCidrs",
            f"{world[0]} opens SSH to the whole internet; list your own networks "
            "(e.g. 203.0.113.7/32), or set allowSshFromAnywhere: true to accept that risk",
            list(cfg.admin_cidrs),
        )
    ]


def single_vm_fits_users(cfg: StackConfig) -> list[Problem]:
    if cfg.scenario != "single":
        return []
    flavor = FLAVORS[cfg.hub_flavor]
    need = cfg.concurrent_users * cfg.user_memory_gb + HUB_OVERHEAD_GB
    problems = []
    if need > flavor.ram_gb:
        fits = [f.name for f in FLAVORS.values() if f.ram_gb >= need and f.gpu_fraction == 0]
        hint = (
            f"the smallest flavor that fits is {fits[0]}"
            if fits
            else "no single flavor fits: use the swarm or k8s scenario"
        )
        problems.append(
            Problem(
                "hubFlavor",
                f"concurrentUsers {cfg.concurrent_users} × userMemoryGb {cfg.user_memory_gb:g} "
                f"+ {HUB_OVERHEAD_GB:g} GB for the hub = {need:g} GB, but {flavor.name} has "
                f"{flavor.ram_gb:g} GB; {hint}, or lower concurrentUsers or userMemoryGb",
                cfg.hub_flavor,
            )
        )
    if cfg.user_cpu > flavor.vcpus:
        problems.append(
            Problem(
                "userCpu",
                f"more than the {flavor.vcpus} vCPUs of hubFlavor {flavor.name}",
                cfg.user_cpu,
            )
        )
    return problems


def network_mode_consistent(cfg: StackConfig) -> list[Problem]:
    if cfg.network_mode == "create" and cfg.network_name == "auto_allocated_network":
        return [
            Problem(
                "networkName",
                "networkMode is create, so this would be a second network with the name of the "
                "allocation's own; choose another name, or use networkMode: existing",
                cfg.network_name,
            )
        ]
    return []


def swarm_section_matches_scenario(cfg: StackConfig) -> list[Problem]:
    if cfg.scenario == "swarm" and cfg.swarm is None:
        return [
            Problem(
                "swarm",
                "scenario swarm needs a swarm section with at least workerCount, e.g. swarm: {workerCount: 2, "
                "workerFlavor: m3.medium, homeQuotaGb: 10} (the other keys have defaults)",
            )
        ]
    if cfg.scenario != "swarm" and cfg.swarm is not None:
        return [
            Problem(
                "swarm",
                f"only scenario swarm reads this section, and scenario is {cfg.scenario}: "
                "remove it, or set scenario: swarm",
            )
        ]
    return []


def swarm_notebooks_fit_workers(cfg: StackConfig) -> list[Problem]:
    swarm = cfg.swarm
    if cfg.scenario != "swarm" or swarm is None:
        return []
    flavor = FLAVORS[swarm.worker_flavor]
    problems = []
    if swarm.user_memory_reservation_gb > cfg.user_memory_gb:
        problems.append(
            Problem(
                "swarm.userMemoryReservationGb",
                f"more than the limit userMemoryGb {cfg.user_memory_gb:g}; a reservation is at most the limit",
                swarm.user_memory_reservation_gb,
            )
        )
    if swarm.user_cpu_reservation > cfg.user_cpu:
        problems.append(
            Problem(
                "swarm.userCpuReservation",
                f"more than the limit userCpu {cfg.user_cpu:g}; a reservation is at most the limit",
                swarm.user_cpu_reservation,
            )
        )
    if cfg.user_memory_gb > flavor.ram_gb - HUB_OVERHEAD_GB or cfg.user_cpu > flavor.vcpus:
        problems.append(
            Problem(
                "swarm.workerFlavor",
                f"{flavor.name} ({flavor.vcpus} vCPUs, {flavor.ram_gb:g} GB) cannot hold one notebook "
                f"limited to {cfg.user_cpu:g} CPUs and {cfg.user_memory_gb:g} GB plus "
                f"{HUB_OVERHEAD_GB:g} GB for Docker and the OS: choose a larger flavor or lower the limits",
                swarm.worker_flavor,
            )
        )
    # Swarm places a task only where its reservation fits: concurrentUsers must fit them all.
    per_worker = min(
        int((flavor.ram_gb - HUB_OVERHEAD_GB) // swarm.user_memory_reservation_gb)
        if swarm.user_memory_reservation_gb
        else cfg.concurrent_users,
        int(flavor.vcpus // swarm.user_cpu_reservation) if swarm.user_cpu_reservation else cfg.concurrent_users,
    )
    capacity = per_worker * swarm.worker_count
    if capacity < cfg.concurrent_users:
        need = -(-cfg.concurrent_users // max(per_worker, 1))
        problems.append(
            Problem(
                "swarm.workerCount",
                f"{swarm.worker_count} × {flavor.name} hold {capacity} notebooks at the reservations "
                f"({swarm.user_cpu_reservation:g} CPU, {swarm.user_memory_reservation_gb:g} GB each), "
                f"fewer than concurrentUsers {cfg.concurrent_users}: use at least {need} workers, a "
                "larger workerFlavor, or smaller reservations",
                swarm.worker_count,
            )
        )
    return problems


RULES: tuple[Callable[[StackConfig], list[Problem]], ...] = (
    hub_name_fits_certificate,
    ssh_not_open_to_world,
    single_vm_fits_users,
    network_mode_consistent,
    swarm_section_matches_scenario,
    swarm_notebooks_fit_workers,
)


def check(cfg: StackConfig) -> list[Problem]:
    return [problem for rule in RULES for problem in rule(cfg)]
