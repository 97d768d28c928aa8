"""cloud-init user data. Checked by the real `cloud-init schema` in the tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from renderers import render
from renderers.boot import with_boot_steps
from renderers.hub_config import HubConfigSpec, SlurmSpawnerSpec, render_jupyterhub_config
from renderers.scripts import render_add_user_script, render_data_volume_script

HUB_REQUIREMENTS = Path(__file__).parent.parent / "hub" / "requirements.txt"
# The spawner of scenario hpc, installed next to jupyterhub_config.py.
HUB_SLURM_SPAWNER = Path(__file__).parent.parent / "hub" / "jshub_slurm.py"
# Pinned like the Python side, at the newest release whose own and whose dependencies' declared
# Node.js fits Ubuntu 24.04's nodejs 18 (5.2 and later ask for Node >= 20; stackconfig/images.py).
CONFIGURABLE_HTTP_PROXY = "configurable-http-proxy@5.1.0"
HUB_ENV_FILE = "/etc/jupyterhub/secrets/hub.env"


@dataclass(frozen=True)
class HubBootSpec:
    hub: HubConfigSpec
    fqdn: str
    lets_encrypt_email: str
    data_volume_id: str
    deploy_public_key: str


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
    paths = spec.hub.paths
    config = {
        "package_update": True,
        "packages": ["python3-venv", "nodejs", "npm", "caddy", "iptables"],
        # A key the stack itself made, for its remote commands; operators log in with their
        # own key pair, which OpenStack installs.
        "ssh_authorized_keys": [spec.deploy_public_key.strip()],
        "write_files": [
            _file(f"{paths.config_dir}/jupyterhub_config.py", render_jupyterhub_config(spec.hub)),
            _file(f"{paths.config_dir}/requirements.txt", HUB_REQUIREMENTS.read_text()),
            _file(paths.add_user_command, render_add_user_script(paths.home_root), "0755"),
            _file(
                "/usr/local/sbin/jshub-setup-data-volume",
                render_data_volume_script(spec.data_volume_id, paths.data_root),
                "0755",
            ),
            _file(
                "/etc/systemd/system/jupyterhub.service",
                render("jupyterhub.service.j2", paths=paths, env_file=HUB_ENV_FILE),
            ),
            _file(
                "/etc/systemd/system/jshub-block-metadata.service",
                render("jshub-block-metadata.service.j2"),
            ),
            _file(
                "/etc/caddy/Caddyfile",
                render(
                    "Caddyfile.j2",
                    fqdn=spec.fqdn,
                    email=spec.lets_encrypt_email,
                    upstream=spec.hub.bind_url.removeprefix("http://"),
                ),
            ),
        ],
        "runcmd": [
            ["/usr/local/sbin/jshub-setup-data-volume"],
            ["python3", "-m", "venv", paths.venv],
            [
                f"{paths.venv}/bin/pip",
                "install",
                "--no-cache-dir",
                "-r",
                f"{paths.config_dir}/requirements.txt",
            ],
            ["npm", "install", "--global", CONFIGURABLE_HTTP_PROXY],
            ["systemctl", "daemon-reload"],
            ["systemctl", "enable", "--now", "jshub-block-metadata.service"],
            ["systemctl", "enable", "jupyterhub.service"],
            ["systemctl", "restart", "caddy.service"],
        ],
    }
    if isinstance(spec.hub.spawner, SlurmSpawnerSpec):
        config["write_files"].insert(  # type: ignore[attr-defined]
            1, _file(f"{paths.config_dir}/jshub_slurm.py", HUB_SLURM_SPAWNER.read_text())
        )
    return to_user_data(config)
