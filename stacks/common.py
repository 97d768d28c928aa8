"""Pieces every scenario shares: the provider, the network and the hub's security group."""

from __future__ import annotations

import pulumi
import pulumi_openstack as openstack

from components import (
    JetstreamNetwork,
    JetstreamNetworkArgs,
    RoleSecurityGroup,
    RoleSecurityGroupArgs,
)
from components.firewall import ssh_ingress, web_ingress
from stackconfig import StackConfig


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
            cidr=cfg.subnet_cidr,
        ),
        opts=opts,
    )


def hub_security_group(cfg: StackConfig, opts: pulumi.ResourceOptions) -> RoleSecurityGroup:
    return RoleSecurityGroup(
        f"{pulumi.get_stack()}-hub",
        RoleSecurityGroupArgs(role="hub", ingress=web_ingress() + ssh_ingress(list(cfg.admin_cidrs))),
        opts=opts,
    )
