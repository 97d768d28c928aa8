"""Scenario `single`: one hub VM, the single-server deployment the others grow from."""

from __future__ import annotations

import pulumi

from stackconfig import StackConfig
from stacks.common import hub_vm, openstack_provider


def build(cfg: StackConfig) -> None:
    hub_vm(cfg, pulumi.ResourceOptions(providers=[openstack_provider()]))
