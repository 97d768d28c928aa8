"""Backups of the VM that holds the homes, for the scenarios that have one: a BackupStore wired
to that VM, and the outputs an operator needs to restore without it."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_command as command

from components.backup import BackupStore, BackupStoreArgs, container_name
from components.k8s_backup import K8sHomeBackup, K8sHomeBackupArgs
from renderers import z2jh
from renderers.backup import BackupPaths, BackupSpec, restic_host
from renderers.k8s_backup import K8sBackupSpec
from stackconfig import StackConfig
from stackconfig.backup import cron_schedule


def backup_spec(cfg: StackConfig, paths: BackupPaths) -> BackupSpec:
    b = cfg.backup
    return BackupSpec(
        host=restic_host(pulumi.get_project(), pulumi.get_stack()),
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
    _export(store)
    return store


def _export(store: BackupStore) -> None:
    pulumi.export("backup_container", store.container_name)
    pulumi.export("backup_repository", store.repository)
    # With the EC2 credentials (`openstack ec2 credentials list`), what reads the backups
    # when the VM is gone: `pulumi stack output restic_password --show-secrets`.
    pulumi.export("restic_password", store.restic_password)


def k8s_backup_spec(cfg: StackConfig) -> K8sBackupSpec:
    b = cfg.backup
    return K8sBackupSpec(
        namespace=z2jh.NAMESPACE,
        host=restic_host(pulumi.get_project(), pulumi.get_stack()),
        schedule=cron_schedule(b.schedule),
        keep_daily=b.retention.keep_daily,
        keep_weekly=b.retention.keep_weekly,
        keep_monthly=b.retention.keep_monthly,
        max_age_hours=b.max_age_hours,
    )


def k8s_backup(
    cfg: StackConfig,
    opts: pulumi.ResourceOptions,
    in_cluster: pulumi.ResourceOptions,
    hub: Sequence[pulumi.Resource],
    deleted_with: pulumi.Resource | None,
) -> K8sHomeBackup | None:
    """The k8s scenario: the same object-storage container and credentials as the VMs', and a
    CronJob in the hub's namespace that backs up each user's volume and the hub database.
    Nothing when backups are off for this stack."""
    if not cfg.backup.on_for(cfg.scenario):
        return None
    store = BackupStore(
        "backup",
        BackupStoreArgs(
            container_name=cfg.backup.container or container_name(cfg.allocation, pulumi.get_stack())
        ),
        opts=opts,
    )
    _export(store)
    backup = K8sHomeBackup(
        "home-backup",
        K8sHomeBackupArgs(
            spec=k8s_backup_spec(cfg),
            repository=store.repository,
            s3_access_key=store.s3_access_key,
            s3_secret_key=store.s3_secret_key,
            restic_password=store.restic_password,
            depends_on=hub,
            deleted_with=deleted_with,
        ),
        opts=in_cluster,
    )
    pulumi.export("backup_restore_command", backup.restore_command)
    return backup
