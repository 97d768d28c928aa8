"""Scenario `swarm`: a Docker Swarm of Jetstream2 VMs, homes on NFS with per-user quotas, the
hub as a swarm service on the manager behind Caddy (Let's Encrypt)."""

from __future__ import annotations

import pulumi
import pulumi_random as random

from components.monitoring import MonitoredHost
from components.swarm import SwarmCluster, SwarmClusterArgs
from components.swarm_hub import SwarmHub, SwarmHubArgs
from renderers.backup import hub_backup_paths
from renderers.swarm import EXPORT_ROOT, IMAGE_PATHS
from stackconfig import StackConfig
from stacks.backup import backup
from stacks.common import hub_security_group, network, openstack_provider
from stacks.monitoring import monitoring


def build(cfg: StackConfig) -> None:
    opts = pulumi.ResourceOptions(providers=[openstack_provider()])
    net = network(cfg, opts)
    group = hub_security_group(cfg, opts)
    cluster = SwarmCluster(
        "swarm",
        SwarmClusterArgs(
            config=cfg,
            network_id=net.network_id,
            subnet_id=net.subnet_id,
            manager_security_group_ids=[group.group_id],
        ),
        opts=opts,
    )
    admin_token = random.RandomPassword("hub-admin-token", length=48, special=False)
    metrics_token = None
    if cfg.monitoring.on_for(cfg.scenario):
        metrics_token = random.RandomPassword("hub-metrics-token", length=48, special=False).result
    hub = SwarmHub(
        "hub",
        SwarmHubArgs(
            config=cfg,
            manager_public_ip=cluster.manager_public_ip,
            admin_token=admin_token.result,
            depends_on=cluster.ready,
            manager_host_key=cluster.manager_host_key,
            swarm_id=cluster.swarm_id,
            metrics_token=metrics_token,
        ),
    )
    pulumi.export("url", hub.url)
    pulumi.export("public_ip", cluster.manager_public_ip)
    pulumi.export("admin_token", pulumi.Output.secret(admin_token.result))
    pulumi.export("deploy_public_key", cluster.deploy_public_key)
    pulumi.export("homes_volume_id", cluster.homes_volume_id)
    pulumi.export("workers", cluster.worker_names)
    pulumi.export("hub_image", hub.image)
    # The homes and the hub's database are on the manager's volume, where the image's paths put them.
    backup(cfg, cluster.manager_connection, cluster.manager_root_disk, hub_backup_paths(IMAGE_PATHS), opts)
    if metrics_token is not None:
        workers = [MonitoredHost(w.connection, w.root_disk, w.private_ip) for w in cluster.workers]
        monitoring(
            cfg,
            cluster.manager_connection,
            cluster.manager_root_disk,
            metrics_token,
            EXPORT_ROOT,
            opts,
            workers=workers,
        )
