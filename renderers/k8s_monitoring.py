"""Monitoring on Kubernetes: the kube-prometheus-stack chart (Prometheus and its operator,
Alertmanager, Grafana, node exporter on every node, kube-state-metrics and the cluster's own
rules), plus what the chart does not know about this hub: a ServiceMonitor for JupyterHub's
/hub/metrics (with the read-only jshub-metrics service's token), one for Ceph's manager, the
project's alert rules as a PrometheusRule, and the VM hubs' Grafana dashboards as ConfigMaps
Grafana's sidecar loads.

Why the whole chart, not a leaner set: on a cluster, node exporter must run on every node
(a DaemonSet), kube-state-metrics is what knows a CronJob's last success and a claim's size, and
the kubelet's volume statistics need its ServiceMonitor; the chart brings all of them, pinned,
with rules the community maintains. Its cost is in `make plan` (pods' requests).

Grafana is reached through the hub's HTTPS name at /services/grafana/: it is a JupyterHub
service (the hub's proxy routes to it) and logs users in with JupyterHub's OAuth; only hub
admins get in (`role_attribute_path` maps `admin` to Grafana's Admin role and refuses everyone
else).

Alertmanager (the chart's) notifies the stack's alert targets, with the same configuration as
the VM hubs' (renderers.monitoring.alertmanager_config). Its file holds the SMTP password and the
webhook URL, so it is not in the release's values (Helm keeps those in plain text in the
cluster and in the stack's state): it is a Kubernetes Secret of the stack's own, made from
Pulumi secrets, that prometheus-operator reads (`alertmanagerSpec.configSecret`, with
`useExistingSecret` so the chart makes none of its own)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import yaml

from catalog.su import Burn
from renderers.k8s_backup import CRONJOB
from renderers.k8s_objects import LABELS
from renderers.monitoring import (
    HUB_PANELS,
    NODE_PANELS,
    AlertTargets,
    _alert,
    alertmanager_config,
    allocation_rule,
    dashboard,
)

CHART = "kube-prometheus-stack"
CHART_VERSION = "88.5.3"
# Vendored in charts/ with its subcharts (charts/README.md), installed from the project folder.
CHART_PATH = f"./charts/{CHART}"
# The Grafana chart that release depends on (its Chart.yaml): the `grafana` values go to it.
GRAFANA_CHART_VERSION = "12.11.1"
NAMESPACE = "monitoring"
RELEASE = "monitoring"
GRAFANA_SERVICE = "grafana"
GRAFANA_PATH = f"/services/{GRAFANA_SERVICE}/"
# The chart names Grafana's Service <release>-grafana, port 80; Grafana listens on 3000.
GRAFANA_HOST = f"{RELEASE}-grafana.{NAMESPACE}.svc"
GRAFANA_PORT = 3000
GRAFANA_OAUTH_SECRET = "grafana-jupyterhub-oauth"
METRICS_SECRET = "hub-metrics-token"
# The chart keeps Grafana's local admin password (login form off: for its API) in this Secret.
GRAFANA_ADMIN_SECRET = f"{RELEASE}-grafana"
METRICS_SERVICE = "jshub-metrics"
# The hub's Service and port, as the Z2JH chart names them.
HUB_SERVICE = "hub"
HUB_PORT = 8081
ROOK_NAMESPACE = "rook-ceph"
CEPH_MGR_PORT = 9283
# The Secret with Alertmanager's configuration, and the key prometheus-operator reads in it.
ALERTMANAGER_SECRET = "alertmanager-jshub"
ALERTMANAGER_KEY = "alertmanager.yaml"
# The chart's alerts that should page no one: Watchdog always fires (a dead man's switch for an
# outside monitor), InfoInhibitor only mutes info alerts, and info alerts (CPUThrottlingHigh,
# ...) stay on Prometheus's Alerts page and Grafana. The chart's default configuration sends
# Watchdog nowhere too.
QUIET_ALERTS = ('alertname = "Watchdog"', 'alertname = "InfoInhibitor"', 'severity = "info"')
# The chart's default inhibit rules (its values.yaml, alertmanager.config.inhibit_rules): a
# critical alert mutes the warnings and infos of the same alert and namespace, a warning the
# infos. The configuration replaces the chart's, so they are carried here; a test compares them
# with the chart's at CHART_VERSION.
INHIBIT_RULES: tuple[dict[str, Any], ...] = (
    {
        "source_matchers": ["severity = critical"],
        "target_matchers": ["severity =~ warning|info"],
        "equal": ["namespace", "alertname"],
    },
    {
        "source_matchers": ["severity = warning"],
        "target_matchers": ["severity = info"],
        "equal": ["namespace", "alertname"],
    },
    {
        "source_matchers": ["alertname = InfoInhibitor"],
        "target_matchers": ["severity = info"],
        "equal": ["namespace"],
    },
    {"target_matchers": ["alertname = InfoInhibitor"]},
)


@dataclass(frozen=True)
class K8sMonitoringSpec:
    fqdn: str
    hub_namespace: str
    retention_days: int
    volume_full_percent: int
    spawn_failures_per_hour: int
    # None: no backups on this stack, so no backup rule.
    backup_max_age_hours: int | None
    prometheus_storage_gb: int = 20
    storage_class: str = "ceph-block"
    # None: the stack names no alert target, and the chart's Alertmanager notifies no one.
    alerts: AlertTargets | None = None
    # None: no allocationSus/allocationSusDate, so no AllocationRunningOut rule.
    allocation: Burn | None = None

    @property
    def grafana_url(self) -> str:
        return f"https://{self.fqdn}{GRAFANA_PATH}"


def _labels(component: str) -> dict[str, str]:
    return {**LABELS, "app.kubernetes.io/component": component}


def _as_value(obj: dict[str, Any]) -> dict[str, Any]:
    """A ServiceMonitor as the chart's `prometheus.additionalServiceMonitors` takes it (the chart
    makes the object in its own namespace, with its CRDs in place first)."""
    return {"name": obj["metadata"]["name"], **obj["spec"]}


def chart_values(spec: K8sMonitoringSpec) -> dict[str, Any]:
    hub_api = f"http://{HUB_SERVICE}.{spec.hub_namespace}.svc:{HUB_PORT}/hub/api"
    alertmanager: dict[str, Any] = {
        "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
    }
    if spec.alerts is not None:
        alertmanager |= {"useExistingSecret": True, "configSecret": ALERTMANAGER_SECRET}
    return {
        # The project's rules and scrapes go through the chart: it orders them after its CRDs.
        "additionalPrometheusRulesMap": {"jshub": rule_groups(spec)},
        "alertmanager": {"alertmanagerSpec": alertmanager},
        "prometheus": {
            "additionalServiceMonitors": [
                _as_value(hub_service_monitor(spec)),
                _as_value(ceph_service_monitor()),
            ],
            "prometheusSpec": {
                "retention": f"{spec.retention_days}d",
                # Every ServiceMonitor and PrometheusRule in the cluster, not only the chart's.
                "serviceMonitorSelectorNilUsesHelmValues": False,
                "podMonitorSelectorNilUsesHelmValues": False,
                "ruleSelectorNilUsesHelmValues": False,
                "resources": {"requests": {"cpu": "200m", "memory": "1Gi"}, "limits": {"memory": "3Gi"}},
                "storageSpec": {
                    "volumeClaimTemplate": {
                        "spec": {
                            "storageClassName": spec.storage_class,
                            "accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": f"{spec.prometheus_storage_gb}Gi"}},
                        }
                    }
                },
            },
        },
        # k3s runs these inside its one binary: no separate endpoints to scrape.
        "kubeControllerManager": {"enabled": False},
        "kubeScheduler": {"enabled": False},
        "kubeProxy": {"enabled": False},
        "kubeEtcd": {"enabled": False},
        "grafana": {
            "enabled": True,
            "defaultDashboardsTimezone": "utc",
            "sidecar": {"dashboards": {"enabled": True, "label": "grafana_dashboard", "labelValue": "1"}},
            # Grafana's own chart (a dependency): server and login settings.
            "grafana.ini": {
                "server": {"root_url": spec.grafana_url, "serve_from_sub_path": True},
                "auth": {"disable_login_form": True, "oauth_auto_login": True},
                "auth.anonymous": {"enabled": False},
                "auth.generic_oauth": {
                    "enabled": True,
                    "name": "JupyterHub",
                    "client_id": f"service-{GRAFANA_SERVICE}",
                    "scopes": "",
                    # The browser goes to the hub's public name; Grafana asks the hub directly.
                    "auth_url": f"https://{spec.fqdn}/hub/api/oauth2/authorize",
                    "token_url": f"{hub_api}/oauth2/token",
                    "api_url": f"{hub_api}/user",
                    "login_attribute_path": "name",
                    "name_attribute_path": "name",
                    # Hub admins are Grafana admins; anyone else is refused.
                    "role_attribute_path": "admin && 'Admin'",
                    "role_attribute_strict": True,
                    "allow_sign_up": True,
                    "use_pkce": True,
                },
            },
            "envValueFrom": {
                "GF_AUTH_GENERIC_OAUTH_CLIENT_SECRET": {
                    "secretKeyRef": {"name": GRAFANA_OAUTH_SECRET, "key": "client-secret"}
                }
            },
            "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
        },
    }


def hub_service_monitor(spec: K8sMonitoringSpec) -> dict[str, Any]:
    """JupyterHub's /hub/metrics, on the hub's Service, with the jshub-metrics token."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "jupyterhub", "namespace": NAMESPACE, "labels": _labels("monitoring")},
        "spec": {
            "jobLabel": "component",
            "selector": {"matchLabels": {"app": "jupyterhub", "component": "hub"}},
            "namespaceSelector": {"matchNames": [spec.hub_namespace]},
            "endpoints": [
                {
                    "port": "hub",
                    "path": "/hub/metrics",
                    "interval": "30s",
                    "authorization": {
                        "type": "Bearer",
                        # A Secret in the ServiceMonitor's own namespace (the operator's rule).
                        "credentials": {"name": METRICS_SECRET, "key": "token"},
                    },
                }
            ],
        },
    }


def ceph_service_monitor() -> dict[str, Any]:
    """Ceph's manager (Rook's rook-ceph-mgr Service): ceph_health_status and the pools' use."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "rook-ceph-mgr", "namespace": NAMESPACE, "labels": _labels("monitoring")},
        "spec": {
            "selector": {"matchLabels": {"app": "rook-ceph-mgr"}},
            "namespaceSelector": {"matchNames": [ROOK_NAMESPACE]},
            "endpoints": [{"port": "http-metrics", "path": "/metrics", "interval": "30s"}],
        },
    }


def alert_rules(spec: K8sMonitoringSpec) -> list[dict[str, Any]]:
    hub = f'up{{namespace="{spec.hub_namespace}", job="hub"}}'
    used = "100 * kubelet_volume_stats_used_bytes / kubelet_volume_stats_capacity_bytes"
    rules = [
        _alert(
            "JupyterHubDown",
            f"{hub} == 0 or absent({hub})",
            "2m",
            "critical",
            "JupyterHub's /hub/metrics has not answered for 2 minutes: the hub pod, or its token, is down",
        ),
        _alert(
            "SpawnFailures",
            'increase(jupyterhub_server_spawn_duration_seconds_count{status="failure"}[1h]) '
            f"> {spec.spawn_failures_per_hour}",
            "0m",
            "warning",
            f"more than {spec.spawn_failures_per_hour} user servers failed to start in the last hour",
        ),
        _alert(
            "VolumeAlmostFull",
            f"{used} > {spec.volume_full_percent}",
            "10m",
            "warning",
            f"volume {{{{ $labels.persistentvolumeclaim }}}} in {{{{ $labels.namespace }}}} is more than "
            f"{spec.volume_full_percent} % full",
        ),
        _alert(
            "CephNotHealthy",
            "ceph_health_status > 0",
            "15m",
            "critical",
            "Ceph reports HEALTH_WARN (1) or HEALTH_ERR (2) for 15 minutes: `kubectl -n rook-ceph exec "
            "deploy/rook-ceph-tools -- ceph health detail`",
        ),
        _alert(
            "CephMetricsMissing",
            "absent(ceph_health_status)",
            "15m",
            "warning",
            "Ceph's manager has not been scraped for 15 minutes: its health is unknown",
        ),
    ]
    if spec.backup_max_age_hours is not None:
        last = f'kube_cronjob_status_last_successful_time{{namespace="{spec.hub_namespace}", cronjob="{CRONJOB}"}}'
        rules.append(
            _alert(
                "BackupTooOld",
                f"(time() - {last} > {spec.backup_max_age_hours * 3600}) or absent({last})",
                # A new cluster has no successful run until the first night.
                "1h" if spec.backup_max_age_hours <= 24 else f"{spec.backup_max_age_hours}h",
                "critical",
                f"the last successful backup run is older than backup.maxAgeHours ({spec.backup_max_age_hours} h)",
            )
        )
        rules.append(_backup_failed(spec.hub_namespace))
    if spec.allocation is not None:
        rules.append(allocation_rule(spec.allocation))
    return rules


def _backup_failed(namespace: str) -> dict[str, Any]:
    """The last backup run failed: the newest Job the CronJob owns (its own, or one made with
    `kubectl create job --from=cronjob/...`) has the Failed condition. The same night, not only
    after maxAgeHours; the next run that succeeds is the newest and ends it. A failed Job stays
    (failedJobsHistoryLimit), so "any failed Job" would fire for days after a success; and
    lastScheduleTime against lastSuccessfulTime misreads a run started late (concurrencyPolicy
    Forbid). `home-backup.sh check` reads the same Job, and prints its log."""
    selector = f'namespace="{namespace}"'
    owned = f'kube_job_owner{{{selector}, owner_kind="CronJob", owner_name="{CRONJOB}"}}'
    newest = f"topk(1, kube_job_created{{{selector}}} * on(namespace, job_name) {owned})"
    failed = f'kube_job_failed{{{selector}, condition="true"}} == 1'
    return _alert(
        "BackupFailed",
        f"{newest} and on(namespace, job_name) ({failed})",
        "0m",
        "critical",
        "the last backup run (Job {{ $labels.job_name }}) failed: "
        f"`kubectl -n {namespace} logs job/{{{{ $labels.job_name }}}}` shows which volume and restic's words",
    )


def rule_groups(spec: K8sMonitoringSpec) -> dict[str, Any]:
    """The rules as Prometheus reads them (what `promtool check rules` checks)."""
    return {"groups": [{"name": "jshub", "rules": alert_rules(spec)}]}


def prometheus_rule(spec: K8sMonitoringSpec) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "jshub", "namespace": NAMESPACE, "labels": _labels("monitoring")},
        "spec": rule_groups(spec),
    }


# The chart's Prometheus data source (grafana.sidecar.datasources.uid).
CHART_DATASOURCE = {"type": "prometheus", "uid": "prometheus"}


# The VM hubs' panels, with the cluster's volumes in place of one data volume.
VOLUME_PANEL = (
    "Volumes used (%)",
    "100 * kubelet_volume_stats_used_bytes / kubelet_volume_stats_capacity_bytes",
)
CEPH_PANEL = ("Ceph health (0 ok, 1 warn, 2 error)", "ceph_health_status")


def dashboards() -> dict[str, dict[str, Any]]:
    return {
        "jupyterhub.json": dashboard("jshub-hub", "JupyterHub", HUB_PANELS, CHART_DATASOURCE),
        "nodes.json": dashboard(
            "jshub-nodes", "JupyterHub nodes", (*NODE_PANELS, VOLUME_PANEL, CEPH_PANEL), CHART_DATASOURCE
        ),
    }


def dashboard_configmap(name: str, board: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": f"dashboard-{name.removesuffix('.json')}",
            "namespace": NAMESPACE,
            "labels": {**_labels("dashboard"), "grafana_dashboard": "1"},
        },
        "data": {name: json.dumps(board, indent=2) + "\n"},
    }


def secret(name: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": _labels("monitoring")},
        "type": "Opaque",
        "stringData": data,
    }


def alertmanager_config_of(alerts: AlertTargets, smtp_password: str, webhook_url: str) -> dict[str, Any]:
    """The cluster's Alertmanager configuration, with the secrets themselves: only ever inside a
    Kubernetes Secret (`alertmanager_secret`)."""
    return alertmanager_config(
        alerts, smtp_password, webhook_url, quiet=QUIET_ALERTS, inhibit_rules=INHIBIT_RULES
    )


def alertmanager_secret(alerts: AlertTargets, smtp_password: str, webhook_url: str) -> dict[str, Any]:
    text = yaml.safe_dump(alertmanager_config_of(alerts, smtp_password, webhook_url), sort_keys=False)
    return secret(ALERTMANAGER_SECRET, {ALERTMANAGER_KEY: text})


def render_rules(spec: K8sMonitoringSpec) -> str:
    return yaml.safe_dump(rule_groups(spec), sort_keys=False)
