"""One QEMU guest booting a given user data, with Jetstream2's parts played by stand-ins.

- the Cinder data volume: a second virtio disk whose serial is the first 20 characters of the
  volume ID, so it appears as /dev/disk/by-id/virtio-<those characters> as on the cloud;
- the floating IP: ports forwarded from 127.0.0.1 to the guest (SSH always);
- the key pair: the deploy key goes into the NoCloud meta-data's `public-keys`, where Nova puts
  it, so the user data stays byte for byte what `make plan` wrote;
- the private network between VMs: a QEMU socket link on a loopback port, addressed by the
  seed's network-config (Neutron's DHCP on the cloud);
- host folders packed into a read-only squashfs disk of their own, mounted by the image before
  cloud-init runs (Debian's cloud kernel has no 9p or virtiofs).

Only TCG emulation works on these machines (the nested /dev/kvm crashes stock kernels), so
boots take minutes, not seconds.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from boot.image import GuestImage
from boot.image import build as build_image
from catalog.images import BOOT_GUEST

VOLUME_SERIAL_CHARS = 20  # what virtio-blk shows of a Cinder volume ID


class GuestError(RuntimeError):
    pass


@dataclass(frozen=True)
class DataDisk:
    """A Cinder volume stand-in: a raw file attached with the volume ID's prefix as serial. The
    file outlives the guest, so a second guest (a rebuild) can attach the same disk."""

    path: Path
    volume_id: str
    size: str = "4G"

    @property
    def serial(self) -> str:
        return self.volume_id[:VOLUME_SERIAL_CHARS]

    def create(self) -> DataDisk:
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                ["qemu-img", "create", "-q", "-f", "raw", str(self.path), self.size],
                check=True,
            )
        return self


@dataclass(frozen=True)
class Share:
    """A host folder the guest finds mounted, read-only, at `guest_path` before cloud-init runs.

    Debian's cloud kernel has neither 9p nor virtiofs, so the folder is packed at start() into
    an uncompressed squashfs (about 10 s for a 1 GB virtualenv) attached as a disk with its own
    serial: the guest sees the folder as it was at start()."""

    host_path: Path
    guest_path: str
    readonly: bool = True

    def __post_init__(self) -> None:
        if not self.readonly:
            raise ValueError(f"Share {self.host_path}: only read-only shares are supported")

    def make_disk(self, image: Path) -> None:
        subprocess.run(
            [
                "mksquashfs",
                str(self.host_path),
                str(image),
                "-noappend",
                "-quiet",
                "-no-progress",
                "-no-xattrs",
                # Uncompressed: decompressing would cost the emulated CPU on every read.
                "-noI",
                "-noD",
                "-noF",
                "-noX",
            ],
            check=True,
            capture_output=True,
        )


# The multicast group of private segments (organisation-local scope), sent and received on the
# loopback interface only; each segment is one UDP port of it.
SEGMENT_GROUP = "239.255.74.1"


@dataclass(frozen=True)
class PrivateLink:
    """A guest's port on a private network, over loopback. Point to point (two guests, `port` a
    TCP port; the guest with `listen=True` starts first), or with `segment=True` one Ethernet
    segment shared by any number of guests (`port` a UDP port of a multicast group on the
    loopback interface: every frame reaches every guest on it, as on a switch that floods).
    `address` is this guest's, in CIDR form."""

    port: int
    address: str
    listen: bool
    mac: str
    segment: bool = False

    def netdev(self, netdev_id: str) -> str:
        if self.segment:
            return f"socket,id={netdev_id},mcast={SEGMENT_GROUP}:{self.port},localaddr=127.0.0.1"
        mode = "listen" if self.listen else "connect"
        return f"socket,id={netdev_id},{mode}=127.0.0.1:{self.port}"


@dataclass
class Phases:
    """Seconds spent in each phase of one boot, printed as the boot goes."""

    name: str
    values: dict[str, float] = field(default_factory=dict)

    def record(self, phase: str, seconds: float) -> None:
        self.values[phase] = seconds
        print(f"[boot] {self.name}: {phase} {seconds:.0f} s", file=sys.stderr, flush=True)


def end_process(process: subprocess.Popen[bytes] | None, timeout: float = 20) -> None:
    """Terminate `process` if it still runs, killing it after `timeout` seconds."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def free_port(wanted: int = 0) -> int:
    """A free TCP port on 127.0.0.1: `wanted` if it is free, else any."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", wanted))
        except OSError:
            s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Guest:
    """A VM booting `user_data` under QEMU. Use as a context manager or call start()/stop().

    `forwards` maps guest TCP ports to host ports on `public_address` (0: pick a free one); the
    chosen ports are in `self.ports` after start(). SSH (guest port 22) is always forwarded, on
    127.0.0.1."""

    name: str
    user_data: str
    data_disks: Sequence[DataDisk] = ()
    forwards: dict[int, int] = field(default_factory=dict)
    # The floating IP's stand-in: where the forwarded ports (not SSH) listen on the host.
    public_address: str = "127.0.0.1"
    shares: Sequence[Share] = ()
    links: Sequence[PrivateLink] = ()
    memory_mb: int = 2048
    cpus: int = 2
    image: GuestImage | None = None
    workdir: Path | None = None
    phases: Phases = field(init=False)
    ports: dict[int, int] = field(init=False, default_factory=dict)
    process: subprocess.Popen[bytes] | None = field(init=False, default=None)
    _tmp: tempfile.TemporaryDirectory[str] | None = field(init=False, default=None)
    _started: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self.phases = Phases(self.name)

    # -- files ------------------------------------------------------------------------------
    @property
    def dir(self) -> Path:
        assert self.workdir is not None, "start() first"
        return self.workdir

    @property
    def key(self) -> Path:
        return self.dir / "deploy_key"

    @property
    def console_log(self) -> Path:
        return self.dir / "console.log"

    @property
    def login_user(self) -> str:
        return BOOT_GUEST.login_user

    def _seed(self) -> Path:
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "jshub-boot", "-f", str(self.key)],
            check=True,
        )
        public = (self.dir / "deploy_key.pub").read_text().strip()
        (self.dir / "user-data").write_text(self.user_data)
        # `public-keys`: where Nova's metadata hands over the key pair. A new instance ID per
        # start: a rebuilt server runs its user data again.
        meta_text = (
            f"instance-id: {self.name}-{time.time_ns()}\nlocal-hostname: {self.name}\n"
            f"public-keys:\n  - {public}\n"
        )
        (self.dir / "meta-data").write_text(meta_text)
        args = ["cloud-localds"]
        if self.links:
            (self.dir / "network-config").write_text(self._network_config())
            args += [f"--network-config={self.dir / 'network-config'}"]
        seed = self.dir / "seed.img"
        subprocess.run(
            [*args, str(seed), str(self.dir / "user-data"), str(self.dir / "meta-data")], check=True
        )
        return seed

    def _network_config(self) -> str:
        # With net.ifnames=0 the NICs are eth0 (QEMU's user network, first on the PCI bus) and
        # eth1... (the links, in order): the names are the match.
        lines = ["version: 2", "ethernets:", "  eth0:", "    dhcp4: true"]
        for index, link in enumerate(self.links, start=1):
            lines += [f"  eth{index}:", f"    addresses: ['{link.address}']"]
        return "\n".join(lines) + "\n"

    def since_start(self) -> float:
        """Seconds since QEMU was started for this guest."""
        return time.monotonic() - self._started

    def qemu_command(self, seed: Path, overlay: Path) -> list[str]:
        image = self.image
        assert image is not None
        self.ports = {22: free_port(), **{g: (h or free_port()) for g, h in self.forwards.items()}}
        hostfwd = ",".join(
            f"hostfwd=tcp:{'127.0.0.1' if g == 22 else self.public_address}:{h}-:{g}"
            for g, h in self.ports.items()
        )
        cmdline = image.cmdline
        cmd = [
            "qemu-system-x86_64",
            "-name",
            self.name,
            "-accel",
            "tcg,thread=multi",
            "-cpu",
            "max",
            "-smp",
            str(self.cpus),
            "-m",
            str(self.memory_mb),
            "-display",
            "none",
            "-monitor",
            "none",
            "-serial",
            f"file:{self.console_log}",
            "-pidfile",
            str(self.dir / "qemu.pid"),
            "-kernel",
            str(image.kernel),
            "-initrd",
            str(image.initrd),
            "-drive",
            f"file={overlay},if=virtio,format=qcow2",
            "-drive",
            f"file={seed},if=virtio,format=raw,readonly=on",
            "-netdev",
            f"user,id=nat0,{hostfwd}",
            "-device",
            "virtio-net-pci,netdev=nat0,mac=52:54:00:12:34:56",
            "-device",
            "virtio-rng-pci",
        ]
        for index, disk in enumerate(self.data_disks):
            cmd += [
                "-drive",
                f"file={disk.path},if=none,id=data{index},format=raw",
                "-device",
                f"virtio-blk-pci,drive=data{index},serial={disk.serial}",
            ]
        for index, share in enumerate(self.shares):
            serial = f"jshub-share-{index}"
            ro = ",readonly=on" if share.readonly else ""
            cmd += [
                "-drive",
                f"file={self.dir / f'share-{index}.img'},if=none,id=share{index},format=raw{ro}",
                "-device",
                f"virtio-blk-pci,drive=share{index},serial={serial}",
            ]
            cmdline += f" jshub.share={serial}:{share.guest_path}{':ro' if share.readonly else ''}"
        for index, link in enumerate(self.links):
            cmd += [
                "-netdev",
                link.netdev(f"priv{index}"),
                "-device",
                f"virtio-net-pci,netdev=priv{index},mac={link.mac}",
            ]
        return [*cmd, "-append", cmdline]

    # -- life cycle -------------------------------------------------------------------------
    def start(self) -> Guest:
        tools = ["qemu-system-x86_64", "qemu-img", "cloud-localds", "ssh", "ssh-keygen"]
        for tool in tools + (["mksquashfs"] if self.shares else []):
            if shutil.which(tool) is None:
                raise GuestError(f"{tool} is not installed; `make system-deps` installs it")
        if self.image is None:
            start = time.monotonic()
            self.image = build_image()
            self.phases.record(
                "image build" if self.image.build_s else "image (cached)", time.monotonic() - start
            )
        if self.workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix=f"jshub-boot-{self.name}-")
            self.workdir = Path(self._tmp.name)
        self.dir.mkdir(parents=True, exist_ok=True)
        seed = self._seed()
        # A fresh root disk on every start (a rebuild re-images the root disk): a copy-on-write
        # layer over the cached image.
        overlay = self.dir / "root.qcow2"
        overlay.unlink(missing_ok=True)
        subprocess.run(
            [
                "qemu-img",
                "create",
                "-q",
                "-f",
                "qcow2",
                "-F",
                "raw",
                "-b",
                str(self.image.root),
                str(overlay),
            ],
            check=True,
        )
        for disk in self.data_disks:
            disk.create()
        for index, share in enumerate(self.shares):
            start = time.monotonic()
            share.make_disk(self.dir / f"share-{index}.img")
            self.phases.record(f"share {share.host_path}", time.monotonic() - start)
        command = self.qemu_command(seed, overlay)
        (self.dir / "qemu.cmd").write_text(shlex.join(command) + "\n")
        self._started = time.monotonic()
        with open(self.dir / "qemu.err", "wb") as err:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err
            )
        return self

    def stop(self) -> None:
        """Power the guest off (QEMU is killed: the disks are files, nothing else to save)."""
        end_process(self.process)
        self.process = None

    def shutdown(self, timeout: float = 180) -> None:
        """A clean power-off, as OpenStack's rebuild and resize shut a server down before they
        touch its disks: the guest flushes its filesystems and unmounts the volume. Falls back
        to stop() when the guest does not go down in time."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                subprocess.run(
                    [*self.ssh_command(), "sudo systemctl poweroff"],
                    capture_output=True,
                    text=True,
                    timeout=60,
                    input="",
                )
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=timeout)
        self.stop()

    def close(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
            self.workdir = None

    def __enter__(self) -> Guest:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _check_alive(self) -> None:
        if self.process is None or self.process.poll() is not None:
            err = (self.dir / "qemu.err").read_text() if (self.dir / "qemu.err").exists() else ""
            raise GuestError(f"{self.name}: QEMU exited ({err.strip()})\n{self.console_tail()}")

    def console_tail(self, lines: int = 40) -> str:
        if not self.console_log.exists():
            return ""
        text = self.console_log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    # -- SSH --------------------------------------------------------------------------------
    def ssh_command(self, *, user: str | None = None) -> list[str]:
        return [
            "ssh",
            "-i",
            str(self.key),
            "-p",
            str(self.ports[22]),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ConnectTimeout=60",
            "-o",
            "BatchMode=yes",
            "-o",
            "ServerAliveInterval=15",
            f"{user or self.login_user}@127.0.0.1",
        ]

    def run(
        self,
        command: str,
        *,
        input: str | None = None,
        check: bool = True,
        timeout: float = 600,
        user: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a shell command line as the login user over SSH, as a remote command of the stack
        runs (`sudo` inside the command when it needs root)."""
        # ssh exits 255 when it cannot connect: an emulated guest on a busy host can miss the
        # banner exchange; the command did not run, so it is tried again.
        for attempt in range(4):
            self._check_alive()
            result = subprocess.run(
                [*self.ssh_command(user=user), command],
                input=input if input is not None else "",
                text=True,
                capture_output=True,
                timeout=timeout,
            )
            unreachable = "banner exchange" in result.stderr or "timed out" in result.stderr
            if result.returncode != 255 or not unreachable:
                break
            time.sleep(10 * (attempt + 1))
        if check and result.returncode != 0:
            raise GuestError(
                f"{self.name}: `{command[:200]}` exited {result.returncode}\n"
                f"stdout: {result.stdout[-2000:]}\nstderr: {result.stderr[-2000:]}"
            )
        return result

    def sudo(self, command: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return self.run(f"sudo sh -c {shlex.quote(command)}", **kwargs)

    def wait_ssh(self, timeout: float = 900) -> float:
        """Seconds from QEMU's start until SSH answers with the deploy key."""
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive()
            probe = subprocess.run(
                [*self.ssh_command(), "true"], capture_output=True, text=True, stdin=subprocess.DEVNULL
            )
            if probe.returncode == 0:
                elapsed = self.since_start()
                self.phases.record("boot to SSH", elapsed)
                return elapsed
            if time.monotonic() > deadline:
                raise GuestError(f"{self.name}: no SSH after {timeout:.0f} s\n{self.console_tail()}")
            time.sleep(5)

    def wait_cloud_init(self, timeout: float = 3600) -> dict[str, Any]:
        """Wait until cloud-init has finished its last stage (result.json written: cloud-init
        22.4's `status --wait` returns early on an error) and return its status: `status`
        (`done` or `error`), `errors`, and `detail` from `cloud-init status --long`."""
        start = time.monotonic()
        deadline = start + timeout
        while self.run("test -e /run/cloud-init/result.json", check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise GuestError(f"{self.name}: cloud-init not finished after {timeout:.0f} s")
            time.sleep(5)
        result = json.loads(self.run("cat /run/cloud-init/result.json").stdout)
        errors = list(result.get("v1", {}).get("errors", []))
        long = self.run("cloud-init status --long", check=False)
        status = "done" if long.returncode == 0 and not errors else "error"
        self.phases.record("cloud-init", self.since_start())
        return {"status": status, "errors": errors, "detail": long.stdout + long.stderr}

    def boot(self, ssh_timeout: float = 900, cloud_init_timeout: float = 3600) -> dict[str, Any]:
        """start() if needed, then wait for SSH and for cloud-init; the cloud-init status."""
        if self.process is None:
            self.start()
        self.wait_ssh(ssh_timeout)
        return self.wait_cloud_init(cloud_init_timeout)
