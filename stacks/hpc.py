"""Scenario `hpc`: a science gateway's hub VM whose notebooks run as SLURM jobs on an HPC
system, submitted over SSH to its login node (BatchBridge)."""

from __future__ import annotations

import pulumi

from components import (
    BatchBridge,
    BatchBridgeArgs,
    HubVM,
    HubVMArgs,
    RoleSecurityGroup,
    RoleSecurityGroupArgs,
)
from components.batch_bridge import hub_api_ingress
from components.firewall import ssh_ingress, web_ingress
from stackconfig import StackConfig
from stacks.common import network, openstack_provider


def build(cfg: StackConfig) -> None:
    assert cfg.hpc is not None  # the config rules refuse scenario hpc without it
    opts = pulumi.ResourceOptions(providers=[openstack_provider()])
    net = network(cfg, opts)
    # Only 80/443 face the world; in direct mode the compute nodes' networks may also call the
    # hub API port, and nothing else.
    group = RoleSecurityGroup(
        f"{pulumi.get_stack()}-hub",
        RoleSecurityGroupArgs(
            role="hub",
            ingress=web_ingress() + ssh_ingress(list(cfg.admin_cidrs)) + hub_api_ingress(cfg),
        ),
        opts=opts,
    )
    hub = HubVM(
        "hub",
        HubVMArgs(
            config=cfg,
            network_id=net.network_id,
            subnet_id=net.subnet_id,
            security_group_ids=[group.group_id],
        ),
        opts=opts,
    )
    bridge = BatchBridge(
        "hpc",
        BatchBridgeArgs(
            config=cfg,
            hub_connection=hub.connection,
            hub_instance_id=hub.instance_id,
            depends_on=[hub],
        ),
        opts=opts,
    )
    pulumi.export("url", hub.url)
    pulumi.export("public_ip", hub.public_ip)
    pulumi.export("admin_token", hub.admin_token)
    pulumi.export("deploy_public_key", hub.deploy_public_key)
    pulumi.export("data_volume_id", hub.data_volume_id)
    # The HPC admin authorizes this key for the account(s) the hub logs in as (docs/hpc.md).
    pulumi.export("hpc_public_key", bridge.public_key)
    pulumi.export("hpc_login", f"{cfg.hpc.login_host}:{cfg.hpc.login_port}")
    pulumi.export("hpc_connectivity", cfg.hpc.connectivity)
