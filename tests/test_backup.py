"""The backup section of the config and the rendered backup commands: refused values name the
key, the value and what is allowed; the schedule grammar agrees with systemd's own parser; the
scripts pass shellcheck and the units systemd's verifier."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from renderers.backup import (
    render_env_file,
    render_install_script,
    render_units,
    repository,
    scripts,
)
from stackconfig import ConfigError
from stackconfig.backup import cron_schedule, on_calendar
from tests.backup_builders import spec
from tests.conftest import make_config, require_tool


def problems(**overrides: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        make_config(**overrides)
    return [str(p) for p in info.value.problems]


def test_defaults_back_up_nightly_with_7_4_6_and_30_hours() -> None:
    cfg = make_config()
    b = cfg.backup
    assert b.on_for("single") and b.on_for("hpc") and b.on_for("swarm") and b.on_for("k8s")
    assert b.schedule == "*-*-* 03:15:00"
    assert (b.retention.keep_daily, b.retention.keep_weekly, b.retention.keep_monthly) == (7, 4, 6)
    assert b.max_age_hours == 30
    assert not make_config(backup={"enabled": False}).backup.on_for("single")


@pytest.mark.parametrize(
    ("backup", "expected"),
    [
        (
            {"schedule": "nightly"},
            "backup.schedule = 'nightly': unexpected 'nightly'; allowed: a systemd OnCalendar",
        ),
        ({"schedule": "*-*-* 25:00"}, "backup.schedule = '*-*-* 25:00': hour 25 is outside 0..23; allowed:"),
        ({"schedule": "*-13-01 00:00"}, "month 13 is outside 1..12"),
        ({"schedule": "*-*-* 00/0:00"}, "hour repetition /0 never advances"),
        (
            {"retention": {"keepDaily": -1}},
            "backup.retention.keepDaily = -1: Input should be greater than or equal to 0",
        ),
        (
            {"retention": {"keepDaily": 0, "keepWeekly": 0, "keepMonthly": 0}},
            "backup.retention: keepDaily, keepWeekly and keepMonthly are all 0",
        ),
        ({"maxAgeHours": 0}, "backup.maxAgeHours = 0: Input should be greater than or equal to 1"),
        ({"container": "My_Bucket"}, "backup.container = 'My_Bucket': not a usable bucket name"),
        ({"keepDaily": 7}, "backup.keepDaily: unknown key; known keys: container, enabled, maxAgeHours"),
    ],
)
def test_bad_backup_values_name_key_value_and_what_is_allowed(backup: dict[str, Any], expected: str) -> None:
    found = problems(backup=backup)
    assert any(expected in p for p in found), found


def test_k8s_refuses_a_schedule_a_cronjob_cannot_express() -> None:
    k8s = {"scenario": "k8s", "k8s": {"engine": "k3s"}}
    found = problems(backup={"schedule": "*-*-* 03:15:30"}, **k8s)
    assert any(
        p.startswith(
            "backup.schedule = '*-*-* 03:15:30': a CronJob runs on whole minutes: '30' as the seconds"
        )
        for p in found
    ), found
    found = problems(backup={"schedule": "2027-*-* 03:15"}, **k8s)
    assert any(
        "a CronJob repeats every year: '2027' as the year; allowed: on scenario k8s" in p for p in found
    )
    # The same schedules are fine on a VM (systemd), and on k8s with backups off.
    assert make_config(backup={"schedule": "*-*-* 03:15:30"}).backup.schedule == "*-*-* 03:15:30"
    assert not make_config(backup={"schedule": "*-*-* 03:15:30", "enabled": False}, **k8s).backup.on_for(
        "k8s"
    )


@pytest.mark.parametrize(
    ("on_calendar", "cron"),
    [
        ("*-*-* 03:15:00", "15 3 * * *"),
        ("*-*-* 03:15", "15 3 * * *"),
        ("daily", "0 0 * * *"),
        ("weekly", "0 0 * * 1"),
        ("hourly", "0 * * * *"),
        ("Mon..Fri *-*-* 02:00", "0 2 * * 1-5"),
        ("Sat,Sun 04:30", "30 4 * * 6,0"),
        ("*-*-* 00/6:00", "0 0-23/6 * * *"),
        ("*-*-* */6:05", "5 */6 * * *"),
        ("*-*-1,15 01:00:00", "0 1 1,15 * *"),
        ("*-*-* 1..5:30", "30 1-5 * * *"),
        ("*-02-01 00:00 UTC", "0 0 1 2 *"),
        ("Sun 03:00", "0 3 * * 0"),
    ],
)
def test_schedules_become_the_same_cron_schedule_on_k8s(on_calendar: str, cron: str) -> None:
    assert cron_schedule(on_calendar) == cron


SCHEDULES_ACCEPTED = [
    "daily",
    "weekly",
    "hourly",
    "*-*-* 03:15:00",
    "*-*-* 03:15",
    "Mon..Fri *-*-* 02:00",
    "Sat,Sun 04:30",
    "*-*-* 00/6:00",
    "*-*-1,15 01:00:00",
    "2027-01-01 00:00:00 UTC",
    "*-*-* 1..5:30",
]
SCHEDULES_REFUSED = ["nightly", "*-*-* 24:00", "*-*-* 12:60", "Funday 03:00", "03:00 Mon", "*-*-32", ""]


def _ours(expression: str) -> bool:
    try:
        on_calendar(expression)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("expression", SCHEDULES_ACCEPTED + SCHEDULES_REFUSED)
def test_schedule_grammar(expression: str) -> None:
    assert _ours(expression) == (expression in SCHEDULES_ACCEPTED)


def test_schedule_grammar_agrees_with_systemd() -> None:
    """The model (no systemd at plan time) and `systemd-analyze calendar` agree on every
    expression here. Where the grammar is deliberately narrower (zones other than UTC, `~`,
    fractional seconds: see stackconfig/backup.py) it refuses what systemd would accept."""
    tool = require_tool("systemd-analyze", "parses OnCalendar expressions as systemd does")
    for expression in SCHEDULES_ACCEPTED + SCHEDULES_REFUSED:
        result = subprocess.run([tool, "calendar", expression], capture_output=True, text=True, check=False)
        assert (result.returncode == 0) == _ours(expression), (expression, result.stdout, result.stderr)


@pytest.mark.parametrize(
    "name", ["jshub-backup", "jshub-backup-check", "jshub-backup-failed", "jshub-restore", "install"]
)
def test_backup_scripts_pass_shellcheck(name: str, tmp_path: Path) -> None:
    tool = require_tool("shellcheck", "lints rendered shell scripts")
    text = render_install_script(spec()) if name == "install" else scripts(spec())[name]
    path = tmp_path / name
    path.write_text(text)
    result = subprocess.run([tool, str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout


def test_install_script_writes_every_command_and_unit_and_reads_secrets_from_stdin() -> None:
    text = render_install_script(spec())
    for name in [*scripts(spec()), *render_units(spec())]:
        assert f"/{name} >/dev/null <<'JSHUB_BACKUP_EOF'" in text, name
    # The environment file comes from standard input, into a root-only folder and file.
    assert (
        "sudo install -d -m 0700 /etc/jshub-backup\numask 077\nsudo tee /etc/jshub-backup/restic.env >/dev/null\n"
        in text
    )
    assert "sudo chmod 0600 /etc/jshub-backup/restic.env" in text
    assert "systemctl enable --now jshub-backup.timer jshub-backup-check.timer" in text
    assert "cloud-init status --wait" in text.split("apt-get")[0], "waits for the first boot before apt"


def test_units_run_on_the_configured_schedule(tmp_path: Path) -> None:
    units = render_units(spec())
    assert "OnCalendar=*-*-* 03:15:00\n" in units["jshub-backup.timer"]
    assert "Persistent=true" in units["jshub-backup.timer"]
    assert "ExecStart=/usr/local/sbin/jshub-backup\n" in units["jshub-backup.service"]
    # A failed backup starts the unit that records it; that unit and the check record nothing.
    assert "\nOnFailure=jshub-backup-failed.service\n" in units["jshub-backup.service"]
    assert "ExecStart=/usr/local/sbin/jshub-backup-failed\n" in units["jshub-backup-failed.service"]
    assert "OnFailure" not in units["jshub-backup-failed.service"] + units["jshub-backup-check.service"]
    # On the hub's VMs the record is on the data volume, beside the database.
    assert "failure_file=/data/hub/backup-failed\n" in scripts(spec())["jshub-backup-failed"]
    tool = require_tool("systemd-analyze", "verifies the rendered systemd units")
    for name, text in units.items():
        (tmp_path / name).write_text(text.replace("/usr/local/sbin", str(tmp_path)))
    for name in scripts(spec()):
        (tmp_path / name).write_text("#!/bin/sh\n")
        (tmp_path / name).chmod(0o755)
    result = subprocess.run(
        [tool, "verify", *(str(tmp_path / n) for n in units)], capture_output=True, text=True, check=False
    )
    # Only the unit files' own problems count; the host may lack a running systemd.
    own = [line for line in result.stderr.splitlines() if any(name in line for name in units)]
    assert not own, result.stderr
    # The verifier does catch a broken unit here.
    (tmp_path / "broken.timer").write_text(units["jshub-backup.timer"].replace("OnCalendar=", "OnCalender="))
    broken = subprocess.run([tool, "verify", str(tmp_path / "broken.timer")], capture_output=True, text=True)
    assert "broken.timer" in broken.stderr


def test_env_file_is_sourceable_and_refuses_values_it_cannot_carry() -> None:
    text = render_env_file(repository("jshub-backup-x"), "AKIA", "s3cr3t", "pw0")
    assert "RESTIC_REPOSITORY=s3:https://js2.jetstream-cloud.org:8001/jshub-backup-x\n" in text
    assert "AWS_DEFAULT_REGION=RegionOne\n" in text
    with pytest.raises(ValueError, match="RESTIC_PASSWORD holds characters") as info:
        render_env_file(repository("b"), "a", "s", "pw with $(space)")
    assert "space" not in str(info.value), "the error must not echo the secret"
