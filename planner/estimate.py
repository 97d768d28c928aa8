"""Time to a working hub: the critical path through the plan's dependency graph under a
latency model per resource kind, and the sum as if every step ran one after another.

The latencies are planning assumptions, not measurements of this project on Jetstream2; each
says where its order of magnitude comes from. Adjust them here when real timings are known."""

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


LATENCY: Mapping[str, Latency] = MappingProxyType(
    {
        "openstack:compute/instance:Instance": Latency(
            90, "Nova build to ACTIVE for a featured image: about a minute or two"
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
        # The hub's remote command first waits for cloud-init: apt packages, a pip install of
        # JupyterHub and JupyterLab, npm's proxy; several minutes on a fresh VM.
        "command:remote:Command": Latency(420, "waits for cloud-init (apt, pip, npm) on a fresh VM"),
        "kubernetes:helm.sh/v3:Release": Latency(300, "Helm install that waits for its pods to be ready"),
        "openstack:containerinfra/cluster:Cluster": Latency(
            900, "Magnum Cluster API cluster creation: 10-20 minutes"
        ),
        "docker:index/service:Service": Latency(60, "swarm service converges after image pull"),
    }
)
DEFAULT = Latency(1, "local computation (keys, passwords) or an API call")
# Let's Encrypt issuance after DNS resolves (HTTP-01 challenge): seconds to a minute.
TLS_CERTIFICATE_S = 60.0


def _latency(resource: dict[str, Any]) -> float:
    if not resource["custom"] or resource["type"].startswith("pulumi:providers:"):
        return 0.0
    return LATENCY.get(resource["type"], DEFAULT).seconds


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
        deps = [d for d in resource["depends_on"] if d in by_name]
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
