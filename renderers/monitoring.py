"""Monitoring of a VM that runs the hub: Prometheus's configuration and alert rules, node
exporter's arguments, Grafana dashboards and the script that installs them over SSH.

Everything is delivered by remote commands, not by user data: a change of threshold or
retention re-runs the install and leaves the server alone. Prometheus (Debian/Ubuntu package
`prometheus`) and node exporter (`prometheus-node-exporter`) listen on 127.0.0.1 on the hub's VM
(node exporter on a swarm worker's private address); admins reach Prometheus's web UI through
Caddy at /prometheus/ with a password (README, Monitoring)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from catalog.su import Burn
from renderers import render
from renderers.backup import METRICS_FILE, TEXTFILE_DIR

HUB_JOB = "jupyterhub"
NODE_JOB = "node"
_HEREDOC = "JSHUB_MONITORING_EOF"


@dataclass(frozen=True)
class MonitoringPaths:
    """Where things are on the VM. Tests point these at a scratch folder."""

    config_dir: str = "/etc/prometheus"
    defaults_dir: str = "/etc/default"
    textfile_dir: str = TEXTFILE_DIR
    dashboards_dir: str = "/usr/local/share/jshub/grafana-dashboards"
    # The Caddyfile imports *.caddy from here (renderers/templates/Caddyfile.j2).
    caddy_routes_dir: str = "/etc/caddy/jshub.d"

    @property
    def caddy_route(self) -> str:
        return f"{self.caddy_routes_dir}/prometheus.caddy"

    @property
    def config_file(self) -> str:
        return f"{self.config_dir}/prometheus.yml"

    @property
    def rules_file(self) -> str:
        return f"{self.config_dir}/jshub-alerts.yml"

    @property
    def token_file(self) -> str:
        return f"{self.config_dir}/jshub-metrics.token"

    @property
    def alertmanager_template(self) -> str:
        return f"{self.config_dir}/alertmanager.yml.in"

    @property
    def alertmanager_config(self) -> str:
        # Debian's prometheus-alertmanager reads this by default.
        return f"{self.config_dir}/alertmanager.yml"


@dataclass(frozen=True)
class AlertTargets:
    """Where Alertmanager sends firing alerts (no secrets here: the SMTP password and the webhook
    URL reach the VM on the install's standard input)."""

    email_to: str | None = None
    smarthost: str | None = None
    email_from: str | None = None
    smtp_username: str | None = None
    # With the SMTP password (monitoring.smtpUsername's), or the webhook URL, on standard input.
    smtp_password: bool = False
    webhook: bool = False


ALERTMANAGER_LISTEN = "127.0.0.1:9093"
# Stand-ins the install replaces with the secrets it reads, in single-quoted YAML scalars.
SMTP_PASSWORD_MARK = "@JSHUB_SMTP_PASSWORD@"
WEBHOOK_URL_MARK = "@JSHUB_WEBHOOK_URL@"


@dataclass(frozen=True)
class MonitoringSpec:
    # The hub's public port on the VM (the proxy on a hub VM, the published service on a swarm
    # manager): /hub/metrics through it is the path users' requests take.
    hub_target: str
    # The data volume's mount point, which VolumeAlmostFull watches.
    data_mount: str
    retention_days: int
    volume_full_percent: int
    spawn_failures_per_hour: int
    # None: this stack has no backups, so there is no backup rule.
    backup_max_age_hours: float | None
    paths: MonitoringPaths = MonitoringPaths()
    node_target: str = "127.0.0.1:9100"
    # Node exporters of the other VMs (swarm workers), at their private addresses.
    worker_targets: tuple[str, ...] = ()
    listen: str = "127.0.0.1:9090"
    scrape_interval_s: int = 30
    # Where admins reach Prometheus's web UI through Caddy (https://<hub>/prometheus/); its path
    # is Prometheus's route prefix. None: served at / on `listen` only.
    external_url: str | None = None
    # None: no Alertmanager (alerts only on Prometheus's Alerts page).
    alerts: AlertTargets | None = None
    # None: no allocationSus/allocationSusDate, so no AllocationRunningOut rule.
    allocation: Burn | None = None

    @property
    def route_prefix(self) -> str:
        if self.external_url is None:
            return "/"
        path = "/" + self.external_url.split("://", 1)[-1].partition("/")[2]
        return path if path.endswith("/") else path + "/"


def render_prometheus_config(spec: MonitoringSpec) -> str:
    config: dict[str, Any] = {
        "global": {
            "scrape_interval": f"{spec.scrape_interval_s}s",
            "evaluation_interval": f"{spec.scrape_interval_s}s",
        },
        "rule_files": [spec.paths.rules_file],
        "scrape_configs": [
            {
                "job_name": HUB_JOB,
                "metrics_path": "/hub/metrics",
                # The token of the jshub-metrics service (read:metrics only), root:prometheus 0640.
                "authorization": {"type": "Bearer", "credentials_file": spec.paths.token_file},
                "static_configs": [{"targets": [spec.hub_target]}],
            },
            {"job_name": NODE_JOB, "static_configs": [{"targets": [spec.node_target, *spec.worker_targets]}]},
        ],
    }
    if spec.alerts is not None:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [ALERTMANAGER_LISTEN]}]}]}
    return yaml.safe_dump(config, sort_keys=False)


# Where alerts that concern no one go: a receiver without notifications.
QUIET_RECEIVER = "null"


def alertmanager_config(
    alerts: AlertTargets,
    smtp_password: str,
    webhook_url: str,
    quiet: Sequence[str] = (),
    inhibit_rules: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """Alertmanager's configuration, for the VM hubs and the cluster alike: every alert goes to
    the `operators` receiver (e-mail and/or webhook), except those matched by a matcher in
    `quiet` (Alertmanager's matcher syntax), which go to a receiver that notifies no one. The
    secrets are given as they belong in the file: the VMs pass stand-ins their install replaces,
    the cluster the values themselves (into a Kubernetes Secret)."""
    receiver: dict[str, Any] = {"name": "operators"}
    config: dict[str, Any] = {}
    if alerts.email_to is not None:
        smtp: dict[str, Any] = {"smtp_smarthost": alerts.smarthost, "smtp_from": alerts.email_from}
        if alerts.smtp_username is not None:
            smtp["smtp_auth_username"] = alerts.smtp_username
        if alerts.smtp_password:
            smtp["smtp_auth_password"] = smtp_password
        config["global"] = smtp
        receiver["email_configs"] = [{"to": alerts.email_to, "send_resolved": True}]
    if alerts.webhook:
        receiver["webhook_configs"] = [{"url": webhook_url, "send_resolved": True}]
    config["route"] = {
        "receiver": "operators",
        "group_by": ["alertname"],
        "group_wait": "30s",
        "group_interval": "5m",
        "repeat_interval": "4h",
    }
    if quiet:
        config["route"]["routes"] = [{"receiver": QUIET_RECEIVER, "matchers": [m]} for m in quiet]
    if inhibit_rules:
        config["inhibit_rules"] = [dict(rule) for rule in inhibit_rules]
    config["receivers"] = [receiver, *([{"name": QUIET_RECEIVER}] if quiet else [])]
    return config


def render_alertmanager_template(alerts: AlertTargets) -> str:
    """alertmanager.yml with SMTP_PASSWORD_MARK and WEBHOOK_URL_MARK where the secrets go; the
    install fills them in on the VM (renderers/templates/_alertmanager-config.sh.j2)."""
    return yaml.safe_dump(alertmanager_config(alerts, SMTP_PASSWORD_MARK, WEBHOOK_URL_MARK), sort_keys=False)


def _alert(name: str, expr: str, duration: str, severity: str, summary: str) -> dict[str, Any]:
    return {
        "alert": name,
        "expr": expr,
        "for": duration,
        "labels": {"severity": severity},
        "annotations": {"summary": summary},
    }


def volume_used_percent(mount: str) -> str:
    selector = f'mountpoint="{mount}"'
    return f"100 * (1 - node_filesystem_avail_bytes{{{selector}}} / node_filesystem_size_bytes{{{selector}}})"


def allocation_rule(burn: Burn) -> dict[str, Any]:
    """Fires while the allocation's balance, counted down at the stack's SU/hour from the day
    it was read, lasts fewer than allocationWarnDays (for the VM hubs and the cluster alike)."""
    return _alert(
        "AllocationRunningOut",
        burn.alert_expr(),
        "0m",
        "warning",
        f"allocationSus {burn.balance_su:g} SU (read {burn.as_of.isoformat()}) lasts fewer than "
        f"allocationWarnDays {burn.warn_days} days at the stack's {burn.su_per_hour:g} SU/hour: ask for more "
        "SUs, or shelve the stack between workshop days",
    )


def alert_rules(spec: MonitoringSpec) -> list[dict[str, Any]]:
    rules = [
        _alert(
            "JupyterHubDown",
            f'up{{job="{HUB_JOB}"}} == 0',
            "2m",
            "critical",
            "JupyterHub's /hub/metrics has not answered for 2 minutes: the hub, the proxy or the token is down",
        ),
        _alert(
            "SpawnFailures",
            f'increase(jupyterhub_server_spawn_duration_seconds_count{{status="failure"}}[1h]) '
            f"> {spec.spawn_failures_per_hour}",
            "0m",
            "warning",
            f"more than {spec.spawn_failures_per_hour} user servers failed to start in the last hour",
        ),
        _alert(
            "VolumeAlmostFull",
            f"{volume_used_percent(spec.data_mount)} > {spec.volume_full_percent}",
            "10m",
            "warning",
            f"the data volume at {spec.data_mount} is more than {spec.volume_full_percent} % full",
        ),
        _alert(
            "NodeDown",
            f'up{{job="{NODE_JOB}"}} == 0',
            "2m",
            "critical",
            "a VM's node exporter (label instance) has not answered for 2 minutes: the VM is down or "
            "unreachable, and its disk, CPU and backup metrics are missing",
        ),
    ]
    if spec.backup_max_age_hours is not None:
        max_age_s = int(spec.backup_max_age_hours * 3600)
        rules += [
            _alert(
                "BackupTooOld",
                f"time() - jshub_backup_last_success_timestamp_seconds > {max_age_s}",
                "0m",
                "critical",
                f"the newest backup is older than backup.maxAgeHours ({spec.backup_max_age_hours:g} h)",
            ),
            # Recorded by jshub-backup-failed when a run fails, gone after the next success: says so
            # the same night, not only after maxAgeHours.
            _alert(
                "BackupFailed",
                "jshub_backup_last_run_failed == 1",
                "0m",
                "critical",
                "the last backup run failed: `sudo jshub-backup-check` on the VM shows its last log lines",
            ),
            # The check runs hourly; without a fresh answer from it, BackupTooOld cannot be trusted.
            _alert(
                "BackupCheckNotRunning",
                "(time() - jshub_backup_check_timestamp_seconds > 7200) or absent(jshub_backup_check_timestamp_seconds)",
                "1h",
                "warning",
                f"jshub-backup-check has not written {METRICS_FILE} for 2 hours",
            ),
        ]
    if spec.allocation is not None:
        rules.append(allocation_rule(spec.allocation))
    return rules


def render_rules(spec: MonitoringSpec) -> str:
    return yaml.safe_dump({"groups": [{"name": "jshub", "rules": alert_rules(spec)}]}, sort_keys=False)


def render_prometheus_defaults(spec: MonitoringSpec) -> str:
    """/etc/default/prometheus: the Debian unit starts `prometheus $ARGS`."""
    args = f"--web.listen-address={spec.listen} --storage.tsdb.retention.time={spec.retention_days}d"
    if spec.external_url is not None:
        args += f" --web.external-url={spec.external_url}"
    return f'ARGS="{args}"\n'


def render_node_exporter_defaults(spec: MonitoringSpec) -> str:
    return _node_exporter_args(spec.node_target, spec.paths.textfile_dir)


def _node_exporter_args(listen: str, textfile_dir: str) -> str:
    return f'ARGS="--web.listen-address={listen} --collector.textfile.directory={textfile_dir}"\n'


NODE_EXPORTER_PORT = 9100


def render_worker_install_script(private_ip: str, paths: MonitoringPaths | None = None) -> str:
    """Run over SSH on a swarm worker: node exporter on its private address, which only the
    cluster's own members may reach (the swarm security group)."""
    paths = paths or MonitoringPaths()
    defaults = _node_exporter_args(f"{private_ip}:{NODE_EXPORTER_PORT}", paths.textfile_dir)
    return render("monitoring-worker-install.sh.j2", paths=paths, defaults=defaults, delimiter=_HEREDOC)


# Grafana dashboards: panels by title, each a PromQL query. Tests hold every metric named here
# to the ones the real hub and the real node exporter export.
HUB_PANELS: tuple[tuple[str, str], ...] = (
    ("Active users (24 h)", 'jupyterhub_active_users{period="24h"}'),
    ("Running servers", "jupyterhub_running_servers"),
    ("Total users", "jupyterhub_total_users"),
    (
        "Spawn latency, 90th percentile (s)",
        'histogram_quantile(0.9, sum by (le) (rate(jupyterhub_server_spawn_duration_seconds_bucket{status="success"}[5m])))',
    ),
    (
        "Spawn failures (1 h)",
        'increase(jupyterhub_server_spawn_duration_seconds_count{status="failure"}[1h])',
    ),
    (
        "Hub request latency, 90th percentile (s)",
        "histogram_quantile(0.9, sum by (le) (rate(jupyterhub_request_duration_seconds_bucket[5m])))",
    ),
)
NODE_PANELS: tuple[tuple[str, str], ...] = (
    ("CPU busy (%)", '100 * (1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m])))'),
    ("Memory used (%)", "100 * (1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes)"),
    ("Load (1 min)", "node_load1"),
    ("Network received (bytes/s)", 'rate(node_network_receive_bytes_total{device!="lo"}[5m])'),
)


def dashboard(
    uid: str, title: str, panels: Sequence[tuple[str, str]], datasource: dict[str, str] | None = None
) -> dict[str, Any]:
    """A Grafana dashboard of time series, two panels a row; `datasource`: the Prometheus data
    source the panels name (default: Grafana's default Prometheus)."""
    return {
        "uid": uid,
        "title": title,
        "schemaVersion": 39,
        "time": {"from": "now-24h", "to": "now"},
        "refresh": "1m",
        "tags": ["jupyterhub"],
        "panels": [
            {
                "id": index + 1,
                "type": "timeseries",
                "title": panel_title,
                "datasource": datasource or {"type": "prometheus"},
                "gridPos": {"h": 8, "w": 12, "x": 12 * (index % 2), "y": 8 * (index // 2)},
                "targets": [{"refId": "A", "expr": expr}],
            }
            for index, (panel_title, expr) in enumerate(panels)
        ],
    }


def dashboards(spec: MonitoringSpec) -> dict[str, dict[str, Any]]:
    """Grafana dashboards by file name."""
    node = [*NODE_PANELS, (f"Data volume {spec.data_mount} used (%)", volume_used_percent(spec.data_mount))]
    return {
        "jupyterhub.json": dashboard("jshub-hub", "JupyterHub", HUB_PANELS),
        "node.json": dashboard("jshub-node", "JupyterHub VM", node),
    }


def files(spec: MonitoringSpec) -> list[tuple[str, str, str]]:
    """(path, mode, text) of every file the install writes, the token aside."""
    p = spec.paths
    result = [
        (p.config_file, "0644", render_prometheus_config(spec)),
        (p.rules_file, "0644", render_rules(spec)),
        (f"{p.defaults_dir}/prometheus", "0644", render_prometheus_defaults(spec)),
        (f"{p.defaults_dir}/prometheus-node-exporter", "0644", render_node_exporter_defaults(spec)),
    ]
    result += [
        (f"{p.dashboards_dir}/{name}", "0644", json.dumps(board, indent=2) + "\n")
        for name, board in dashboards(spec).items()
    ]
    if spec.alerts is not None:
        result += [
            (p.alertmanager_template, "0644", render_alertmanager_template(spec.alerts)),
            # Local only; no cluster of Alertmanagers (Debian's default listens for peers on 9094).
            (
                f"{p.defaults_dir}/prometheus-alertmanager",
                "0644",
                f'ARGS="--web.listen-address={ALERTMANAGER_LISTEN} --cluster.listen-address="\n',
            ),
        ]
    return result


def files_digest(spec: MonitoringSpec) -> str:
    """Changes whenever anything the install writes changes (the token aside)."""
    return hashlib.sha256(json.dumps(files(spec)).encode()).hexdigest()[:16]


ADMIN_USER = "admin"


def install_stdin(
    metrics_token: str, web_password: str, smtp_password: str = "", webhook_url: str = ""
) -> str:
    """What the install reads on standard input, one line each: the token, the web UI's password,
    then (with Alertmanager) the SMTP password and the webhook URL, either possibly empty."""
    for value in (metrics_token, web_password):
        # Checked, never echoed: the value is a secret.
        if not value or "\n" in value:
            raise ValueError("a monitoring secret must be one non-empty line")
    for value in (smtp_password, webhook_url):
        if "\n" in value:
            raise ValueError("an alerting secret must be one line")
    return f"{metrics_token}\n{web_password}\n{smtp_password}\n{webhook_url}\n"


def render_caddy_route(spec: MonitoringSpec, password_hash: str) -> str:
    """Caddy's route to Prometheus's web UI and API, behind HTTP basic auth (Caddy 2.6's
    `basicauth`; the hash is what `caddy hash-password` prints). Empty without an external URL."""
    if spec.external_url is None:
        return ""
    return render(
        "prometheus.caddy.j2",
        prefix=spec.route_prefix,
        user=ADMIN_USER,
        hash=password_hash,
        upstream=spec.listen,
    )


def render_install_script(spec: MonitoringSpec) -> str:
    """Run over SSH by the stack, with two lines on standard input: the metrics token, then the
    password of Prometheus's web UI."""
    written = files(spec)
    for path, _, text in written:
        if _HEREDOC in text.splitlines():
            raise ValueError(f"{path} contains the here-document delimiter {_HEREDOC}")
    return render(
        "monitoring-install.sh.j2",
        paths=spec.paths,
        files=written,
        delimiter=_HEREDOC,
        dirs=sorted({path.rsplit("/", 1)[0] for path, _, _ in written}),
        caddy_route=render_caddy_route(spec, "$password_hash") if spec.external_url else "",
        alerts=spec.alerts is not None,
        sudo="sudo",
        smtp_mark=SMTP_PASSWORD_MARK,
        webhook_mark=WEBHOOK_URL_MARK,
    )


def render_alertmanager_fill(paths: MonitoringPaths | None = None, sudo: str = "sudo") -> str:
    """The part of the install that writes alertmanager.yml from its template and the two
    secrets in $smtp_password and $webhook_url; alone, for the tests."""
    return render(
        "_alertmanager-config.sh.j2",
        paths=paths or MonitoringPaths(),
        smtp_mark=SMTP_PASSWORD_MARK,
        webhook_mark=WEBHOOK_URL_MARK,
        sudo=sudo,
    )
