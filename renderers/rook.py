"""Values for Rook's two Helm charts (operator, and the cluster with its pools and storage
classes). Pure: plain values in, dicts out; the tests check every custom resource spec in them
against Rook's CRD schemas."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

ROOK_VERSION = "v1.20.6"
# The operator and cluster charts, vendored in charts/ at ROOK_VERSION (charts/README.md).
OPERATOR_CHART_PATH = "./charts/rook-ceph"
CLUSTER_CHART_PATH = "./charts/rook-ceph-cluster"
NAMESPACE = "rook-ceph"
BLOCK_CLASS = "ceph-block"
FILESYSTEM_CLASS = "ceph-filesystem"
BLOCK_POOL = "ceph-blockpool"
FILESYSTEM = "ceph-filesystem"
FILESYSTEM_DATA_POOL = "data0"
# Where Rook keeps each node's Ceph state (the mons' stores); on k3s the node's state volume.
DATA_DIR_HOST_PATH = "/var/lib/rook"


@dataclass(frozen=True)
class StorageNode:
    """A k3s node with a raw Cinder volume for one OSD."""

    node_name: str
    volume_id: str

    @property
    def device_filter(self) -> str:
        """The volume's stable udev links: virtio-blk names the disk by the first 20 characters
        of the volume ID (`virtio-<id20>`), virtio-scsi by the whole ID
        (`scsi-0QEMU_QEMU_HARDDISK_<id>`); both contain the prefix, no other disk does."""
        return f"^/dev/disk/by-id/.*{self.volume_id[:20]}"


@dataclass(frozen=True)
class RookSpec:
    engine: Literal["k3s", "magnum"]
    mons: int
    replicas: int
    # k3s: OSDs on these nodes' raw volumes.
    storage_nodes: tuple[StorageNode, ...] = ()
    # magnum: OSDs (and mons) on PVCs of this Cinder class.
    osd_count: int = 3
    osd_size_gb: int = 200
    osd_storage_class: str = "default"
    # k3s: keep Ceph's daemons on the nodes with this label (the control plane).
    node_label: tuple[str, str] | None = None

    @property
    def managers(self) -> int:
        return 2 if self.mons >= 3 else 1


def _volume_claim(name: str, size_gb: int, storage_class: str, mode: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "resources": {"requests": {"storage": f"{size_gb}Gi"}},
            "storageClassName": storage_class,
            "volumeMode": mode,
            "accessModes": ["ReadWriteOnce"],
        },
    }


def _spread_over_hosts(app: str) -> list[dict[str, Any]]:
    return [
        {
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": [app]}]},
        }
    ]


def _storage(spec: RookSpec) -> dict[str, Any]:
    if spec.engine == "k3s":
        return {
            "useAllNodes": False,
            "useAllDevices": False,
            "nodes": [
                {"name": node.node_name, "devicePathFilter": node.device_filter}
                for node in spec.storage_nodes
            ],
        }
    return {
        "useAllNodes": False,
        "useAllDevices": False,
        "storageClassDeviceSets": [
            {
                "name": "osd",
                "count": spec.osd_count,
                # Cinder volumes follow their pod to another node when one is replaced.
                "portable": True,
                "encrypted": False,
                "placement": {"topologySpreadConstraints": _spread_over_hosts("rook-ceph-osd")},
                "preparePlacement": {
                    "topologySpreadConstraints": _spread_over_hosts("rook-ceph-osd-prepare")
                },
                "volumeClaimTemplates": [
                    _volume_claim("data", spec.osd_size_gb, spec.osd_storage_class, "Block")
                ],
            }
        ],
    }


def ceph_cluster_spec(spec: RookSpec) -> dict[str, Any]:
    """The CephCluster spec; the chart deep-merges it over its own defaults."""
    mon: dict[str, Any] = {"count": spec.mons, "allowMultiplePerNode": False}
    if spec.engine == "magnum":
        # Mons keep their store on a volume, so a replaced node does not lose a mon.
        mon["volumeClaimTemplate"] = _volume_claim("mon", 10, spec.osd_storage_class, "Filesystem")
    cluster: dict[str, Any] = {
        "dataDirHostPath": DATA_DIR_HOST_PATH,
        "mon": mon,
        "mgr": {"count": spec.managers, "allowMultiplePerNode": False},
        "dashboard": {"enabled": True, "ssl": True},
        "storage": _storage(spec),
        # Never wipe disks on uninstall unless an operator confirms it by hand.
        "cleanupPolicy": {"confirmation": "", "allowUninstallWithVolumes": False},
        "disruptionManagement": {"managePodBudgets": True},
    }
    if spec.node_label:
        key, value = spec.node_label
        cluster["placement"] = {
            "all": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {"matchExpressions": [{"key": key, "operator": "In", "values": [value]}]}
                        ]
                    }
                }
            }
        }
    return cluster


def _replicated(spec: RookSpec) -> dict[str, Any]:
    # A one-node dev cluster can hold only one copy; Rook refuses size 1 unless told it is meant.
    return {"size": spec.replicas, "requireSafeReplicaSize": spec.replicas > 1}


def block_pool_spec(spec: RookSpec) -> dict[str, Any]:
    return {"failureDomain": "host", "replicated": _replicated(spec)}


def filesystem_spec(spec: RookSpec) -> dict[str, Any]:
    return {
        "metadataPool": {"failureDomain": "host", "replicated": _replicated(spec)},
        "dataPools": [
            {"name": FILESYSTEM_DATA_POOL, "failureDomain": "host", "replicated": _replicated(spec)}
        ],
        # Keep the filesystem's pools when the CephFilesystem resource is deleted.
        "preserveFilesystemOnDelete": True,
        "metadataServer": {
            "activeCount": 1,
            "activeStandby": spec.mons >= 3,
            "resources": {"limits": {"memory": "4Gi"}, "requests": {"cpu": "1000m", "memory": "4Gi"}},
            "priorityClassName": "system-cluster-critical",
        },
    }


def _csi_secrets(kind: str) -> dict[str, str]:
    # The chart replaces whole lists, so the parameters its defaults carry are repeated here.
    ns = "{{ .Release.Namespace }}"
    provisioner, node = f"rook-csi-{kind}-provisioner", f"rook-csi-{kind}-node"
    return {
        "csi.storage.k8s.io/provisioner-secret-name": provisioner,
        "csi.storage.k8s.io/provisioner-secret-namespace": ns,
        "csi.storage.k8s.io/controller-expand-secret-name": provisioner,
        "csi.storage.k8s.io/controller-expand-secret-namespace": ns,
        "csi.storage.k8s.io/controller-publish-secret-name": provisioner,
        "csi.storage.k8s.io/controller-publish-secret-namespace": ns,
        "csi.storage.k8s.io/node-stage-secret-name": node,
        "csi.storage.k8s.io/node-stage-secret-namespace": ns,
        "csi.storage.k8s.io/fstype": "ext4",
    }


def _storage_class(name: str, *, default: bool, **extra: Any) -> dict[str, Any]:
    return {
        "enabled": True,
        "name": name,
        "isDefault": default,
        # Homes and shared data outlive their claims: an operator deletes released volumes.
        "reclaimPolicy": "Retain",
        "allowVolumeExpansion": True,
        "volumeBindingMode": "Immediate",
        "annotations": {},
        "labels": {},
        "mountOptions": [],
        **extra,
    }


def operator_values() -> dict[str, Any]:
    return {
        "crds": {"enabled": True},
        "monitoring": {"enabled": False},
        # Rook 1.20 runs Ceph CSI through the ceph-csi-operator subchart.
        "csi": {"installCsiOperator": True},
    }


def cluster_values(spec: RookSpec) -> dict[str, Any]:
    return {
        "operatorNamespace": NAMESPACE,
        "toolbox": {"enabled": True},
        "cephClusterSpec": ceph_cluster_spec(spec),
        "cephBlockPools": [
            {
                "name": BLOCK_POOL,
                "spec": block_pool_spec(spec),
                "storageClass": _storage_class(
                    BLOCK_CLASS,
                    default=True,
                    allowedTopologies=[],
                    parameters={"imageFormat": "2", "imageFeatures": "layering", **_csi_secrets("rbd")},
                ),
            }
        ],
        "cephFileSystems": [
            {
                "name": FILESYSTEM,
                "spec": filesystem_spec(spec),
                "storageClass": _storage_class(
                    FILESYSTEM_CLASS,
                    default=False,
                    pool=FILESYSTEM_DATA_POOL,
                    parameters=_csi_secrets("cephfs"),
                ),
            }
        ],
        # No object store: nothing in this deployment uses S3.
        "cephObjectStores": [],
    }
