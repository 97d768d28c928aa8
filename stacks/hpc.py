"""Scenario `hpc`: a science gateway's hub VM whose notebooks run as SLURM jobs on an HPC
system, submitted over SSH to its login node (BatchBridge)."""

from __future__ import annotations

import pulumi

from components import BatchBridge, BatchBridgeArgs
from components.batch_bridge import hub_api_ingress
from renderers.hub_spec import HubPaths, users_env_spec
from stackconfig import StackConfig
from stacks.common import hub_vm, openstack_provider


def build(cfg: StackConfig) -> None:
    assert cfg.hpc is not None  # the config rules refuse scenario hpc without it
    opts = pulumi.ResourceOptions(providers=[openstack_provider()])
    # Only 80/443 face the world; in direct mode the compute nodes' networks may also call the
    # hub API port (hub_api_ingress), and nothing else.
    hub = hub_vm(cfg, opts, extra_ingress=hub_api_ingress(cfg))
    bridge = BatchBridge(
        "hpc",
        BatchBridgeArgs(
            config=cfg,
            hub_connection=hub.connection,
            hub_root_disk=hub.root_disk,
            users_env=users_env_spec(cfg, HubPaths()),
        ),
        opts=opts,
    )
    # The HPC admin authorizes this key for the account(s) the hub logs in as (docs/hpc.md).
    pulumi.export("hpc_public_key", bridge.public_key)
    pulumi.export("hpc_login", f"{cfg.hpc.login_host}:{cfg.hpc.login_port}")
    pulumi.export("hpc_connectivity", cfg.hpc.connectivity)
