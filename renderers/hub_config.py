"""The files of a hub VM that follow the stack's config: the hub's static jupyterhub_config.py,
its modules and its settings (hub/), the scripts its hooks run, the Caddyfile."""

from __future__ import annotations

import hashlib
import json
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from renderers import render
from renderers.hub_settings import SETTINGS_FILE, hub_settings, settings_json
from renderers.hub_spec import (
    HUB_API_PORT,
    PROXY_API_URL,
    HubConfigSpec,
    HubPaths,
    LocalSpawnerSpec,
    ProxySpec,
    SlurmSpawnerSpec,
    SpawnerSpec,
    SwarmSpawnerSpec,
)

# The hub's parts are defined in renderers/hub_spec.py; callers keep importing them from here.
__all__ = [
    "HUB_API_PORT",
    "PROXY_API_URL",
    "HubConfigSpec",
    "HubPaths",
    "LocalSpawnerSpec",
    "ProxySpec",
    "SlurmSpawnerSpec",
    "SpawnerSpec",
    "SwarmSpawnerSpec",
]

HUB_DIR = Path(__file__).parent.parent / "hub"
# What the hub VM installs into its venv, and what the tests install to run the hub's
# jupyterhub_config.py for real. One list, pinned.
HUB_REQUIREMENTS = HUB_DIR / "requirements.txt"
# The hub's static config: the same file on every VM and swarm hub, reading its settings.
HUB_CONFIG = HUB_DIR / "jupyterhub_config.py"
# The hub's own modules, installed beside it: the config's loader always; the others as the
# settings name them (`jshub_accounts.prepare_home`, `jshub_slurm.JetstreamSlurmSpawner`, ...).
HUB_MODULE_PREFIX = "jshub_"
HUB_LOADER = "jshub_settings"


def _named_modules(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set().union(*(_named_modules(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_named_modules(v) for v in value)) if value else set()
    if isinstance(value, str) and value.startswith(HUB_MODULE_PREFIX):
        # `module.name` (a hook), or a bare module a service runs with `python -m`.
        module = value.partition(".")[0]
        if (HUB_DIR / f"{module}.py").is_file():
            return {module}
    return set()


def hub_config_files(spec: HubConfigSpec) -> dict[str, str]:
    """The files of the hub's config folder, by name: its modules, the settings, and the
    static jupyterhub_config.py that loads them (last: a hub started by it finds the rest)."""
    settings = hub_settings(spec)
    modules = sorted(_named_modules(settings) | {HUB_LOADER})
    files = {f"{m}.py": (HUB_DIR / f"{m}.py").read_text() for m in modules}
    files[SETTINGS_FILE] = settings_json(settings)
    files[HUB_CONFIG.name] = HUB_CONFIG.read_text()
    return files


# JupyterLab 4's defaults for participants (hub/requirements.txt pins the version): no
# "Would you like to get notified about official Jupyter news?" prompt on a participant's
# first minute, and no update check (it needs fetchNews "true" anyway). A user may still
# opt in under Settings. The plugin and keys are those of JupyterLab's schema
# share/jupyter/lab/schemas/@jupyterlab/apputils-extension/notification.json.
JUPYTERLAB_NOTIFICATION_PLUGIN = "@jupyterlab/apputils-extension:notification"
JUPYTERLAB_OVERRIDES: dict[str, dict[str, Any]] = {
    JUPYTERLAB_NOTIFICATION_PLUGIN: {"fetchNews": "false", "checkForUpdates": False},
}


def jupyterlab_overrides_json() -> str:
    return json.dumps(JUPYTERLAB_OVERRIDES, indent=2) + "\n"


def render_shared_access_script(paths: HubPaths) -> str:
    return render(
        "jshub-shared-access.sh.j2",
        shared_root=paths.shared_root,
        group=paths.shared_group,
        home_root=paths.home_root,
    )


def render_home_quota_script(paths: HubPaths) -> str:
    return render("jshub-home-quota.sh.j2", data_root=paths.data_root, home_root=paths.home_root)


# The hub's unit, for servers in units of their own: stopping the hub stops everything left in
# its cgroup. Servers an earlier version started as the hub's child processes (LocalProcessSpawner)
# are stopped with it when this arrives, instead of running on where the new hub cannot see them.
HUB_UNIT_SYSTEMD_SPAWNER = """\
# Written by jupyterhub-jetstream's hub-config: users' servers run in units of their own
# (SystemdSpawner), which a hub restart leaves alone; nothing else of theirs is in this unit.
[Service]
KillMode=control-group
"""


@dataclass(frozen=True)
class HubFile:
    """A file on the hub VM's root disk that follows the stack's config, and the service that
    reads it (restarted, or reloaded, when the file changes)."""

    path: str
    content: str
    service: str
    mode: str = "0644"
    # A systemd unit file or drop-in: systemd reads it again before the service restarts.
    unit: bool = False


def render_caddyfile(
    fqdn: str,
    email: str,
    upstream: str,
    storage: str,
    acme_directory: str | None = None,
    acme_root: str | None = None,
) -> str:
    """`acme_directory`: the ACME server (Caddy's default, Let's Encrypt, when None);
    `acme_root`: the path of the root certificate that server's HTTPS is signed with."""
    return render(
        "Caddyfile.j2",
        fqdn=fqdn,
        email=email,
        upstream=upstream,
        storage=storage,
        acme_directory=acme_directory,
        acme_root=acme_root,
    )


def acme_root_path(paths: HubPaths) -> str:
    return f"{posixpath.dirname(paths.caddyfile)}/jshub-acme-root.pem"


def hub_vm_files(
    spec: HubConfigSpec,
    fqdn: str,
    lets_encrypt_email: str,
    acme_directory: str | None = None,
    acme_root_certificate: str | None = None,
) -> tuple[HubFile, ...]:
    """Everything on a hub VM that a day-2 change of the stack's config can change. The stack
    writes these over SSH (hub-config), never through user data, so that changing an admin,
    a limit or the e-mail address leaves the server in place. Requirements come first: the
    hub's unit starts only once its config file exists, and that needs the venv filled."""
    hub = "jupyterhub.service"
    files = [HubFile(f"{spec.paths.config_dir}/requirements.txt", HUB_REQUIREMENTS.read_text(), hub)]
    # Scripts come before the config that calls them: a hub restarted by the config finds them.
    if spec.shared_folder and isinstance(spec.spawner, LocalSpawnerSpec):
        files.append(
            HubFile(spec.paths.shared_access_command, render_shared_access_script(spec.paths), hub, "0755")
        )
    if spec.home_quotas:
        files.append(
            HubFile(spec.paths.home_quota_command, render_home_quota_script(spec.paths), hub, "0755")
        )
    if isinstance(spec.spawner, LocalSpawnerSpec) and spec.spawner.systemd_units:
        files.append(
            HubFile(
                f"{spec.paths.systemd_dir}/{hub}.d/jshub-servers.conf",
                HUB_UNIT_SYSTEMD_SPAWNER,
                hub,
                unit=True,
            )
        )
    if isinstance(spec.spawner, LocalSpawnerSpec):
        # Read by each server as it starts (its LabApp.app_settings_dir): before the settings
        # that point there.
        files.append(
            HubFile(f"{spec.paths.lab_settings_dir}/overrides.json", jupyterlab_overrides_json(), hub)
        )
    # The hub's modules and settings, then the static config that loads them.
    for name, content in hub_config_files(spec).items():
        files.append(HubFile(f"{spec.paths.config_dir}/{name}", content, hub))
    acme_root = None
    if acme_root_certificate:
        # Before the Caddyfile that names it: a reloaded Caddy finds the file.
        acme_root = acme_root_path(spec.paths)
        files.append(HubFile(acme_root, acme_root_certificate, "caddy.service"))
    files.append(
        HubFile(
            spec.paths.caddyfile,
            render_caddyfile(
                fqdn,
                lets_encrypt_email,
                spec.bind_url.removeprefix("http://"),
                spec.paths.caddy_dir,
                acme_directory,
                acme_root,
            ),
            "caddy.service",
        )
    )
    return tuple(files)


def files_digest(files: Sequence[HubFile]) -> str:
    digest = hashlib.sha256()
    for f in files:
        for part in (f.path, f.mode, f.service, str(f.unit), f.content):
            digest.update(part.encode() + b"\0")
    return digest.hexdigest()
