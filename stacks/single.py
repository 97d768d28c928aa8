"""Scenario `single`: one hub VM, the single-server deployment the others grow from."""

from __future__ import annotations

import pulumi

from components import HubVM, HubVMArgs
from stackconfig import StackConfig
from stacks.common import hub_security_group, network, openstack_provider


def build(cfg: StackConfig) -> None:
    opts = pulumi.ResourceOptions(providers=[openstack_provider()])
    net = network(cfg, opts)
    group = hub_security_group(cfg, opts)
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
