"""The servers and volumes a Magnum cluster asks Nova and Cinder for, read from its planned
inputs: the plan holds one Cluster resource (and maybe NodeGroups), not the nodes themselves.

Cluster: `master_count` × `master_flavor` and `node_count` × `flavor`, each node with a Docker
volume of `docker_volume_size` GB when set; the autoscaler's bounds are the `min_node_count` and
`max_node_count` labels. NodeGroup: `node_count` × `flavor_id`, bounds `min_node_count` and
`max_node_count`. Rook's OSDs and mons on PVCs (storageClassDeviceSets, mon
volumeClaimTemplate) are Cinder volumes too."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

CLUSTER = "openstack:containerinfra/cluster:Cluster"
NODE_GROUP = "openstack:containerinfra/nodeGroup:NodeGroup"
RELEASE = "kubernetes:helm.sh/v3:Release"


@dataclass(frozen=True)
class NodePool:
    name: str  # e.g. "k8s-cluster masters"
    flavor: str
    count: int  # what runs now: cost counts this
    max_count: int  # what the autoscaler may grow to: quotas count this
    volume_gb: float  # Docker volume of each node (0: none)


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return default


def node_pools(resources: list[dict[str, Any]]) -> list[NodePool]:
    pools = []
    for r in resources:
        if not r["custom"]:
            continue
        i = r["inputs"]
        if r["type"] == CLUSTER:
            labels = i.get("labels") or {}
            volume = float(i.get("dockerVolumeSize") or 0)
            masters = _int(i.get("masterCount"), 1)
            workers = _int(i.get("nodeCount"), 1)
            if i.get("masterFlavor"):
                pools.append(NodePool(f"{r['name']} masters", i["masterFlavor"], masters, masters, volume))
            if i.get("flavor"):
                top = max(workers, _int(labels.get("max_node_count"), workers))
                pools.append(NodePool(f"{r['name']} workers", i["flavor"], workers, top, volume))
        elif r["type"] == NODE_GROUP and i.get("flavorId"):
            count = _int(i.get("nodeCount"), 1)
            top = max(count, _int(i.get("maxNodeCount"), count))
            pools.append(
                NodePool(r["name"], i["flavorId"], count, top, float(i.get("dockerVolumeSize") or 0))
            )
    return pools


_SIZE = re.compile(r"^(\d+(?:\.\d+)?)(Gi|G|Ti|T)?$")


def _gb(quantity: Any) -> float:
    match = _SIZE.match(str(quantity))
    if not match:
        return 0.0
    number, unit = float(match.group(1)), match.group(2) or ""
    return number * (1024 if unit.startswith("T") else 1) if unit else number / 1e9


def claim_volumes(resources: list[dict[str, Any]]) -> list[float]:
    """Sizes (GB) of the Cinder volumes Rook claims through PVCs (engine magnum)."""
    sizes: list[float] = []
    for r in resources:
        if r["type"] != RELEASE or not isinstance(r["inputs"].get("values"), dict):
            continue
        spec = r["inputs"]["values"].get("cephClusterSpec") or {}
        for device_set in (spec.get("storage") or {}).get("storageClassDeviceSets") or []:
            for template in device_set.get("volumeClaimTemplates") or []:
                size = _gb(template.get("spec", {}).get("resources", {}).get("requests", {}).get("storage"))
                sizes += [size] * _int(device_set.get("count"), 1)
        mon = spec.get("mon") or {}
        template = mon.get("volumeClaimTemplate")
        if template:
            size = _gb(template.get("spec", {}).get("resources", {}).get("requests", {}).get("storage"))
            sizes += [size] * _int(mon.get("count"), 1)
    return sizes
