"""Time to a working hub: the critical path through the plan's dependency graph under a
latency model per resource kind, and the sum as if every step ran one after another.

The latencies are planning assumptions, not measurements of this project on Jetstream2; each
says where its order of magnitude comes from. Adjust them here when real timings are known.

Two are derived from measurements: a VM's first boot (cloud-init's packages, the data volume),
which every remote command on the VM waits for, and the hub's `hub-config` step (its virtualenv,
pip, npm, the config). `make boot` (boot/, docs/boot.md) boots a role's real
user data under QEMU and a bare image with an empty user data on the same machine in the same
run; the *ratio* of their times to cloud-init `done` carries over to the cloud better than either
time (emulation slows the computing in both alike; it does not slow downloads, so the ratio is
if anything low). The bare boot on Jetstream2 itself (BARE_BOOT_S) is still an assumption."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True)
class Latency:
    seconds: float
    basis: str


# Assumption: Nova builds a featured image to ACTIVE in about a minute and a half, and with an
# empty user data cloud-init is `done` half a minute later (KVM, Ceph-backed root disk).
NOVA_ACTIVE_S = 90.0
BARE_BOOT_S = 30.0
# Measured with boot/ under QEMU (TCG) on the 2-core build machine, otherwise idle
# (`make boot STACK=gateway-hpc FRESH=1`, 2026-12-02, docs/boot.md): the hub VM's user data (about
# 600 Debian packages, the data volume, Caddy) reached cloud-init `done` after 986 s, against
# 96 s for the bare image of the same run: 10.3x. The HPC login-node guest booted beside it for
# its first 520 s, which if anything raises the ratio. The hub's is the heaviest user data of
# the project; the same ratio is used for every role, which overstates the lighter ones (the
# swarm and k8s roles' boot tests run on an image with their packages baked in, so their own
# ratios, 2-5x, leave the installs out and are not used here).
FIRST_BOOT_RATIO = 10.3
# The same run: the hub's `hub-config` step over SSH (virtualenv, pip, npm's proxy, the config,
# Caddy's restart) took 337 s, 3.5 bare boots.
HUB_CONFIG_RATIO = 3.5
# The users' environment of the dev stack's list (numpy 2.1.3): the median of two builds.
USERS_ENV_BUILD_S = 40.0

LATENCY: Mapping[str, Latency] = MappingProxyType(
    {
        # Everything that waits on a server in this project waits for its first boot to end
        # (remote commands begin with `cloud-init status --wait`), so the boot is counted here.
        "openstack:compute/instance:Instance": Latency(
            round(NOVA_ACTIVE_S + BARE_BOOT_S * FIRST_BOOT_RATIO),
            f"Nova to ACTIVE (about {NOVA_ACTIVE_S:g} s) and the first boot: {FIRST_BOOT_RATIO}x "
            f"a bare boot of {BARE_BOOT_S:g} s (the ratio measured under QEMU, boot/)",
        ),
        "openstack:blockstorage/volume:Volume": Latency(
            15, "Cinder creates an empty Ceph RBD volume in seconds"
        ),
        "openstack:compute/volumeAttach:VolumeAttach": Latency(
            20, "Cinder attach of a Ceph volume to a running server"
        ),
        "openstack:networking/port:Port": Latency(5, "Neutron API call"),
        "openstack:networking/floatingIp:FloatingIp": Latency(5, "Neutron API call"),
        "openstack:networking/secGroup:SecGroup": Latency(2, "Neutron API call"),
        "openstack:networking/secGroupRule:SecGroupRule": Latency(2, "Neutron API call"),
        "openstack:networking/network:Network": Latency(5, "Neutron API call"),
        "openstack:networking/subnet:Subnet": Latency(5, "Neutron API call"),
        "openstack:networking/router:Router": Latency(10, "Neutron router with external gateway"),
        "openstack:networking/routerInterface:RouterInterface": Latency(10, "Neutron API call"),
        "openstack:dns/recordSet:RecordSet": Latency(
            60, "Designate propagates a record to its name servers in about a minute"
        ),
        # Its wait for the first boot is in the server's latency above.
        "command:remote:Command": Latency(
            60, "its own work on a booted VM: a few packages, a restart, a join"
        ),
        "kubernetes:helm.sh/v3:Release": Latency(300, "Helm install that waits for its pods to be ready"),
        "openstack:containerinfra/cluster:Cluster": Latency(
            900, "Magnum Cluster API cluster creation: 10-20 minutes"
        ),
        "docker:index/service:Service": Latency(60, "swarm service converges after image pull"),
    }
)
# Steps whose own work was measured (by resource name): they replace their kind's figure.
MEASURED_STEPS: Mapping[str, Latency] = MappingProxyType(
    {
        "hub-config": Latency(
            round(BARE_BOOT_S * HUB_CONFIG_RATIO),
            f"the hub's virtualenv, pip and npm: {HUB_CONFIG_RATIO}x a bare boot of {BARE_BOOT_S:g} s "
            "(the ratio measured under QEMU, boot/)",
        ),
        # Measured with bench/users_env.py (the rendered script, pip from PyPI) on the 2-core build
        # machine under load 5, 2026-12-08: the dev stack's list (ipykernel, numpy 2.1.3) built in
        # 28 and 49 s. It runs beside hub-config, so a working hub waits for the longer of the two;
        # a course's longer list takes longer (README, Course environments).
        "hub-user-env": Latency(
            USERS_ENV_BUILD_S,
            f"the users' environment (ipykernel and the course's packages, pip from PyPI): {USERS_ENV_BUILD_S:g} s "
            "for the dev stack's numpy (bench/users_env.py)",
        ),
        # The same build on the HPC system (hpc), over the hub's SSH key.
        "hpc-user-env": Latency(
            USERS_ENV_BUILD_S,
            f"the users' environment built on the HPC login node: {USERS_ENV_BUILD_S:g} s as on the hub VM "
            "(bench/users_env.py; the login node's own speed and network are the site's)",
        ),
    }
)
DEFAULT = Latency(1, "local computation (keys, passwords) or an API call")
# Let's Encrypt issuance after DNS resolves (HTTP-01 challenge): seconds to a minute.
TLS_CERTIFICATE_S = 60.0


def _latency(resource: dict[str, Any]) -> float:
    if not resource["custom"] or resource["type"].startswith("pulumi:providers:"):
        return 0.0
    measured = MEASURED_STEPS.get(resource["name"])
    if measured is not None:
        return measured.seconds
    return LATENCY.get(resource["type"], DEFAULT).seconds


def _provider(resource: dict[str, Any]) -> list[str]:
    """The explicit provider a resource is created through: Pulumi starts it only once the
    provider is configured, which needs the provider's inputs (for the cluster's Kubernetes
    provider, the kubeconfig that the cluster's nodes hand out once they are Ready)."""
    provider = resource.get("provider")
    return [provider] if provider else []


def estimate(resources: list[dict[str, Any]]) -> dict[str, Any]:
    by_name = {r["name"]: r for r in resources}
    finish: dict[str, float] = {}
    via: dict[str, str | None] = {}

    def done(name: str, seen: frozenset[str] = frozenset()) -> float:
        if name in finish:
            return finish[name]
        if name in seen:  # a cycle would be a bug elsewhere; don't recurse forever
            return 0.0
        resource = by_name[name]
        deps = [d for d in [*resource["depends_on"], *_provider(resource)] if d in by_name]
        start, before = 0.0, None
        for d in deps:
            t = done(d, seen | {name})
            if t > start:
                start, before = t, d
        finish[name] = start + _latency(resource)
        via[name] = before
        return finish[name]

    for name in by_name:
        done(name)
    end = max(finish, key=lambda n: finish[n], default=None)
    path: list[str] = []
    node = end
    while node is not None:
        path.append(node)
        node = via[node]
    path.reverse()
    # A step on the critical path that waits only because of depends_on (no input of it
    # takes a value from the step before) lengthens the path without a data reason.
    needless = []
    for before, after in itertools.pairwise(path):
        data = {d for deps in by_name[after].get("data_dependencies", {}).values() for d in deps}
        data.update(_provider(by_name[after]))
        if before not in data:
            data_ready = max((finish[d] for d in data if d in finish), default=0.0)
            needless.append({"from": before, "to": after, "extra_s": round(finish[before] - data_ready)})
    critical = (finish[end] if end else 0.0) + TLS_CERTIFICATE_S
    return {
        "critical_path_s": round(critical),
        "serial_s": round(sum(_latency(r) for r in resources) + TLS_CERTIFICATE_S),
        "critical_path": path,
        "explicit_waits_on_critical_path": needless,
        "basis": "planning latencies per resource kind in planner/estimate.py, plus "
        f"{TLS_CERTIFICATE_S:g} s for the Let's Encrypt certificate",
    }
