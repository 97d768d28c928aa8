"""Shell scripts the VMs run. Each is shellcheck-clean (see tests/test_scripts.py)."""

from __future__ import annotations

from renderers import render

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
) -> str:
    return render(
        "setup-data-volume.sh.j2",
        fs_type=fs_type,
        mount_options=mount_options,
        volume_id=volume_id,
        mount_point=mount_point,
        label=label,
        folders=folders,
        wait_s=wait_s,
    )


def render_install_secrets_script(env_file: str, service: str) -> str:
    secrets_dir = env_file.rsplit("/", 1)[0]
    return render("install-secrets.sh.j2", env_file=env_file, secrets_dir=secrets_dir, service=service)


def render_install_hpc_key_script(key_file: str, known_hosts_file: str, known_hosts: str) -> str:
    return render(
        "install-hpc-key.sh.j2",
        hpc_dir=key_file.rsplit("/", 1)[0],
        key_file=key_file,
        known_hosts_file=known_hosts_file,
        known_hosts=known_hosts.strip(),
    )
