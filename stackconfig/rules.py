"""Rules that span several keys. Each returns problems naming the key a user should change."""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable

from catalog import FLAVORS
from catalog.jetstream2 import GPUS_PER_GPU_INSTANCE, LETSENCRYPT_MAX_CN
from stackconfig import sizing
from stackconfig.backup import BACKUP_SCENARIOS, cron_schedule
from stackconfig.errors import Problem
from stackconfig.extras import helm_values_problems, hub_extra_config_problems
from stackconfig.hpc import SAMPLE_USER, unix_name
from stackconfig.images import image_provides_packages
from stackconfig.model import (
    HUB_OVERHEAD_GB,
    K3S_DEFAULT_SUBNET_CIDR,
    OAUTH_TYPES,
    SHARED_FOLDER_SCENARIOS,
    StackConfig,
    overlapping,
)
from stackconfig.monitoring import MONITORING_SCENARIOS


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


def acme_root_fits(cfg: StackConfig) -> list[Problem]:
    if cfg.acme_root_certificate is None:
        return []
    if cfg.acme_directory is None:
        return [
            Problem(
                "acmeRootCertificate",
                "is the root of a private ACME server: set acmeDirectory to that server's directory URL too",
            )
        ]
    return []


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


def k3s_api_reachable(cfg: StackConfig) -> list[Problem]:
    """k3s: the Kubernetes API (the stack's own provider, kubectl) is reached from adminCidrs'
    IPv4 networks only: the load balancer's 6443 listener allows exactly those (Octavia takes
    networks of its VIP's version; an empty list would allow every address), and the nodes let
    them in. The whole internet is never one of them, so a list without another IPv4 network
    would leave the kubeconfig pointing at a port nothing opens."""
    if cfg.scenario != "k8s" or cfg.k8s is None or cfg.k8s.engine != "k3s":
        return []
    networks = [ipaddress.ip_network(c) for c in cfg.admin_cidrs]
    if any(n.version == 4 and n.prefixlen > 0 for n in networks):
        return []
    return [
        Problem(
            "adminCidrs",
            "holds no IPv4 network narrower than 0.0.0.0/0, and scenario k8s (k3s) opens its "
            "Kubernetes API (6443: `pulumi up`'s own provider, kubectl) only to adminCidrs' IPv4 "
            "networks, never to the whole internet: add the network you run `pulumi up` and kubectl "
            "from (e.g. 203.0.113.7/32); SSH may stay open to everyone with allowSshFromAnywhere",
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


def home_quota_fits_volume(cfg: StackConfig) -> list[Problem]:
    if cfg.home_quota_gb is None:
        return []
    if cfg.home_quota_gb > cfg.hub_data_volume_gb:
        return [
            Problem(
                "homeQuotaGb",
                f"more than the whole data volume (hubDataVolumeGb {cfg.hub_data_volume_gb}); allowed: "
                f"1 to {cfg.hub_data_volume_gb}",
                cfg.home_quota_gb,
            )
        ]
    return []


# JupyterHub's SharedPasswordAuthenticator refuses shorter passwords when the hub starts.
WORKSHOP_PASSWORD_MIN = 8
WORKSHOP_ADMIN_PASSWORD_MIN = 32
WORKSHOP_PASSWORD_MAX = 256
# The hub's secrets file is read as KEY=VALUE lines (systemd, Docker secrets): these would
# not arrive verbatim.
_PASSWORD_UNSAFE = frozenset(" \t\"'`\\$")


def _password_problems(key: str, value: str, minimum: int) -> list[Problem]:
    # Never echo the value: a Problem without one prints only the key and the message.
    if len(value) < minimum or len(value) > WORKSHOP_PASSWORD_MAX:
        return [
            Problem(
                key,
                f"must be {minimum} to {WORKSHOP_PASSWORD_MAX} characters (JupyterHub refuses fewer than "
                f"{minimum}); it has {len(value)}",
            )
        ]
    if any(ch in _PASSWORD_UNSAFE or not ch.isprintable() or not ch.isascii() for ch in value):
        return [
            Problem(
                key,
                "use printable ASCII without spaces, quotes, backslashes or '$' (the hub's secrets file "
                "would not carry those verbatim)",
            )
        ]
    return []


def auth_secrets_match_type(cfg: StackConfig) -> list[Problem]:
    """Each login type has its own secrets; a secret another type would use is a mistake."""
    auth, problems = cfg.auth, []
    if auth.type in OAUTH_TYPES and auth.client_id is None:
        problems.append(
            Problem(
                "auth.clientId",
                f"is required with auth.type {auth.type}, the OAuth app's client ID: "
                "pulumi config set --path auth.clientId ...",
            )
        )
    if auth.type not in OAUTH_TYPES and auth.client_id is not None:
        problems.append(
            Problem("auth.clientId", f"only github and cilogon use it, not auth.type {auth.type}; remove it")
        )
    if auth.type in OAUTH_TYPES and cfg.oauth_client_secret is None:
        problems.append(
            Problem(
                "oauthClientSecret",
                f"is required with auth.type {auth.type}: pulumi config set --secret oauthClientSecret ...",
            )
        )
    if auth.type not in OAUTH_TYPES and cfg.oauth_client_secret is not None:
        problems.append(
            Problem(
                "oauthClientSecret", f"only github and cilogon use it, not auth.type {auth.type}; remove it"
            )
        )
    workshop = {
        "workshopPassword": cfg.workshop_password,
        "workshopAdminPassword": cfg.workshop_admin_password,
    }
    if auth.type != "shared-password":
        problems += [
            Problem(key, f"only auth.type shared-password uses it, not {auth.type}; remove it")
            for key, value in workshop.items()
            if value is not None
        ]
        return problems
    if cfg.workshop_password is None:
        problems.append(
            Problem(
                "workshopPassword",
                f"is required with auth.type shared-password: pulumi config set --secret workshopPassword "
                f"... ({WORKSHOP_PASSWORD_MIN} characters or more)",
            )
        )
    else:
        problems += _password_problems(
            "workshopPassword", cfg.workshop_password.get_secret_value(), WORKSHOP_PASSWORD_MIN
        )
    if cfg.workshop_admin_password is not None:
        admin = cfg.workshop_admin_password.get_secret_value()
        problems += _password_problems("workshopAdminPassword", admin, WORKSHOP_ADMIN_PASSWORD_MIN)
        if cfg.workshop_password is not None and admin == cfg.workshop_password.get_secret_value():
            problems.append(
                Problem("workshopAdminPassword", "must differ from workshopPassword (JupyterHub refuses it)")
            )
        if not auth.admins:
            problems.append(
                Problem(
                    "workshopAdminPassword",
                    "only users listed in auth.admins log in with it, and auth.admins is empty",
                )
            )
    elif auth.admins:
        problems.append(
            Problem(
                "workshopAdminPassword",
                f"auth.admins {sorted(auth.admins)} can log in only with the admin password: pulumi config "
                f"set --secret workshopAdminPassword ... ({WORKSHOP_ADMIN_PASSWORD_MIN} characters or more), "
                "or remove auth.admins (the admin_token output still works)",
            )
        )
    if cfg.scenario == "hpc" and cfg.hpc is not None and cfg.hpc.account_mode == "per-user":
        problems.append(
            Problem(
                "auth.type",
                "with hpc.accountMode per-user, anyone with the shared password could log in under another "
                "user's name and submit jobs as their HPC account; use native, github or cilogon",
                auth.type,
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


def subnet_clear_of_cluster_networks(cfg: StackConfig) -> list[Problem]:
    if cfg.network_mode != "create":
        return []
    return [
        Problem(
            "subnetCidr",
            f"overlaps {what} {cidr}: the nodes would have two routes to the same addresses; choose "
            f"a subnet outside {' and '.join(c for _, c in cfg.cluster_networks)}, e.g. "
            f"{K3S_DEFAULT_SUBNET_CIDR} (the default when subnetCidr is unset)",
            cfg.created_subnet_cidr,
        )
        for what, cidr in overlapping(cfg.created_subnet_cidr, cfg.cluster_networks)
    ]


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


_ENGINE_ONLY = {
    "magnum": ("max_worker_count", "magnum_template", "osd_storage_class"),
    "k3s": ("k3s_version",),
}


def k8s_keys_match_engine(cfg: StackConfig) -> list[Problem]:
    if cfg.scenario != "k8s" or cfg.k8s is None:
        return []
    k8s = cfg.k8s
    problems = []
    for engine, fields in _ENGINE_ONLY.items():
        if k8s.engine == engine:
            continue
        for name in fields:
            if name in k8s.model_fields_set:
                key = type(k8s).model_fields[name].alias or name
                problems.append(
                    Problem(
                        f"k8s.{key}",
                        f"applies only to engine {engine}, and engine is {k8s.engine}; remove it",
                        getattr(k8s, name),
                    )
                )
    return problems


def k8s_guarantees_within_limits(cfg: StackConfig) -> list[Problem]:
    if cfg.scenario != "k8s" or cfg.k8s is None:
        return []
    k8s, problems = cfg.k8s, []
    if k8s.user_cpu_guarantee > cfg.user_cpu:
        problems.append(
            Problem(
                "k8s.userCpuGuarantee",
                f"exceeds the limit userCpu {cfg.user_cpu:g}; a guarantee is at most the limit",
                k8s.user_cpu_guarantee,
            )
        )
    if k8s.user_memory_guarantee_gb > cfg.user_memory_gb:
        problems.append(
            Problem(
                "k8s.userMemoryGuaranteeGb",
                f"exceeds the limit userMemoryGb {cfg.user_memory_gb:g}; a guarantee is at most the limit",
                k8s.user_memory_guarantee_gb,
            )
        )
    for i, p in enumerate(k8s.profiles):
        pairs = (
            ("cpu", p.cpu_guarantee or k8s.user_cpu_guarantee, p.cpu_limit or cfg.user_cpu),
            (
                "memory",
                p.memory_guarantee_gb or k8s.user_memory_guarantee_gb,
                p.memory_limit_gb or cfg.user_memory_gb,
            ),
        )
        for kind, guarantee, limit in pairs:
            if guarantee > limit:
                problems.append(
                    Problem(
                        f"k8s.profiles[{i}]",
                        f"{kind} guarantee {guarantee:g} exceeds its limit {limit:g}",
                        p.display_name,
                    )
                )
    if sum(p.default for p in k8s.profiles) > 1:
        problems.append(Problem("k8s.profiles", "more than one profile has default: true"))
    return problems


def k8s_workers_fit_users(cfg: StackConfig) -> list[Problem]:
    if cfg.scenario != "k8s" or cfg.k8s is None:
        return []
    k8s = cfg.k8s
    fit = sizing.worker_fit(k8s)
    flavor = fit.flavor
    problems = []
    # A server's limit above what a worker has can never be reached; say so rather than
    # letting users discover it.
    limits = [
        ("userMemoryGb", cfg.user_memory_gb, fit.memory_gb, "GB"),
        ("userCpu", cfg.user_cpu, fit.cpu, "vCPUs"),
    ]
    for p in k8s.profiles:
        if p.gpus:
            continue  # a GPU server runs on a GPU worker: k8s_gpu_workers_fit checks it there
        where = f"k8s.profiles[{p.display_name!r}]"
        limits.append((f"{where}.memoryLimitGb", p.memory_limit_gb or 0, fit.memory_gb, "GB"))
        limits.append((f"{where}.cpuLimit", p.cpu_limit or 0, fit.cpu, "vCPUs"))
    for key, value, room, unit in limits:
        if value > room:
            problems.append(
                Problem(
                    key,
                    f"more than one {flavor.name} worker offers after the node's reserve "
                    f"({room:g} {unit}); choose a larger k8s.workerFlavor",
                    value,
                )
            )
    if fit.users == 0:
        problems.append(
            Problem("k8s.workerFlavor", f"holds no user server: {fit.explain(k8s)}", k8s.worker_flavor)
        )
        return problems
    needed = sizing.workers_needed(cfg)
    overhead = sizing.worker_overhead(k8s)
    slots = overhead.slots(k8s)
    extra = (
        f" + {slots} slots for Ceph and the hub pods on the workers "
        f"({overhead.memory_gb:g} GB, {overhead.cpu:g} CPU)"
        if slots
        else ""
    )
    arithmetic = (
        f"{fit.explain(k8s)}; concurrentUsers {cfg.concurrent_users}{extra} "
        f"÷ {fit.users} per worker = {needed} workers"
    )
    if k8s.worker_count is not None and k8s.worker_count < needed:
        problems.append(
            Problem(
                "k8s.workerCount",
                f"too few workers: {arithmetic}; set workerCount to at least {needed}, choose a "
                "larger workerFlavor, lower the guarantees or concurrentUsers, or leave workerCount "
                "unset to derive it",
                k8s.worker_count,
            )
        )
    count = sizing.worker_count(cfg)
    if k8s.engine == "magnum" and k8s.max_worker_count is not None and k8s.max_worker_count < count:
        problems.append(
            Problem(
                "k8s.maxWorkerCount",
                f"below the {count} workers the cluster starts with ({arithmetic})",
                k8s.max_worker_count,
            )
        )
    return problems


def k8s_control_plane_fits_ceph(cfg: StackConfig) -> list[Problem]:
    if cfg.scenario != "k8s" or cfg.k8s is None or cfg.k8s.engine != "k3s":
        return []
    k8s = cfg.k8s
    flavor = FLAVORS[k8s.control_plane_flavor]
    need = sizing.control_plane_need(k8s)
    memory = flavor.ram_gb - sizing.NODE_RESERVED_MEMORY_GB
    cpu = flavor.vcpus - sizing.NODE_RESERVED_CPU
    if need.memory_gb <= memory and need.cpu <= cpu:
        return []
    fits = [
        f.name
        for f in FLAVORS.values()
        if f.gpu_fraction == 0
        and f.ram_gb - sizing.NODE_RESERVED_MEMORY_GB >= need.memory_gb
        and f.vcpus - sizing.NODE_RESERVED_CPU >= need.cpu
    ]
    return [
        Problem(
            "k8s.controlPlaneFlavor",
            f"each k3s control-plane node runs k3s with etcd ({sizing.K3S_SERVER_GB:g} GB), a Ceph OSD "
            f"({sizing.CEPH_OSD_GB:g}), mon ({sizing.CEPH_MON_GB:g}), mgr ({sizing.CEPH_MGR_GB:g}), "
            f"MDS ({sizing.CEPH_MDS_GB:g}) and the hub pods ({sizing.HUB_PODS_GB:g}) = {need.memory_gb:g} GB "
            f"and {need.cpu:g} CPU, but {flavor.name} offers {memory:g} GB and {cpu:g} CPU after the node's "
            f"reserve; the smallest flavor that fits is {fits[0]}",
            k8s.control_plane_flavor,
        )
    ]


def k8s_ceph_holds_homes(cfg: StackConfig) -> list[Problem]:
    if cfg.scenario != "k8s" or cfg.k8s is None:
        return []
    cap = sizing.ceph_capacity(cfg)
    if cap.needed_gb <= cap.usable_gb:
        return []
    k8s = cfg.k8s
    nodes = sizing.storage_node_count(k8s)
    minimum = math.ceil(cap.needed_gb * cap.replicas / sizing.CEPH_USABLE_FRACTION / nodes)
    return [
        Problem(
            "k8s.cephVolumeGb",
            f"Ceph holds {nodes} OSDs × {k8s.ceph_volume_gb} GB = {cap.raw_gb} GB raw ÷ {cap.replicas} "
            f"replicas × {sizing.CEPH_USABLE_FRACTION:g} (nearfull) = {cap.usable_gb:g} GB usable, but "
            f"concurrentUsers {cfg.concurrent_users} × userStorageGb {k8s.user_storage_gb} + sharedDataGb "
            f"{k8s.shared_data_gb} + {sizing.HUB_DB_GB} GB hub database = {cap.needed_gb} GB; set "
            f"cephVolumeGb to at least {minimum}, or lower userStorageGb or sharedDataGb",
            k8s.ceph_volume_gb,
        )
    ]


def single_gpu_memory_fits_users(cfg: StackConfig) -> list[Problem]:
    """A single hub on a GPU flavor: every user's kernel shares the VM's one GPU and its memory,
    with nothing that divides it, so concurrentUsers must each find some room there."""
    per_user = sizing.single_gpu_memory_per_user(cfg)
    if per_user is None or per_user >= sizing.MIN_GPU_MEMORY_PER_USER_GB:
        return []
    flavor = FLAVORS[cfg.hub_flavor]
    most = math.floor(flavor.gpu_memory_gb / sizing.MIN_GPU_MEMORY_PER_USER_GB + 1e-9)
    larger = [
        f.name
        for f in FLAVORS.values()
        if f.gpu and f.gpu_memory_gb >= cfg.concurrent_users * sizing.MIN_GPU_MEMORY_PER_USER_GB
    ]
    hint = f"choose {larger[0]}" if larger else "use scenario k8s with GPU workers"
    return [
        Problem(
            "hubFlavor",
            f"{flavor.name}'s GPU has {flavor.gpu_memory_gb:g} GB, shared by concurrentUsers "
            f"{cfg.concurrent_users}: {per_user:.2f} GB each, below the "
            f"{sizing.MIN_GPU_MEMORY_PER_USER_GB:g} GB a kernel needs; {hint}, or lower concurrentUsers "
            f"to at most {most}",
            cfg.hub_flavor,
        )
    ]


def k8s_gpu_workers_fit(cfg: StackConfig) -> list[Problem]:
    """GPU profiles need GPU workers, GPU workers need a GPU flavor and a GPU profile, and a GPU
    server's guarantees and limits fit one GPU worker."""
    if cfg.scenario != "k8s" or cfg.k8s is None:
        return []
    k8s, problems = cfg.k8s, []
    flavor = FLAVORS[k8s.gpu_worker_flavor]
    gpu_flavors = ", ".join(f.name for f in FLAVORS.values() if f.gpu)
    if not flavor.gpu and (k8s.gpu_worker_count or "gpu_worker_flavor" in k8s.model_fields_set):
        problems.append(
            Problem(
                "k8s.gpuWorkerFlavor",
                f"is not a GPU flavor; allowed: {gpu_flavors}",
                k8s.gpu_worker_flavor,
            )
        )
    profiles = sizing.gpu_profiles(k8s)
    for i, p in profiles:
        if k8s.gpu_worker_count == 0:
            problems.append(
                Problem(
                    f"k8s.profiles[{i}].gpus",
                    f"profile {p.display_name!r} asks for GPUs, but the cluster has no GPU workers: set "
                    "k8s.gpuWorkerCount (and k8s.gpuWorkerFlavor, a g3 flavor), or remove gpus "
                    "(allowed without GPU workers: 0)",
                    p.gpus,
                )
            )
        elif p.gpus > GPUS_PER_GPU_INSTANCE:
            problems.append(
                Problem(
                    f"k8s.profiles[{i}].gpus",
                    f"more than the {GPUS_PER_GPU_INSTANCE} GPU a {flavor.name} worker has (every g3 "
                    f"instance has one GPU device); allowed: 1 to {GPUS_PER_GPU_INSTANCE}",
                    p.gpus,
                )
            )
    if k8s.gpu_worker_count and not profiles:
        problems.append(
            Problem(
                "k8s.gpuWorkerCount",
                "no profile in k8s.profiles has gpus, and only GPU servers may run on the GPU workers "
                "(they are tainted): they would spend GPU SUs idle; add a profile with gpus: 1, or set 0",
                k8s.gpu_worker_count,
            )
        )
    if not profiles or not flavor.gpu or k8s.gpu_worker_count == 0:
        return problems
    memory = flavor.ram_gb - sizing.NODE_RESERVED_MEMORY_GB
    cpu = flavor.vcpus - sizing.NODE_RESERVED_CPU
    for i, p in profiles:
        wants = (
            ("cpuGuarantee", p.cpu_guarantee or k8s.user_cpu_guarantee, cpu, "vCPUs"),
            ("cpuLimit", p.cpu_limit or cfg.user_cpu, cpu, "vCPUs"),
            ("memoryGuaranteeGb", p.memory_guarantee_gb or k8s.user_memory_guarantee_gb, memory, "GB"),
            ("memoryLimitGb", p.memory_limit_gb or cfg.user_memory_gb, memory, "GB"),
        )
        for key, value, room, unit in wants:
            if value > room:
                problems.append(
                    Problem(
                        f"k8s.profiles[{i}].{key}",
                        f"more than one {flavor.name} GPU worker offers after the node's reserve "
                        f"({room:g} {unit}); choose a larger k8s.gpuWorkerFlavor or lower it",
                        value,
                    )
                )
    return problems


def swarm_notebooks_fit_workers(cfg: StackConfig) -> list[Problem]:
    swarm = cfg.swarm
    if cfg.scenario != "swarm" or swarm is None:
        return []
    room = sizing.swarm_worker_room(swarm)
    flavor = room.flavor
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
    if cfg.user_memory_gb > room.memory_gb or cfg.user_cpu > room.cpu:
        problems.append(
            Problem(
                "swarm.workerFlavor",
                f"{flavor.name} ({flavor.vcpus} vCPUs, {flavor.ram_gb:g} GB) cannot hold one notebook "
                f"limited to {cfg.user_cpu:g} CPUs and {cfg.user_memory_gb:g} GB plus "
                f"{HUB_OVERHEAD_GB:g} GB for Docker and the OS: choose a larger flavor or lower the limits",
                swarm.worker_flavor,
            )
        )
    # Swarm places a task only where its reservation fits: concurrentUsers must fit them all,
    # at the largest reservation a profile asks for.
    cpu_reservation, memory_reservation = sizing.swarm_largest_reservations(swarm)
    per_worker = min(
        int(room.memory_gb // memory_reservation) if memory_reservation else cfg.concurrent_users,
        int(room.cpu // cpu_reservation) if cpu_reservation else cfg.concurrent_users,
    )
    capacity = per_worker * swarm.worker_count
    if per_worker == 0:
        # No worker count helps: the flavor is the problem. Say it once.
        if not any(p.key == "swarm.workerFlavor" for p in problems):
            problems.append(
                Problem(
                    "swarm.workerFlavor",
                    f"{flavor.name} ({flavor.vcpus} vCPUs, {room.memory_gb:g} GB after "
                    f"{HUB_OVERHEAD_GB:g} GB for Docker and the OS) cannot reserve "
                    f"{cpu_reservation:g} CPU and {memory_reservation:g} GB for one "
                    "notebook: choose a larger flavor or smaller reservations",
                    swarm.worker_flavor,
                )
            )
    elif capacity < cfg.concurrent_users:
        need = -(-cfg.concurrent_users // per_worker)
        problems.append(
            Problem(
                "swarm.workerCount",
                f"{swarm.worker_count} × {flavor.name} hold {capacity} notebooks at the reservations "
                f"({cpu_reservation:g} CPU, {memory_reservation:g} GB each), "
                f"fewer than concurrentUsers {cfg.concurrent_users}: use at least {need} workers, a "
                "larger workerFlavor, or smaller reservations",
                swarm.worker_count,
            )
        )
    return problems


def swarm_profiles_are_sane(cfg: StackConfig) -> list[Problem]:
    """A profile's image is the allowed list, its limits fit one worker, its reservations fit
    its limits, and one profile at most is preselected."""
    swarm = cfg.swarm
    if cfg.scenario != "swarm" or swarm is None or not swarm.profiles:
        return []
    problems = []
    if "allowed_images" in swarm.model_fields_set:
        problems.append(
            Problem(
                "swarm.allowedImages",
                "set together with swarm.profiles: with profiles, the profiles' images are the ones "
                "users may start; remove allowedImages and give each profile its image",
                swarm.allowed_images,
            )
        )
    if sum(p.default for p in swarm.profiles) > 1:
        problems.append(Problem("swarm.profiles", "more than one profile has default: true"))
    names = [p.display_name for p in swarm.profiles]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(
            Problem("swarm.profiles", "two profiles have this displayName; each needs its own", name)
        )
    room = sizing.swarm_worker_room(swarm)
    for i, p in enumerate(swarm.profiles):
        cpu_limit = p.cpu_limit or cfg.user_cpu
        memory_limit = p.memory_limit_gb or cfg.user_memory_gb
        pairs = (
            ("cpuReservation", p.cpu_reservation, swarm.user_cpu_reservation, "cpuLimit", cpu_limit),
            (
                "memoryReservationGb",
                p.memory_reservation_gb,
                swarm.user_memory_reservation_gb,
                "memoryLimitGb",
                memory_limit,
            ),
        )
        for key, own, fallback, limit_key, limit in pairs:
            reservation = fallback if own is None else own
            if reservation > limit:
                problems.append(
                    Problem(
                        f"swarm.profiles[{i}].{key if own is not None else limit_key}",
                        f"the reservation {reservation:g} exceeds the limit {limit:g}; a reservation is at "
                        "most the limit",
                        own if own is not None else limit,
                    )
                )
        for key, value, offered, unit in (
            ("cpuLimit", p.cpu_limit, room.cpu, "vCPUs"),
            ("memoryLimitGb", p.memory_limit_gb, room.memory_gb, "GB"),
        ):
            if value is not None and value > offered:
                problems.append(
                    Problem(
                        f"swarm.profiles[{i}].{key}",
                        f"more than one {room.flavor.name} worker offers after {HUB_OVERHEAD_GB:g} GB for "
                        f"Docker and the OS ({offered:g} {unit}): choose a larger swarm.workerFlavor or lower it",
                        value,
                    )
                )
    return problems


# Why a swarm has no GPU workers (docs/swarm.md, "GPUs"). `docker run --gpus` is a device
# request; a swarm service's container spec has none (Docker Engine API, docker-py's
# ContainerSpec and pulumi-docker's ServiceTaskSpecContainerSpec alike: tests/test_swarm_config.py
# reads them). Swarm's generic resources only count what a node advertises; the device itself
# would reach the container only through the NVIDIA container runtime made every worker's default
# runtime, from NVIDIA's own package repository, with nothing that keeps a notebook to its GPU.
SWARM_NO_GPUS = (
    "is a GPU flavor, and a swarm cannot give notebooks GPUs: a Docker Swarm service has no device "
    "requests (the `docker run --gpus` of a plain container), and swarm's generic resources only count "
    "GPUs without handing the device to the container; choose an m3 or r3 flavor, or run GPU "
    "notebooks on scenario hpc (a partition with maxGpus)"
)


def swarm_has_no_gpu_flavors(cfg: StackConfig) -> list[Problem]:
    swarm = cfg.swarm
    if cfg.scenario != "swarm" or swarm is None:
        return []
    return [
        Problem(f"swarm.{key}", f"{name} {SWARM_NO_GPUS}", name)
        for key, name in (("workerFlavor", swarm.worker_flavor), ("managerFlavor", swarm.manager_flavor))
        if FLAVORS[name].gpu_fraction > 0
    ]


def _only_on(key: str, enabled: bool, scenario: str, scenarios: tuple[str, ...], where: str) -> list[Problem]:
    """A feature switched on for a scenario that has none yet: `where` says what it runs on."""
    if enabled and scenario not in scenarios:
        return [
            Problem(
                key,
                f"{where} (scenarios {', '.join(scenarios)}); "
                f"scenario {scenario} has none yet: remove it or set it to false",
                True,
            )
        ]
    return []


def backup_supported(cfg: StackConfig) -> list[Problem]:
    where = "backups run where the homes are"
    problems = _only_on("backup.enabled", bool(cfg.backup.enabled), cfg.scenario, BACKUP_SCENARIOS, where)
    if cfg.scenario == "k8s" and cfg.backup.on_for(cfg.scenario):
        # A CronJob's schedule is cron: say so now, not when the API server refuses it.
        try:
            cron_schedule(cfg.backup.schedule)
        except ValueError as exc:
            problems.append(Problem("backup.schedule", str(exc), cfg.backup.schedule))
    return problems


def shared_folder_supported(cfg: StackConfig) -> list[Problem]:
    if cfg.shared_folder is True and cfg.scenario not in SHARED_FOLDER_SCENARIOS:
        # Only hpc: its notebooks run where the hub's data volume is not.
        return [
            Problem(
                "sharedFolder",
                f"true is offered only by scenarios {', '.join(SHARED_FOLDER_SCENARIOS)}: on {cfg.scenario} "
                "notebooks run as batch jobs on the HPC system, which cannot see the hub's data volume; "
                "hand out material with nbgitpuller links (README, Course material); remove it or set it to false",
                True,
            )
        ]
    if cfg.shared_folder is False and cfg.scenario == "k8s":
        return [
            Problem(
                "sharedFolder",
                "false is not offered by scenario k8s, whose hub always mounts the shared-data claim "
                "(size: k8s.sharedDataGb); remove it",
                False,
            )
        ]
    return []


def monitoring_supported(cfg: StackConfig) -> list[Problem]:
    where = "monitoring runs on the VM that runs the hub"
    return _only_on(
        "monitoring.enabled", bool(cfg.monitoring.enabled), cfg.scenario, MONITORING_SCENARIOS, where
    )


def alert_targets_fit(cfg: StackConfig) -> list[Problem]:
    """Alertmanager's targets: what they need."""
    problems = []
    m = cfg.monitoring
    targets = m.alert_email is not None or cfg.alert_webhook_url is not None
    if targets and not m.on_for(cfg.scenario):
        key = "monitoring.alertEmail" if m.alert_email is not None else "alertWebhookUrl"
        problems.append(
            Problem(key, "notifications need monitoring: set monitoring.enabled: true or remove it")
        )
    if cfg.alert_smtp_password is not None and m.alert_email is None:
        problems.append(
            Problem("alertSmtpPassword", "is used only with monitoring.alertEmail; set it or remove this")
        )
    if cfg.alert_webhook_url is not None:
        url = cfg.alert_webhook_url.get_secret_value()
        # Checked, never echoed: it may hold a token.
        # The install puts it in a quoted YAML scalar; amtool checks it is a URL there.
        if not url or re.search(r"[\s'\\]", url) or ("://" in url and not re.match(r"^https?://", url)):
            problems.append(
                Problem("alertWebhookUrl", "is not an http(s) URL without spaces, quotes or backslashes")
            )
    if cfg.alert_smtp_password is not None and "\n" in cfg.alert_smtp_password.get_secret_value():
        problems.append(Problem("alertSmtpPassword", "must be one line"))
    return problems


def shelving_supported(cfg: StackConfig) -> list[Problem]:
    # Magnum's nodes are Cluster API machines, not servers of this stack: shelving them behind
    # Magnum's back is unsupported (a health check may replace a node it finds down).
    if cfg.shelved and cfg.k8s is not None and cfg.scenario == "k8s" and cfg.k8s.engine == "magnum":
        return [
            Problem(
                "shelved",
                "k8s.engine magnum runs its nodes itself and cannot be shelved by this stack; allowed "
                "with engine k3s and the other scenarios (for magnum: false)",
                True,
            )
        ]
    return []


def allocation_date_has_balance(cfg: StackConfig) -> list[Problem]:
    if cfg.allocation_sus_date is not None and cfg.allocation_sus is None:
        return [
            Problem(
                "allocationSusDate",
                "is the day allocationSus was read, and allocationSus is not set; allowed: set both, "
                "or neither",
                cfg.allocation_sus_date.isoformat(),
            )
        ]
    return []


def user_environment_fits_scenario(cfg: StackConfig) -> list[Problem]:
    env = cfg.user_environment
    if env is None:
        return []
    if cfg.scenario != "hpc":
        if env.hpc_folder is not None:
            return [
                Problem(
                    "userEnvironment.hpcFolder",
                    f"is read by scenario hpc only; on {cfg.scenario} the environment is on the hub VM: remove it",
                    env.hpc_folder,
                )
            ]
        return []
    assert cfg.hpc is not None  # hpc_consistent names a missing section
    problems = []
    if env.hpc_folder is None:
        problems.append(
            Problem(
                "userEnvironment.hpcFolder",
                "is required on hpc: the folder on the HPC system the environment is built in, writable by "
                "hpc.communityAccount and readable by the notebook jobs, e.g. /expanse/projects/gateway/jshub-users",
            )
        )
    if cfg.hpc.account_mode != "community":
        problems.append(
            Problem(
                "userEnvironment",
                "needs hpc.accountMode community on hpc: the environment is built over SSH as the gateway's "
                "account (hpc.communityAccount); with per-user accounts there is none to build as, so load "
                "the course's environment with hpc.environmentSetup instead (a module, or a conda "
                "environment on the HPC system)",
            )
        )
    return problems


RULES: tuple[Callable[[StackConfig], list[Problem]], ...] = (
    user_environment_fits_scenario,
    auth_secrets_match_type,
    hub_name_fits_certificate,
    acme_root_fits,
    ssh_not_open_to_world,
    k3s_api_reachable,
    single_vm_fits_users,
    home_quota_fits_volume,
    network_mode_consistent,
    subnet_clear_of_cluster_networks,
    hpc_consistent,
    k8s_keys_match_engine,
    k8s_guarantees_within_limits,
    k8s_workers_fit_users,
    k8s_control_plane_fits_ceph,
    k8s_ceph_holds_homes,
    k8s_gpu_workers_fit,
    single_gpu_memory_fits_users,
    swarm_notebooks_fit_workers,
    swarm_profiles_are_sane,
    swarm_has_no_gpu_flavors,
    image_provides_packages,
    backup_supported,
    shared_folder_supported,
    monitoring_supported,
    alert_targets_fit,
    shelving_supported,
    allocation_date_has_balance,
    hub_extra_config_problems,
    helm_values_problems,
)


def check(cfg: StackConfig) -> list[Problem]:
    return [problem for rule in RULES for problem in rule(cfg)]
