"""Alertmanager on the VM hubs: where alerts go comes from config, the secrets (SMTP password,
webhook URL) only on the install's standard input. The rendered template, filled in by the
install's own shell code with awkward secrets, passes the real `amtool check-config`; the
Prometheus config that points at it passes `promtool check config`."""

from __future__ import annotations

import dataclasses
import http.server
import json
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from renderers import k8s_monitoring
from renderers.monitoring import (
    ALERTMANAGER_LISTEN,
    AlertTargets,
    MonitoringPaths,
    render_alertmanager_fill,
    render_alertmanager_template,
    render_install_script,
    render_prometheus_config,
)
from stackconfig.loader import parse
from stacks.monitoring import alert_targets
from tests.conftest import (
    BASE_CONFIG,
    PROJECT,
    SECRET_KEYS,
    as_pulumi_config,
    make_config,
    require_root,
    require_tool,
)
from tests.monitoring_builders import SMTP_PASSWORD, TARGETS, WEBHOOK, problems, spec

EMAIL = {
    "alertEmail": "ops@example.org",
    "smtpSmarthost": "smtp.example.org:587",
    "smtpFrom": "hub@example.org",
}


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            {"monitoring": {"alertEmail": "ops@example.org"}},
            "alertEmail needs smtpSmarthost (HOST:PORT) and smtpFrom",
        ),
        (
            {"monitoring": {**EMAIL, "alertEmail": "ops"}},
            "monitoring.alertEmail = 'ops': not an e-mail address",
        ),
        ({"monitoring": {**EMAIL, "smtpSmarthost": "smtp"}}, "not HOST:PORT of an SMTP server"),
        ({"monitoring": {"smtpFrom": "hub@example.org"}}, "are used only with alertEmail"),
        ({"alertSmtpPassword": "x"}, "alertSmtpPassword: is used only with monitoring.alertEmail"),
        ({"alertWebhookUrl": "ftp://x"}, "alertWebhookUrl: is not an http(s) URL"),
        (
            {"monitoring": {**EMAIL, "enabled": False}},
            "monitoring.alertEmail: notifications need monitoring",
        ),
    ],
)
def test_bad_alert_targets_name_the_key(config: dict[str, Any], expected: str) -> None:
    found = problems(**config)
    assert any(expected in p for p in found), found


def test_the_same_alert_keys_are_read_on_k8s() -> None:
    cfg = parse(
        as_pulumi_config(
            {
                **BASE_CONFIG,
                "scenario": "k8s",
                "k8s": {"cephVolumeGb": 1000},
                "monitoring": {**EMAIL, "smtpUsername": "hub"},
                "alertSmtpPassword": "pw",
                "alertWebhookUrl": "https://hooks.example.org/token-123",
            }
        ),
        secret_keys=[*SECRET_KEYS, f"{PROJECT}:alertSmtpPassword", f"{PROJECT}:alertWebhookUrl"],
    )
    assert alert_targets(cfg) == TARGETS
    # And checked the same way, never echoing the URL.
    found = problems(scenario="k8s", k8s={"cephVolumeGb": 1000}, alertWebhookUrl="ftp://x token-123")
    assert "alertWebhookUrl: is not an http(s) URL without spaces, quotes or backslashes" in found
    assert not any("not a key of scenario" in p or "token-123" in p for p in found), found
    found = problems(scenario="k8s", k8s={"cephVolumeGb": 1000}, monitoring={**EMAIL, "enabled": False})
    assert any("monitoring.alertEmail: notifications need monitoring" in p for p in found), found


def test_a_webhook_url_is_never_echoed_in_an_error() -> None:
    found = problems(alertWebhookUrl="not a url with-token-123")
    assert found and not any("token-123" in p for p in found)


def test_targets_from_config() -> None:
    cfg = parse(
        as_pulumi_config(
            {
                **BASE_CONFIG,
                "monitoring": {**EMAIL, "enabled": True, "smtpUsername": "hub"},
                "alertSmtpPassword": "pw",
            }
        ),
        secret_keys=[*SECRET_KEYS, f"{PROJECT}:alertSmtpPassword"],
    )
    assert alert_targets(cfg) == dataclasses.replace(TARGETS, webhook=False)
    assert alert_targets(make_config()) is None


def test_prometheus_sends_to_the_local_alertmanager_only_with_targets(tmp_path: Path) -> None:
    promtool = require_tool("promtool", "checks Prometheus config (Debian package prometheus)")
    with_alerts = yaml.safe_load(render_prometheus_config(spec(alerts=TARGETS)))
    assert with_alerts["alerting"] == {
        "alertmanagers": [{"static_configs": [{"targets": [ALERTMANAGER_LISTEN]}]}]
    }
    assert "alerting" not in yaml.safe_load(render_prometheus_config(spec()))
    # promtool resolves the rules and token files: point them at real ones.
    paths = MonitoringPaths(config_dir=str(tmp_path))
    (tmp_path / "jshub-alerts.yml").write_text("groups: []\n")
    (tmp_path / "jshub-metrics.token").write_text("t")
    config = tmp_path / "prometheus.yml"
    config.write_text(render_prometheus_config(spec(alerts=TARGETS, paths=paths)))
    result = subprocess.run([promtool, "check", "config", str(config)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "targets",
    [
        TARGETS,
        dataclasses.replace(TARGETS, webhook=False),
        dataclasses.replace(
            TARGETS, email_to=None, smarthost=None, email_from=None, smtp_username=None, smtp_password=False
        ),
        dataclasses.replace(TARGETS, smtp_username=None, smtp_password=False),
    ],
    ids=["email-and-webhook", "email", "webhook", "email-without-login"],
)
def test_the_install_fills_in_the_secrets_and_amtool_accepts_the_result(
    targets: AlertTargets, tmp_path: Path
) -> None:
    require_root("writes the config root:prometheus, as on the VM")
    require_tool("amtool", "checks Alertmanager's config (Debian package prometheus-alertmanager)")
    paths = MonitoringPaths(config_dir=str(tmp_path))
    Path(paths.alertmanager_template).write_text(render_alertmanager_template(targets))
    script = tmp_path / "fill.sh"
    script.write_text(
        "set -euo pipefail\nIFS= read -r smtp_password || true\nIFS= read -r webhook_url || true\n"
        + render_alertmanager_fill(paths, sudo="")
    )
    smtp = SMTP_PASSWORD if targets.smtp_password else ""
    hook = WEBHOOK if targets.webhook else ""
    result = subprocess.run(
        ["bash", str(script)], input=f"{smtp}\n{hook}\n", capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr  # the script's own amtool check passed
    written = Path(paths.alertmanager_config)
    assert written.stat().st_mode & 0o777 == 0o640
    config = yaml.safe_load(written.read_text())
    receiver = config["receivers"][0]
    if targets.email_to:
        assert receiver["email_configs"] == [{"to": "ops@example.org", "send_resolved": True}]
        assert config["global"]["smtp_smarthost"] == "smtp.example.org:587"
        assert config["global"].get("smtp_auth_password") == (
            SMTP_PASSWORD if targets.smtp_password else None
        )
    if targets.webhook:
        assert receiver["webhook_configs"] == [{"url": WEBHOOK, "send_resolved": True}]
    # No secret on any command line of the script, nor in the template.
    for text in (script.read_text(), Path(paths.alertmanager_template).read_text()):
        assert SMTP_PASSWORD not in text and WEBHOOK not in text
    check = subprocess.run(["amtool", "check-config", str(written)], capture_output=True, text=True)
    assert check.returncode == 0 and "SUCCESS" in check.stdout, check.stdout + check.stderr


def test_amtool_catches_a_broken_config(tmp_path: Path) -> None:
    require_tool("amtool", "checks Alertmanager's config (Debian package prometheus-alertmanager)")
    broken = yaml.safe_load(render_alertmanager_template(TARGETS))
    broken["route"]["receiver"] = "nobody"
    path = tmp_path / "am.yml"
    path.write_text(yaml.safe_dump(broken))
    assert subprocess.run(["amtool", "check-config", str(path)], capture_output=True).returncode != 0


def test_install_with_alerts_passes_shellcheck_and_installs_alertmanager(tmp_path: Path) -> None:
    tool = require_tool("shellcheck", "lints rendered shell scripts")
    text = render_install_script(spec(alerts=TARGETS, external_url="https://hub.example.org/prometheus/"))
    path = tmp_path / "install"
    path.write_text(text)
    result = subprocess.run([tool, str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout
    assert "prometheus-alertmanager" in text and "IFS= read -r webhook_url || true" in text
    assert "sudo amtool check-config /etc/prometheus/alertmanager.yml >/dev/null" in text
    assert 'ARGS="--web.listen-address=127.0.0.1:9093 --cluster.listen-address="' in text
    plain = render_install_script(spec(external_url="https://hub.example.org/prometheus/"))
    assert "alertmanager" not in plain


def test_plan_keeps_the_alerting_secrets_out(tmp_path: Path) -> None:
    from planner.plan import PROJECT_DIR, plan_stack
    from planner.stackfile import SECRET_PLACEHOLDER

    stack = yaml.safe_load((PROJECT_DIR / "Pulumi.dev.yaml").read_text())
    stack["config"]["jupyterhub-jetstream:monitoring"] = {**EMAIL, "enabled": True, "smtpUsername": "hub"}
    for key in ("alertSmtpPassword", "alertWebhookUrl"):
        stack["config"][f"jupyterhub-jetstream:{key}"] = {"secure": "v1:REPLACE_ME"}
    stack_file = tmp_path / "Pulumi.dev.yaml"
    stack_file.write_text(yaml.safe_dump(stack))
    plan = plan_stack("dev", stack_file=stack_file)
    install = next(r for r in plan["resources"] if r["name"] == "monitoring-install")
    assert "prometheus-alertmanager" in install["inputs"]["create"]
    assert install["inputs"]["stdin"] != "" and "stdin" in install["secret_inputs"]
    text = yaml.safe_dump(plan)
    assert SECRET_PLACEHOLDER not in text


# --- a real Alertmanager delivers ----------------------------------------------------------------


class _Hook(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append({"path": self.path, **json.loads(body)})
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _vm_config(tmp_path: Path, webhook: str) -> str:
    """What the VM's install writes: the template filled by its own shell code (which runs
    amtool; the group prometheus aside)."""
    require_tool("amtool", "the install checks the config it writes")
    targets = AlertTargets(webhook=True)
    paths = MonitoringPaths(config_dir=str(tmp_path))
    Path(paths.alertmanager_template).write_text(render_alertmanager_template(targets))
    script = "set -euo pipefail\nIFS= read -r smtp_password || true\nIFS= read -r webhook_url || true\n"
    script += render_alertmanager_fill(paths, sudo="").replace("chown root:prometheus", "true")
    subprocess.run(["bash", "-c", script], input=f"\n{webhook}\n", text=True, check=True)
    return Path(paths.alertmanager_config).read_text()


def _k8s_config(tmp_path: Path, webhook: str) -> str:
    """What the stack puts in the cluster's Alertmanager Secret."""
    obj = k8s_monitoring.alertmanager_secret(AlertTargets(webhook=True), "", webhook)
    return str(obj["stringData"][k8s_monitoring.ALERTMANAGER_KEY])


@pytest.mark.parametrize("where", ["vm", "k8s"])
def test_a_real_alertmanager_delivers_a_firing_alert_to_the_webhook(where: str, tmp_path: Path) -> None:
    binary = require_tool(
        "prometheus-alertmanager", "runs a real Alertmanager (Debian package prometheus-alertmanager)"
    )
    _Hook.received = []
    hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{hook.server_address[1]}/hooks/T0/secret-token"
    text = (_vm_config if where == "vm" else _k8s_config)(tmp_path, url)
    config = yaml.safe_load(text)
    # Only the timing changes: 30 s of grouping is too long for a test.
    config["route"]["group_wait"] = "1s"
    path = tmp_path / "alertmanager-test.yml"
    path.write_text(yaml.safe_dump(config))
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api/v2"
    log = (tmp_path / "alertmanager.log").open("w")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={path}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2)
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, (
                    tmp_path / "alertmanager.log"
                ).read_text()
                time.sleep(0.2)
        alerts = [{"labels": {"alertname": "JupyterHubDown", "severity": "critical"}}]
        if where == "k8s":
            # The chart's always-firing Watchdog and an info alert must reach no one.
            alerts += [
                {"labels": {"alertname": "Watchdog", "severity": "none"}},
                {"labels": {"alertname": "CPUThrottlingHigh", "severity": "info"}},
            ]
        request = urllib.request.Request(
            f"{api}/alerts",
            data=json.dumps(alerts).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        assert urllib.request.urlopen(request, timeout=5).status == 200
        deadline = time.monotonic() + 30
        while not _Hook.received and time.monotonic() < deadline:
            time.sleep(0.2)
        # What else would come comes in the same group_wait.
        time.sleep(3)
    finally:
        process.terminate()
        process.wait(timeout=10)
        hook.shutdown()
        log.close()
    assert _Hook.received, (tmp_path / "alertmanager.log").read_text()
    names = [a["labels"]["alertname"] for n in _Hook.received for a in n["alerts"]]
    assert names == ["JupyterHubDown"], names
    notification = _Hook.received[0]
    assert notification["path"] == "/hooks/T0/secret-token"
    assert notification["status"] == "firing" and notification["receiver"] == "operators"
