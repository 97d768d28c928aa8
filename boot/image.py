"""The guest image: Debian 12 built with debootstrap, cached, rebuilt when its package list changes.

Jetstream2's featured images are Ubuntu cloud images; Ubuntu's archive is not reachable from the
machines that run these boots, so the guest is Debian 12 (bookworm) with cloud-init 22.4. Every
difference the boots rely on is in catalog/images.py (`BOOT_GUEST`).

The image is a raw ext4 file made by `mkfs.ext4 -d` from the debootstrap tree (no loop mount,
so no privileges beyond root in a container), and the kernel and initrd sit beside it: QEMU
boots them directly with `root=LABEL=...`, because an extra virtio disk can take `/dev/vda`.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from catalog.images import BOOT_GUEST

# Bump when the build steps change in a way that changes the image (the package list is part
# of the cache key on its own).
BUILDER_VERSION = "1"
ROOT_LABEL = "jshub-root"
IMAGE_SIZE = "6G"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
APT_SOURCES = (Path("/etc/apt/sources.list.d"), Path("/etc/apt/sources.list"))
_CERT = re.compile(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", re.S)


# Debian's cloud.cfg names the default user `debian`; the stack logs in as Ubuntu's `ubuntu`.
CLOUD_CFG = f"""\
datasource_list: [NoCloud, None]
apt:
  preserve_sources_list: true
system_info:
  distro: debian
  default_user:
    name: {BOOT_GUEST.login_user}
    lock_passwd: true
    gecos: Cloud user
    groups: [adm, sudo]
    sudo: ["ALL=(ALL) NOPASSWD:ALL"]
    shell: /bin/bash
  paths:
    cloud_dir: /var/lib/cloud/
    templates_dir: /etc/cloud/templates/
  ssh_svcname: ssh
"""

# `jshub.share=TAG:PATH[:ro]` on the kernel command line: a host folder QEMU exports over 9p,
# mounted at PATH before cloud-init runs, so the user data can already use it.
SHARES_SCRIPT = """\
#!/bin/sh
set -eu
for word in $(cat /proc/cmdline); do
    case "$word" in
    jshub.share=*)
        spec=${word#jshub.share=}
        tag=${spec%%:*}
        rest=${spec#*:}
        path=${rest%%:*}
        opts=trans=virtio,version=9p2000.L,msize=262144
        [ "${rest#*:}" = ro ] && opts="$opts,ro"
        mkdir -p "$path"
        mount -t 9p -o "$opts" "$tag" "$path"
        ;;
    esac
done
"""

SHARES_UNIT = """\
[Unit]
Description=Mount host folders shared by QEMU (jshub.share= on the kernel command line)
DefaultDependencies=no
After=local-fs.target
Before=cloud-init-local.service cloud-init.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/jshub-host-shares

[Install]
WantedBy=sysinit.target
"""


class ImageBuildError(RuntimeError):
    pass


@dataclass(frozen=True)
class GuestImage:
    """A built image: the root filesystem (raw ext4 labelled ROOT_LABEL), its kernel and initrd."""

    root: Path
    kernel: Path
    initrd: Path
    key: str
    build_s: float  # 0 when it came from the cache

    @property
    def cmdline(self) -> str:
        return f"root=LABEL={ROOT_LABEL} rw console=ttyS0 net.ifnames=0"


def cache_dir() -> Path:
    """$JSHUB_BOOT_CACHE, else /var/cache/jshub-boot for root, else $XDG_CACHE_HOME/jshub-boot:
    outside the repository, shared by every checkout on the machine."""
    explicit = os.environ.get("JSHUB_BOOT_CACHE")
    if explicit:
        return Path(explicit)
    if os.geteuid() == 0:
        return Path("/var/cache/jshub-boot")
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "jshub-boot"


def packages() -> tuple[str, ...]:
    return tuple(sorted({*BOOT_GUEST.base_packages, *BOOT_GUEST.baked_packages}))


def image_key() -> str:
    text = "\n".join([BUILDER_VERSION, BOOT_GUEST.suite, *packages(), CLOUD_CFG, SHARES_SCRIPT, SHARES_UNIT])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def debian_mirror(sources: tuple[Path, ...] = APT_SOURCES) -> str:
    """The Debian mirror this machine's apt uses (deb822 `URIs:` or one-line `deb` entries),
    read at run time so that no host name lives in the code."""
    files: list[Path] = []
    for src in sources:
        if src.is_dir():
            files += sorted(p for p in src.iterdir() if p.suffix in (".sources", ".list"))
        elif src.is_file():
            files.append(src)
    for path in files:
        text = path.read_text()
        if path.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields: dict[str, str] = {}
                for line in stanza.splitlines():
                    key, _, value = line.partition(":")
                    if not line.startswith("#") and value:
                        fields[key.strip()] = value.strip()
                suites = fields.get("Suites", "").split()
                if "main" in fields.get("Components", "").split() and BOOT_GUEST.suite in suites:
                    for uri in fields.get("URIs", "").split():
                        if "security" not in uri:
                            return uri
        else:
            for line in text.splitlines():
                parts = line.split()
                if parts[:1] == ["deb"] and BOOT_GUEST.suite in parts and "security" not in line:
                    uri = next(p for p in parts[1:] if "://" in p)
                    return uri
    raise ImageBuildError(f"no Debian {BOOT_GUEST.suite} mirror found in apt's sources ({sources})")


def extra_ca_certificates(host_bundle: Path, guest_bundle: Path) -> list[str]:
    """Certificates the host trusts that a stock Debian does not (a proxy's CA, a site CA):
    without them apt and pip inside the guest fail TLS through QEMU's user network."""
    stock = set(_CERT.findall(guest_bundle.read_text())) if guest_bundle.exists() else set()
    return [c for c in _CERT.findall(host_bundle.read_text()) if c not in stock]


def _log(message: str) -> None:
    print(f"[boot] {message}", file=sys.stderr, flush=True)


def _run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=True, text=True, **kwargs)  # type: ignore[call-overload, no-any-return]


def _chroot(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"}
    return subprocess.run(["chroot", str(root), *args], check=True, text=True, capture_output=True, env=env)


def unconfigured_packages(root: Path) -> list[str]:
    """Packages not `install ok installed` in the tree, plus whatever `dpkg --audit` reports."""
    status = _chroot(root, "dpkg-query", "-W", "-f", "${Package} ${Status}\n").stdout
    bad = [line.split()[0] for line in status.splitlines() if not line.endswith("install ok installed")]
    audit = _chroot(root, "dpkg", "--audit").stdout.strip()
    if audit:
        bad.append(f"dpkg --audit: {audit}")
    return bad


def _configure(root: Path) -> None:
    etc = root / "etc"
    (etc / "fstab").write_text(f"LABEL={ROOT_LABEL} / ext4 defaults,errors=remount-ro 0 1\n")
    (etc / "hostname").write_text("localhost\n")
    # Every guest gets its own machine ID (systemd makes one on first boot).
    (etc / "machine-id").write_text("")
    cloud = etc / "cloud" / "cloud.cfg.d"
    cloud.mkdir(parents=True, exist_ok=True)
    (cloud / "90-jshub-boot.cfg").write_text(CLOUD_CFG)
    (etc / "locale.gen").write_text("en_US.UTF-8 UTF-8\n")
    _chroot(root, "locale-gen")
    # The mirror the image was built from, which the guest reaches through QEMU's NAT.
    extra = extra_ca_certificates(HOST_CA_BUNDLE, etc / "ssl" / "certs" / "ca-certificates.crt")
    local = root / "usr" / "local" / "share" / "ca-certificates"
    local.mkdir(parents=True, exist_ok=True)
    for index, cert in enumerate(extra):
        (local / f"host-extra-{index:02d}.crt").write_text(cert + "\n")
    _chroot(root, "update-ca-certificates")
    _log(f"guest trusts {len(extra)} extra CA certificate(s) from the host")
    # Host folders shared over 9p are mounted before cloud-init runs (boot/guest.py).
    unit = etc / "systemd" / "system" / "jshub-host-shares.service"
    unit.write_text(SHARES_UNIT)
    script = root / "usr" / "local" / "sbin" / "jshub-host-shares"
    script.write_text(SHARES_SCRIPT)
    script.chmod(0o755)
    _chroot(root, "systemctl", "enable", "jshub-host-shares.service")
    for key in (etc / "ssh").glob("ssh_host_*"):
        key.unlink()  # cloud-init makes this guest's own host keys


def build(force: bool = False) -> GuestImage:
    """The cached image for the current package list, building it first when missing."""
    key = image_key()
    out = cache_dir() / f"debian-{BOOT_GUEST.suite}-{key}"
    ready = out / "ready"
    if ready.exists() and not force:
        return GuestImage(out / "root.img", out / "vmlinuz", out / "initrd.img", key, 0.0)
    for tool in ("debootstrap", "mkfs.ext4", "chroot"):
        if shutil.which(tool) is None:
            raise ImageBuildError(f"{tool} is not installed; `make system-deps` installs it")
    start = time.monotonic()
    out.parent.mkdir(parents=True, exist_ok=True)
    mirror = debian_mirror()
    _log(f"image build: debootstrap {BOOT_GUEST.suite} from {mirror}, {len(packages())} packages")
    with tempfile.TemporaryDirectory(dir=out.parent, prefix="build-") as tmp:
        root = Path(tmp) / "root"
        result = subprocess.run(
            [
                "debootstrap",
                "--components=main",
                f"--include={','.join(packages())}",
                BOOT_GUEST.suite,
                str(root),
                mirror,
            ],
            text=True,
            capture_output=True,
        )
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
            log = root / "debootstrap" / "debootstrap.log"
            if log.exists():
                tail += "\n" + "\n".join(log.read_text().splitlines()[-30:])
            raise ImageBuildError(f"debootstrap failed (exit {result.returncode}):\n{tail}")
        bad = unconfigured_packages(root)
        if bad:
            raise ImageBuildError(f"packages left unconfigured in the guest image: {', '.join(bad)}")
        _configure(root)
        boot = root / "boot"
        kernels = sorted(boot.glob("vmlinuz-*"))
        initrds = sorted(boot.glob("initrd.img-*"))
        if not kernels or not initrds:
            raise ImageBuildError(f"no kernel or initrd in the guest's /boot: {list(boot.iterdir())}")
        staging = Path(tmp) / "image"
        staging.mkdir()
        shutil.copy2(kernels[-1], staging / "vmlinuz")
        shutil.copy2(initrds[-1], staging / "initrd.img")
        _run(
            [
                "mkfs.ext4",
                "-q",
                "-F",
                "-L",
                ROOT_LABEL,
                "-d",
                str(root),
                str(staging / "root.img"),
                IMAGE_SIZE,
            ],
            capture_output=True,
        )
        (staging / "packages.txt").write_text("\n".join(packages()) + "\n")
        (staging / "ready").write_text(f"{BUILDER_VERSION}\n")
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    elapsed = time.monotonic() - start
    _log(f"image build: {elapsed:.0f} s -> {out}")
    return GuestImage(out / "root.img", out / "vmlinuz", out / "initrd.img", key, elapsed)


if __name__ == "__main__":
    image = build(force="--force" in sys.argv)
    print(image.root)
