"""RookCeph: the Rook operator and a Ceph cluster with a replicated block pool (the default
StorageClass) and a CephFS filesystem (an RWX StorageClass), through Rook's Helm charts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import pulumi
import pulumi_kubernetes as kubernetes

from renderers import rook

# Creating a Ceph cluster (mons, OSD preparation on every disk) takes a while.
CLUSTER_TIMEOUT_S = 1800


@dataclass(frozen=True)
class RookCephArgs:
    engine: Literal["k3s", "magnum"]
    mons: int
    replicas: int
    # k3s: node name -> ID of the raw Cinder volume for that node's OSD.
    osd_volume_ids: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    # magnum: PVC-backed OSDs.
    osd_count: int = 3
    osd_size_gb: int = 200
    osd_storage_class: str = "default"
    # k3s: keep Ceph's daemons on nodes with this label.
    node_label: tuple[str, str] | None = None
    # The cluster itself: when it goes, the releases go with it (see K8sCluster.lifeline).
    deleted_with: pulumi.Resource | None = None


class RookCeph(pulumi.ComponentResource):
    operator: kubernetes.helm.v3.Release
    cluster: kubernetes.helm.v3.Release
    block_storage_class: str
    filesystem_storage_class: str

    def __init__(self, name: str, args: RookCephArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("jshub:index:RookCeph", name, None, opts)
        if args.mons < 3:
            pulumi.log.warn(
                f"{name}: Ceph runs {args.mons} mon and keeps {args.replicas} copy of each object: a dev "
                "cluster that loses its data with one disk; use controlPlaneCount 3 for real users",
                resource=self,
            )
        self.operator = kubernetes.helm.v3.Release(
            f"{name}-operator",
            name="rook-ceph",
            chart=rook.OPERATOR_CHART_PATH,
            version=rook.ROOK_VERSION,
            namespace=rook.NAMESPACE,
            create_namespace=True,
            values=rook.operator_values(),
            opts=pulumi.ResourceOptions(parent=self, deleted_with=args.deleted_with),
        )

        def values(ids: dict[str, str]) -> dict:
            return rook.cluster_values(
                rook.RookSpec(
                    engine=args.engine,
                    mons=args.mons,
                    replicas=args.replicas,
                    storage_nodes=tuple(rook.StorageNode(n, ids[n]) for n in args.osd_volume_ids),
                    osd_count=args.osd_count,
                    osd_size_gb=args.osd_size_gb,
                    osd_storage_class=args.osd_storage_class,
                    node_label=args.node_label,
                )
            )

        self.cluster = kubernetes.helm.v3.Release(
            f"{name}-cluster",
            name="rook-ceph-cluster",
            chart=rook.CLUSTER_CHART_PATH,
            version=rook.ROOK_VERSION,
            namespace=rook.NAMESPACE,
            values=pulumi.Output.all(**dict(args.osd_volume_ids)).apply(values),
            timeout=CLUSTER_TIMEOUT_S,
            wait_for_jobs=True,
            # The cluster chart's CRDs come from the operator chart, whose operator must also
            # outlive the cluster's resources to remove their finalizers.
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[self.operator], deleted_with=args.deleted_with
            ),
        )
        self.block_storage_class = rook.BLOCK_CLASS
        self.filesystem_storage_class = rook.FILESYSTEM_CLASS
        self.register_outputs(
            {
                "operator_status": self.operator.status,
                "cluster_status": self.cluster.status,
                "block_storage_class": self.block_storage_class,
                "filesystem_storage_class": self.filesystem_storage_class,
            }
        )
