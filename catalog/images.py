"""What each Jetstream2 featured image can install with apt: the Ubuntu release under it and
the version of every package the rendered cloud-init asks for.

Sources:
- Featured images are Ubuntu LTS cloud images (universe enabled), updated by Jetstream2 staff:
  https://docs.jetstream-cloud.org/general/featured/
- Package versions: the Ubuntu archive's own pages, https://packages.ubuntu.com/<release>/<name>
  (noble: Ubuntu 24.04; jammy: Ubuntu 22.04), the release pocket and, where it has moved on,
  -updates. A name absent from a release is absent from its archive:
  https://packages.ubuntu.com/jammy/caddy finds nothing (Caddy entered Ubuntu's archive after
  22.04, from Debian; its own apt repository is the only apt source for 22.04).

Versions are upstream versions (the Ubuntu revision dropped): enough to compare with what the
software on top declares it needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class ImagePackages:
    image: str
    release: str
    packages: Mapping[str, str]

    @property
    def source(self) -> str:
        codename = self.release.split()[-1].strip("()")
        return f"https://packages.ubuntu.com/{codename}/"


IMAGE_PACKAGES: Mapping[str, ImagePackages] = MappingProxyType(
    {
        "Featured-Ubuntu24": ImagePackages(
            "Featured-Ubuntu24",
            "Ubuntu 24.04 (noble)",
            MappingProxyType(
                {
                    "caddy": "2.6.2",
                    "curl": "8.5.0",
                    "docker.io": "24.0.7",
                    "iptables": "1.8.10",
                    "lvm2": "2.03.16",
                    "nfs-common": "2.6.4",
                    "nfs-kernel-server": "2.6.4",
                    "nodejs": "18.19.1",
                    "npm": "9.2.0",
                    "python3-venv": "3.12.3",
                    "xfsprogs": "6.6.0",
                }
            ),
        ),
        "Featured-Ubuntu22": ImagePackages(
            "Featured-Ubuntu22",
            "Ubuntu 22.04 (jammy)",
            MappingProxyType(
                {
                    # No caddy.
                    "curl": "7.81.0",
                    "docker.io": "24.0.7",
                    "iptables": "1.8.7",
                    "lvm2": "2.03.11",
                    "nfs-common": "2.6.1",
                    "nfs-kernel-server": "2.6.1",
                    "nodejs": "12.22.9",
                    "npm": "8.5.1",
                    "python3-venv": "3.10.6",
                    "xfsprogs": "5.13.0",
                }
            ),
        ),
    }
)


def version_tuple(version: str) -> tuple[int, ...]:
    """`18.19.1` -> (18, 19, 1): the leading numeric parts, enough to compare releases."""
    parts: list[int] = []
    for part in version.split("."):
        digits = ""
        for ch in part:
            if not ch.isdigit():
                break
            digits += ch
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def at_least(version: str, minimum: str) -> bool:
    return version_tuple(version) >= version_tuple(minimum)


@dataclass(frozen=True)
class BootGuestImage:
    """The guest that boots the rendered user data on a development machine (boot/): Debian,
    because Ubuntu's archive is not reachable there. What differs from a featured image is
    listed in `differences`; the versions are Debian's (https://packages.debian.org/<suite>/).

    `base_packages` make a cloud image of a debootstrap tree: without python3-cffi-backend and
    locales, cloud-init 22.4 is left half-configured or ends in error. `baked_packages` are the
    swarm role's packages and the tools the kernel tests drive (quota reports, IPVS), installed in
    the image so that a boot under emulation does not download them; the user data still lists
    its own packages and apt finds them installed. The hub role's packages (python3-venv, nodejs,
    npm) are not baked: a `dev` boot installs them from its user data, as on Jetstream2."""

    image: str
    release: str
    suite: str
    cloud_init: str
    login_user: str
    base_packages: tuple[str, ...]
    baked_packages: tuple[str, ...]
    packages: Mapping[str, str]
    differences: tuple[str, ...]


BOOT_GUEST = BootGuestImage(
    image="jshub-boot-debian12",
    release="Debian 12 (bookworm)",
    suite="bookworm",
    cloud_init="22.4",
    # Set by the image (cloud.cfg.d) so that the stack's remote commands log in as on Jetstream2.
    login_user="ubuntu",
    base_packages=(
        "linux-image-cloud-amd64",
        "cloud-init",
        "openssh-server",
        "python3-cffi-backend",
        "locales",
        "sudo",
        "ca-certificates",
        "ifupdown",
        "isc-dhcp-client",
        # Ubuntu resolves its own host name through systemd-resolved; without this, sudo
        # complains on every call.
        "libnss-myhostname",
        # In Ubuntu's images, and Debian's kernel enables AppArmor too: without its parser
        # Docker starts no container ("apparmor_parser": executable file not found).
        "apparmor",
    ),
    baked_packages=(
        "xfsprogs",
        "quota",
        "nfs-kernel-server",
        "nfs-common",
        "ipvsadm",
        "iptables",
        "docker.io",
        "caddy",
        # The swarm boot's probe containers: an image made from its static binary, as no
        # registry is reachable from the build machines.
        "busybox-static",
    ),
    packages=MappingProxyType(
        {
            "caddy": "2.6.2",
            "curl": "7.88.1",
            "docker.io": "20.10.24",
            "iptables": "1.8.9",
            "lvm2": "2.03.16",
            "nfs-common": "2.6.2",
            "nfs-kernel-server": "2.6.2",
            "nodejs": "18.19.0",
            "npm": "9.2.0",
            "python3-venv": "3.11.2",
            "xfsprogs": "6.1.0",
        }
    ),
    differences=(
        "Debian 12 instead of Ubuntu 24.04: same package names for everything the user data installs",
        "cloud-init 22.4 instead of 24.x: `cloud-init status --wait` returns early on an error, so "
        "the boots wait for /run/cloud-init/result.json",
        "default user renamed from `debian` to `ubuntu` (cloud.cfg.d) as on the featured images",
        "docker.io 20.10 instead of 24.0; nodejs 18.19.0 as on Ubuntu 24.04",
        "kernel linux-image-cloud-amd64 (6.1) booted with -kernel/-initrd and root=LABEL=, no GRUB",
        "NoCloud seed (cloud-localds) instead of the OpenStack metadata service; the key pair goes "
        "in its meta-data as Nova's does",
        "libnss-myhostname added: the VM resolves its own host name as Ubuntu's resolved does",
        "apparmor added (in Ubuntu's images): Debian's kernel enables AppArmor, and Docker "
        "starts no container without its parser",
        "no 9p/virtiofs in Debian's cloud kernel: host folders reach a guest as a read-only squashfs disk",
        "apt sources: the build machine's Debian mirror (bookworm main), kept by cloud-init "
        "(apt preserve_sources_list)",
    ),
)
