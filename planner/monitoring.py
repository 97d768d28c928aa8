"""What the plan says about monitoring: whether it is on, where Prometheus runs, what it scrapes
and which alerts it evaluates, read from the install command the stack would run."""

from __future__ import annotations

import re
from typing import Any

import yaml

from stackconfig import StackConfig

INSTALL = "monitoring-install"
_ALERT = re.compile(r"^  - alert: (\S+)$", re.MULTILINE)
_CONFIG = re.compile(r"/prometheus\.yml >/dev/null <<'(\w+)'\n(.*?)\n\1\n", re.DOTALL)


def _scrapes(script: str) -> dict[str, list[str]]:
    """Each job's targets, from the prometheus.yml the install writes."""
    found = _CONFIG.search(script)
    if found is None:
        return {}
    config = yaml.safe_load(found.group(2))
    return {
        job["job_name"]: [t for static in job["static_configs"] for t in static["targets"]]
        for job in config["scrape_configs"]
    }


RELEASE = "monitoring-release"


def _quantity(value: str) -> float:
    """CPU in cores or memory in GiB, from a Kubernetes quantity (the forms the renderer uses)."""
    units = {"m": 1e-3, "Mi": 1 / 1024, "Gi": 1.0}
    for suffix, factor in units.items():
        if value.endswith(suffix):
            return float(value[: -len(suffix)]) * factor
    return float(value)


def _k8s_report(cfg: StackConfig, release: dict[str, Any]) -> dict[str, Any]:
    values = release["inputs"].get("values", {})
    requests = [
        values["prometheus"]["prometheusSpec"]["resources"]["requests"],
        values["alertmanager"]["alertmanagerSpec"]["resources"]["requests"],
        values["grafana"]["resources"]["requests"],
    ]
    groups = [g for rules in values.get("additionalPrometheusRulesMap", {}).values() for g in rules["groups"]]
    storage = values["prometheus"]["prometheusSpec"]["storageSpec"]["volumeClaimTemplate"]["spec"]
    return {
        "enabled": True,
        "host": f"the cluster (chart {str(release['inputs'].get('chart')).rsplit('/', 1)[-1]} "
        f"{release['inputs'].get('version')})",
        "retention_days": cfg.monitoring.retention_days,
        "volume_full_percent": cfg.monitoring.volume_full_percent,
        "alerts": [rule["alert"] for group in groups for rule in group["rules"]],
        "grafana": values["grafana"]["grafana.ini"]["server"]["root_url"],
        "cpu_requested": round(sum(_quantity(r["cpu"]) for r in requests), 2),
        "memory_requested_gb": round(sum(_quantity(r["memory"]) for r in requests), 2),
        "prometheus_volume_gb": _quantity(storage["resources"]["requests"]["storage"]),
        "charged": "no extra SUs: the pods run on the cluster's existing nodes, and Prometheus's volume is "
        "on Ceph (Jetstream2 Storage in GB)",
    }


def report(cfg: StackConfig, resources: list[dict[str, Any]]) -> dict[str, Any]:
    release = next((r for r in resources if r["name"] == RELEASE and r["custom"]), None)
    if release is not None:
        return _k8s_report(cfg, release)
    install = next((r for r in resources if r["name"] == INSTALL and r["custom"]), None)
    m = cfg.monitoring
    if install is None:
        if m.enabled is False:
            why = "monitoring.enabled is false"
        else:
            why = f"off by default for scenario {cfg.scenario}; monitoring.enabled: true turns it on"
        return {"enabled": False, "why": why}
    script = str(install["inputs"].get("create", ""))
    scrapes = _scrapes(script)
    others = len(scrapes.get("node", [])) - 1
    host = "the swarm manager" if cfg.scenario == "swarm" else "the hub VM"
    return {
        "enabled": True,
        "host": host,
        "other_exporters": max(others, 0),
        "retention_days": m.retention_days,
        "volume_full_percent": m.volume_full_percent,
        "scrapes": scrapes,
        "alerts": _ALERT.findall(script),
        "reruns_on": "a new or re-imaged root disk, or a change of anything it writes (thresholds, retention)",
        "web_ui": f"https://{cfg.hub_fqdn}/prometheus/" if "prometheus.caddy" in script else None,
    }


def lines(info: dict[str, Any]) -> list[str]:
    """The plan's text about monitoring."""
    if not info["enabled"]:
        return [f"Monitoring: off ({info['why']})"]
    if "grafana" in info:
        return [
            f"Monitoring: kube-prometheus-stack in {info['host']}, keeps {info['retention_days']} days; "
            "scrapes the hub (/hub/metrics), node exporter on every node, the kubelets, kube-state-metrics "
            "and Ceph's manager",
            f"  Grafana: {info['grafana']} for hub admins (JupyterHub login); Alertmanager in the cluster",
            f"  alerts: {', '.join(info['alerts'])} (volumes full above {info['volume_full_percent']} %)",
            f"  cost: requests {info['cpu_requested']:g} CPU and {info['memory_requested_gb']:g} GiB (Prometheus, "
            f"Alertmanager, Grafana; the chart's exporters and operator ask for none), Prometheus volume "
            f"{info['prometheus_volume_gb']:g} GB; {info['charged']}",
        ]
    scrapes = ", ".join(f"{job} at {', '.join(targets)}" for job, targets in info["scrapes"].items())
    web = info["web_ui"]
    return [
        f"Monitoring: Prometheus on {info['host']} (keeps {info['retention_days']} days), node exporter there"
        + (f" and on {info['other_exporters']} workers" if info["other_exporters"] else "")
        + f"; scrapes {scrapes}",
        f"  web UI: {web} for admins (user admin, password: output prometheus_password)"
        if web
        else "  web UI: none (SSH tunnel to 127.0.0.1:9090)",
        f"  alerts: {', '.join(info['alerts'])} (data volume full above {info['volume_full_percent']} %)",
        f"  installed by {INSTALL}, which runs again on {info['reruns_on']}",
    ]
