"""Monitoring against the real local single hub (the production-rendered config on loopback):
a real Prometheus, with the rendered configuration and rules, scrapes the hub's /hub/metrics
with the read-only jshub-metrics token and a real node exporter whose textfile collector holds
what the real jshub-backup-check wrote; a stopped hub is seen down and JupyterHubDown becomes
active. A real Caddy serves Prometheus's web UI through the rendered admin route, only with the
password. The Grafana dashboards and alert rules query only metrics these exporters export.

Needs root, adduser, configurable-http-proxy, caddy, prometheus and prometheus-node-exporter
(`make system-deps`).
"""

from __future__ import annotations

import dataclasses
import re
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests

from jshub.hubapi import wait_until
from renderers.backup import BackupPaths, BackupSpec, render_check_script
from renderers.monitoring import (
    HUB_JOB,
    NODE_JOB,
    MonitoringPaths,
    MonitoringSpec,
    alert_rules,
    dashboards,
    render_caddy_route,
    render_install_script,
    render_prometheus_config,
    render_rules,
)
from tests.conftest import require_tool
from tests.hubclient import free_port

if TYPE_CHECKING:
    from tests.e2e.conftest import Hub

pytestmark = pytest.mark.e2e

# Names a PromQL expression of ours queries: the hub's, node exporter's and the backup check's.
_METRIC = re.compile(r"\b((?:jupyterhub|node|jshub)_[A-Za-z0-9_]+)\b")
_SUFFIXES = ("_bucket", "_count", "_sum", "_created", "_total")


def exported_names(text: str) -> set[str]:
    """Every metric name an exposition offers: its samples' names, and for a histogram, summary
    or counter declared by # TYPE, the series names it has once observed (a labelled histogram
    such as spawn duration shows no sample before the first spawn)."""
    names = {
        line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")
    }
    for family, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE):
        names.add(family)
        if kind in ("histogram", "summary", "counter"):
            names.update(family + suffix for suffix in _SUFFIXES)
    return names


def get(url: str, **kwargs: Any) -> requests.Response:
    session = requests.Session()
    session.trust_env = False  # loopback, never through a proxy
    return session.get(url, timeout=60, **kwargs)


@dataclasses.dataclass
class Monitor:
    url: str
    node_url: str
    # Prometheus through Caddy's admin route, and that route's password.
    web_url: str
    web_password: str
    spec: MonitoringSpec
    processes: list[subprocess.Popen[bytes]]
    logs: list[Path]

    def query(self, expr: str) -> list[dict[str, Any]]:
        body = get(f"{self.url}/api/v1/query", params={"query": expr}).json()
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def diagnose(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}" for log in self.logs)

    def wait(self, expr: str, what: str, timeout: float = 60) -> list[dict[str, Any]]:
        return wait_until(lambda: self.query(expr) or None, what, timeout, self.diagnose, 0.5)


@pytest.fixture(scope="module")
def monitor(hub: Hub) -> Iterator[Monitor]:
    prometheus = require_tool("prometheus", "scrapes the real hub")
    node_exporter = require_tool(
        "prometheus-node-exporter", "exports the VM's and the backup check's metrics"
    )
    caddy = require_tool("caddy", "serves Prometheus's web UI to admins")
    root = Path(tempfile.mkdtemp(prefix="jshub-e2e-monitoring-"))
    textfile = root / "textfile"
    textfile.mkdir()
    # The real freshness check, with no repository to read: it still writes its metrics.
    backup = BackupSpec(
        host="hub.example.org",
        paths=BackupPaths(
            home_root=str(root),
            database=str(root / "db.sqlite"),
            env_file=str(root / "missing.env"),
            state_dir=str(root / "state"),
            textfile_dir=str(textfile),
        ),
        schedule="daily",
        keep_daily=7,
        keep_weekly=0,
        keep_monthly=0,
        max_age_hours=30,
    )
    check = root / "jshub-backup-check"
    check.write_text(render_check_script(backup))
    check.chmod(0o755)
    assert subprocess.run([str(check)], capture_output=True).returncode == 2  # no repository
    assert (textfile / "jshub_backup.prom").is_file()

    node_port, prometheus_port, caddy_port = free_port(), free_port(), free_port()
    spec = MonitoringSpec(
        hub_target=hub.public_url.removeprefix("http://"),
        data_mount="/",
        retention_days=1,
        volume_full_percent=85,
        spawn_failures_per_hour=3,
        backup_max_age_hours=30,
        paths=MonitoringPaths(config_dir=str(root), textfile_dir=str(textfile)),
        node_target=f"127.0.0.1:{node_port}",
        listen=f"127.0.0.1:{prometheus_port}",
        scrape_interval_s=1,
        external_url=f"http://127.0.0.1:{caddy_port}/prometheus/",
    )
    # The install script's own line hashes the password, as on the VM.
    web_password = secrets.token_hex(16)
    hash_line = next(
        line for line in render_install_script(spec).splitlines() if line.startswith("password_hash=")
    )
    hashed = subprocess.run(
        ["bash", "-c", f'password="$1"\n{hash_line}\nprintf "%s" "$password_hash"', "-", web_password],
        env={"PATH": f"{Path(caddy).parent}:/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert hashed.startswith("$2")
    route = root / "prometheus.caddy"
    route.write_text(render_caddy_route(spec, hashed))
    caddyfile = root / "Caddyfile"
    # Loopback and plain HTTP; no admin endpoint (another Caddy may hold the default port).
    caddyfile.write_text(
        f"{{\n\tadmin off\n}}\n\nhttp://127.0.0.1:{caddy_port} {{\n\timport {route}\n\trespond 404\n}}\n"
    )
    # As the install writes it: the remote command's standard input, the bare token.
    Path(spec.paths.token_file).write_text(hub.metrics_token)
    Path(spec.paths.rules_file).write_text(render_rules(spec))
    Path(spec.paths.config_file).write_text(render_prometheus_config(spec))
    processes: list[subprocess.Popen[bytes]] = []
    logs = [root / "node-exporter.log", root / "prometheus.log", root / "caddy.log"]
    commands = [
        [
            node_exporter,
            f"--web.listen-address={spec.node_target}",
            f"--collector.textfile.directory={textfile}",
        ],
        [
            prometheus,
            f"--config.file={spec.paths.config_file}",
            f"--storage.tsdb.path={root / 'data'}",
            f"--web.listen-address={spec.listen}",
            f"--web.external-url={spec.external_url}",
        ],
        [caddy, "run", "--adapter", "caddyfile", "--config", str(caddyfile)],
    ]
    try:
        for argv, log in zip(commands, logs, strict=True):
            with log.open("wb") as out:
                processes.append(
                    subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
                )
        yield Monitor(
            f"http://{spec.listen}/prometheus",
            f"http://{spec.node_target}",
            f"http://127.0.0.1:{caddy_port}/prometheus",
            web_password,
            spec,
            processes,
            logs,
        )
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        shutil.rmtree(root, ignore_errors=True)


def test_the_metrics_token_reads_metrics_and_nothing_else(hub: Hub) -> None:
    headers = {"Authorization": f"token {hub.metrics_token}"}
    metrics = get(f"{hub.public_url}/hub/metrics", headers=headers)
    assert metrics.status_code == 200 and "jupyterhub_running_servers" in metrics.text
    assert get(f"{hub.public_url}/hub/metrics").status_code == 403
    assert get(f"{hub.public_url}/hub/api/users", headers=headers).status_code == 403


def test_prometheus_scrapes_the_hub_and_node_exporter(monitor: Monitor) -> None:
    for job in (HUB_JOB, NODE_JOB):
        monitor.wait(f'up{{job="{job}"}} == 1', f"Prometheus to scrape {job}")
    found = monitor.wait('jupyterhub_total_users{job="jupyterhub"}', "a jupyterhub_ metric in Prometheus")
    assert found[0]["metric"]["instance"] == monitor.spec.hub_target
    fresh = monitor.wait("jshub_backup_repository_up", "the backup check's metrics through node exporter")
    assert fresh[0]["value"][1] == "0"
    # The rule group loaded and is evaluated: no alert with a hub that answers.
    rules = get(f"{monitor.url}/api/v1/rules").json()["data"]["groups"]
    assert {r["name"] for g in rules for r in g["rules"]} == {r["alert"] for r in alert_rules(monitor.spec)}


def test_the_web_ui_answers_admins_with_the_password_only(monitor: Monitor) -> None:
    query = f"{monitor.web_url}/api/v1/query"
    answer = wait_until(
        lambda: get(query, params={"query": "up"}, auth=("admin", monitor.web_password)),
        "Caddy to serve Prometheus",
        # Each check of a basic-auth password is a bcrypt of cost 14: seconds on a busy machine.
        120,
        monitor.diagnose,
        0.5,
    )
    assert answer.status_code == 200 and answer.json()["status"] == "success"
    assert get(query, params={"query": "up"}).status_code == 401
    assert get(query, params={"query": "up"}, auth=("admin", "wrong")).status_code == 401
    # The UI's own pages, under the prefix the external URL gives them.
    page = get(f"{monitor.web_url}/graph", auth=("admin", monitor.web_password))
    assert page.status_code == 200 and "Prometheus" in page.text
    bare = get(monitor.web_url, allow_redirects=False)
    assert bare.status_code in (301, 302, 308) and bare.headers["Location"].endswith("/prometheus/")


def test_dashboards_and_rules_query_only_exported_metrics(hub: Hub, monitor: Monitor) -> None:
    hub_text = get(
        f"{hub.public_url}/hub/metrics", headers={"Authorization": f"token {hub.metrics_token}"}
    ).text
    node_text = get(f"{monitor.node_url}/metrics").text
    exported = exported_names(hub_text) | exported_names(node_text)
    queried = {
        name
        for board in dashboards(monitor.spec).values()
        for panel in board["panels"]
        for target in panel["targets"]
        for name in _METRIC.findall(target["expr"])
    }
    queried |= {name for rule in alert_rules(monitor.spec) for name in _METRIC.findall(rule["expr"])}
    assert {
        "jupyterhub_active_users",
        "node_cpu_seconds_total",
        "jshub_backup_last_success_timestamp_seconds",
    } <= queried
    assert queried - exported == set()


def test_a_stopped_hub_is_down_and_fires_hub_down(hub: Hub, monitor: Monitor) -> None:
    monitor.wait(f'up{{job="{HUB_JOB}"}} == 1', "the hub scraped")
    hub.stop()
    try:
        monitor.wait(f'up{{job="{HUB_JOB}"}} == 0', "Prometheus to see the stopped hub down")
        # for: 2m — the rule is active (pending) now and fires after two minutes of this; the
        # promtool unit tests hold the timing.
        alert = monitor.wait('ALERTS{alertname="JupyterHubDown"}', "JupyterHubDown to become active")
        assert alert[0]["metric"]["alertstate"] in ("pending", "firing")
    finally:
        hub.start()
