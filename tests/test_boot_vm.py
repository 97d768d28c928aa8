"""persistent-swarm's rendered user data booted on real kernels (QEMU, boot/): a manager and two
workers on one private network, made a swarm by the stack's own remote steps. The homes volume
found by its ID, formatted once and mounted through fstab; users' XFS project quotas enforced,
also from a worker through the kernel NFS server (NFS 4.2); a notebook on a worker writing its
home, behind the isolation agent and the node firewall; the routing mesh over IPVS; a rebuild of
the manager that keeps the data; a failing boot step reported by name.

The three guests boot at once and serve the module's tests in order, then the manager is
rebuilt, then a small guest whose boot fails on purpose also serves as the bare-image reference
the boots are compared with. `make drills` runs them (marker `boot`).
"""

from __future__ import annotations

import json
import re
import shlex
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from boot.guest import DataDisk, Guest, PrivateLink, free_port
from boot.image import build as build_image
from boot.plan import Role, load_role
from renderers import BOOT_LOG_DIR, render
from renderers.boot import step_name
from renderers.cloud_init import to_user_data
from renderers.hub_config import SwarmSpawnerSpec
from renderers.swarm import HUB_NETWORK, NODE_HOME_ROOT, NOTEBOOK_CONTAINER_LABEL, automount_unit
from tests.boot_guests import REFERENCE, report, require_qemu

pytestmark = pytest.mark.boot

STACK = "persistent-swarm"
MANAGER = "swarm-manager-server"
WORKERS = ("swarm-worker-0-server", "swarm-worker-1-server")
QUOTA_GB = 1
EXPORT = "/export"
HOMES = "/export/home"
NODE_HOMES = NODE_HOME_ROOT
NOTEBOOK_HOME = SwarmSpawnerSpec.notebook_home
NOTEBOOK_LABEL = "=".join(NOTEBOOK_CONTAINER_LABEL)
PROBE_IMAGE = "jshub-boot/probe:1"


@dataclass
class Node:
    role: Role
    guest: Guest
    status: dict[str, Any]


@dataclass
class Manager(Node):
    disk: DataDisk


@dataclass
class Swarm:
    manager: Manager
    workers: list[Node]
    plan: dict[str, Any]


def deploy_swarm(manager: Node, workers: list[Node]) -> None:
    """The stack's swarm steps, in `pulumi up`'s order, with what Pulumi feeds them: init on the
    manager (its output, kept secret by the stack, is the join token and the manager's node ID),
    the NFS exports, then each worker's join (run on the worker, the token on stdin) and its
    readiness step (run on the manager: wait for the node, label it for notebooks)."""
    init = manager.guest.run(manager.role.step("swarm-swarm-init").script, timeout=900)
    token, manager_id = init.stdout.split()
    manager.guest.run(manager.role.step("swarm-nfs-exports").script, timeout=600)
    for worker in workers:
        name = worker.guest.name
        join = worker.role.step(f"{name}-join")
        assert join.stdin_is_secret
        worker.guest.run(join.script, input=f"{token}\n{manager_id}\n", timeout=900)
        manager.guest.run(worker.role.step(f"{name}-node").script, timeout=900)


@pytest.fixture(scope="module")
def swarm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Swarm]:
    """A manager and two workers of persistent-swarm, booted at once with their rendered user
    data on one private segment at the addresses the plan gave their ports, then made a swarm
    by the stack's own remote steps."""
    require_qemu()
    work = tmp_path_factory.mktemp("swarm-boot")
    roles = [load_role(STACK, name, out=work / "plan") for name in (MANAGER, *WORKERS)]
    plan = json.loads((work / "plan" / "plan.json").read_text())
    assert len(roles[0].volume_ids) == 1, roles[0].volume_ids
    disk = DataDisk(work / "homes.img", roles[0].volume_ids[0], size="4G")
    segment = free_port()
    began = time.monotonic()
    image = build_image()
    print(f"\n[boot] guest image: {time.monotonic() - began:.0f} s", file=sys.stderr)
    guests = [
        Guest(
            # The server's name: the host name the swarm knows the node by.
            role.instance.removesuffix("-server"),
            role.user_data,
            data_disks=[disk] if index == 0 else [],
            links=[
                PrivateLink(
                    segment,
                    f"{role.private_address}/24",
                    listen=False,
                    mac=f"52:54:00:00:02:{index:02x}",
                    segment=True,
                )
            ],
            memory_mb=2048 if index == 0 else 1536,
            cpus=2 if index == 0 else 1,
            image=image,
        )
        for index, role in enumerate(roles)
    ]
    try:
        with ThreadPoolExecutor(len(guests)) as pool:
            statuses = list(pool.map(lambda g: g.boot(cloud_init_timeout=2400), guests))
        for guest in guests:
            print(f"\n[boot] {guest.name}: {' '.join(guest.ssh_command())}", file=sys.stderr)
        manager = Manager(roles[0], guests[0], statuses[0], disk)
        workers = [Node(r, g, s) for r, g, s in zip(roles[1:], guests[1:], statuses[1:], strict=True)]
        if all(s["status"] == "done" for s in statuses):
            began = time.monotonic()
            deploy_swarm(manager, workers)
            manager.guest.phases.record("swarm steps (init, exports, joins)", time.monotonic() - began)
        yield Swarm(manager, workers, plan)
    finally:
        for guest in guests:
            report(guest.phases)
            guest.close()


@pytest.fixture(scope="module")
def manager(swarm: Swarm) -> Manager:
    return swarm.manager


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


def test_workers_join_the_swarm_over_the_private_network(swarm: Swarm) -> None:
    manager = swarm.manager.guest
    nodes = manager.sudo(
        "docker node ls --format '{{.Hostname}} {{.Status}} {{.Availability}} {{.ManagerStatus}}'"
    )
    rows = {line.split()[0]: line.split()[1:] for line in nodes.stdout.splitlines()}
    assert rows.get("swarm-manager", [])[:1] == ["Ready"] and "Leader" in rows["swarm-manager"], rows
    for worker in swarm.workers:
        name = worker.guest.name
        assert worker.status["status"] == "done", worker.status
        assert rows.get(name, [])[:2] == ["Ready", "Active"], rows
        # Labelled by the stack's readiness step: notebooks are placed here, and only here.
        label = manager.sudo(
            f"docker node inspect --format '{{{{ index .Spec.Labels \"jshub.notebooks\" }}}}' {name}"
        )
        assert label.stdout.strip() == "true", label.stdout
        # The node talks to the swarm from the address of its own port on the private network.
        addr = manager.sudo(f"docker node inspect --format '{{{{ .Status.Addr }}}}' {name}").stdout.strip()
        assert addr == worker.role.private_address, (name, addr)


def test_a_worker_mounts_the_homes_over_nfs_42_with_the_quota(swarm: Swarm) -> None:
    manager = swarm.manager.guest
    worker = swarm.workers[0].guest
    # The worker's fstab automounts the manager's export where the notebooks' homes are bound,
    # from its first boot on (not only after a reboot).
    unit = automount_unit(NODE_HOMES)
    assert worker.sudo(f"systemctl is-active {unit}", check=False).stdout.strip() == "active", unit
    worker.run(f"ls {NODE_HOMES} >/dev/null", timeout=300)
    mount = worker.run(f"findmnt -no SOURCE,FSTYPE,OPTIONS -t nfs4 {NODE_HOMES}", timeout=120).stdout.split()
    assert mount[0] == f"{swarm.manager.role.private_address}:{HOMES}", mount
    assert mount[1] == "nfs4" and "vers=4.2" in mount[2], mount
    _, uid = user_home(manager, "alice")
    # alice is at her quota (an earlier test); through NFS from a worker the server refuses more.
    if int(manager.sudo(f"du -sb {HOMES}/alice").stdout.split()[0]) < QUOTA_GB * 2**30 - 2**24:
        write_as(manager, uid, f"{HOMES}/alice/big", QUOTA_GB * 1024 + 100)
    more = write_as(worker, uid, f"{NODE_HOMES}/alice/over-nfs", 50)
    assert more.returncode != 0, more.stdout
    assert refused_for_quota(more.stdout), more.stdout
    # Another user writes through the same mount: the refusal was alice's quota.
    _, bob = user_home(manager, "bob")
    assert write_as(worker, bob, f"{NODE_HOMES}/bob/from-worker", 5).returncode == 0
    assert manager.sudo(f"stat -c %u {HOMES}/bob/from-worker").stdout.strip() == str(bob)
    # root on a worker is squashed: it cannot read a user's home.
    assert worker.run(f"sudo ls {NODE_HOMES}/alice", check=False, timeout=120).returncode != 0
    manager.sudo(f"rm -f {HOMES}/alice/big {HOMES}/alice/over-nfs")


def import_probe_image(node: Guest) -> None:
    """A minimal image made on the node from the guest's static busybox (no registry is reachable
    from here): a shell, `httpd` and `nc` for the probes."""
    node.sudo(
        "set -e; d=$(mktemp -d); mkdir -p $d/bin $d/tmp $d/www; cp /bin/busybox $d/bin/;"
        " for a in sh httpd nc id hostname sleep cat echo; do ln -s busybox $d/bin/$a; done;"
        f" tar -C $d -c . | docker import - {PROBE_IMAGE} >/dev/null; rm -rf $d",
        timeout=300,
    )


def wait_running(manager: Guest, service: str, replicas: int, timeout: float = 600) -> list[str]:
    """The nodes of `service`'s running tasks, once `replicas` of them run."""
    deadline = time.monotonic() + timeout
    while True:
        out = manager.sudo(
            f"docker service ps {service} --filter desired-state=running --format '{{{{.Node}}}} {{{{.CurrentState}}}} {{{{.Error}}}}'"
        ).stdout
        running = [line.split()[0] for line in out.splitlines() if line.split()[1:2] == ["Running"]]
        if len(running) >= replicas:
            return running
        if time.monotonic() > deadline:
            raise AssertionError(f"{service}: {len(running)} of {replicas} tasks running:\n{out}")
        time.sleep(5)


def container_of(node: Guest, service: str) -> str:
    return node.sudo(
        f"docker ps --quiet --filter label=com.docker.swarm.service.name={service}"
    ).stdout.split()[0]


@pytest.fixture(scope="module")
def probes(swarm: Swarm) -> Swarm:
    """The probe image on every worker and the hub's overlay network, as the stack makes it."""
    for worker in swarm.workers:
        import_probe_image(worker.guest)
    network = next(r["inputs"] for r in swarm.plan["resources"] if r["name"] == "hub-network")
    options = " ".join(f"--opt {shlex.quote(f'{k}={v}')}" for k, v in network.get("options", {}).items())
    attachable = "--attachable" if network.get("attachable") else ""
    swarm.manager.guest.sudo(
        f"docker network inspect {network['name']} >/dev/null 2>&1 ||"
        f" docker network create --driver {network['driver']} {attachable} {options} {network['name']}"
    )
    return swarm


def test_a_notebook_on_a_worker_writes_its_home_on_the_managers_volume(probes: Swarm) -> None:
    manager = probes.manager.guest
    home, uid = user_home(manager, "carol")
    # As the hub's SwarmSpawner creates a notebook: on a node labelled for notebooks, as the
    # user's UID and the users' group, the home bound from the node's NFS mount, on the hub's
    # network, with the label the isolation agent acts on.
    manager.sudo(
        f"docker service create --detach --no-resolve-image --name jupyter-carol"
        f" --constraint node.labels.jshub.notebooks==true --user {uid}:100"
        f" --mount type=bind,src={NODE_HOMES}/carol,dst={NOTEBOOK_HOME} --network {HUB_NETWORK}"
        f" --container-label {NOTEBOOK_LABEL} --env HOME={NOTEBOOK_HOME} {PROBE_IMAGE}"
        f" sh -c 'id > $HOME/from-notebook.txt; hostname >> $HOME/from-notebook.txt; exec httpd -f -p 8888 -h $HOME'",
        timeout=300,
    )
    (node,) = wait_running(manager, "jupyter-carol", 1)
    assert node in {w.guest.name for w in probes.workers}, node
    written = manager.sudo(f"cat {home}/from-notebook.txt").stdout
    assert f"uid={uid}" in written, written
    assert manager.sudo(f"stat -c %u {home}/from-notebook.txt").stdout.strip() == str(uid)
    worker = next(w.guest for w in probes.workers if w.guest.name == node)
    container = container_of(worker, "jupyter-carol")
    # The isolation agent on the worker put its rules into the notebook's network namespace.
    pid = worker.sudo(f"docker inspect --format '{{{{.State.Pid}}}}' {container}").stdout.strip()
    deadline = time.monotonic() + 120
    while "JSHUB-IN" not in (
        rules := worker.sudo(f"nsenter --target {pid} --net iptables -w -S", check=False).stdout
    ):
        assert time.monotonic() < deadline, rules
        time.sleep(5)
    assert "-A OUTPUT -j JSHUB-OUT" in rules, rules
    # The worker's firewall keeps the notebook off the NFS server and the metadata service: the
    # worker itself connects to the NFS port; from the notebook both are refused (the firewall's
    # reset: without it the metadata address, absent here, would time out instead).
    nfs = probes.manager.role.private_address
    assert worker.run(f"timeout 20 bash -c '</dev/tcp/{nfs}/2049'", check=False, timeout=60).returncode == 0
    for host, port in ((nfs, 2049), ("169.254.169.254", 80)):
        probe = worker.sudo(
            f"docker exec {container} nc -w 10 {host} {port} </dev/null", check=False, timeout=120
        )
        assert probe.returncode != 0 and "refused" in probe.stdout + probe.stderr, (
            host,
            probe.stdout,
            probe.stderr,
        )
    counters = worker.sudo("iptables -w -L JSHUB-CONTAINERS -v -n -x").stdout
    rejected = [
        int(line.split()[0])
        for line in counters.splitlines()
        if "REJECT" in line and "10.0.0.0/8" in line and "tcp" in line
    ]
    assert rejected and rejected[0] > 0, counters
    manager.sudo("docker service rm jupyter-carol")


def test_routing_mesh_spreads_a_published_port_over_the_workers_with_ipvs(probes: Swarm) -> None:
    manager = probes.manager.guest
    # The hub's endpoint as the stack publishes it (ingress mode, a virtual IP): the routing
    # mesh, with the swarm's production defaults. Here its tasks run on the workers, so that
    # the manager's port reaches them over the overlay.
    hub = next(r["inputs"] for r in probes.plan["resources"] if r["name"] == "hub-service")
    (port,) = hub["endpointSpec"]["ports"]
    assert port["publishMode"] == "ingress" and hub["endpointSpec"]["mode"] == "vip"
    published = int(port["publishedPort"])
    manager.sudo(
        f"docker service create --detach --no-resolve-image --name mesh-probe --replicas 2"
        f" --replicas-max-per-node 1 --constraint node.labels.jshub.notebooks==true"
        f" --hostname '{{{{.Node.Hostname}}}}' --endpoint-mode vip"
        f" --publish published={published},target=8000,mode=ingress {PROBE_IMAGE}"
        " sh -c 'hostname > /www/index.html; exec httpd -f -p 8000 -h /www'",
        timeout=300,
    )
    nodes = wait_running(manager, "mesh-probe", 2)
    assert sorted(nodes) == sorted(w.guest.name for w in probes.workers), nodes
    # Where the manager's Caddy sends the hub's traffic: 127.0.0.1 on the published port.
    fetch = f"import urllib.request as u; print(u.urlopen('http://127.0.0.1:{published}/', timeout=10).read().decode())"
    seen: set[str] = set()
    deadline = time.monotonic() + 300
    while len(seen) < 2:
        # The guest's own Python (cloud-init's) as the client: busybox's static wget crashes there.
        answer = manager.run(f"python3 -c {shlex.quote(fetch)}", check=False, timeout=60)
        if answer.returncode == 0:
            seen.add(answer.stdout.strip())
        assert time.monotonic() < deadline, seen
    assert seen == {w.guest.name for w in probes.workers}, seen
    # The balancing is the kernel's IPVS, in the ingress network's namespace.
    ipvs = manager.sudo("nsenter --net=/var/run/docker/netns/ingress_sbox ipvsadm -Ln").stdout
    assert re.search(r"^FWM\s+\d+", ipvs, re.M), ipvs
    # A firewall-mark service (port 0): the two tasks' addresses on the ingress network.
    assert len(re.findall(r"->\s+\d+\.\d+\.\d+\.\d+:\d+\s+Masq", ipvs)) == 2, ipvs
    manager.sudo("docker service rm mesh-probe")


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
