"""The boot harness's own logic, without booting: what it reads from a plan, the mirror it takes
from apt's sources, the certificates it adds, the cache key, and the QEMU command line."""

from __future__ import annotations

import socket
from dataclasses import replace
from pathlib import Path

import pytest

import boot.image
from boot.guest import DataDisk, Guest, PrivateLink, Share, free_port
from boot.image import GuestImage, debian_mirror, extra_ca_certificates, image_key
from boot.plan import PlanError, load_role
from catalog.images import BOOT_GUEST

CERT_A = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"
CERT_B = "-----BEGIN CERTIFICATE-----\nBBBB\n-----END CERTIFICATE-----"


@pytest.fixture(scope="module")
def swarm_plan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("plan") / "persistent-swarm"


def test_role_is_the_plans_user_data_and_volume(swarm_plan: Path) -> None:
    role = load_role("persistent-swarm", "swarm-manager-server", out=swarm_plan)
    assert role.user_data == (swarm_plan / "swarm-manager-server" / "cloud-init.yaml").read_text()
    assert role.user_data.startswith("#cloud-config\n")
    # The volume the rendered script looks for is the one attached to this server.
    (volume_id,) = role.volume_ids
    assert f"volume_id={volume_id}\n" in role.user_data
    # Remote steps in the order `pulumi up` runs them: swarm init before the exports.
    names = [s.name for s in role.remote_steps]
    assert names.index("swarm-swarm-init") < names.index("swarm-nfs-exports")
    assert role.step("swarm-install-host-key").stdin_is_secret
    # The advertise address the swarm init script was rendered with is the VM's private address.
    init = role.step("swarm-swarm-init")
    assert f"advertise_addr={role.private_address}\n" in init.script
    # A step is also found by the end of its name, when only one ends so.
    assert role.step("swarm-init") is init
    with pytest.raises(KeyError, match=r"0 remote steps match 'no-such-step'"):
        role.step("no-such-step")


def test_unknown_role_names_the_stacks_vms(swarm_plan: Path) -> None:
    with pytest.raises(
        PlanError, match=r"ROLE=nope is not a VM of stack persistent-swarm; its VMs: .*swarm-worker-0-server"
    ):
        load_role("persistent-swarm", "nope", out=swarm_plan)


def test_mirror_from_deb822_sources_skips_security(tmp_path: Path) -> None:
    (tmp_path / "debian.sources").write_text(
        "Types: deb\nURIs: http://security.example/debian-security\nSuites: bookworm-security\n"
        "Components: main\n\n"
        "Types: deb\n# a comment: here\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\n"
    )
    assert debian_mirror((tmp_path,)) == "http://mirror.example/debian"


def test_mirror_from_one_line_sources(tmp_path: Path) -> None:
    (tmp_path / "sources.list").write_text("deb [arch=amd64] http://mirror.example/debian bookworm main\n")
    assert debian_mirror((tmp_path / "sources.list",)) == "http://mirror.example/debian"


def test_no_mirror_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "other.list").write_text("deb http://elsewhere.example/apt nodistro main\n")
    with pytest.raises(boot.image.ImageBuildError, match="no Debian bookworm mirror"):
        debian_mirror((tmp_path,))


def test_only_certificates_the_guest_lacks_are_added(tmp_path: Path) -> None:
    host = tmp_path / "host.crt"
    guest = tmp_path / "guest.crt"
    host.write_text(f"{CERT_A}\n{CERT_B}\n")
    guest.write_text(f"{CERT_A}\n")
    assert extra_ca_certificates(host, guest) == [CERT_B]


def test_cache_key_follows_the_package_list(monkeypatch: pytest.MonkeyPatch) -> None:
    before = image_key()
    more = replace(BOOT_GUEST, baked_packages=(*BOOT_GUEST.baked_packages, "lvm2"))
    monkeypatch.setattr(boot.image, "BOOT_GUEST", more)
    assert image_key() != before


def test_qemu_command_has_the_cloud_stand_ins(tmp_path: Path) -> None:
    image = GuestImage(tmp_path / "root.img", tmp_path / "vmlinuz", tmp_path / "initrd.img", "k", 0.0)
    volume = "f19088ed-b2f8-506b-bfc0-a1b39c0774de"
    guest = Guest(
        "vm",
        "#cloud-config\n{}\n",
        data_disks=[DataDisk(tmp_path / "data.img", volume)],
        shares=[Share(tmp_path, "/opt/share")],
        links=[PrivateLink(40000, "10.0.0.15/24", listen=True, mac="52:54:00:00:01:01")],
        forwards={443: 0},
        image=image,
        workdir=tmp_path,
    )
    cmd = guest.qemu_command(tmp_path / "seed.img", tmp_path / "root.qcow2")
    text = " ".join(cmd)
    assert "-accel tcg,thread=multi" in text and "-cpu max" in text
    # The data volume shows the volume ID's first 20 characters as its serial.
    assert f"serial={volume[:20]}" in text and f"serial={volume[:21]}" not in text
    append = cmd[cmd.index("-append") + 1]
    assert "root=LABEL=jshub-root" in append
    assert "jshub.share=jshub-share-0:/opt/share:ro" in append
    assert "socket,id=priv0,listen=127.0.0.1:40000" in text
    assert f"hostfwd=tcp:127.0.0.1:{guest.ports[443]}-:443" in text
    assert f"hostfwd=tcp:127.0.0.1:{guest.ports[22]}-:22" in text
    assert "addresses: ['10.0.0.15/24']" in guest._network_config()


def test_guests_on_one_segment_share_a_multicast_group_on_loopback(tmp_path: Path) -> None:
    image = GuestImage(tmp_path / "root.img", tmp_path / "vmlinuz", tmp_path / "initrd.img", "k", 0.0)
    texts = []
    for index, address in enumerate(("10.0.0.15/24", "10.0.0.143/24", "10.0.0.232/24")):
        link = PrivateLink(45000, address, listen=False, mac=f"52:54:00:00:01:0{index}", segment=True)
        guest = Guest(f"vm{index}", "#cloud-config\n{}\n", links=[link], image=image, workdir=tmp_path)
        texts.append(" ".join(guest.qemu_command(tmp_path / "seed.img", tmp_path / "root.qcow2")))
        assert f"addresses: ['{address}']" in guest._network_config()
    # The same group and port for all three, bound to loopback: one segment, no host address.
    for text in texts:
        assert "socket,id=priv0,mcast=239.255.74.1:45000,localaddr=127.0.0.1" in text


def test_each_vm_gets_its_own_ports_address(swarm_plan: Path) -> None:
    # A worker depends on the manager's port too (its user data mounts the manager's export):
    # its address is the one of the port it is attached to, the one the exports allow.
    manager = load_role("persistent-swarm", "swarm-manager-server", out=swarm_plan)
    workers = [load_role("persistent-swarm", f"swarm-worker-{i}-server", out=swarm_plan) for i in (0, 1)]
    addresses = {manager.private_address, *(w.private_address for w in workers)}
    assert len(addresses) == 3, addresses
    exports = next(s for s in manager.remote_steps if s.name == "swarm-nfs-exports").script
    for worker in workers:
        assert f"{worker.private_address}(rw," in exports
        assert f"{manager.private_address}:/export/home" in worker.user_data


def test_a_writable_share_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="only read-only shares"):
        Share(tmp_path, "/x", readonly=False)


def test_free_port_keeps_a_wanted_port_while_it_is_free() -> None:
    # The boot's ACME server asks for its last run's port, so that a rebuilt hub finds the
    # directory its certificate came from; a port in use gives way to another.
    port = free_port()
    assert free_port(port) == port
    with socket.socket() as held:
        held.bind(("127.0.0.1", port))
        held.listen()
        other = free_port(port)
    assert other != port and other > 0


def test_rebuild_comparison_names_what_was_lost() -> None:
    from boot.keep import EVERYTHING, HUB_STATE, compare

    before = {
        "users": ["a", "jshub-boot-keeper"],
        "uid": 1001,
        "home": "/data/home/k",
        "file": "f1",
        "certificate": "c1",
    }
    assert compare(before, dict(before), EVERYTHING) == []
    after = {**before, "uid": 1002, "certificate": "c2"}
    assert compare(before, after, EVERYTHING) == [
        "uid: 1001 before, 1002 after",
        "certificate: 'c1' before, 'c2' after",
    ]
    # A gateway's homes and UIDs are the HPC site's: only the hub's own state is compared.
    assert compare(before, {**after, "certificate": "c1"}, HUB_STATE) == []
