"""The monitoring section of the config, the rendered Prometheus configuration and alert rules
(checked and unit-tested by the real promtool), and HubMonitoring in the resource graph under
Pulumi mocks: the metrics token reaches the VM only on a remote command's standard input with
logging off, and a change of threshold re-runs only that command."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pulumi
import pulumi_command as command
import pytest
import yaml

from components.monitoring import HubMonitoring, HubMonitoringArgs
from planner.mocks import SECRET
from planner.plan import plan_stack
from renderers.monitoring import (
    MonitoringPaths,
    MonitoringSpec,
    alert_rules,
    dashboards,
    install_stdin,
    render_caddy_route,
    render_install_script,
    render_prometheus_config,
    render_rules,
)
from tests.builders import workshop
from tests.conftest import make_config, one, require_tool, run_mocked
from tests.monitoring_builders import problems, spec

COMMAND = "command:remote:Command"
WEB = "https://hub.example.org/prometheus/"


# --- config -------------------------------------------------------------------------------------


def test_defaults_on_for_swarm_and_k8s_off_for_single_and_hpc() -> None:
    m = make_config().monitoring
    assert m.on_for("swarm") and not m.on_for("single") and not m.on_for("hpc") and m.on_for("k8s")
    assert (m.retention_days, m.volume_full_percent, m.spawn_failures_per_hour) == (15, 85, 3)
    assert make_config(monitoring={"enabled": True}).monitoring.on_for("single")
    assert not make_config(monitoring={"enabled": False}).monitoring.on_for("swarm")


@pytest.mark.parametrize(
    ("monitoring", "expected"),
    [
        (
            {"volumeFullPercent": 100},
            "monitoring.volumeFullPercent = 100: Input should be less than or equal to 99",
        ),
        (
            {"volumeFullPercent": 10},
            "monitoring.volumeFullPercent = 10: Input should be greater than or equal to 50",
        ),
        ({"retentionDays": 0}, "monitoring.retentionDays = 0: Input should be greater than or equal to 1"),
        ({"enabled": "sometimes"}, "monitoring.enabled = 'sometimes': Input should be a valid boolean"),
        (
            {"volumeFull": 90},
            "monitoring.volumeFull: unknown key; did you mean 'volumeFullPercent'? known keys: alertEmail, enabled",
        ),
    ],
)
def test_bad_monitoring_values_name_key_value_and_what_is_allowed(
    monitoring: dict[str, Any], expected: str
) -> None:
    found = problems(monitoring=monitoring)
    assert any(expected in p for p in found), found


def test_monitoring_is_offered_on_k8s() -> None:
    cfg = workshop()
    assert cfg.monitoring.on_for("k8s")  # on by default there
    on = cfg.model_copy(update={"monitoring": cfg.monitoring.model_copy(update={"enabled": True})})
    assert on.monitoring.on_for("k8s")


# --- promtool ------------------------------------------------------------------------------------


def write_config(tmp_path: Path, s: MonitoringSpec) -> Path:
    """The configuration, rules and token file where the configuration says they are."""
    Path(s.paths.token_file).write_text("not-a-real-token\n")
    Path(s.paths.rules_file).write_text(render_rules(s))
    config = Path(s.paths.config_file)
    config.write_text(render_prometheus_config(s))
    return config


@pytest.mark.parametrize("backups", [True, False])
def test_promtool_accepts_the_config_and_rules(tmp_path: Path, backups: bool) -> None:
    promtool = require_tool("promtool", "checks the rendered Prometheus configuration and rules")
    s = spec(paths=MonitoringPaths(config_dir=str(tmp_path)), backup_max_age_hours=30 if backups else None)
    config = write_config(tmp_path, s)
    result = subprocess.run([promtool, "check", "config", str(config)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    # check config also checks the rule files it names: one with every rule.
    assert f"SUCCESS: {len(alert_rules(s))} rules found" in result.stdout + result.stderr
    result = subprocess.run([promtool, "check", "rules", s.paths.rules_file], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    names = {rule["alert"] for rule in alert_rules(s)}
    assert ("BackupTooOld" in names) is backups


def _annotations(s: MonitoringSpec, alert: str) -> dict[str, str]:
    return next(rule["annotations"] for rule in alert_rules(s) if rule["alert"] == alert)


def _case(
    s: MonitoringSpec,
    interval: str,
    series: dict[str, str],
    alert: str,
    at: str,
    fires: bool,
    labels: dict[str, str],
) -> dict[str, Any]:
    severity = next(rule["labels"]["severity"] for rule in alert_rules(s) if rule["alert"] == alert)
    expected = (
        [{"exp_labels": {**labels, "severity": severity}, "exp_annotations": _annotations(s, alert)}]
        if fires
        else []
    )
    return {
        "interval": interval,
        "input_series": [{"series": name, "values": values} for name, values in series.items()],
        "alert_rule_test": [{"eval_time": at, "alertname": alert, "exp_alerts": expected}],
    }


HUB = {"job": "jupyterhub", "instance": "127.0.0.1:8000"}
NODE = {"job": "node", "instance": "127.0.0.1:9100"}
DATA = {**NODE, "mountpoint": "/data", "fstype": "ext4"}


def _series(name: str, labels: dict[str, str]) -> str:
    return name + "{" + ", ".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def unit_tests(s: MonitoringSpec) -> list[dict[str, Any]]:
    up_hub, up_node = _series("up", HUB), _series("up", NODE)
    failures = _series("jupyterhub_server_spawn_duration_seconds_count", {**HUB, "status": "failure"})
    avail = _series("node_filesystem_avail_bytes", DATA)
    size = _series("node_filesystem_size_bytes", DATA)
    last = _series("jshub_backup_last_success_timestamp_seconds", {**NODE, "host": "hub"})
    checked = _series("jshub_backup_check_timestamp_seconds", {**NODE, "host": "hub"})
    failed = _series("jshub_backup_last_run_failed", {**NODE, "host": "hub"})
    return [
        # A hub that stops answering: down for 2 minutes fires, 1 minute does not yet.
        _case(s, "1m", {up_hub: "1 1 0 0 0 0 0"}, "JupyterHubDown", "5m", True, HUB),
        _case(s, "1m", {up_hub: "1 1 0 0 0 0 0"}, "JupyterHubDown", "3m", False, HUB),
        _case(s, "1m", {up_hub: "1x10"}, "JupyterHubDown", "5m", False, HUB),
        # Failed spawns: one a minute is over 3 an hour; none is quiet.
        _case(s, "1m", {failures: "0+1x10"}, "SpawnFailures", "10m", True, {**HUB, "status": "failure"}),
        _case(s, "1m", {failures: "0x10"}, "SpawnFailures", "10m", False, {}),
        # The data volume: 90 % used for 10 minutes fires, 80 % does not.
        _case(s, "1m", {avail: "10x20", size: "100x20"}, "VolumeAlmostFull", "15m", True, DATA),
        _case(s, "1m", {avail: "20x20", size: "100x20"}, "VolumeAlmostFull", "15m", False, {}),
        _case(s, "1m", {up_node: "0x10"}, "NodeDown", "5m", True, NODE),
        # The newest backup at time 0: stale after backup.maxAgeHours (30 h), not before.
        _case(
            s,
            "10m",
            {last: "0x200", checked: "0+600x200"},
            "BackupTooOld",
            "31h",
            True,
            {**NODE, "host": "hub"},
        ),
        _case(s, "10m", {last: "0x200", checked: "0+600x200"}, "BackupTooOld", "29h", False, {}),
        _case(s, "10m", {last: "0+600x200", checked: "0+600x200"}, "BackupTooOld", "31h", False, {}),
        # A failed run is an alert at the next check, and stops being one after a success.
        _case(s, "10m", {failed: "0 0 1 1 1"}, "BackupFailed", "40m", True, {**NODE, "host": "hub"}),
        _case(s, "10m", {failed: "0 1 1 0 0"}, "BackupFailed", "40m", False, {}),
        # A check that stopped writing its metric: the answer above can no longer be trusted.
        _case(s, "1m", {checked: "0x300"}, "BackupCheckNotRunning", "4h", True, {**NODE, "host": "hub"}),
        _case(s, "1m", {checked: "0+60x300"}, "BackupCheckNotRunning", "4h", False, {}),
    ]


def test_promtool_unit_tests_fire_each_alert_when_it_should(tmp_path: Path) -> None:
    promtool = require_tool("promtool", "runs the alert rules' unit tests")
    s = spec()
    rules = tmp_path / "rules.yml"
    rules.write_text(render_rules(s))
    cases = unit_tests(s)
    tested = {case["alert_rule_test"][0]["alertname"] for case in cases}
    assert tested == {rule["alert"] for rule in alert_rules(s)}, "every alert has a unit test"
    suite = tmp_path / "tests.yml"
    suite.write_text(
        yaml.safe_dump({"rule_files": [str(rules)], "evaluation_interval": "1m", "tests": cases})
    )
    result = subprocess.run([promtool, "test", "rules", str(suite)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_thresholds_reach_the_rules(tmp_path: Path) -> None:
    promtool = require_tool("promtool", "runs the alert rules' unit tests")
    s = spec(volume_full_percent=95, backup_max_age_hours=48)
    rules = tmp_path / "rules.yml"
    rules.write_text(render_rules(s))
    avail, size = _series("node_filesystem_avail_bytes", DATA), _series("node_filesystem_size_bytes", DATA)
    last = _series("jshub_backup_last_success_timestamp_seconds", {**NODE, "host": "hub"})
    cases = [
        # 90 % full is under a 95 % threshold; 31 h is under a 48 h maximum age.
        _case(s, "1m", {avail: "10x20", size: "100x20"}, "VolumeAlmostFull", "15m", False, {}),
        _case(s, "10m", {last: "0x300"}, "BackupTooOld", "31h", False, {}),
        _case(s, "10m", {last: "0x300"}, "BackupTooOld", "49h", True, {**NODE, "host": "hub"}),
    ]
    suite = tmp_path / "tests.yml"
    suite.write_text(
        yaml.safe_dump({"rule_files": [str(rules)], "evaluation_interval": "1m", "tests": cases})
    )
    result = subprocess.run([promtool, "test", "rules", str(suite)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("web", [True, False])
def test_install_script_passes_shellcheck_and_reads_the_secrets_from_stdin(tmp_path: Path, web: bool) -> None:
    tool = require_tool("shellcheck", "lints rendered shell scripts")
    text = render_install_script(spec(external_url=WEB if web else None))
    path = tmp_path / "install"
    path.write_text(text)
    result = subprocess.run([tool, str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout
    assert "printf '%s' \"$token\" | sudo tee /etc/prometheus/jshub-metrics.token >/dev/null\n" in text
    # The web UI's password is hashed on the VM, from standard input, never an argument.
    # (with a newline: caddy 2.6's hash-password fails on input without one)
    assert ("password_hash=$(printf '%s\\n' \"$password\" | caddy hash-password)" in text) is web
    assert ("sudo systemctl reload-or-restart caddy.service" in text) is web
    assert "sudo chown root:prometheus /etc/prometheus/jshub-metrics.token\n" in text
    for name in ("prometheus.yml", "jshub-alerts.yml", "jupyterhub.json", "node.json"):
        assert f"/{name} >/dev/null <<'JSHUB_MONITORING_EOF'" in text, name
    external = f" --web.external-url={WEB}" if web else ""
    assert f'ARGS="--web.listen-address=127.0.0.1:9090 --storage.tsdb.retention.time=15d{external}"' in text
    assert "--collector.textfile.directory=/var/lib/prometheus/node-exporter" in text


def test_the_install_reads_the_token_and_the_password_the_stack_sends(tmp_path: Path) -> None:
    text = render_install_script(spec(external_url=WEB))
    # The script's own lines that read standard input, then what they read.
    reads = "".join(line + "\n" for line in text.splitlines() if line.startswith("IFS= read -r"))
    probe = reads + 'printf "%s|%s" "$token" "$password"\n'
    result = subprocess.run(
        ["bash", "-c", probe], input=install_stdin("tok123", "pw456"), capture_output=True, text=True
    )
    assert result.stdout == "tok123|pw456"
    with pytest.raises(ValueError, match="one non-empty line"):
        install_stdin("", "pw")


def test_dashboards_are_grafana_json_with_a_query_per_panel() -> None:
    for name, board in dashboards(spec()).items():
        loaded = json.loads(json.dumps(board))
        assert loaded["uid"] and loaded["panels"], name
        for panel in loaded["panels"]:
            assert panel["targets"][0]["expr"], panel["title"]
    titles = {p["title"] for b in dashboards(spec()).values() for p in b["panels"]}
    assert {
        "Active users (24 h)",
        "Running servers",
        "Spawn latency, 90th percentile (s)",
        "CPU busy (%)",
    } <= titles


# --- the resource graph --------------------------------------------------------------------------


def test_hub_monitoring_keeps_the_token_secret_and_triggers_on_the_root_disk_and_config() -> None:
    def program() -> None:
        HubMonitoring(
            "monitoring",
            HubMonitoringArgs(
                spec=spec(),
                metrics_token=pulumi.Output.secret("metrics-token-value"),
                host_connection=command.remote.ConnectionArgs(host="203.0.113.5", user="ubuntu"),
                host_root_disk=[pulumi.Output.from_input("server-id"), "Featured-Ubuntu24"],
            ),
        )

    rec = run_mocked(program)
    install = one(rec, COMMAND)
    assert install.inputs["logging"] == "none"
    assert install.inputs["stdin"] == SECRET
    assert {"stdin", "stdout", "stderr"} <= set(install.additional_secret_outputs)
    triggers = install.inputs["triggers"]
    assert triggers[:2] == ["server-id", "Featured-Ubuntu24"] and re.fullmatch(r"[0-9a-f]{16}", triggers[2])
    assert "metrics-token-value" not in json.dumps([r.inputs for r in rec.registrations])
    parent = one(rec, "jshub:index:HubMonitoring")
    assert install.parent_urn == parent.urn


@pytest.mark.parametrize("stack", ["dev", "gateway-hpc", "persistent-swarm"])
def test_stacks_that_turn_it_on_plan_the_install_with_a_secret_token(stack: str) -> None:
    plan = plan_stack(stack, overrides={"monitoring": {"enabled": True}})
    install = next(r for r in plan["resources"] if r["name"] == "monitoring-install")
    assert install["inputs"]["stdin"] == SECRET and install["inputs"]["logging"] == "none"
    mount = "/export" if stack == "persistent-swarm" else "/data"
    assert f'node_filesystem_avail_bytes{{mountpoint="{mount}"}}' in install["inputs"]["create"]
    assert any(
        r["name"].endswith("metrics-token") and r["type"] == "random:index/randomPassword:RandomPassword"
        for r in plan["resources"]
    )
    assert plan["monitoring"]["enabled"] and "JupyterHubDown" in plan["monitoring"]["alerts"]
    assert "BackupTooOld" in plan["monitoring"]["alerts"]


def test_swarm_monitors_by_default_and_single_does_not() -> None:
    swarm = plan_stack("persistent-swarm")
    assert any(r["name"] == "monitoring-install" for r in swarm["resources"])
    dev = plan_stack("dev")
    assert not [r for r in dev["resources"] if "monitoring" in r["name"] or "metrics" in r["name"]]
    assert dev["monitoring"] == {
        "enabled": False,
        "why": "off by default for scenario single; monitoring.enabled: true turns it on",
    }


def test_a_threshold_change_reruns_only_the_install() -> None:
    """Thresholds are not in user data: no server, volume or Docker object changes."""
    from planner.diff import dangerous, diff_plans, reruns

    before = plan_stack("persistent-swarm")
    after = plan_stack("persistent-swarm", overrides={"monitoring": {"volumeFullPercent": 90}})
    diff = diff_plans(before, after)
    assert [c.name for c in diff.changes] == ["monitoring-install"]
    assert reruns(diff) == ["monitoring-install"] and not dangerous(diff)
    install = next(r for r in after["resources"] if r["name"] == "monitoring-install")
    assert "> 90\n" in install["inputs"]["create"]


def test_the_hub_vm_gets_the_metrics_token_in_its_secrets_file(monkeypatch: pytest.MonkeyPatch) -> None:
    import components.hub

    rendered: list[str] = []
    real = components.hub.hub_env_file
    monkeypatch.setattr(
        components.hub, "hub_env_file", lambda *a, **k: rendered.append(real(*a, **k)) or rendered[-1]
    )
    plan_stack("dev", overrides={"monitoring": {"enabled": True}})
    assert len(rendered) == 1 and re.search(r"^JSHUB_METRICS_TOKEN=\S{48}$", rendered[0], re.MULTILINE)
    rendered.clear()
    plan_stack("dev")
    assert len(rendered) == 1 and "JSHUB_METRICS_TOKEN" not in rendered[0]


def test_the_hub_caddyfile_takes_the_admin_route_before_the_hub(tmp_path: Path) -> None:
    """The hub's own Caddyfile imports the route: /prometheus/ goes to Prometheus behind basic
    auth, everything else still to the hub."""
    from renderers.hub_config import render_caddyfile

    caddy = require_tool("caddy", "checks the reverse proxy's configuration")
    routes = tmp_path / "jshub.d"
    routes.mkdir()
    hashed = "$2a$14$" + "a" * 53  # the shape of `caddy hash-password`'s bcrypt output
    (routes / "prometheus.caddy").write_text(render_caddy_route(spec(external_url=WEB), hashed))
    text = render_caddyfile("hub.example.org", "ops@example.org", "127.0.0.1:8000", str(tmp_path / "caddy"))
    assert "\timport /etc/caddy/jshub.d/*.caddy\n" in text
    path = tmp_path / "Caddyfile"
    path.write_text(text.replace("/etc/caddy/jshub.d/", f"{routes}/"))
    adapted = subprocess.run(
        [caddy, "adapt", "--adapter", "caddyfile", "--config", str(path)], capture_output=True, text=True
    )
    assert adapted.returncode == 0, adapted.stderr
    dumped = adapted.stdout
    assert '"path":["/prometheus/*"]' in dumped and '"http_basic"' in dumped and hashed in dumped
    assert dumped.index("/prometheus/*") < dumped.index('"dial":"127.0.0.1:8000"')


def test_plan_says_where_prometheus_runs_what_it_scrapes_and_which_alerts() -> None:
    from planner.monitoring import lines

    info = plan_stack("persistent-swarm")["monitoring"]
    assert info["host"] == "the swarm manager" and info["other_exporters"] == 3
    assert info["volume_full_percent"] == 85
    assert info["scrapes"]["jupyterhub"] == ["127.0.0.1:8000"]
    assert info["scrapes"]["node"][0] == "127.0.0.1:9100" and len(info["scrapes"]["node"]) == 4
    assert info["alerts"] == [rule["alert"] for rule in alert_rules(spec())]
    assert info["web_ui"] == "https://hub.cis000000.projects.jetstream-cloud.org/prometheus/"
    text = "\n".join(lines(info))
    assert "node exporter there and on 3 workers" in text
    assert "alerts: JupyterHubDown, SpawnFailures, VolumeAlmostFull" in text and "prometheus_password" in text
    k8s = plan_stack("workshop-k8s")["monitoring"]
    assert k8s["enabled"] and k8s["grafana"].endswith("/services/grafana/")
    assert k8s["alerts"][:3] == ["JupyterHubDown", "SpawnFailures", "VolumeAlmostFull"]
    assert "CephNotHealthy" in k8s["alerts"] and "BackupTooOld" in k8s["alerts"]
    # Prometheus 200m + Alertmanager 10m + Grafana 50m; 1 GiB + 64 MiB + 128 MiB.
    assert k8s["cpu_requested"] == 0.26 and k8s["memory_requested_gb"] == 1.19
    assert k8s["prometheus_volume_gb"] == 20


def test_swarm_workers_get_node_exporter_reachable_only_from_the_cluster() -> None:
    plan = plan_stack("persistent-swarm")
    resources = {r["name"]: r for r in plan["resources"]}
    workers = [
        r
        for r in plan["resources"]
        if r["type"] == "openstack:compute/instance:Instance" and "worker" in r["name"]
    ]
    installs = [r for r in plan["resources"] if r["name"].startswith("monitoring-node-exporter-")]
    assert len(installs) == len(workers) == 3
    prometheus = resources["monitoring-install"]["inputs"]["create"]
    for install in installs:
        # On the worker's private address, which Prometheus on the manager scrapes.
        listen = re.search(r"--web.listen-address=(\S+):9100 ", install["inputs"]["create"])
        assert listen and f"    - {listen.group(1)}:9100\n" in prometheus
        assert install["data_dependencies"].get("triggers"), "a new or re-imaged worker installs it again"
    rules = [
        r
        for r in plan["resources"]
        if r["type"] == "openstack:networking/secGroupRule:SecGroupRule"
        and r["inputs"].get("portRangeMin") == 9100
    ]
    assert (
        len(rules) == 1
        and "remoteIpPrefix" not in rules[0]["inputs"]
        and rules[0]["inputs"].get("remoteGroupId")
    )
    off = plan_stack("persistent-swarm", overrides={"monitoring": {"enabled": False}})
    assert not [
        r for r in off["resources"] if r["inputs"].get("portRangeMin") == 9100 or "node-exporter" in r["name"]
    ]


def test_worker_install_passes_shellcheck(tmp_path: Path) -> None:
    from renderers.monitoring import render_worker_install_script

    tool = require_tool("shellcheck", "lints rendered shell scripts")
    path = tmp_path / "install"
    path.write_text(render_worker_install_script("10.0.0.7"))
    result = subprocess.run([tool, str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout
    assert 'ARGS="--web.listen-address=10.0.0.7:9100 --collector.textfile' in path.read_text()


def test_adding_a_worker_adds_its_node_exporter_and_rewrites_only_prometheus_config() -> None:
    from planner.diff import diff_plans

    before = plan_stack("persistent-swarm")
    after = plan_stack("persistent-swarm", overrides={"swarm": {"workerCount": 4}})
    touched = {c.name: c.action for c in diff_plans(before, after).changes if "monitoring" in c.name}
    assert touched == {"monitoring-node-exporter-3": "create", "monitoring-install": "replace"}
