"""Monitoring on k8s, checked with the upstream tools: the kube-prometheus-stack values against
the chart's (and its Grafana dependency's) own values, the ServiceMonitors and the
PrometheusRule against prometheus-operator's CRDs (strict), the rules with the real `promtool`
(syntax, and unit tests that make each required alert fire), the other objects with
kubernetes-validate, and the graph under mocks."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from renderers import k8s_monitoring as km
from renderers import z2jh
from renderers.monitoring import HUB_PANELS, AlertTargets, render_alertmanager_template
from stacks.monitoring import k8s_monitoring_spec
from tests.builders import workshop
from tests.conftest import make_config, require_tool
from tests.monitoring_builders import SMTP_PASSWORD, TARGETS, WEBHOOK
from tests.upstream_schemas import (
    UPSTREAM,
    _load,
    kube_prometheus_defaults,
    prometheus_operator_errors,
    unknown_keys,
    z2jh_errors,
)

SPEC = k8s_monitoring_spec(workshop())


def grafana_defaults() -> dict[str, Any]:
    return _load(UPSTREAM / "grafana" / "values.yaml")


def test_monitoring_is_on_by_default_for_k8s_and_can_be_turned_off() -> None:
    assert workshop().monitoring.on_for("k8s")
    assert not make_config(
        scenario="k8s", k8s={"cephVolumeGb": 1000}, monitoring={"enabled": False}
    ).monitoring.on_for("k8s")


def test_chart_values_use_only_keys_the_charts_know() -> None:
    """kube-prometheus-stack ships no values.schema.json (nor does its Grafana dependency), and
    Helm ignores unknown keys: every key must be one the chart's values.yaml has. The `grafana`
    section goes to the Grafana chart, checked against that chart's values; `grafana.ini` is
    Grafana's own configuration file (free-form in the chart)."""
    values = km.chart_values(SPEC)
    grafana = values.pop("grafana")
    assert unknown_keys(values, kube_prometheus_defaults()) == []
    ini = grafana.pop("grafana.ini")
    known = {**kube_prometheus_defaults()["grafana"], **grafana_defaults()}
    assert unknown_keys(grafana, known) == []
    assert set(ini) <= {"server", "auth", "auth.anonymous", "auth.generic_oauth"}


def test_a_misspelt_chart_key_is_caught() -> None:
    values = km.chart_values(SPEC)
    values["prometheus"]["prometheusSpec"]["retension"] = "15d"
    values["grafana"]["envValueFrum"] = {}
    grafana = values.pop("grafana")
    assert unknown_keys(values, kube_prometheus_defaults()) == ["prometheus.prometheusSpec.retension"]
    grafana.pop("grafana.ini")
    assert unknown_keys(grafana, {**kube_prometheus_defaults()["grafana"], **grafana_defaults()}) == [
        "envValueFrum"
    ]


def test_grafana_is_behind_the_hub_for_admins_only() -> None:
    values = km.chart_values(SPEC)
    ini = values["grafana"]["grafana.ini"]
    fqdn = "hub.cis230000.projects.jetstream-cloud.org"
    assert ini["server"] == {"root_url": f"https://{fqdn}/services/grafana/", "serve_from_sub_path": True}
    oauth = ini["auth.generic_oauth"]
    assert oauth["auth_url"] == f"https://{fqdn}/hub/api/oauth2/authorize"
    assert oauth["api_url"] == "http://hub.jupyterhub.svc:8081/hub/api/user"
    assert oauth["client_id"] == "service-grafana"
    # Non-admins map to no role, and a strict mapping refuses them.
    assert oauth["role_attribute_path"] == "admin && 'Admin'" and oauth["role_attribute_strict"] is True
    assert ini["auth"]["disable_login_form"] is True and ini["auth.anonymous"]["enabled"] is False
    # The client secret comes from a Secret, never from the values.
    env = values["grafana"]["envValueFrom"]["GF_AUTH_GENERIC_OAUTH_CLIENT_SECRET"]
    assert env == {"secretKeyRef": {"name": km.GRAFANA_OAUTH_SECRET, "key": "client-secret"}}
    assert "client_secret" not in oauth


def test_hub_values_register_grafana_and_the_metrics_service_and_validate() -> None:
    values = z2jh.z2jh_values(z2jh.Z2JHSpec.from_config(workshop()))
    assert z2jh_errors(values) == []
    hub = values["hub"]
    assert hub["services"]["grafana"]["url"] == z2jh.GRAFANA_URL
    assert hub["services"]["grafana"]["oauth_redirect_uri"].endswith("/services/grafana/login/generic_oauth")
    assert hub["loadRoles"]["jshub-metrics"] == {"scopes": ["read:metrics"], "services": ["jshub-metrics"]}
    assert (
        hub["extraEnv"]["JSHUB_METRICS_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == z2jh.MONITORING_SECRET
    )
    assert hub["networkPolicy"]["ingress"][0]["ports"] == [{"port": 8081, "protocol": "TCP"}]
    egress = values["proxy"]["chp"]["networkPolicy"]["egress"][0]
    assert egress["ports"] == [{"port": 3000, "protocol": "TCP"}]
    # The tokens reach the services from the environment (the config code compiles).
    [code] = hub["extraConfig"].values()
    compile(code, "extraConfig", "exec")
    assert "'jshub-metrics': 'JSHUB_METRICS_TOKEN'" in code and "'grafana': 'JSHUB_GRAFANA_TOKEN'" in code
    off = workshop().model_copy(
        update={"monitoring": workshop().monitoring.model_copy(update={"enabled": False})}
    )
    plain = z2jh.z2jh_values(z2jh.Z2JHSpec.from_config(off))
    assert set(plain["hub"]["services"]) == {"jshub-admin"} and "chp" not in plain["proxy"]


@pytest.mark.parametrize(
    "obj",
    [km.hub_service_monitor(SPEC), km.ceph_service_monitor(), km.prometheus_rule(SPEC)],
    ids=lambda o: f"{o['kind']}-{o['metadata']['name']}",
)
def test_custom_resources_validate_against_prometheus_operator_crds(obj: dict[str, Any]) -> None:
    assert prometheus_operator_errors(obj) == []


def test_crd_check_catches_a_misspelt_field() -> None:
    monitor = km.hub_service_monitor(SPEC)
    monitor["spec"]["endpoints"][0]["bearerTokenSecrett"] = {}
    assert any("bearerTokenSecrett" in e for e in prometheus_operator_errors(monitor))


def test_hub_is_scraped_with_the_read_only_token() -> None:
    endpoint = km.hub_service_monitor(SPEC)["spec"]["endpoints"][0]
    assert endpoint["path"] == "/hub/metrics" and endpoint["port"] == "hub"
    assert endpoint["authorization"]["credentials"] == {"name": km.METRICS_SECRET, "key": "token"}


@pytest.mark.parametrize(
    "obj",
    [
        *[km.dashboard_configmap(n, b) for n, b in km.dashboards().items()],
        km.secret(km.GRAFANA_OAUTH_SECRET, {"client-secret": "x"}),
    ],
    ids=lambda o: o["metadata"]["name"],
)
def test_plain_objects_validate_strictly(obj: dict[str, Any]) -> None:
    kubernetes_validate.validate(obj, "1.33.0", strict=True)


def test_dashboards_are_json_with_the_vm_hub_panels_on_the_charts_datasource() -> None:
    boards = {n: json.loads(km.dashboard_configmap(n, b)["data"][n]) for n, b in km.dashboards().items()}
    hub = boards["jupyterhub.json"]
    assert [(p["title"], p["targets"][0]["expr"]) for p in hub["panels"]] == list(HUB_PANELS)
    datasource_uid = kube_prometheus_defaults()["grafana"]["sidecar"]["datasources"]["uid"]
    for board in boards.values():
        assert {p["datasource"]["uid"] for p in board["panels"]} == {datasource_uid}
    assert kube_prometheus_defaults()["grafana"]["sidecar"]["dashboards"]["label"] == "grafana_dashboard"


def test_rules_cover_what_operators_need() -> None:
    names = [r["alert"] for r in km.alert_rules(SPEC)]
    assert {
        "JupyterHubDown",
        "SpawnFailures",
        "VolumeAlmostFull",
        "CephNotHealthy",
        "BackupTooOld",
        "BackupFailed",
    } <= set(names)
    no_backup = k8s_monitoring_spec(
        workshop().model_copy(update={"backup": workshop().backup.model_copy(update={"enabled": False})})
    )
    assert not {"BackupTooOld", "BackupFailed"} & {r["alert"] for r in km.alert_rules(no_backup)}


def test_promtool_checks_the_rules(tmp_path: Path) -> None:
    promtool = require_tool("promtool", "checks Prometheus rules (Debian package prometheus)")
    rules = tmp_path / "rules.yml"
    rules.write_text(km.render_rules(SPEC))
    result = subprocess.run(
        [promtool, "check", "rules", str(rules)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 7 rules found" in result.stdout


def test_promtool_unit_tests_fire_each_required_alert(tmp_path: Path) -> None:
    """Series as the cluster's exporters name them; promtool evaluates the real rules."""
    promtool = require_tool("promtool", "checks Prometheus rules (Debian package prometheus)")
    (tmp_path / "rules.yml").write_text(km.render_rules(SPEC))
    hub = 'up{namespace="jupyterhub", job="hub", service="hub"}'
    pvc = 'namespace="jupyterhub", persistentvolumeclaim="claim-alice"'
    backup = 'kube_cronjob_status_last_successful_time{namespace="jupyterhub", cronjob="home-backup"}'
    tests = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": hub, "values": "1 1 0 0 0 0 0"},
                    {"series": f"kubelet_volume_stats_used_bytes{{{pvc}}}", "values": "90x20"},
                    {"series": f"kubelet_volume_stats_capacity_bytes{{{pvc}}}", "values": "100x20"},
                    {"series": 'ceph_health_status{namespace="rook-ceph"}', "values": "0 1x30"},
                    # The last success 31 h before the start, never again.
                    {"series": backup, "values": f"{-31 * 3600}x200"},
                    {
                        "series": 'jupyterhub_server_spawn_duration_seconds_count{status="failure"}',
                        "values": "0 1 2 3 4 5",
                    },
                ],
                "alert_rule_test": [
                    {"eval_time": "1m", "alertname": "JupyterHubDown", "exp_alerts": []},
                    {
                        "eval_time": "6m",
                        "alertname": "JupyterHubDown",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "severity": "critical",
                                    "namespace": "jupyterhub",
                                    "job": "hub",
                                    "service": "hub",
                                },
                                "exp_annotations": {
                                    "summary": km.alert_rules(SPEC)[0]["annotations"]["summary"]
                                },
                            }
                        ],
                    },
                    {
                        "eval_time": "15m",
                        "alertname": "VolumeAlmostFull",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "severity": "warning",
                                    "namespace": "jupyterhub",
                                    "persistentvolumeclaim": "claim-alice",
                                },
                                "exp_annotations": {
                                    "summary": "volume claim-alice in jupyterhub is more than 85 % full"
                                },
                            }
                        ],
                    },
                    {"eval_time": "10m", "alertname": "CephNotHealthy", "exp_alerts": []},
                    {
                        "eval_time": "20m",
                        "alertname": "CephNotHealthy",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "critical", "namespace": "rook-ceph"},
                                "exp_annotations": {
                                    "summary": next(
                                        r for r in km.alert_rules(SPEC) if r["alert"] == "CephNotHealthy"
                                    )["annotations"]["summary"]
                                },
                            }
                        ],
                    },
                    {
                        "eval_time": "5m",
                        "alertname": "SpawnFailures",
                        "exp_alerts": _firing(SPEC, "SpawnFailures"),
                    },
                ],
            }
        ],
    }
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(tests, sort_keys=False))
    result = subprocess.run(
        [promtool, "test", "rules", "tests.yml"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _firing(spec: km.K8sMonitoringSpec, name: str) -> list[dict[str, Any]]:
    rule = next(r for r in km.alert_rules(spec) if r["alert"] == name)
    return [
        {
            "exp_labels": {"severity": rule["labels"]["severity"], "status": "failure"},
            "exp_annotations": rule["annotations"],
        }
    ]


def test_backup_too_old_fires_from_kube_state_metrics(tmp_path: Path) -> None:
    promtool = require_tool("promtool", "checks Prometheus rules (Debian package prometheus)")
    (tmp_path / "rules.yml").write_text(km.render_rules(SPEC))
    rule = next(r for r in km.alert_rules(SPEC) if r["alert"] == "BackupTooOld")
    hold = int(re.fullmatch(r"(\d+)h", rule["for"]).group(1))  # type: ignore[union-attr]
    backup = 'kube_cronjob_status_last_successful_time{namespace="jupyterhub", cronjob="home-backup"}'
    # A run that last succeeded at t = 0 and never again: stale after 30 h, firing `for` later.
    steps = (30 + hold + 2) * 6
    tests = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "10m",
        "tests": [
            {
                "interval": "10m",
                "input_series": [{"series": backup, "values": f"0x{steps}"}],
                "alert_rule_test": [
                    {"eval_time": "29h", "alertname": "BackupTooOld", "exp_alerts": []},
                    {
                        "eval_time": f"{30 + hold + 1}h",
                        "alertname": "BackupTooOld",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "severity": "critical",
                                    "namespace": "jupyterhub",
                                    "cronjob": "home-backup",
                                },
                                "exp_annotations": rule["annotations"],
                            }
                        ],
                    },
                ],
            }
        ],
    }
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(tests, sort_keys=False))
    result = subprocess.run(
        [promtool, "test", "rules", "tests.yml"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_workshop_plan_monitors_in_the_cluster_and_keeps_its_tokens_secret() -> None:
    from planner.mocks import SECRET
    from planner.plan import plan_stack

    plan = plan_stack("workshop-k8s")
    by_name = {r["name"]: r for r in plan["resources"]}
    release = by_name["monitoring-release"]
    assert (release["inputs"]["chart"], release["inputs"]["version"]) == (km.CHART_PATH, km.CHART_VERSION)
    assert release["inputs"]["namespace"] == km.NAMESPACE
    # Prometheus's volume is on Ceph, and the hub's metrics Secret exists: both come first.
    assert {"ceph-cluster", "monitoring-hub-metrics-token"} <= set(release["depends_on"])
    values = release["inputs"]["values"]
    # The scrapes and rules reach the chart in its values, validated as objects below.
    assert values["additionalPrometheusRulesMap"] == {"jshub": km.rule_groups(SPEC)}
    monitors = values["prometheus"]["additionalServiceMonitors"]
    assert [m["name"] for m in monitors] == ["jupyterhub", "rook-ceph-mgr"]
    for name in ("monitoring-grafana-oauth", "hub-monitoring-tokens", "monitoring-hub-metrics-token"):
        assert by_name[name]["inputs"]["stringData"] == SECRET, name
    # The hub release waits for the tokens its environment names.
    assert "hub-monitoring-tokens" in by_name["hub-release"]["depends_on"]
    assert plan["outputs"]["grafana_url"].endswith("/services/grafana/")
    # The values the chart gets are the rendered ones (apply ran: no unknowns).
    assert (
        release["inputs"]["values"]["grafana"]["grafana.ini"]["server"]["root_url"]
        == (plan["outputs"]["grafana_url"])
    )
    off = plan_stack("workshop-k8s", overrides={"monitoring": {"enabled": False}})
    assert not [
        r for r in off["resources"] if r["name"].startswith("monitoring") or "monitoring" in r["name"]
    ]


@pytest.mark.parametrize(("spec", "count"), [(SPEC, 2), (dataclasses.replace(SPEC, alerts=TARGETS), 3)])
def test_monitoring_component_marks_its_secrets_secret(spec: km.K8sMonitoringSpec, count: int) -> None:
    from components.k8s_monitoring import K8sMonitoring, K8sMonitoringArgs
    from tests.conftest import by_type, run_mocked

    def program() -> None:
        import pulumi

        K8sMonitoring(
            "monitoring",
            K8sMonitoringArgs(
                spec=spec,
                grafana_client_secret=pulumi.Output.secret("t"),
                metrics_token=pulumi.Output.secret("m"),
                # Plain here: the component marks what it makes of them secret itself.
                smtp_password=SMTP_PASSWORD,
                webhook_url=WEBHOOK,
            ),
        )

    rec = run_mocked(program)
    secrets = by_type(rec, "kubernetes:core/v1:Secret")
    assert len(secrets) == count
    for secret in secrets:
        assert {"stringData", "data"} <= set(secret.additional_secret_outputs)
        assert "stringData" in secret.secret_inputs


# --- alerts -------------------------------------------------------------------------------------

ALERTING = dataclasses.replace(SPEC, alerts=TARGETS)
WEBHOOK_ONLY = AlertTargets(webhook=True)
EMAIL_ONLY = dataclasses.replace(TARGETS, webhook=False)


def test_alerting_values_name_the_stacks_secret_and_hold_no_secret() -> None:
    values = km.chart_values(ALERTING)
    values.pop("grafana")
    # configSecret is a key the chart documents commented out (no default); its Alertmanager
    # template reads .Values.alertmanager.alertmanagerSpec.configSecret.
    assert unknown_keys(values, kube_prometheus_defaults()) == ["alertmanager.alertmanagerSpec.configSecret"]
    chart_text = (UPSTREAM / "kube-prometheus-stack" / "values.yaml").read_text()
    spec_text = chart_text[chart_text.index("\n  alertmanagerSpec:\n") :]
    assert "\n    # configSecret:\n" in spec_text[: spec_text.index("\n## ")]
    spec = values["alertmanager"]["alertmanagerSpec"]
    assert (spec["configSecret"], spec["useExistingSecret"]) == (km.ALERTMANAGER_SECRET, True)
    # Nothing of the configuration (nor its secrets) in the values Helm records in plain text.
    assert set(values["alertmanager"]) == {"alertmanagerSpec"}
    assert SMTP_PASSWORD not in json.dumps(values) and WEBHOOK not in json.dumps(values)
    # Without targets the chart keeps its own configuration (its receiver `null`).
    assert "configSecret" not in km.chart_values(SPEC)["alertmanager"]["alertmanagerSpec"]


def test_the_configuration_replaces_the_charts_without_losing_its_inhibitions_and_silences() -> None:
    """The chart's default configuration (its values.yaml) mutes the always-firing Watchdog and
    inhibits warnings under criticals; the stack's replaces it, so it must do the same. A new
    chart release that changes them fails here."""
    default = kube_prometheus_defaults()["alertmanager"]["config"]
    assert list(km.INHIBIT_RULES) == default["inhibit_rules"]
    config = km.alertmanager_config_of(TARGETS, SMTP_PASSWORD, WEBHOOK)
    assert config["inhibit_rules"] == default["inhibit_rules"]
    quiet = [tuple(r["matchers"]) for r in config["route"]["routes"] if r["receiver"] == "null"]
    for route in default["route"]["routes"]:
        assert route["receiver"] == "null" and tuple(route["matchers"]) in quiet
    # Same receivers as the VM hubs' (one function renders both).
    assert config["receivers"][0] == yaml.safe_load(render_alertmanager_template(TARGETS))["receivers"][0] | {
        "webhook_configs": [{"url": WEBHOOK, "send_resolved": True}]
    }


@pytest.mark.parametrize("targets", [TARGETS, EMAIL_ONLY, WEBHOOK_ONLY], ids=["both", "email", "webhook"])
def test_amtool_accepts_the_clusters_configuration_and_routes_it(
    targets: AlertTargets, tmp_path: Path
) -> None:
    amtool = require_tool("amtool", "checks Alertmanager's config (Debian package prometheus-alertmanager)")
    obj = km.alertmanager_secret(targets, SMTP_PASSWORD, WEBHOOK)
    kubernetes_validate.validate(obj, "1.33.0", strict=True)
    assert obj["metadata"] == {**obj["metadata"], "name": km.ALERTMANAGER_SECRET, "namespace": km.NAMESPACE}
    path = tmp_path / "alertmanager.yaml"
    path.write_text(obj["stringData"][km.ALERTMANAGER_KEY])
    check = subprocess.run([amtool, "check-config", str(path)], capture_output=True, text=True)
    assert check.returncode == 0 and "SUCCESS" in check.stdout, check.stdout + check.stderr
    config = yaml.safe_load(path.read_text())
    if targets.smtp_password:
        assert config["global"]["smtp_auth_password"] == SMTP_PASSWORD
    if targets.webhook:
        assert config["receivers"][0]["webhook_configs"][0]["url"] == WEBHOOK

    def receiver(*labels: str) -> str:
        result = subprocess.run(
            [amtool, "config", "routes", "test", f"--config.file={path}", *labels],
            capture_output=True,
            text=True,
            check=True,
        )
        return result.stdout.strip()

    assert receiver("alertname=JupyterHubDown", "severity=critical") == "operators"
    assert receiver("alertname=KubePodCrashLooping", "severity=warning") == "operators"
    assert receiver("alertname=Watchdog", "severity=none") == "null"
    assert receiver("alertname=CPUThrottlingHigh", "severity=info") == "null"


def test_workshop_plan_with_alert_targets_keeps_their_secrets_out(tmp_path: Path) -> None:
    from planner.mocks import SECRET
    from planner.plan import PROJECT_DIR, plan_stack
    from planner.stackfile import SECRET_PLACEHOLDER
    from policy.rules import check_plan

    stack = yaml.safe_load((PROJECT_DIR / "Pulumi.workshop-k8s.yaml").read_text())
    stack["config"]["jupyterhub-jetstream:monitoring"] = {
        "alertEmail": "ops@example.org",
        "smtpSmarthost": "smtp.example.org:587",
        "smtpFrom": "hub@example.org",
        "smtpUsername": "hub",
    }
    for key in ("alertSmtpPassword", "alertWebhookUrl"):
        stack["config"][f"jupyterhub-jetstream:{key}"] = {"secure": "v1:REPLACE_ME"}
    stack_file = tmp_path / "Pulumi.workshop-k8s.yaml"
    stack_file.write_text(yaml.safe_dump(stack))
    plan = plan_stack("workshop-k8s", stack_file=stack_file)
    by_name = {r["name"]: r for r in plan["resources"]}
    config = by_name["monitoring-alertmanager-config"]
    assert config["inputs"]["stringData"] == SECRET
    assert config["inputs"]["metadata"]["name"] == km.ALERTMANAGER_SECRET
    release = by_name["monitoring-release"]
    assert "monitoring-alertmanager-config" in release["depends_on"]
    spec = release["inputs"]["values"]["alertmanager"]["alertmanagerSpec"]
    assert (spec["configSecret"], spec["useExistingSecret"]) == (km.ALERTMANAGER_SECRET, True)
    assert SECRET_PLACEHOLDER not in json.dumps(plan)
    assert check_plan(plan["resources"]) == []
    # Without targets: no Secret, the chart's own configuration.
    plain = {r["name"] for r in plan_stack("workshop-k8s")["resources"]}
    assert "monitoring-alertmanager-config" not in plain


def test_backup_failed_fires_while_the_newest_backup_job_failed(tmp_path: Path) -> None:
    """kube-state-metrics' series for the CronJob's Jobs: one that succeeded yesterday, one that
    fails tonight (and stays, as failed Jobs do), one that succeeds after it; a volume Job the
    driver made (not the CronJob's) fails too, and does not count."""
    promtool = require_tool("promtool", "checks Prometheus rules (Debian package prometheus)")
    (tmp_path / "rules.yml").write_text(km.render_rules(SPEC))
    rule = next(r for r in km.alert_rules(SPEC) if r["alert"] == "BackupFailed")
    steps = 40  # 10 minutes each

    def series(start: int, value: float, end: int = steps) -> str:
        """Absent before step `start`, then `value` to the end."""
        return " ".join(["_"] * start + [f"{value:g}"] * (end - start + 1))

    def job(name: str, created: int, owner: str = "CronJob") -> list[dict[str, str]]:
        labels = f'namespace="jupyterhub", job_name="{name}"'
        out = [{"series": f"kube_job_created{{{labels}}}", "values": series(created, created * 600)}]
        if owner:
            out.append(
                {
                    "series": f'kube_job_owner{{{labels}, owner_kind="{owner}", owner_name="home-backup", '
                    'owner_is_controller="true"}',
                    "values": series(created, 1),
                }
            )
        return out

    def failed(name: str, at: int) -> dict[str, str]:
        return {
            "series": f'kube_job_failed{{namespace="jupyterhub", job_name="{name}", condition="true"}}',
            "values": series(at, 1),
        }

    def firing(name: str) -> list[dict[str, Any]]:
        return [
            {
                "exp_labels": {"severity": "critical", "namespace": "jupyterhub", "job_name": name},
                "exp_annotations": {
                    "summary": rule["annotations"]["summary"].replace("{{ $labels.job_name }}", name)
                },
            }
        ]

    tests = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "10m",
        "tests": [
            {
                "interval": "10m",
                "input_series": [
                    *job("home-backup-1", 0),
                    *job("home-backup-2", 6),  # starts at 1h, fails at 2h
                    failed("home-backup-2", 12),
                    *job("home-backup-20261208-1", 7, owner=""),  # the driver's volume Job
                    failed("home-backup-20261208-1", 8),
                    *job("home-backup-manual-1", 24),  # made from the CronJob at 4h, succeeds
                ],
                "alert_rule_test": [
                    {"eval_time": "90m", "alertname": "BackupFailed", "exp_alerts": []},
                    {"eval_time": "130m", "alertname": "BackupFailed", "exp_alerts": firing("home-backup-2")},
                    {"eval_time": "230m", "alertname": "BackupFailed", "exp_alerts": firing("home-backup-2")},
                    {"eval_time": "250m", "alertname": "BackupFailed", "exp_alerts": []},
                ],
            }
        ],
    }
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(tests, sort_keys=False))
    result = subprocess.run(
        [promtool, "test", "rules", "tests.yml"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
