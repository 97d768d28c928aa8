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
