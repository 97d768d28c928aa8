"""Each VM role's rendered user data (the hub, swarm manager and worker, k3s server and worker),
for the boot scripts' unit tests and the cloud-init runs of tests/e2e/test_boot_cloud_init.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import yaml

from renderers.cloud_init import HubBootSpec, render_hub_cloud_init
from renderers.hub_config import HubConfigSpec
from renderers.k3s import K3sNodeSpec, render_k3s_cloud_init
from renderers.swarm import (
    ManagerBootSpec,
    WorkerBootSpec,
    render_manager_cloud_init,
    render_worker_cloud_init,
)
from tests.conftest import make_config

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleKeyOnly jshub-deploy"
VOLUME = "4f0c9a2e-8c1d-4b7e-9f3a-2d6c5e1b0a98"


def _hub() -> str:
    spec = HubConfigSpec.from_config(make_config())
    return render_hub_cloud_init(HubBootSpec(spec.paths, spec.proxy, VOLUME, KEY))


ROLES: dict[str, Callable[[], str]] = {
    "hub": _hub,
    "swarm-manager": lambda: render_manager_cloud_init(
        ManagerBootSpec("hub.example.org", "ops@example.org", VOLUME, KEY)
    ),
    "swarm-worker": lambda: render_worker_cloud_init(WorkerBootSpec("10.0.0.5", KEY)),
    "k3s-first-server": lambda: render_k3s_cloud_init(K3sNodeSpec("cp-0", "server", "v1.33.5+k3s1", KEY)),
    "k3s-worker": lambda: render_k3s_cloud_init(
        K3sNodeSpec("w-0", "worker", "v1.33.5+k3s1", KEY, server_url="https://10.0.0.5:6443")
    ),
}


def user_data(role: str) -> dict[str, Any]:
    doc = yaml.safe_load(ROLES[role]())
    assert isinstance(doc, dict)
    return doc
