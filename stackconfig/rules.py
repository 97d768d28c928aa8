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


RULES: tuple[Callable[[StackConfig], list[Problem]], ...] = (
    hub_name_fits_certificate,
    ssh_not_open_to_world,
    single_vm_fits_users,
    network_mode_consistent,
)


def check(cfg: StackConfig) -> list[Problem]:
    return [problem for rule in RULES for problem in rule(cfg)]
