"""Pieces the scenarios share: the provider, the network, the hub's security group and the
single hub VM."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_openstack as openstack

from components import (
    HubVM,
    HubVMArgs,
    JetstreamNetwork,
    JetstreamNetworkArgs,
    RoleSecurityGroup,
    RoleSecurityGroupArgs,
)
from components.firewall import Ingress, ssh_ingress, web_ingress
from renderers.backup import hub_backup_paths
from renderers.hub_config import HubPaths
from stackconfig import StackConfig
from stacks.backup import backup
from stacks.monitoring import monitoring


def openstack_provider() -> openstack.Provider:
    # Credentials come from the environment of `pulumi up`: source the application
    # credential's openrc (OS_AUTH_URL, OS_APPLICATION_CREDENTIAL_ID, ...) first.
    return openstack.Provider("jetstream2")


def network(cfg: StackConfig, opts: pulumi.ResourceOptions) -> JetstreamNetwork:
    return JetstreamNetwork(
        "net",
        JetstreamNetworkArgs(
            mode=cfg.network_mode,
            network_name=cfg.network_name,
            subnet_name=cfg.subnet_name,
            cidr=cfg.created_subnet_cidr,
            reserved=cfg.cluster_networks,
        ),
        opts=opts,
    )


def hub_security_group(
    cfg: StackConfig, opts: pulumi.ResourceOptions, extra: Sequence[Ingress] = ()
) -> RoleSecurityGroup:
    """80/443 from the world, SSH from `adminCidrs`, and whatever `extra` a scenario needs."""
    return RoleSecurityGroup(
        f"{pulumi.get_stack()}-hub",
        RoleSecurityGroupArgs(
            role="hub", ingress=web_ingress() + ssh_ingress(list(cfg.admin_cidrs)) + list(extra)
        ),
        opts=opts,
    )


def hub_vm(cfg: StackConfig, opts: pulumi.ResourceOptions, extra_ingress: Sequence[Ingress] = ()) -> HubVM:
    """The network, the hub's security group (plus `extra_ingress`) and the hub VM of a
    single-VM hub, with the outputs every such stack exports."""
    net = network(cfg, opts)
    group = hub_security_group(cfg, opts, extra=extra_ingress)
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
    pulumi.export("url", hub.url)
    pulumi.export("public_ip", hub.public_ip)
    pulumi.export("admin_token", hub.admin_token)
    pulumi.export("deploy_public_key", hub.deploy_public_key)
    pulumi.export("data_volume_id", hub.data_volume_id)
    backup(cfg, hub.connection, hub.root_disk, hub_backup_paths(), opts)
    monitoring(cfg, hub.connection, hub.root_disk, hub.metrics_token, HubPaths().data_root, opts)
    return hub
