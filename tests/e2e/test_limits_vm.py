"""The single hub's per-user limits, enforced for real on a VM (QEMU, boot/): systemd as PID 1,
a real kernel with ext4 project quotas.

One guest boots the hub VM's rendered user data (its data-volume, add-user and boot-step
scripts, the hub and proxy units), less what needs the network (apt packages, which the guest
image has; the empty venv and the npm install). The stack's own hub-config script then installs
the rendered files over SSH: jupyterhub_config.py, the hub unit's drop-in and the home-quota
script. Accounts are made by the rendered jshub-add-user. Each server unit is started with the
exact `systemd-run` command line the real SystemdSpawner builds from the rendered config (on
this machine, from the guest's account data; tests/spawner_units.py), its program replaced by a
stand-in for a notebook server whose kernel is a child process. The hub itself is not started:
its secrets are never installed, so its unit's condition keeps it off.

The data volume is made the way the previous version made it (plain ext4, a user's file on
it): the first boot must give it project quotas in place and keep the file.
"""

from __future__ import annotations

import dataclasses
import os
import pwd
import shlex
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml

from boot.guest import DataDisk, Guest
from renderers.cloud_init import HubBootSpec, render_hub_cloud_init
from renderers.hub_config import HUB_REQUIREMENTS, HubConfigSpec, hub_vm_files
from renderers.scripts import render_hub_config_script
from tests.conftest import make_config, require_root, require_tool
from tests.hub_config_local import hub_config_text
from tests.spawner_units import load_config, properties, systemd_run_argv

# Minutes of emulated boot: `make drills` runs it, `make test` leaves it out.
pytestmark = [pytest.mark.drill, pytest.mark.e2e]

VOLUME_ID = "5a0d2c71-93be-4e1f-8c44-0e7f1b2a6d35"
MEMORY_GB = 0.5
QUOTA_GB = 1
# A user of the previous version: a home and a file on the volume before quotas existed.
OLD_USER, OLD_UID, OLD_FILE = "carol", 2001, "thesis.txt"
HUB_ENV = {"OAUTH_CLIENT_SECRET": "unused", "JSHUB_ADMIN_TOKEN": "unused"}

# The server stand-in: a long-lived parent (the notebook server) that runs its "kernel" as a
# child process, as jupyterhub-singleuser runs ipykernel. KERNEL_MB > 0: the kernel writes
# that much memory (written, not just reserved), then reports; the server reports how its
# kernel ended and stays up.
SERVER = """\
import os, signal, subprocess, sys, time
mb = int(os.environ.get("KERNEL_MB", "0"))
if mb:
    kernel = subprocess.run([sys.executable, "-c", f"x = b'\\\\1' * ({mb} * 2**20); print('allocated', flush=True)"])
    print("kernel ended", kernel.returncode, flush=True)
while True:
    time.sleep(3600)
"""


def require_qemu() -> None:
    for tool, why in (
        ("qemu-system-x86_64", "boots the guest"),
        ("qemu-img", "makes its disks"),
        ("cloud-localds", "writes the NoCloud seed"),
        ("debootstrap", "builds the guest image"),
        ("ssh", "runs commands in the guest"),
        ("mkfs.ext4", "makes the old-style data volume"),
    ):
        require_tool(tool, why)
    require_root("debootstrap and chroot build the guest image")


def stack_spec() -> tuple[Any, HubConfigSpec]:
    cfg = make_config(userMemoryGb=MEMORY_GB, homeQuotaGb=QUOTA_GB)
    return cfg, HubConfigSpec.from_config(cfg)


def guest_user_data(spec: HubConfigSpec) -> str:
    assert spec.proxy is not None and spec.home_quotas
    rendered = render_hub_cloud_init(
        HubBootSpec(
            spec.paths, spec.proxy, VOLUME_ID, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOnlyAStandIn x", True
        )
    )
    doc = yaml.safe_load(rendered.removeprefix("#cloud-config\n"))
    assert "xfsprogs" in doc.pop("packages")
    doc.pop("package_update")
    doc["runcmd"] = [
        item
        for item in doc["runcmd"]
        # Network installs; the hub does not run here.
        if not any(
            word in (" ".join(item) if isinstance(item, list) else item)
            for word in ("-m venv", "npm install")
        )
    ]
    return "#cloud-config\n" + yaml.safe_dump(doc, sort_keys=False, width=1000)


def old_style_volume(path: Path, scratch: Path) -> None:
    """The data volume as the previous version's script left it: mkfs.ext4 without quota
    features, a hub folder and a user's home with a file."""
    tree = scratch / "volume-tree"
    home = tree / "home" / OLD_USER
    home.mkdir(parents=True)
    (tree / "hub").mkdir(mode=0o700)
    (home / OLD_FILE).write_text("chapter one\n")
    for p in (home, home / OLD_FILE):
        os.chown(p, OLD_UID, OLD_UID)
    home.chmod(0o700)
    with path.open("wb") as f:
        f.truncate(3 * 1024**3)
    subprocess.run(["mkfs.ext4", "-q", "-L", "jshub-data", "-d", str(tree), str(path)], check=True)


@dataclasses.dataclass
class VMHub:
    guest: Guest
    spec: HubConfigSpec
    config: Any
    scratch: Path

    def sudo(self, command: str, check: bool = True, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return over_ssh(lambda: self.guest.sudo(command, check=False, timeout=900, **kwargs), command, check)

    def account(self, user: str) -> pwd.struct_passwd:
        self.sudo(f"{self.spec.paths.add_user_command} {user}")
        fields = self.sudo(f"getent passwd {user}").stdout.strip().split(":")
        return pwd.struct_passwd(
            (fields[0], fields[1], int(fields[2]), int(fields[3]), fields[4], fields[5], fields[6])
        )

    def start_server(self, user: str, kernel_mb: int = 0) -> list[str]:
        """Start `user`'s server unit as SystemdSpawner would; return the argv it used."""
        entry = self.account(user)
        with mock.patch("systemdspawner.systemdspawner.pwd.getpwnam", lambda name: entry):
            argv = systemd_run_argv(self.config, user, self.scratch, env={"KERNEL_MB": str(kernel_mb)})
        command = argv.index(self.config.Spawner.cmd[0])
        # The spawner's environment file was written on this machine; the stand-in gets the
        # one variable it reads from the unit's own Environment= instead.
        unit_argv = [a for a in argv[:command] if not a.startswith("--property=EnvironmentFile=")]
        unit_argv += [f"--setenv=KERNEL_MB={kernel_mb}", "/usr/bin/python3", "-c", SERVER]
        self.sudo(shlex.join(unit_argv))
        return argv


def over_ssh(
    call: Callable[[], subprocess.CompletedProcess[str]], command: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run a guest command again when SSH itself failed (exit 255: the connection, not the
    command; seen under emulation on a busy machine). The commands here are idempotent."""
    for _ in range(3):
        result = call()
        if result.returncode != 255:
            break
        time.sleep(10)
    if check and result.returncode != 0:
        raise AssertionError(
            f"`{command[:200]}` exited {result.returncode}\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
        )
    return result


def unit(user: str) -> str:
    return f"jupyter-{user}-singleuser"


@pytest.fixture(scope="module")
def vm_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VMHub]:
    require_qemu()
    scratch = tmp_path_factory.mktemp("limits-vm")
    cfg, spec = stack_spec()
    disk = DataDisk(scratch / "data.img", volume_id=VOLUME_ID, size="3G")
    old_style_volume(disk.path, scratch)
    with Guest("limits", guest_user_data(spec), data_disks=[disk], memory_mb=2048, cpus=2) as guest:
        status = guest.boot(cloud_init_timeout=1800)
        assert status["status"] == "done", status
        # hub-config, as the stack runs it. The requirements file is in place first, so that it
        # installs no packages (the hub does not run here).
        files = hub_vm_files(spec, cfg.hub_fqdn, cfg.lets_encrypt_email)
        guest.sudo(
            f"install -D -m 0644 /dev/stdin {spec.paths.config_dir}/requirements.txt",
            input=HUB_REQUIREMENTS.read_text(),
        )
        script = render_hub_config_script(files, spec.paths)
        applied = over_ssh(lambda: guest.run(script, check=False, timeout=900), "hub-config")
        assert "reloaded: systemd units" in applied.stdout, applied.stdout
        config = load_config(hub_config_text(spec, scratch), scratch, HUB_ENV)
        yield VMHub(guest, spec, config, scratch)


def test_an_existing_ext4_volume_got_project_quotas_and_kept_its_files(vm_hub: VMHub) -> None:
    options = vm_hub.sudo("findmnt -rno OPTIONS --mountpoint /data").stdout.strip()
    assert "prjquota" in options.split(","), options
    device = vm_hub.sudo("findmnt -rno SOURCE --mountpoint /data").stdout.strip()
    assert "Project quota inode:" in vm_hub.sudo(f"dumpe2fs -h {device} 2>/dev/null").stdout
    assert vm_hub.sudo(f"cat /data/home/{OLD_USER}/{OLD_FILE}").stdout == "chapter one\n"
    assert vm_hub.sudo(f"stat -c %u /data/home/{OLD_USER}").stdout.strip() == str(OLD_UID)
    log = vm_hub.sudo("cat /var/log/cloud-init-output.log").stdout
    assert "enabling ext4 project quotas" in log and "home quotas are off" not in log


def test_the_hub_unit_reads_its_drop_in(vm_hub: VMHub) -> None:
    shown = vm_hub.sudo("systemctl show -p KillMode -p DropInPaths jupyterhub.service").stdout
    assert "KillMode=control-group" in shown and "jshub-servers.conf" in shown, shown


def test_a_kernel_past_its_memory_limit_is_killed_and_the_server_and_others_go_on(vm_hub: VMHub) -> None:
    argv = vm_hub.start_server("bob")
    assert properties(argv)["MemoryMax"] == str(int(MEMORY_GB * 1024**3))
    bob_pid = vm_hub.sudo(f"systemctl show -p MainPID --value {unit('bob')}").stdout.strip()
    # 768 MB in alice's kernel; her server may use 512 MB. The guest has 2 GB: without the
    # limit the allocation would succeed.
    vm_hub.start_server("alice", kernel_mb=768)
    shown = vm_hub.sudo(
        f"systemctl show -p MemoryMax -p CPUQuotaPerSecUSec -p User -p MemorySwapMax {unit('alice')}"
    ).stdout
    assert f"MemoryMax={int(MEMORY_GB * 1024**3)}" in shown and "MemorySwapMax=0" in shown, shown
    # SystemdSpawner names the account by UID (systemd-run --uid).
    alice_uid = vm_hub.sudo("id -u alice").stdout.strip()
    assert "CPUQuotaPerSecUSec=1s" in shown and f"User={alice_uid}" in shown.splitlines(), shown
    deadline = time.monotonic() + 600
    while "kernel ended" not in (journal := vm_hub.sudo(f"journalctl -u {unit('alice')} --no-pager").stdout):
        assert time.monotonic() < deadline, journal
        time.sleep(5)
    assert "kernel ended -9" in journal and "allocated" not in journal, journal  # SIGKILL, never finished
    kernel_log = vm_hub.sudo("journalctl -k --no-pager").stdout
    assert "Memory cgroup out of memory" in kernel_log, kernel_log[-3000:]
    events = vm_hub.sudo(f"cat /sys/fs/cgroup/system.slice/{unit('alice')}.service/memory.events").stdout
    assert int(dict(line.split() for line in events.splitlines())["oom_kill"]) >= 1, events
    print(f"alice's unit: {shown.split()} | memory.events: {events.split()}")
    # alice's server (OOMPolicy=continue) and bob's, untouched, are still running.
    for user in ("alice", "bob"):
        assert vm_hub.sudo(f"systemctl is-active {unit(user)}").stdout.strip() == "active"
    assert vm_hub.sudo(f"systemctl show -p MainPID --value {unit('bob')}").stdout.strip() == bob_pid


def test_writing_past_the_home_quota_fails_for_that_user_only(vm_hub: VMHub) -> None:
    for user in ("alice", "bob"):
        vm_hub.account(user)
        applied = vm_hub.sudo(f"{vm_hub.spec.paths.home_quota_command} {user} {QUOTA_GB}").stdout
        assert f"home quota of {user}: {QUOTA_GB} GB" in applied, applied
    uid = vm_hub.sudo("id -u alice").stdout.strip()
    assert vm_hub.sudo("lsattr -d -p /data/home/alice").stdout.split()[0] == uid
    report = vm_hub.sudo("repquota -P -n /data").stdout
    assert any(
        line.split()[0] == f"#{uid}" and line.split()[4] == str(QUOTA_GB * 1024**2)
        for line in report.splitlines()
        if line.startswith("#")
    ), report
    # 1200 MB into alice's 1 GB: dd stops at the quota.
    wrote = vm_hub.sudo(
        "runuser -u alice -- dd if=/dev/zero of=/data/home/alice/big bs=1M count=1200 2>&1", check=False
    )
    assert wrote.returncode != 0 and "Disk quota exceeded" in wrote.stdout, wrote.stdout
    size = int(vm_hub.sudo("stat -c %s /data/home/alice/big").stdout)
    assert size <= QUOTA_GB * 1024**3, size
    print(
        f"alice's write stopped at {size / 2**20:.0f} MiB of a {QUOTA_GB} GB quota: {wrote.stdout.strip().splitlines()[0]}"
    )
    # bob's home has its own quota; alice writes again once she removes the file.
    vm_hub.sudo("runuser -u bob -- dd if=/dev/zero of=/data/home/bob/data bs=1M count=100 status=none")
    vm_hub.sudo("runuser -u alice -- rm /data/home/alice/big")
    vm_hub.sudo("runuser -u alice -- dd if=/dev/zero of=/data/home/alice/small bs=1M count=100 status=none")
