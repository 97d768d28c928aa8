"""cloud-init user data. Checked by the real `cloud-init schema` in the tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from renderers import render
from renderers.boot import with_boot_steps
from renderers.hub_config import HubPaths, ProxySpec
from renderers.scripts import render_add_user_script, render_data_volume_script

# Pinned like the Python side, at the newest release whose own and whose dependencies' declared
# Node.js fits Ubuntu 24.04's nodejs 18 (5.2 and later ask for Node >= 20; stackconfig/images.py).
CONFIGURABLE_HTTP_PROXY = "configurable-http-proxy@5.1.0"
HUB_ENV_FILE = "/etc/jupyterhub/secrets/hub.env"
# The proxy's token alone, for the proxy's unit (install-secrets derives it from HUB_ENV_FILE).
PROXY_ENV_FILE = "/etc/jupyterhub/secrets/proxy.env"
PROXY_UNIT = "jshub-proxy.service"
HUB_UNIT = "jupyterhub.service"
CADDY_MOUNT_DROPIN = "/etc/systemd/system/caddy.service.d/jshub-data-volume.conf"


def render_caddy_mount_dropin(mount_root: str) -> str:
    """Caddy keeps its certificates on the data volume: after a reboot it must not start
    before the volume is mounted (it would start over on the root disk)."""
    return f"[Unit]\nRequiresMountsFor={mount_root}\n"


@dataclass(frozen=True)
class HubBootSpec:
    """What a hub VM's first boot needs, and nothing a day-2 change of the stack's config
    touches: a change of user data creates a new server (pulumi_openstack Instance). The
    hub's config, its Caddyfile and its Python packages arrive over SSH (hub-config)."""

    paths: HubPaths
    proxy: ProxySpec
    data_volume_id: str
    deploy_public_key: str
    # Per-user home quotas on the data volume (scenario single): ext4 project quotas, set with
    # xfs_quota (xfsprogs) by the hub's jshub-home-quota before each server starts.
    home_quotas: bool = False


def _file(path: str, content: str, mode: str = "0644") -> dict[str, Any]:
    return {"path": path, "content": content, "owner": "root:root", "permissions": mode}


class _Dumper(yaml.SafeDumper):
    """Writes multi-line strings as literal blocks, so the user data reads like the files."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def to_user_data(config: dict[str, Any]) -> str:
    config = with_boot_steps(config)
    return "#cloud-config\n" + yaml.dump(config, Dumper=_Dumper, sort_keys=False, width=1000)


def render_hub_cloud_init(spec: HubBootSpec) -> str:
    paths = spec.paths
    config = {
        "package_update": True,
        "packages": [
            "python3-venv",
            "nodejs",
            "npm",
            "caddy",
            "iptables",
            *(["xfsprogs"] if spec.home_quotas else []),
        ],
        # A key the stack itself made, for its remote commands; operators log in with their
        # own key pair, which OpenStack installs.
        "ssh_authorized_keys": [spec.deploy_public_key.strip()],
        "write_files": [
            _file(paths.add_user_command, render_add_user_script(paths.home_root), "0755"),
            _file(
                "/usr/local/sbin/jshub-setup-data-volume",
                render_data_volume_script(
                    spec.data_volume_id, paths.data_root, ext4_project_quota=spec.home_quotas
                ),
                "0755",
            ),
            _file(
                f"/etc/systemd/system/{PROXY_UNIT}",
                render("jshub-proxy.service.j2", argv=spec.proxy.argv(), env_file=PROXY_ENV_FILE),
            ),
            _file(
                f"/etc/systemd/system/{HUB_UNIT}",
                render("jupyterhub.service.j2", paths=paths, env_file=HUB_ENV_FILE, proxy_unit=PROXY_UNIT),
            ),
            _file(
                "/etc/systemd/system/jshub-block-metadata.service",
                render("jshub-block-metadata.service.j2"),
            ),
            _file(CADDY_MOUNT_DROPIN, render_caddy_mount_dropin(paths.data_root)),
        ],
        "runcmd": [
            ["/usr/local/sbin/jshub-setup-data-volume"],
            ["install", "-d", "-m", "0700", "-o", "caddy", "-g", "caddy", paths.caddy_dir],
            # A rebuild onto another image may give the caddy user another UID: the
            # certificates already on the volume must stay readable to it.
            ["chown", "-R", "caddy:caddy", paths.caddy_dir],
            # An empty venv: the stack installs the hub's pinned packages into it (hub-config),
            # so that a new JupyterHub version upgrades the hub in place.
            ["python3", "-m", "venv", paths.venv],
            ["npm", "install", "--global", CONFIGURABLE_HTTP_PROXY],
            ["systemctl", "daemon-reload"],
            ["systemctl", "enable", "--now", "jshub-block-metadata.service"],
            ["systemctl", "enable", PROXY_UNIT, HUB_UNIT],
        ],
    }
    return to_user_data(config)
