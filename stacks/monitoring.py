"""Monitoring of the VM that runs the hub, for the scenarios that have one."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_command as command

from components.monitoring import HubMonitoring, HubMonitoringArgs, MonitoredHost
from renderers.monitoring import MonitoringSpec
from stackconfig import StackConfig

# The hub's public port on the VM: the proxy on a hub VM, the published service on a manager.
HUB_TARGET = "127.0.0.1:8000"
# Prometheus's web UI under the hub's HTTPS name, for admins.
WEB_PATH = "/prometheus/"


def monitoring_spec(cfg: StackConfig, data_mount: str) -> MonitoringSpec:
    m = cfg.monitoring
    backups = cfg.backup.on_for(cfg.scenario)
    return MonitoringSpec(
        hub_target=HUB_TARGET,
        data_mount=data_mount,
        retention_days=m.retention_days,
        volume_full_percent=m.volume_full_percent,
        spawn_failures_per_hour=m.spawn_failures_per_hour,
        backup_max_age_hours=cfg.backup.max_age_hours if backups else None,
        external_url=f"https://{cfg.hub_fqdn}{WEB_PATH}",
    )


def monitoring(
    cfg: StackConfig,
    connection: command.remote.ConnectionArgs,
    root_disk: Sequence[pulumi.Input[str]],
    metrics_token: pulumi.Input[str],
    data_mount: str,
    opts: pulumi.ResourceOptions,
    workers: Sequence[MonitoredHost] = (),
) -> HubMonitoring | None:
    """Nothing when monitoring is off for this stack (monitoring.enabled, or the scenario's default)."""
    if not cfg.monitoring.on_for(cfg.scenario):
        return None
    monitor = HubMonitoring(
        "monitoring",
        HubMonitoringArgs(
            spec=monitoring_spec(cfg, data_mount),
            metrics_token=metrics_token,
            host_connection=connection,
            host_root_disk=root_disk,
            workers=workers,
        ),
        opts=opts,
    )
    pulumi.export("prometheus_url", f"https://{cfg.hub_fqdn}{WEB_PATH}")
    # User admin: `pulumi stack output prometheus_password --show-secrets`.
    pulumi.export("prometheus_password", monitor.web_password)
    return monitor
