"""Does the stack fit the allocation? Count what the plan creates against the quotas: the
most common reason a `pulumi up` dies half way is a quota hit at resource 30 of 40."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from catalog import FLAVORS
from catalog.jetstream2 import GPU_RESOURCE
from planner.magnum import CLUSTER, claim_volumes, node_pools
from stackconfig.model import QuotaConfig

# Every allocation already holds these: the `default` security group (2 ingress + 2 egress
# rules) and the router of auto_allocated_network.
DEFAULT_GROUPS = 1
DEFAULT_GROUP_RULES = 4
EXISTING_ROUTERS = 1
# OpenStack adds two egress rules (IPv4, IPv6) to every new security group.
EGRESS_RULES_PER_GROUP = 2


@dataclass(frozen=True)
class QuotaLine:
    key: str  # the config key under `quotas`
    what: str
    needed: float
    quota: float | None

    @property
    def fits(self) -> bool:
        return self.quota is None or self.needed <= self.quota


def _of(resources: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [r for r in resources if r["type"] == kind and r["custom"]]


def needs(resources: list[dict[str, Any]]) -> dict[str, float]:
    """What the stack takes from the allocation; a Magnum cluster's nodes count at the
    autoscaler's upper bound, each with its Docker volume, and Rook's PVCs count as volumes."""
    instances = _of(resources, "openstack:compute/instance:Instance")
    flavors = [
        FLAVORS[i["inputs"]["flavorName"]] for i in instances if i["inputs"].get("flavorName") in FLAVORS
    ]
    pools = [p for p in node_pools(resources) if p.flavor in FLAVORS]
    volumes = _of(resources, "openstack:blockstorage/volume:Volume")
    node_volumes = [p.volume_gb for p in pools for _ in range(p.max_count) if p.volume_gb]
    claims = claim_volumes(resources)
    groups = _of(resources, "openstack:networking/secGroup:SecGroup")
    # Octavia load balancers: the stack's own (k3s: the hub's), and on Magnum the ones the cluster
    # makes: the API's when its control plane has several nodes (master_lb_enabled), and the
    # proxy's LoadBalancer service, which the cloud controller turns into an Octavia one.
    clusters = _of(resources, CLUSTER)
    load_balancers = len(_of(resources, "openstack:loadbalancer/loadBalancer:LoadBalancer")) + sum(
        1 + bool(c["inputs"].get("masterLbEnabled")) for c in clusters
    )
    return {
        "instances": len(instances) + sum(p.max_count for p in pools),
        # GPU flavors exist for an allocation only with the Jetstream2 GPU resource.
        "gpuInstances": sum(f.gpu for f in flavors)
        + sum(p.max_count for p in pools if FLAVORS[p.flavor].gpu),
        "cores": sum(f.vcpus for f in flavors) + sum(FLAVORS[p.flavor].vcpus * p.max_count for p in pools),
        "ramGb": sum(f.ram_gb for f in flavors) + sum(FLAVORS[p.flavor].ram_gb * p.max_count for p in pools),
        "floatingIps": len(_of(resources, "openstack:networking/floatingIp:FloatingIp")),
        "volumes": len(volumes) + len(node_volumes) + len(claims),
        "volumeGb": sum(float(v["inputs"].get("size", 0)) for v in volumes) + sum(node_volumes) + sum(claims),
        "routers": len(_of(resources, "openstack:networking/router:Router")) + EXISTING_ROUTERS,
        "securityGroups": len(groups) + DEFAULT_GROUPS,
        "securityGroupRules": len(_of(resources, "openstack:networking/secGroupRule:SecGroupRule"))
        + EGRESS_RULES_PER_GROUP * len(groups)
        + DEFAULT_GROUP_RULES,
        "loadBalancers": load_balancers,
    }


WHAT = {
    "instances": "instances",
    "gpuInstances": f"instances of GPU flavors (g3), which need the allocation's {GPU_RESOURCE} resource",
    "cores": "vCPUs",
    "ramGb": "GB of RAM",
    "floatingIps": "floating IPs",
    "volumes": "volumes",
    "volumeGb": "GB of block storage",
    "routers": "routers (including auto_allocated_network's)",
    "securityGroups": "security groups (including default)",
    "securityGroupRules": "security group rules (including default's and egress rules)",
    "loadBalancers": "Octavia load balancers",
}


def check(resources: list[dict[str, Any]], quotas: QuotaConfig) -> list[QuotaLine]:
    limits = quotas.model_dump(by_alias=True)
    return [QuotaLine(key, WHAT[key], value, limits[key]) for key, value in needs(resources).items()]


def describe(line: QuotaLine) -> str:
    if line.key == "gpuInstances" and line.quota == 0:
        return (
            f"quotas.gpuInstances: the stack needs {line.needed:g} {line.what}, and the allocation has "
            f"none: add the {GPU_RESOURCE} resource to the allocation (ACCESS: exchange credits for it), "
            "then set quotas.gpuInstances to its GPU instance quota, or use CPU flavors"
        )
    return (
        f"quotas.{line.key}: the stack needs {line.needed:g} {line.what}, the allocation's quota is "
        f"{line.quota:g}; raise it with Jetstream2 support (then set quotas.{line.key}) or shrink the stack"
    )
