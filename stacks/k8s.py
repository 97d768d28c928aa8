"""Scenario `k8s`: a Kubernetes cluster (k3s on VMs, or Magnum), Ceph through Rook, and
JupyterHub from the Zero to JupyterHub chart, sized from the expected concurrent users."""

from __future__ import annotations

import pulumi

from components.gpu import NvidiaDevicePlugin, NvidiaDevicePluginArgs
from components.k8s_cluster import K8sCluster, K8sClusterArgs
from components.rook_ceph import RookCeph, RookCephArgs
from components.z2jh import Z2JH, Z2JHArgs
from renderers import k3s
from stackconfig import StackConfig, sizing
from stacks.backup import k8s_backup
from stacks.common import network, openstack_provider
from stacks.deployed import existing_resources, existing_vms
from stacks.monitoring import k8s_monitoring


def build(cfg: StackConfig) -> None:
    assert cfg.k8s is not None, "the config rules require the k8s section for scenario k8s"
    k8s = cfg.k8s
    opts = pulumi.ResourceOptions(providers=[openstack_provider()])
    net = network(cfg, opts)
    cluster = K8sCluster(
        "k8s",
        K8sClusterArgs(
            config=cfg,
            network_id=net.network_id,
            subnet_id=net.subnet_id,
            subnet_cidr=net.cidr,
            existing_nodes=existing_vms(existing_resources()),
        ),
        opts=opts,
    )
    in_cluster = pulumi.ResourceOptions(providers=[cluster.provider])
    ceph = RookCeph(
        "ceph",
        RookCephArgs(
            engine=k8s.engine,
            mons=sizing.ceph_mons(k8s),
            replicas=sizing.ceph_replicas(k8s),
            osd_volume_ids=cluster.osd_volume_ids,
            osd_count=sizing.storage_node_count(k8s),
            osd_size_gb=k8s.ceph_volume_gb,
            osd_storage_class=k8s.osd_storage_class,
            node_label=(k3s.NODE_PURPOSE, "core") if k8s.engine == "k3s" else None,
            deleted_with=cluster.lifeline,
        ),
        opts=in_cluster,
    )
    hub = Z2JH(
        "hub",
        Z2JHArgs(
            config=cfg,
            storage=[ceph.cluster],
            load_balancer_ip=cluster.ingress_ip if k8s.engine == "magnum" else None,
            depends_on=cluster.workers_ready,
            deleted_with=cluster.lifeline,
        ),
        opts=in_cluster,
    )
    if k8s.gpu_worker_count:
        NvidiaDevicePlugin(
            "gpu",
            NvidiaDevicePluginArgs(
                engine=k8s.engine,
                gpu_flavor=k8s.gpu_worker_flavor,
                depends_on=cluster.workers_ready,
                deleted_with=cluster.lifeline,
            ),
            opts=in_cluster,
        )
    k8s_backup(cfg, opts, in_cluster, hub=[hub.release], deleted_with=cluster.lifeline)
    # Prometheus's volume needs Ceph; the tokens come from the hub's component.
    k8s_monitoring(
        cfg,
        hub.grafana_token,
        hub.metrics_token,
        in_cluster,
        depends_on=[ceph.cluster],
        deleted_with=cluster.lifeline,
    )
    pulumi.export("url", hub.url)
    pulumi.export("admin_token", hub.admin_token)
    pulumi.export("hub_ip", cluster.ingress_ip)
    if cluster.admin_ip is not None:
        pulumi.export("admin_ip", cluster.admin_ip)
    pulumi.export("engine", k8s.engine)
    pulumi.export("workers", sizing.worker_count(cfg))
    pulumi.export("gpu_workers", k8s.gpu_worker_count)
    pulumi.export("kubeconfig", cluster.kubeconfig)
    pulumi.export("osd_volume_ids", cluster.osd_volume_ids)
