"""Shell scripts the VMs run. Each is shellcheck-clean (see tests/test_scripts.py)."""

from __future__ import annotations

from collections.abc import Sequence

from renderers import render
from renderers.hub_config import HubFile, HubPaths

# The hub VM's data volume: homes and hub state, both private to their owners.
HUB_DATA_FOLDERS: tuple[tuple[str, str], ...] = (("hub", "0700"), ("home", "0755"))


def render_add_user_script(home_root: str) -> str:
    return render("jshub-add-user.sh.j2", home_root=home_root)


def render_data_volume_script(
    volume_id: str,
    mount_point: str,
    *,
    label: str = "jshub-data",
    folders: tuple[tuple[str, str], ...] = HUB_DATA_FOLDERS,
    wait_s: int = 600,
    fs_type: str = "ext4",
    mount_options: str = "defaults",
    ext4_project_quota: bool = False,
) -> str:
    if ext4_project_quota and fs_type != "ext4":
        raise ValueError(f"ext4 project quotas on a {fs_type} volume")
    return render(
        "setup-data-volume.sh.j2",
        ext4_project_quota=ext4_project_quota,
        fs_type=fs_type,
        mount_options=mount_options,
        volume_id=volume_id,
        mount_point=mount_point,
        label=label,
        folders=folders,
        wait_s=wait_s,
    )


def render_install_secrets_script(
    env_file: str,
    services: Sequence[str],
    derived: Sequence[tuple[str, Sequence[str]]] = (),
) -> str:
    """Install `env_file` from stdin, write each `derived` file with only the listed keys of
    it (a service that needs one secret gets that one), and restart `services` in order."""
    secrets_dir = env_file.rsplit("/", 1)[0]
    return render(
        "install-secrets.sh.j2",
        env_file=env_file,
        secrets_dir=secrets_dir,
        services=services,
        derived=derived,
    )


# Ends each file's here-document in the hub-config script; no file may hold it as a line.
HEREDOC_END = "JSHUB_END_OF_FILE"


def render_hub_config_script(files: Sequence[HubFile], paths: HubPaths, gpu: bool = False) -> str:
    """`gpu`: the hub VM has a GPU flavor; the script first proves the driver answers."""
    for f in files:
        if not f.content.endswith("\n"):
            raise ValueError(f"{f.path}: content must end with a newline")
        if HEREDOC_END in f.content.splitlines():
            raise ValueError(f"{f.path}: content holds the line {HEREDOC_END}")
    return render(
        "install-hub-config.sh.j2",
        files=files,
        eof=HEREDOC_END,
        requirements=f"{paths.config_dir}/requirements.txt",
        venv=paths.venv,
        gpu=gpu,
    )


def render_install_hpc_key_script(key_file: str, known_hosts_file: str, known_hosts: str) -> str:
    return render(
        "install-hpc-key.sh.j2",
        hpc_dir=key_file.rsplit("/", 1)[0],
        key_file=key_file,
        known_hosts_file=known_hosts_file,
        known_hosts=known_hosts.strip(),
    )
