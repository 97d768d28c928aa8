"""Monitoring: of the VM that runs the hub, or in the cluster (k8s)."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_command as command
from pydantic import SecretStr

from components.k8s_monitoring import K8sMonitoring, K8sMonitoringArgs
from components.monitoring import HubMonitoring, HubMonitoringArgs, MonitoredHost
from renderers import z2jh
from renderers.k8s_monitoring import K8sMonitoringSpec
from renderers.monitoring import AlertTargets, MonitoringSpec
from renderers.rook import BLOCK_CLASS
from stackconfig import StackConfig, sizing

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
        alerts=alert_targets(cfg),
        allocation=sizing.burn(cfg),
    )


def alert_targets(cfg: StackConfig) -> AlertTargets | None:
    """Where Alertmanager sends alerts; None when the stack names nowhere (no Alertmanager)."""
    m = cfg.monitoring
    if m.alert_email is None and cfg.alert_webhook_url is None:
        return None
    return AlertTargets(
        email_to=m.alert_email,
        smarthost=m.smtp_smarthost,
        email_from=m.smtp_from,
        smtp_username=m.smtp_username,
        smtp_password=cfg.alert_smtp_password is not None,
        webhook=cfg.alert_webhook_url is not None,
    )


def _secret(value: SecretStr | None) -> pulumi.Output[str]:
    """An alerting secret from config, "" when unset, marked secret either way."""
    return pulumi.Output.secret(value.get_secret_value() if value is not None else "")


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
            smtp_password=_secret(cfg.alert_smtp_password),
            webhook_url=_secret(cfg.alert_webhook_url),
        ),
        opts=opts,
    )
    pulumi.export("prometheus_url", f"https://{cfg.hub_fqdn}{WEB_PATH}")
    # User admin: `pulumi stack output prometheus_password --show-secrets`.
    pulumi.export("prometheus_password", monitor.web_password)
    return monitor


def k8s_monitoring_spec(cfg: StackConfig) -> K8sMonitoringSpec:
    m = cfg.monitoring
    return K8sMonitoringSpec(
        fqdn=cfg.hub_fqdn,
        hub_namespace=z2jh.NAMESPACE,
        retention_days=m.retention_days,
        volume_full_percent=m.volume_full_percent,
        spawn_failures_per_hour=m.spawn_failures_per_hour,
        backup_max_age_hours=cfg.backup.max_age_hours if cfg.backup.on_for(cfg.scenario) else None,
        storage_class=BLOCK_CLASS,
        alerts=alert_targets(cfg),
        allocation=sizing.burn(cfg),
    )


def k8s_monitoring(
    cfg: StackConfig,
    grafana_token: pulumi.Input[str] | None,
    metrics_token: pulumi.Input[str] | None,
    in_cluster: pulumi.ResourceOptions,
    depends_on: Sequence[pulumi.Resource],
    deleted_with: pulumi.Resource | None,
) -> K8sMonitoring | None:
    """The k8s scenario: nothing when monitoring is off for this stack."""
    if not cfg.monitoring.on_for(cfg.scenario):
        return None
    if grafana_token is None or metrics_token is None:
        raise ValueError("monitoring on k8s needs the hub's grafana and metrics service tokens (Z2JH)")
    monitor = K8sMonitoring(
        "monitoring",
        K8sMonitoringArgs(
            spec=k8s_monitoring_spec(cfg),
            grafana_client_secret=grafana_token,
            metrics_token=metrics_token,
            smtp_password=_secret(cfg.alert_smtp_password),
            webhook_url=_secret(cfg.alert_webhook_url),
            depends_on=depends_on,
            deleted_with=deleted_with,
        ),
        opts=in_cluster,
    )
    pulumi.export("grafana_url", monitor.grafana_url)
    return monitor
