"""Backups of the VM that holds the homes, for the scenarios that have one: a BackupStore wired
to that VM, and the outputs an operator needs to restore without it."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_command as command

from components.backup import BackupStore, BackupStoreArgs, container_name
from renderers.backup import BackupPaths, BackupSpec
from stackconfig import StackConfig


def backup_spec(cfg: StackConfig, paths: BackupPaths) -> BackupSpec:
    b = cfg.backup
    return BackupSpec(
        host=cfg.hub_fqdn,
        paths=paths,
        schedule=b.schedule,
        keep_daily=b.retention.keep_daily,
        keep_weekly=b.retention.keep_weekly,
        keep_monthly=b.retention.keep_monthly,
        max_age_hours=b.max_age_hours,
    )


def backup(
    cfg: StackConfig,
    connection: command.remote.ConnectionArgs,
    root_disk: Sequence[pulumi.Input[str]],
    paths: BackupPaths,
    opts: pulumi.ResourceOptions,
) -> BackupStore | None:
    """Nothing when backups are off for this stack (backup.enabled, or the scenario's default)."""
    if not cfg.backup.on_for(cfg.scenario):
        return None
    store = BackupStore(
        "backup",
        BackupStoreArgs(
            container_name=cfg.backup.container or container_name(cfg.allocation, pulumi.get_stack()),
            spec=backup_spec(cfg, paths),
            host_connection=connection,
            host_root_disk=root_disk,
        ),
        opts=opts,
    )
    pulumi.export("backup_container", store.container_name)
    pulumi.export("backup_repository", store.repository)
    # With the EC2 credentials (`openstack ec2 credentials list`), what reads the backups
    # when the VM is gone: `pulumi stack output restic_password --show-secrets`.
    pulumi.export("restic_password", store.restic_password)
    return store
