"""Rules that span several keys. Each returns problems naming the key a user should change."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from catalog import FLAVORS
from catalog.jetstream2 import LETSENCRYPT_MAX_CN
from stackconfig.errors import Problem
from stackconfig.hpc import SAMPLE_USER, unix_name
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


def hpc_section_matches_scenario(cfg: StackConfig) -> list[Problem]:
    if cfg.scenario == "hpc" and cfg.hpc is None:
        return [
            Problem(
                "hpc",
                "scenario hpc needs the hpc section: at least loginHost, hostKey and partitions "
                "(see Pulumi.gateway-hpc.yaml and docs/hpc.md)",
            )
        ]
    if cfg.scenario != "hpc" and cfg.hpc is not None:
        return [Problem("hpc", f"is only used by scenario hpc, but scenario is {cfg.scenario}; remove it")]
    if cfg.scenario != "hpc" and cfg.hpc_ssh_private_key is not None:
        return [Problem("hpcSshPrivateKey", f"is only used by scenario hpc, but scenario is {cfg.scenario}")]
    return []


def hpc_consistent(cfg: StackConfig) -> list[Problem]:
    hpc = cfg.hpc
    if hpc is None:
        return []
    problems = []
    if hpc.account_mode == "community" and not hpc.community_account:
        problems.append(
            Problem("hpc.communityAccount", "accountMode community needs the gateway's HPC account name")
        )
    if hpc.account_mode == "per-user":
        if "{username}" not in hpc.username_pattern:
            problems.append(
                Problem(
                    "hpc.usernamePattern", "must contain {username}, e.g. gw_{username}", hpc.username_pattern
                )
            )
        else:
            sample = hpc.username_pattern.replace("{username}", SAMPLE_USER)
            try:
                unix_name(sample)
            except ValueError as exc:
                problems.append(
                    Problem(
                        "hpc.usernamePattern",
                        f"gives {sample!r} for user {SAMPLE_USER}: {exc}",
                        hpc.username_pattern,
                    )
                )
    names = [p.name for p in hpc.partitions]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        problems.append(
            Problem("hpc.partitions", f"each name once; repeated: {', '.join(duplicates)}", names)
        )
    first = hpc.partitions[0]
    for key, value, limit, limit_key in (
        ("defaultCores", hpc.default_cores, first.max_cores, "maxCores"),
        ("defaultMemoryGb", hpc.default_memory_gb, first.max_memory_gb, "maxMemoryGb"),
        ("defaultWallHours", hpc.default_wall_hours, first.max_wall_hours, "maxWallHours"),
    ):
        if value > limit:
            problems.append(
                Problem(
                    f"hpc.{key}",
                    f"more than the default partition {first.name!r} allows ({limit_key} {limit:g})",
                    value,
                )
            )
    for i, cidr in enumerate(hpc.compute_cidrs):
        try:
            network = ipaddress.ip_network(cidr, strict=True)
        except ValueError as exc:
            problems.append(Problem(f"hpc.computeCidrs[{i}]", f"not a CIDR ({exc})", cidr))
            continue
        if network.prefixlen == 0:
            problems.append(
                Problem(
                    f"hpc.computeCidrs[{i}]",
                    "would open the hub API to the whole internet; list the compute nodes' networks, "
                    "or use connectivity ssh-tunnel",
                    cidr,
                )
            )
    if hpc.connectivity == "direct" and not hpc.compute_cidrs:
        problems.append(
            Problem(
                "hpc.computeCidrs",
                "connectivity direct needs the networks the compute nodes connect from (they are "
                "admitted to the hub API port); or use connectivity ssh-tunnel",
            )
        )
    if hpc.connectivity == "ssh-tunnel" and hpc.compute_cidrs:
        problems.append(
            Problem(
                "hpc.computeCidrs", "only used with connectivity direct; remove it", list(hpc.compute_cidrs)
            )
        )
    return problems


RULES: tuple[Callable[[StackConfig], list[Problem]], ...] = (
    hub_name_fits_certificate,
    ssh_not_open_to_world,
    single_vm_fits_users,
    network_mode_consistent,
    hpc_section_matches_scenario,
    hpc_consistent,
)


def check(cfg: StackConfig) -> list[Problem]:
    return [problem for rule in RULES for problem in rule(cfg)]
