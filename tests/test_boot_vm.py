"""The swarm manager's rendered user data booted on a real kernel (QEMU, boot/): the data volume
found by its ID, formatted once and mounted through fstab; users' XFS project quotas enforced,
also through the kernel NFS server (NFS 4.2); the metadata firewall; IPVS and the other modules
the swarm needs; a rebuild that keeps the data; a failing boot step reported by name.

One manager guest serves the module's tests in order (about 4 minutes to boot under emulation
here), then a rebuild of it, then a small guest whose boot fails on purpose, which also serves as
the bare-image reference the boots are compared with. `make drills` runs them (marker `boot`).
"""

from __future__ import annotations

import re
import shlex
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from boot.guest import DataDisk, Guest, Phases
from boot.plan import Role, load_role
from renderers import BOOT_LOG_DIR, render
from renderers.boot import step_name
from renderers.cloud_init import to_user_data
from tests.conftest import require_root, require_tool

pytestmark = pytest.mark.boot

STACK = "persistent-swarm"
MANAGER = "swarm-manager-server"
QUOTA_GB = 1
EXPORT = "/export"
HOMES = "/export/home"


def require_qemu() -> None:
    for tool, why in (
        ("qemu-system-x86_64", "boots the guests"),
        ("qemu-img", "makes their disks"),
        ("cloud-localds", "writes the NoCloud seed"),
        ("debootstrap", "builds the guest image"),
        ("ssh", "runs commands in the guests"),
    ):
        require_tool(tool, why)
    require_root("debootstrap and chroot build the guest image")


@dataclass
class Manager:
    role: Role
    disk: DataDisk
    guest: Guest
    status: dict[str, Any]


REFERENCE: dict[str, Phases] = {}


def report(phases: Phases) -> None:
    ref = REFERENCE.get("bare")
    line = ", ".join(f"{k} {v:.0f} s" for k, v in phases.values.items())
    if ref and "cloud-init" in ref.values and "cloud-init" in phases.values:
        ratio = phases.values["cloud-init"] / ref.values["cloud-init"]
        line += f" (bare image: cloud-init {ref.values['cloud-init']:.0f} s; {ratio:.1f}x)"
    print(f"\n[boot] {phases.name}: {line}", file=sys.stderr)


@pytest.fixture(scope="module")
def manager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Manager]:
    require_qemu()
    work = tmp_path_factory.mktemp("swarm-boot")
    role = load_role(STACK, MANAGER, out=work / "plan")
    assert len(role.volume_ids) == 1, role.volume_ids
    disk = DataDisk(work / "homes.img", role.volume_ids[0], size="4G")
    guest = Guest("swarm-manager", role.user_data, data_disks=[disk], memory_mb=2048)
    try:
        status = guest.boot(cloud_init_timeout=1800)
        print(f"\n[boot] swarm-manager: {' '.join(guest.ssh_command())}", file=sys.stderr)
        yield Manager(role, disk, guest, status)
    finally:
        report(guest.phases)
        guest.close()


def user_home(guest: Guest, user: str) -> tuple[str, int]:
    """The swarm's real per-user home script, as the hub runs it before a spawn."""
    out = guest.sudo(f"/usr/local/sbin/jshub-user-home {user} {QUOTA_GB}").stdout
    match = re.search(r"home=(\S+) uid=(\d+)", out)
    assert match, out
    return match.group(1), int(match.group(2))


def as_uid(uid: int, command: str) -> str:
    """A command line run as the notebook's UID and the users' group (100), as the swarm's
    notebook services run: the UID has no passwd entry on the manager, so not through sudo -u."""
    return f"sudo setpriv --reuid={uid} --regid=100 --clear-groups sh -c {shlex.quote(command)}"


def refused_for_quota(dd_output: str) -> bool:
    """XFS reports a full project quota as ENOSPC (a project is a directory tree, and `df` on it
    shows the quota as the size), user and group quotas as EDQUOT."""
    return "No space left on device" in dd_output or "Disk quota exceeded" in dd_output


def write_as(guest: Guest, uid: int, path: str, megabytes: int) -> Any:
    return guest.run(
        as_uid(uid, f"dd if=/dev/zero of={shlex.quote(path)} bs=1M count={megabytes} conv=fsync 2>&1"),
        check=False,
        timeout=600,
    )


def test_cloud_init_done_and_volume_mounted_by_id(manager: Manager) -> None:
    assert manager.status["status"] == "done", manager.status
    guest = manager.guest
    serial = manager.disk.serial
    link = guest.run(f"readlink -f /dev/disk/by-id/virtio-{serial}").stdout.strip()
    assert link.startswith("/dev/vd"), link
    mount = guest.run(f"findmnt -no SOURCE,FSTYPE,OPTIONS {EXPORT}").stdout.split()
    assert mount[0] == link and mount[1] == "xfs", mount
    assert "prjquota" in mount[2], mount
    uuid = guest.run(f"sudo blkid -o value -s UUID {link}").stdout.strip()
    fstab = guest.run("cat /etc/fstab").stdout
    assert fstab.count(f"UUID={uuid} {EXPORT} xfs") == 1, fstab
    # The homes are bind-mounted where the notebook services find them.
    assert guest.run("findmnt -no TARGET /srv/jshub/home").stdout.strip() == "/srv/jshub/home"


def test_writing_past_a_users_xfs_quota_fails(manager: Manager) -> None:
    guest = manager.guest
    home, uid = user_home(guest, "alice")
    assert home == f"{HOMES}/alice" and uid >= 10000
    # Within the quota: fine.
    small = write_as(guest, uid, f"{home}/small", 50)
    assert small.returncode == 0, small.stdout
    # Past it: the kernel refuses, and the file stops at the limit.
    big = write_as(guest, uid, f"{home}/big", QUOTA_GB * 1024 + 100)
    assert big.returncode != 0, big.stdout
    assert refused_for_quota(big.stdout), big.stdout
    report_text = guest.sudo(f"xfs_quota -x -c 'report -p -b -N' {EXPORT}").stdout
    row = next(line.split() for line in report_text.splitlines() if line.split()[:1] == [f"#{uid}"])
    used_kib, hard_kib = int(row[1]), int(row[3])
    assert hard_kib == QUOTA_GB * 1024 * 1024, row
    # The project filled up to its limit and no further: the refusal was the quota's, not the
    # 4 GB disk's.
    assert hard_kib - 1024 <= used_kib <= hard_kib, row
    # The quota is the user's own: another user still writes.
    _, other = user_home(guest, "bob")
    assert other != uid
    assert write_as(guest, other, f"{HOMES}/bob/notes", 20).returncode == 0


def test_container_firewall_rules_are_in_place(manager: Manager) -> None:
    guest = manager.guest
    for unit in ("docker.service", "jshub-node-firewall.service", "nfs-server.service"):
        assert guest.sudo(f"systemctl is-active {unit}").stdout.strip() == "active", unit
    chain = guest.sudo("iptables -w -S JSHUB-CONTAINERS").stdout
    assert "-A JSHUB-CONTAINERS -d 169.254.0.0/16 -p tcp -j REJECT" in chain, chain
    assert "-A JSHUB-CONTAINERS -d 10.0.0.0/8 -p tcp -j REJECT" in chain, chain
    user = guest.sudo("iptables -w -S DOCKER-USER").stdout
    assert "-i docker0 -j JSHUB-CONTAINERS" in user, user
    node = guest.sudo("iptables -w -S INPUT").stdout
    assert "-i docker0 -j JSHUB-CONTAINERS-NODE" in node, node


def test_swarm_kernel_modules_load(manager: Manager) -> None:
    guest = manager.guest
    guest.sudo("modprobe -a ip_vs ip_vs_rr overlay br_netfilter vxlan")
    modules = guest.run("cat /proc/modules").stdout
    for module in ("ip_vs", "overlay", "br_netfilter", "vxlan"):
        assert re.search(rf"^{module} ", modules, re.M), module
    # IPVS answers: the routing mesh's virtual services can be made.
    guest.sudo("ipvsadm -A -t 10.255.0.5:8080 -s rr && ipvsadm -a -t 10.255.0.5:8080 -r 10.255.0.6:8080 -m")
    assert "10.255.0.6:8080" in guest.sudo("ipvsadm -Ln").stdout
    guest.sudo("ipvsadm -C")


def test_homes_exported_over_nfs_42_with_the_quota(manager: Manager) -> None:
    guest = manager.guest
    step = next(s for s in manager.role.remote_steps if s.name == "swarm-nfs-exports")
    guest.run(step.script)
    exports = guest.sudo("exportfs -v").stdout
    clients = re.findall(r"^\S+\s+(\S+)\(", exports, re.M) + re.findall(
        r"^\s+(\d+\.\d+\.\d+\.\d+)\(", exports, re.M
    )
    clients = [c for c in clients if re.fullmatch(r"\d+\.\d+\.\d+\.\d+", c)]
    assert clients, exports
    # A worker's address on the manager itself: the mount comes from an address the export
    # allows, through the kernel's NFS client and server.
    worker = clients[0]
    guest.sudo(f"ip addr add {worker}/32 dev lo")
    try:
        guest.sudo(
            f"mkdir -p /mnt/homes && mount -t nfs -o vers=4.2,soft,timeo=100 {worker}:{HOMES} /mnt/homes",
            timeout=300,
        )
        options = guest.run("findmnt -no FSTYPE,OPTIONS /mnt/homes", timeout=60).stdout
        assert "nfs4" in options and "vers=4.2" in options, options
        _, uid = user_home(guest, "alice")
        # alice is at her quota (previous test); through NFS the server refuses more too.
        if int(guest.sudo(f"du -sb {HOMES}/alice").stdout.split()[0]) < QUOTA_GB * 2**30 - 2**24:
            write_as(guest, uid, f"{HOMES}/alice/big", QUOTA_GB * 1024 + 100)
        more = write_as(guest, uid, "/mnt/homes/alice/over-nfs", 50)
        assert more.returncode != 0, more.stdout
        assert refused_for_quota(more.stdout), more.stdout
        # root on a client is squashed: it cannot read a user's home.
        assert guest.run("sudo ls /mnt/homes/alice", check=False, timeout=120).returncode != 0
    finally:
        guest.run(
            f"sudo umount -l /mnt/homes; sudo ip addr del {worker}/32 dev lo; sudo rm -f {HOMES}/alice/big {HOMES}/alice/over-nfs",
            check=False,
            timeout=120,
        )


def test_rebuild_keeps_the_homes_and_does_not_format(manager: Manager, tmp_path: Path) -> None:
    old = manager.guest
    _, uid = user_home(old, "alice")
    old.run(as_uid(uid, f"echo kept > {HOMES}/alice/notebook.txt"))
    device = old.run(f"readlink -f /dev/disk/by-id/virtio-{manager.disk.serial}").stdout.strip()
    uuid = old.run(f"sudo blkid -o value -s UUID {device}").stdout.strip()
    old.shutdown()
    # A fresh root disk, the same data disk, the user data run again.
    guest = Guest("swarm-manager-rebuilt", manager.role.user_data, data_disks=[manager.disk], memory_mb=2048)
    try:
        status = guest.boot(cloud_init_timeout=1800)
        assert status["status"] == "done", status
        device = guest.run(f"readlink -f /dev/disk/by-id/virtio-{manager.disk.serial}").stdout.strip()
        assert guest.run(f"sudo blkid -o value -s UUID {device}").stdout.strip() == uuid
        assert guest.run(f"sudo cat {HOMES}/alice/notebook.txt").stdout.strip() == "kept"
        assert guest.run("cat /etc/fstab").stdout.count(f"UUID={uuid} ") == 1
        # The same user gets the same UID, and the quota is back on the new kernel.
        _, again = user_home(guest, "alice")
        assert again == uid
        big = write_as(guest, uid, f"{HOMES}/alice/big", QUOTA_GB * 1024 + 100)
        assert big.returncode != 0 and refused_for_quota(big.stdout), big.stdout
    finally:
        report(guest.phases)
        guest.close()


def test_failing_boot_step_ends_cloud_init_in_error_naming_the_step(tmp_path: Path) -> None:
    require_qemu()
    failing = ["sh", "-c", "echo volume not found >&2; exit 3"]
    user_data = to_user_data({"runcmd": [["true"], failing, ["touch", "/run/after-the-failure"]]})
    name = step_name(2, failing)
    with Guest("failing-step", user_data, memory_mb=1024) as guest:
        try:
            status = guest.boot(cloud_init_timeout=900)
            REFERENCE["bare"] = guest.phases
            assert status["status"] == "error", status
            assert guest.sudo(f"cat {BOOT_LOG_DIR}/failed-step").stdout.strip() == name
            # The step stopped the boot: nothing after it ran.
            assert guest.run("test -e /run/after-the-failure", check=False).returncode != 0
            # What the stack's remote commands print before their own work.
            wait = render("_wait-cloud-init.sh.j2", boot_log_dir=BOOT_LOG_DIR)
            result = guest.run("#!/bin/bash\n" + wait, check=False)
            assert result.returncode == 1, result
            assert f"jshub step {name} failed" in result.stderr, result.stderr
            assert "volume not found" in result.stderr, result.stderr
        finally:
            report(guest.phases)
