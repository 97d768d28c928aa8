"""Per-user limits on the single hub, up to what this machine can run: the systemd-run command
line the real SystemdSpawner builds from the rendered config (memory, CPU, no swap), the hook
that applies the home quota before each start, the home-quota script against stub quota tools,
and the data-volume script against real ext4 images with the real e2fsprogs (only `mount` is a
stub). The limits and the quota are enforced for real in a VM: tests/e2e/test_limits_vm.py."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from renderers.cloud_init import HubBootSpec, render_hub_cloud_init
from renderers.hub_config import (
    HubConfigSpec,
    HubPaths,
    LocalSpawnerSpec,
    hub_vm_files,
    render_home_quota_script,
)
from renderers.scripts import render_data_volume_script
from tests.builders import hpc_config
from tests.conftest import make_config, require, require_root, require_tool
from tests.hub_config_local import hub_config_text
from tests.spawner_units import load_config, properties, systemd_run_argv

HUB_ENV = {"OAUTH_CLIENT_SECRET": "test-secret", "JSHUB_ADMIN_TOKEN": "test-token"}


# --- config ---------------------------------------------------------------------------------


def test_single_hub_homes_get_a_quota_by_default_and_homequotagb_changes_it() -> None:
    assert make_config().single_home_quota_gb == 10
    assert make_config(homeQuotaGb=25).single_home_quota_gb == 25
    assert HubConfigSpec.from_config(make_config(homeQuotaGb=25)).spawner == LocalSpawnerSpec(
        home_quota_gb=25
    )
    hpc = HubConfigSpec.from_config(hpc_config())
    assert hpc_config().single_home_quota_gb is None and not hpc.home_quotas


# --- memory and CPU: the unit SystemdSpawner asks systemd for ---------------------------------


@pytest.mark.parametrize(
    ("overrides", "memory_max", "cpu_quota"),
    [
        ({}, str(1024**3), "100%"),
        ({"userMemoryGb": 2.5, "userCpu": 0.5, "hubFlavor": "m3.medium"}, str(2560 * 1024**2), "50%"),
    ],
)
def test_each_server_runs_in_a_unit_of_its_own_with_the_users_limits(
    overrides: dict[str, Any], memory_max: str, cpu_quota: str, tmp_path: Path
) -> None:
    spec = HubConfigSpec.from_config(make_config(**overrides))
    config = load_config(hub_config_text(spec, tmp_path), tmp_path, HUB_ENV)
    assert config.JupyterHub.spawner_class == "systemdspawner.SystemdSpawner"
    argv = systemd_run_argv(config, "nobody", tmp_path)
    assert argv[:3] == ["systemd-run", "--unit", "jupyter-nobody-singleuser"]
    assert "--uid=65534" in argv and "--working-directory" in argv
    props = properties(argv)
    assert props["MemoryMax"] == memory_max
    assert props["CPUQuota"] == cpu_quota
    # Past MemoryMax the kernel kills inside the unit instead of swapping; the server survives
    # a kernel killed that way (OOMPolicy=continue), the user just restarts the kernel.
    assert props["MemorySwapMax"] == "0" and props["OOMPolicy"] == "continue"
    assert props["NoNewPrivileges"] == "yes" and props["PrivateTmp"] == "yes"
    # The server, then its arguments: JupyterLab's settings folder from the hub (news off).
    server = argv.index("/opt/jupyterhub/bin/jupyterhub-singleuser")
    assert argv[server + 1 :] == ["--LabApp.app_settings_dir=/etc/jupyterhub/jupyterlab"]


def test_the_unit_properties_pass_systemd_run_own_parser() -> None:
    """Every property the spawner sets is one systemd-run knows: `systemd-run --help` lists
    none, so ask systemd-analyze, which parses unit settings with the same tables."""
    analyze = require_tool("systemd-analyze", "parses unit properties")
    spec = HubConfigSpec.from_config(make_config())
    names = ["MemoryMax", "CPUQuota", "MemorySwapMax", "OOMPolicy", "NoNewPrivileges", "PrivateTmp"]
    assert set(names) >= set(spec.spawner.unit_properties)  # type: ignore[union-attr]
    unit = "[Service]\nExecStart=/bin/true\n" + "".join(
        f"{k}={v}\n"
        for k, v in {
            "MemoryMax": "1073741824",
            "CPUQuota": "100%",
            "MemorySwapMax": "0",
            "OOMPolicy": "continue",
            "NoNewPrivileges": "yes",
            "PrivateTmp": "yes",
        }.items()
    )
    folder = Path(os.environ.get("TMPDIR", "/tmp")) / f"jshub-unit-{os.getpid()}"
    folder.mkdir(exist_ok=True)
    try:
        (folder / "jupyter-x-singleuser.service").write_text(unit)
        result = subprocess.run(
            [analyze, "verify", str(folder / "jupyter-x-singleuser.service")],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0 and not result.stderr.strip(), result.stderr
    finally:
        shutil.rmtree(folder)


def test_the_hub_unit_stops_its_whole_cgroup_once_servers_have_units_of_their_own() -> None:
    cfg = make_config()
    files = {f.path: f for f in hub_vm_files(HubConfigSpec.from_config(cfg), cfg.hub_fqdn, "ops@example.org")}
    dropin = files["/etc/systemd/system/jupyterhub.service.d/jshub-servers.conf"]
    assert dropin.unit and dropin.service == "jupyterhub.service"
    assert "[Service]\nKillMode=control-group\n" in dropin.content
    # hpc keeps the unit as it is (no local servers there).
    hpc = HubConfigSpec.from_config(hpc_config())
    assert not [f for f in hub_vm_files(hpc, "hub.example.org", "ops@example.org") if f.unit]


# --- the home quota, before each start ----------------------------------------------------------


class _Spawner:
    def __init__(self, name: str, admin: bool) -> None:
        self.user = type("User", (), {"name": name, "admin": admin})()
        self.messages: list[str] = []
        self.log = type("Log", (), {"info": lambda _, *args: self.messages.append(args[0] % args[1:])})()


def test_the_hook_applies_the_configured_quota_then_the_shared_folder(tmp_path: Path) -> None:
    log = tmp_path / "calls"
    paths = HubPaths(
        home_quota_command=str(tmp_path / "quota"), shared_access_command=str(tmp_path / "shared")
    )
    for name in ("quota", "shared"):
        (tmp_path / name).write_text(f'#!/bin/bash\necho "{name} $*" >>{log}\necho "{name} done"\n')
        (tmp_path / name).chmod(0o755)
    spec = HubConfigSpec.from_config(make_config(homeQuotaGb=7), paths=paths)
    config = load_config(hub_config_text(spec, tmp_path), tmp_path, HUB_ENV)
    spawner = _Spawner("alice", admin=True)
    asyncio.run(config.Spawner.pre_spawn_hook(spawner))
    assert log.read_text().splitlines() == ["quota alice 7", "shared alice admin"]
    assert spawner.messages == [f"{tmp_path}/quota: quota done", f"{tmp_path}/shared: shared done"]

    # A failing step stops the start, naming the script and its output.
    (tmp_path / "quota").write_text("#!/bin/bash\necho 'no home /data/home/alice'\nexit 66\n")
    with pytest.raises(RuntimeError, match=r"quota alice failed: no home /data/home/alice"):
        asyncio.run(config.Spawner.pre_spawn_hook(spawner))


QUOTA_STUBS = {
    "findmnt": 'echo "$JSHUB_MOUNT_OPTIONS"; [[ -n "$JSHUB_MOUNT_OPTIONS" ]]',
    "lsattr": 'echo "$JSHUB_PROJECT --------------P--- $3"',
    "chattr": 'echo "chattr $*" >>"$LOG"',
    "xfs_quota": 'echo "xfs_quota $*" >>"$LOG"',
}


def _run_quota(
    tmp_path: Path, options: str, project: str, *args: str
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    data = tmp_path / "data"
    (data / "home").mkdir(parents=True, exist_ok=True)
    bin_dir, log = tmp_path / "bin", tmp_path / "calls"
    bin_dir.mkdir(exist_ok=True)
    log.write_text("")
    for tool, body in QUOTA_STUBS.items():
        (bin_dir / tool).write_text(f"#!/bin/bash\n{body}\n")
        (bin_dir / tool).chmod(0o755)
    script = render_home_quota_script(HubPaths(data_root=str(data))).replace(
        "PATH=/usr/local/sbin", f"PATH={bin_dir}:/usr/local/sbin"
    )
    result = subprocess.run(
        ["bash", "-c", script, "jshub-home-quota", *args],
        env={
            "PATH": "/usr/bin:/bin",
            "LOG": str(log),
            "JSHUB_MOUNT_OPTIONS": options,
            "JSHUB_PROJECT": project,
        },
        capture_output=True,
        text=True,
        check=False,
    )
    return result, log.read_text().splitlines()


def test_home_quota_script_gives_a_home_its_owners_project_once_and_the_limit_every_time(
    tmp_path: Path,
) -> None:
    require_root("the test gives a home to another UID")
    home = tmp_path / "data" / "home" / "alice"
    (home / "notes").mkdir(parents=True)
    os.chown(home, 4242, 4242)
    result, calls = _run_quota(tmp_path, "rw,relatime,prjquota", "0", "alice", "7")
    assert result.returncode == 0, result.stderr
    assert calls == [
        f"chattr -p 4242 {home} {home}/notes",
        f"chattr +P {home} {home}/notes",
        f"xfs_quota -f -x -c limit -p bhard=7g 4242 {tmp_path}/data",
    ]
    assert result.stdout.strip().endswith("home quota of alice: 7 GB (project 4242)")
    # Already in its project: only the limit again (a changed homeQuotaGb applies at the next start).
    result, calls = _run_quota(tmp_path, "rw,relatime,prjquota", "4242", "alice", "9")
    assert calls == [f"xfs_quota -f -x -c limit -p bhard=9g 4242 {tmp_path}/data"]


def test_home_quota_script_says_so_and_lets_the_server_start_without_project_quotas(tmp_path: Path) -> None:
    (tmp_path / "data" / "home" / "alice").mkdir(parents=True)
    result, calls = _run_quota(tmp_path, "rw,relatime", "0", "alice", "7")
    assert result.returncode == 0 and calls == []
    assert "home quota of alice not enforced" in result.stdout and "prjquota" in result.stdout
    result, calls = _run_quota(tmp_path, "", "0", "alice", "7")
    assert result.returncode == 0 and "options: not mounted" in result.stdout


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("alice",), 64, "usage:"),
        (("alice", "0"), 65, "whole number of GB, not 0"),
        (("alice", "1.5"), 65, "whole number of GB"),
        (("nobody-here", "5"), 66, "no home"),
    ],
)
def test_home_quota_script_refuses_bad_arguments(
    args: tuple[str, ...], code: int, message: str, tmp_path: Path
) -> None:
    result, calls = _run_quota(tmp_path, "rw,prjquota", "0", *args)
    assert result.returncode == code and message in result.stderr and calls == []


def test_home_quota_script_never_touches_a_system_accounts_home(tmp_path: Path) -> None:
    require_root("the test gives a home to root")
    home = tmp_path / "data" / "home" / "daemon"
    home.mkdir(parents=True)
    os.chown(home, 1, 1)
    result, calls = _run_quota(tmp_path, "rw,prjquota", "0", "daemon", "5")
    assert result.returncode == 65 and "system account" in result.stderr and calls == []


# --- the data volume: ext4 with project quotas, new and existing -------------------------------

VOLUME = "4f0c9a2e-8c1d-4b7e-9f3a-2d6c5e1b0a98"


def _volume_script(tmp_path: Path, image: Path) -> tuple[subprocess.CompletedProcess[str], str]:
    """The single hub's data-volume script against `image` (a file standing for the disk, found
    under a by-id folder as the cloud's disk is), with the real blkid, wipefs, mkfs.ext4,
    dumpe2fs, e2fsck and tune2fs; mount and mountpoint are stubs (no loop devices here)."""
    by_id, bin_dir, fstab = tmp_path / "by-id", tmp_path / "bin", tmp_path / "fstab"
    for d in (by_id, bin_dir):
        d.mkdir(exist_ok=True)
    link = by_id / f"virtio-{VOLUME[:20]}"
    if not link.exists():
        link.symlink_to(image)
    fstab.touch()
    for tool, body in {"mount": "exit 0", "mountpoint": "exit 1", "install": "exit 0"}.items():
        (bin_dir / tool).write_text(f"#!/bin/bash\n{body}\n")
        (bin_dir / tool).chmod(0o755)
    spec = HubConfigSpec.from_config(make_config())
    assert spec.proxy is not None
    user_data = render_hub_cloud_init(
        HubBootSpec(spec.paths, spec.proxy, VOLUME, "ssh-ed25519 AAAA k", home_quotas=True)
    )
    files = {f["path"]: f["content"] for f in yaml.safe_load(user_data)["write_files"]}
    # The very script the hub VM's user data carries, pointed at the scratch folder.
    assert files["/usr/local/sbin/jshub-setup-data-volume"] == render_data_volume_script(
        VOLUME, "/data", ext4_project_quota=True
    )
    script = (
        render_data_volume_script(VOLUME, str(tmp_path / "mnt"), wait_s=5, ext4_project_quota=True)
        .replace("/dev/disk/by-id", str(by_id))
        .replace("/etc/fstab", str(fstab))
    )
    result = subprocess.run(
        ["bash", "-c", script],
        env={"PATH": f"{bin_dir}:/usr/sbin:/usr/bin:/sbin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    return result, fstab.read_text()


def _features(image: Path) -> str:
    return subprocess.run(["dumpe2fs", "-h", str(image)], capture_output=True, text=True, check=True).stdout


@pytest.fixture
def e2fsprogs() -> None:
    for tool in ("mkfs.ext4", "tune2fs", "dumpe2fs", "e2fsck", "debugfs", "blkid", "wipefs"):
        require(
            shutil.which(tool) is not None,
            f"{tool} is not installed (e2fsprogs/util-linux; it runs the data-volume script); `make system-deps` installs it",
        )


@pytest.mark.usefixtures("e2fsprogs")
def test_a_new_volume_is_made_with_project_quotas_and_mounted_with_prjquota(tmp_path: Path) -> None:
    image = tmp_path / "disk.img"
    with image.open("wb") as f:
        f.truncate(64 * 1024**2)
    result, fstab = _volume_script(tmp_path, image)
    assert result.returncode == 0, result.stderr
    header = _features(image)
    assert " project" in header.split("Filesystem features:")[1].splitlines()[0]
    assert "Project quota inode:" in header
    assert f" {tmp_path}/mnt ext4 defaults,prjquota,nofail," in fstab


@pytest.mark.usefixtures("e2fsprogs")
def test_an_existing_volume_gets_project_quotas_in_place_and_keeps_its_files(tmp_path: Path) -> None:
    """A volume the previous version made (plain mkfs.ext4), with a user's file on it."""
    tree = tmp_path / "tree"
    (tree / "home" / "alice").mkdir(parents=True)
    (tree / "home" / "alice" / "thesis.txt").write_text("chapter one\n")
    image = tmp_path / "disk.img"
    with image.open("wb") as f:
        f.truncate(64 * 1024**2)
    subprocess.run(["mkfs.ext4", "-q", "-L", "jshub-data", "-d", str(tree), str(image)], check=True)
    uuid_before = subprocess.run(
        ["blkid", "-p", "-o", "value", "-s", "UUID", str(image)], capture_output=True, text=True, check=True
    ).stdout
    assert "Project quota inode:" not in _features(image)

    result, fstab = _volume_script(tmp_path, image)
    assert result.returncode == 0, result.stderr
    assert "enabling ext4 project quotas" in result.stdout
    assert "Project quota inode:" in _features(image)
    assert f" {tmp_path}/mnt ext4 defaults,prjquota,nofail," in fstab
    kept = subprocess.run(
        ["debugfs", "-R", "cat /home/alice/thesis.txt", str(image)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert kept.stdout == "chapter one\n"
    uuid_after = subprocess.run(
        ["blkid", "-p", "-o", "value", "-s", "UUID", str(image)], capture_output=True, text=True, check=True
    ).stdout
    assert uuid_after == uuid_before  # the same filesystem, not a new one


@pytest.mark.usefixtures("e2fsprogs")
def test_a_volume_that_cannot_take_project_quotas_is_mounted_without_them_and_says_so(tmp_path: Path) -> None:
    image = tmp_path / "disk.img"
    with image.open("wb") as f:
        f.truncate(64 * 1024**2)
    # 128-byte inodes have no room for a project ID.
    subprocess.run(
        ["mkfs.ext4", "-q", "-I", "128", "-L", "jshub-data", str(image)], check=True, capture_output=True
    )
    result, fstab = _volume_script(tmp_path, image)
    assert result.returncode == 0, result.stderr
    assert "home quotas are off" in result.stderr and "README, Limits and quotas" in result.stderr
    assert f" {tmp_path}/mnt ext4 defaults,nofail," in fstab
    assert "Project quota inode:" not in _features(image)
