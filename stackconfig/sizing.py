"""Sizing arithmetic for scenario k8s: how many users a worker holds, how many workers the
expected concurrent users need, and how much Ceph capacity their homes take.

Pure functions of the config model; the rules in `rules.py` turn shortfalls into problems that
show this arithmetic, and the k8s stack uses the derived worker count."""

from __future__ import annotations

import math
from dataclasses import dataclass

from catalog import FLAVORS, Flavor
from catalog.jetstream2 import GPUS_PER_GPU_INSTANCE
from catalog.su import Burn
from stackconfig.model import HUB_OVERHEAD_GB, K8sConfig, ProfileConfig, StackConfig, SwarmConfig

# What a node keeps for itself before any pod is scheduled: the OS, kubelet and container
# runtime, the CNI and kube-proxy, and per-node daemons (Ceph CSI plugins, the image puller).
NODE_RESERVED_MEMORY_GB = 2.0
NODE_RESERVED_CPU = 0.5
# Kubernetes' default pod limit per node, less room for the per-node daemons.
USER_PODS_PER_NODE = 100

# Requests of the Rook cluster chart's defaults (rook-ceph-cluster values.yaml v1.20.6):
# OSD 4 GiB/1 CPU, mon 1 GiB/1 CPU, mgr 0.5 GiB/0.5 CPU, MDS 4 GiB/1 CPU.
CEPH_OSD_GB, CEPH_OSD_CPU = 4.0, 1.0
CEPH_MON_GB, CEPH_MON_CPU = 1.0, 1.0
CEPH_MGR_GB, CEPH_MGR_CPU = 0.5, 0.5
CEPH_MDS_GB, CEPH_MDS_CPU = 4.0, 1.0
# The hub, the proxy, the user schedulers and the Let's Encrypt sidecar together.
HUB_PODS_GB, HUB_PODS_CPU = 2.0, 1.0
# k3s server with embedded etcd on a control-plane node.
K3S_SERVER_GB, K3S_SERVER_CPU = 2.0, 1.0

# With magnum, Ceph's OSDs sit on this many PVC-backed device sets.
MAGNUM_OSD_COUNT = 3
# Ceph warns at 85 % full (nearfull ratio); plan to stay below it.
CEPH_USABLE_FRACTION = 0.85
HUB_DB_GB = 1


def _g(value: float) -> str:
    return f"{value:g}"


@dataclass(frozen=True)
class WorkerFit:
    """How many user servers one worker holds, and why."""

    flavor: Flavor
    memory_gb: float
    cpu: float
    by_memory: int
    by_cpu: int

    @property
    def users(self) -> int:
        return min(self.by_memory, self.by_cpu, USER_PODS_PER_NODE)

    def explain(self, k8s: K8sConfig) -> str:
        return (
            f"each {self.flavor.name} worker has {_g(self.flavor.ram_gb)} GB − "
            f"{_g(NODE_RESERVED_MEMORY_GB)} GB reserved = {_g(self.memory_gb)} GB, "
            f"÷ userMemoryGuaranteeGb {_g(k8s.user_memory_guarantee_gb)} = {self.by_memory} users; "
            f"{self.flavor.vcpus} vCPUs − {_g(NODE_RESERVED_CPU)} reserved = {_g(self.cpu)}, "
            f"÷ userCpuGuarantee {_g(k8s.user_cpu_guarantee)} = {self.by_cpu} users; "
            f"so {self.users} users per worker"
        )


def worker_fit(k8s: K8sConfig) -> WorkerFit:
    flavor = FLAVORS[k8s.worker_flavor]
    memory = flavor.ram_gb - NODE_RESERVED_MEMORY_GB
    cpu = flavor.vcpus - NODE_RESERVED_CPU
    # A small epsilon keeps 2.0 / 0.5 from flooring to 3 through float rounding.
    return WorkerFit(
        flavor=flavor,
        memory_gb=memory,
        cpu=cpu,
        by_memory=max(0, math.floor(memory / k8s.user_memory_guarantee_gb + 1e-9)),
        by_cpu=max(0, math.floor(cpu / k8s.user_cpu_guarantee + 1e-9)),
    )


def storage_node_count(k8s: K8sConfig) -> int:
    """Nodes (k3s) or device sets (magnum) that carry a Ceph OSD."""
    return k8s.control_plane_count if k8s.engine == "k3s" else MAGNUM_OSD_COUNT


def ceph_replicas(k8s: K8sConfig) -> int:
    """Replicas of each pool: 3 across three hosts; a one-node dev cluster can keep only one."""
    return min(3, storage_node_count(k8s))


def ceph_mons(k8s: K8sConfig) -> int:
    return 3 if storage_node_count(k8s) >= 3 else 1


@dataclass(frozen=True)
class Overhead:
    """Memory and CPU the cluster's own pods take on the workers (magnum puts Ceph there)."""

    memory_gb: float
    cpu: float

    def slots(self, k8s: K8sConfig) -> int:
        """The overhead in user-server slots, rounded up."""
        return math.ceil(
            max(self.memory_gb / k8s.user_memory_guarantee_gb, self.cpu / k8s.user_cpu_guarantee) - 1e-9
        )


def ceph_overhead(k8s: K8sConfig) -> Overhead:
    osds, mons = storage_node_count(k8s), ceph_mons(k8s)
    mgrs, mdss = (2, 2) if mons == 3 else (1, 1)
    return Overhead(
        memory_gb=osds * CEPH_OSD_GB + mons * CEPH_MON_GB + mgrs * CEPH_MGR_GB + mdss * CEPH_MDS_GB,
        cpu=osds * CEPH_OSD_CPU + mons * CEPH_MON_CPU + mgrs * CEPH_MGR_CPU + mdss * CEPH_MDS_CPU,
    )


def worker_overhead(k8s: K8sConfig) -> Overhead:
    """k3s keeps Ceph and the hub on the control-plane nodes; magnum's control plane takes no
    pods, so everything runs on the workers."""
    if k8s.engine == "k3s":
        return Overhead(0.0, 0.0)
    ceph = ceph_overhead(k8s)
    return Overhead(ceph.memory_gb + HUB_PODS_GB, ceph.cpu + HUB_PODS_CPU)


def workers_needed(cfg: StackConfig) -> int:
    k8s = _k8s(cfg)
    per_worker = worker_fit(k8s).users
    if per_worker == 0:
        return 0
    return max(1, math.ceil((cfg.concurrent_users + worker_overhead(k8s).slots(k8s)) / per_worker))


def worker_count(cfg: StackConfig) -> int:
    """The operator's workerCount, or the count sizing derives."""
    k8s = _k8s(cfg)
    return k8s.worker_count if k8s.worker_count is not None else workers_needed(cfg)


def control_plane_need(k8s: K8sConfig) -> Overhead:
    """What each k3s control-plane node runs: k3s with etcd, one OSD, one mon, and a share of
    the managers, metadata servers and hub pods (any one node may carry them after a failure)."""
    return Overhead(
        K3S_SERVER_GB + CEPH_OSD_GB + CEPH_MON_GB + CEPH_MGR_GB + CEPH_MDS_GB + HUB_PODS_GB,
        K3S_SERVER_CPU + CEPH_OSD_CPU + CEPH_MON_CPU + CEPH_MGR_CPU + CEPH_MDS_CPU + HUB_PODS_CPU,
    )


@dataclass(frozen=True)
class CephCapacity:
    raw_gb: int
    replicas: int
    usable_gb: float
    needed_gb: int


def ceph_capacity(cfg: StackConfig) -> CephCapacity:
    k8s = _k8s(cfg)
    raw = storage_node_count(k8s) * k8s.ceph_volume_gb
    replicas = ceph_replicas(k8s)
    return CephCapacity(
        raw_gb=raw,
        replicas=replicas,
        usable_gb=raw / replicas * CEPH_USABLE_FRACTION,
        needed_gb=cfg.concurrent_users * k8s.user_storage_gb + k8s.shared_data_gb + HUB_DB_GB,
    )


def placeholder_replicas(cfg: StackConfig) -> int:
    return math.ceil(cfg.concurrent_users * _k8s(cfg).placeholder_fraction - 1e-9)


def _k8s(cfg: StackConfig) -> K8sConfig:
    if cfg.k8s is None:
        raise ValueError("scenario k8s needs the k8s section")
    return cfg.k8s


@dataclass(frozen=True)
class ServerShare:
    """What one user's server takes of the VM it runs on: `cpu` cores of a `flavor` VM, and in
    the user's words why that figure (`basis`). jshub.usage charges a server-hour this share of
    the VM's SUs (planner.burn.server_su_per_hour)."""

    flavor: str
    cpu: float
    basis: str


def server_share(cfg: StackConfig) -> ServerShare | None:
    """None for hpc: users' servers are batch jobs on the HPC system, charged there."""
    if cfg.scenario == "hpc":
        return None
    if cfg.scenario == "k8s":
        k8s = _k8s(cfg)
        return ServerShare(
            k8s.worker_flavor,
            k8s.user_cpu_guarantee,
            f"k8s.userCpuGuarantee {k8s.user_cpu_guarantee:g} of a {k8s.worker_flavor} worker",
        )
    if cfg.scenario == "swarm" and cfg.swarm is not None:
        swarm = cfg.swarm
        if swarm.user_cpu_reservation > 0:
            return ServerShare(
                swarm.worker_flavor,
                swarm.user_cpu_reservation,
                f"swarm.userCpuReservation {swarm.user_cpu_reservation:g} of a {swarm.worker_flavor} worker",
            )
        return ServerShare(
            swarm.worker_flavor,
            cfg.user_cpu,
            f"userCpu {cfg.user_cpu:g} (no reservation set) of a {swarm.worker_flavor} worker",
        )
    return ServerShare(
        cfg.hub_flavor, cfg.user_cpu, f"userCpu {cfg.user_cpu:g} of the {cfg.hub_flavor} hub VM"
    )


@dataclass(frozen=True)
class SwarmWorkerRoom:
    """What one swarm worker offers notebooks: its flavor less Docker's and the OS's share."""

    flavor: Flavor
    cpu: float
    memory_gb: float


def swarm_worker_room(swarm: SwarmConfig) -> SwarmWorkerRoom:
    flavor = FLAVORS[swarm.worker_flavor]
    return SwarmWorkerRoom(flavor, float(flavor.vcpus), flavor.ram_gb - HUB_OVERHEAD_GB)


def swarm_largest_reservations(swarm: SwarmConfig) -> tuple[float, float]:
    """The largest CPU and memory reservation a notebook may ask for (the swarm's, or a
    profile's): the worker count holds concurrentUsers even if all pick that profile."""
    cpu = [swarm.user_cpu_reservation] + [
        p.cpu_reservation for p in swarm.profiles if p.cpu_reservation is not None
    ]
    mem = [swarm.user_memory_reservation_gb] + [
        p.memory_reservation_gb for p in swarm.profiles if p.memory_reservation_gb is not None
    ]
    return max(cpu), max(mem)


def vm_flavors(cfg: StackConfig) -> list[str]:
    """The flavor of every server the stack runs on Jetstream2 (a test holds this to the servers
    the program registers)."""
    if cfg.scenario == "k8s":
        k8s = _k8s(cfg)
        return (
            [k8s.control_plane_flavor] * k8s.control_plane_count
            + [k8s.worker_flavor] * worker_count(cfg)
            + [k8s.gpu_worker_flavor] * k8s.gpu_worker_count
        )
    if cfg.scenario == "swarm" and cfg.swarm is not None:
        return [cfg.swarm.manager_flavor] + [cfg.swarm.worker_flavor] * cfg.swarm.worker_count
    return [cfg.hub_flavor]


def stack_su_per_hour(cfg: StackConfig, gpu: bool = False) -> float:
    """What the stack burns per hour with every server running, of the allocation's CPU balance
    (allocationSus: every flavor but the GPU ones) or, with `gpu`, of its Jetstream2 GPU balance."""
    return sum(FLAVORS[f].su_per_hour for f in vm_flavors(cfg) if FLAVORS[f].gpu == gpu)


def burn(cfg: StackConfig) -> Burn | None:
    """The stack's burn against its allocation, when allocationSus and the day it was read are set."""
    if cfg.allocation_sus is None or cfg.allocation_sus_date is None:
        return None
    return Burn(stack_su_per_hour(cfg), cfg.allocation_sus, cfg.allocation_sus_date, cfg.allocation_warn_days)


# --- GPUs ------------------------------------------------------------------------------------

# The least GPU memory a user's kernel gets when users share one GPU: a CUDA context alone
# takes some hundreds of MB, and a user below 1 GB cannot load even a small model.
MIN_GPU_MEMORY_PER_USER_GB = 1.0


def single_gpu_memory_per_user(cfg: StackConfig) -> float | None:
    """The single hub's GPU memory per concurrent user (GB), or None on a CPU flavor: all users
    share the one GPU of the hub's VM."""
    flavor = FLAVORS[cfg.hub_flavor]
    if cfg.scenario != "single" or not flavor.gpu:
        return None
    return flavor.gpu_memory_gb / cfg.concurrent_users


def gpu_profiles(k8s: K8sConfig) -> list[tuple[int, ProfileConfig]]:
    return [(i, p) for i, p in enumerate(k8s.profiles) if p.gpus > 0]


def gpu_seats(k8s: K8sConfig) -> int:
    """GPU servers that run at once: each GPU worker has GPUS_PER_GPU_INSTANCE devices and a
    server takes whole devices (the device plugin shares none), so the largest GPU profile
    decides."""
    profiles = gpu_profiles(k8s)
    if not profiles or k8s.gpu_worker_count == 0:
        return 0
    most = max(p.gpus for _, p in profiles)
    return k8s.gpu_worker_count * (GPUS_PER_GPU_INSTANCE // most)


def gpu_user_guarantee(k8s: K8sConfig) -> tuple[float, float]:
    """The largest (vCPU, GB) a GPU profile's server is guaranteed: what one GPU worker must hold
    beside the node's reserve."""
    profiles = [p for _, p in gpu_profiles(k8s)]
    cpu = max((p.cpu_guarantee or k8s.user_cpu_guarantee for p in profiles), default=0.0)
    mem = max((p.memory_guarantee_gb or k8s.user_memory_guarantee_gb for p in profiles), default=0.0)
    return cpu, mem
