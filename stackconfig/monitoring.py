"""The `monitoring` section: Prometheus on the VM that runs the hub (the hub VM, or the swarm
manager), scraping JupyterHub's /hub/metrics with a read-only service token and node exporter
on that VM, with alert rules whose thresholds come from here.

On by default for swarm: a persistent, multi-VM hub whose operators are not watching it. Off by
default for single and hpc: Prometheus and its time-series database take memory and disk on the
hub VM itself (there is no separate monitoring VM there), and a small hub's operator usually
watches it directly; `monitoring.enabled: true` turns it on. k8s is not implemented yet and
refuses `enabled: true`.
"""

from __future__ import annotations

from pydantic import Field

from stackconfig.base import ConfigModel

# Scenarios where monitoring is on unless monitoring.enabled says otherwise.
MONITORING_DEFAULT_ON: tuple[str, ...] = ("swarm",)
# Scenarios where it can be turned on: the ones with a VM that runs the hub.
MONITORING_SCENARIOS: tuple[str, ...] = ("single", "hpc", "swarm")


class MonitoringConfig(ConfigModel):
    """Prometheus, node exporter and alert rules on the VM that runs the hub."""

    enabled: bool | None = Field(
        default=None,
        description="Run Prometheus and node exporter on the hub's VM; unset: on for swarm, off for single and "
        "hpc (Prometheus would share the hub VM's memory), not available for k8s.",
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
        description="Alert VolumeAlmostFull fires when a data volume is fuller than this (percent).",
    )
    spawn_failures_per_hour: int = Field(
        default=3,
        ge=1,
        le=1000,
        description="Alert SpawnFailures fires when more servers than this failed to start in the last hour.",
    )

    def on_for(self, scenario: str) -> bool:
        """Whether this stack runs monitoring: the explicit setting, or the scenario's default."""
        if self.enabled is not None:
            return self.enabled
        return scenario in MONITORING_DEFAULT_ON
