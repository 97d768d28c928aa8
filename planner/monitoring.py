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


def report(cfg: StackConfig, resources: list[dict[str, Any]]) -> dict[str, Any]:
    install = next((r for r in resources if r["name"] == INSTALL and r["custom"]), None)
    m = cfg.monitoring
    if install is None:
        if m.enabled is False:
            why = "monitoring.enabled is false"
        elif cfg.scenario == "k8s":
            why = "scenario k8s has no monitoring yet"
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
