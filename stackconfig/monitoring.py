"""The `monitoring` section: Prometheus on the VM that runs the hub (the hub VM, or the swarm
manager), scraping JupyterHub's /hub/metrics with a read-only service token and node exporter
on that VM, with alert rules whose thresholds come from here; on k8s, the kube-prometheus-stack
chart in the cluster (Prometheus, Alertmanager, Grafana, node exporter on every node) with the
same rules and thresholds, plus Ceph's health.

On by default for swarm and k8s: persistent or multi-node hubs whose operators are not watching
them. Off by default for single and hpc: Prometheus and its time-series database take memory
and disk on the hub VM itself (there is no separate monitoring VM there), and a small hub's
operator usually watches it directly; `monitoring.enabled: true` turns it on.

Where alerts go (alertEmail with its SMTP server, the secret alertWebhookUrl) is the same on
every scenario: the VMs run Debian's Alertmanager beside Prometheus, the cluster the chart's.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field, model_validator

from stackconfig.base import ConfigModel

_EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")
_SMARTHOST = re.compile(r"^[A-Za-z0-9.-]+:\d{1,5}$")


def _email(value: str) -> str:
    if not _EMAIL.match(value):
        raise ValueError("not an e-mail address (name@example.org)")
    return value


def _smarthost(value: str) -> str:
    if not _SMARTHOST.match(value) or not 0 < int(value.rsplit(":", 1)[1]) < 65536:
        raise ValueError("not HOST:PORT of an SMTP server (e.g. smtp.example.org:587)")
    return value


Email = Annotated[str, AfterValidator(_email)]

# Scenarios where monitoring is on unless monitoring.enabled says otherwise.
MONITORING_DEFAULT_ON: tuple[str, ...] = ("swarm", "k8s")
# Scenarios where it can be turned on: all of them.
MONITORING_SCENARIOS: tuple[str, ...] = ("single", "hpc", "swarm", "k8s")


class MonitoringConfig(ConfigModel):
    """Prometheus, node exporter and alert rules on the VM that runs the hub, or in the cluster."""

    enabled: bool | None = Field(
        default=None,
        description="Run Prometheus and node exporter on the hub's VM (k8s: kube-prometheus-stack with Grafana "
        "at /services/grafana/ for admins); unset: on for swarm and k8s, off for single and hpc (Prometheus "
        "would share the hub VM's memory).",
    )
    retention_days: int = Field(
        default=15,
        ge=1,
        le=365,
        description="How many days Prometheus keeps its samples (--storage.tsdb.retention.time).",
    )
    volume_full_percent: int = Field(
        default=85,
        ge=50,
        le=99,
        description="Alert VolumeAlmostFull fires when a data volume (k8s: any claim) is fuller than this (percent).",
    )
    spawn_failures_per_hour: int = Field(
        default=3,
        ge=1,
        le=1000,
        description="Alert SpawnFailures fires when more servers than this failed to start in the last hour.",
    )

    alert_email: Email | None = Field(
        default=None,
        description="Alertmanager mails firing alerts to this address (with smtpSmarthost and smtpFrom; "
        "the SMTP password is the secret alertSmtpPassword). Unset, and without alertWebhookUrl: alerts reach no "
        "one (VMs: no Alertmanager; k8s: the chart's Alertmanager notifies nobody); they are on Prometheus's Alerts page.",
    )
    smtp_smarthost: Annotated[str, AfterValidator(_smarthost)] | None = Field(
        default=None,
        description="With alertEmail: the SMTP server, HOST:PORT (STARTTLS on 587).",
    )
    smtp_from: Email | None = Field(
        default=None,
        description="With alertEmail: the sender address.",
    )
    smtp_username: str | None = Field(
        default=None,
        description="With alertEmail: the SMTP login, if the server wants one.",
    )

    @model_validator(mode="after")
    def _email_needs_a_server(self) -> MonitoringConfig:
        if self.alert_email is not None and (self.smtp_smarthost is None or self.smtp_from is None):
            raise ValueError("alertEmail needs smtpSmarthost (HOST:PORT) and smtpFrom (the sender address)")
        if self.alert_email is None and (self.smtp_smarthost or self.smtp_from or self.smtp_username):
            raise ValueError(
                "smtpSmarthost, smtpFrom and smtpUsername are used only with alertEmail; set it or remove them"
            )
        return self

    def on_for(self, scenario: str) -> bool:
        """Whether this stack runs monitoring: the explicit setting, or the scenario's default."""
        if self.enabled is not None:
            return self.enabled
        return scenario in MONITORING_DEFAULT_ON
