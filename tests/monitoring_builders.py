"""Monitoring settings the tests build from, shared by the VM hubs' monitoring and Alertmanager
tests and the k8s release's: a MonitoringSpec, a monitoring config that must be refused (its
problems), and where alerts go with awkward secrets."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from renderers.monitoring import AlertTargets, MonitoringSpec
from stackconfig import ConfigError
from tests.conftest import make_config


def spec(**changes: Any) -> MonitoringSpec:
    base = MonitoringSpec(
        hub_target="127.0.0.1:8000",
        data_mount="/data",
        retention_days=15,
        volume_full_percent=85,
        spawn_failures_per_hour=3,
        backup_max_age_hours=30,
    )
    return dataclasses.replace(base, **changes)


def problems(**overrides: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        make_config(**overrides)
    return [str(p) for p in info.value.problems]


TARGETS = AlertTargets(
    email_to="ops@example.org",
    smarthost="smtp.example.org:587",
    email_from="hub@example.org",
    smtp_username="hub",
    smtp_password=True,
    webhook=True,
)
# A quote, an ampersand (bash 5.2's pattern replacement would read it), a backslash, a dollar.
SMTP_PASSWORD = "p'a&ss\\w$rd"
WEBHOOK = "https://hooks.example.org/services/T0/B0/x&y=1"
