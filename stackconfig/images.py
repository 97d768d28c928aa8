"""Which featured image can boot which scenario: every package the scenario's VMs install must
be in the image's Ubuntu release (catalog/images.py), at a version the software on top accepts.
Otherwise the one `packages:` list fails as a whole at first boot; here the image is refused
before anything exists."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from catalog.images import IMAGE_PACKAGES, at_least
from stackconfig.errors import Problem
from stackconfig.model import StackConfig

# What each scenario's VMs install through cloud-init `packages:` (renderers/cloud_init.py,
# renderers/swarm.py, renderers/k3s.py). tests/test_images.py renders every role and fails
# when these lists and the renderers part ways.
SCENARIO_PACKAGES: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "single": frozenset({"python3-venv", "nodejs", "npm", "caddy", "iptables", "xfsprogs"}),
        "hpc": frozenset({"python3-venv", "nodejs", "npm", "caddy", "iptables"}),
        "swarm": frozenset({"docker.io", "nfs-kernel-server", "nfs-common", "xfsprogs", "caddy", "iptables"}),
        "k8s": frozenset({"lvm2", "curl", "iptables"}),
    }
)

# The least version the software on top declares: configurable-http-proxy, pinned in
# renderers/cloud_init.py, and every package it pulls in ask for Node.js >= 18 (their
# package.json `engines`; tests/test_images.py ties this to the pin).
MIN_VERSIONS: Mapping[str, str] = MappingProxyType({"nodejs": "18"})


def missing_packages(image: str, scenario: str) -> list[str]:
    """What the image lacks for the scenario, in words: `caddy (not in Ubuntu 22.04 (jammy))`."""
    table = IMAGE_PACKAGES[image]
    missing = []
    for package in sorted(SCENARIO_PACKAGES[scenario]):
        version = table.packages.get(package)
        if version is None:
            missing.append(f"{package} (not in {table.release})")
        elif package in MIN_VERSIONS and not at_least(version, MIN_VERSIONS[package]):
            missing.append(f"{package} >= {MIN_VERSIONS[package]} ({table.release} has {version})")
    return missing


def images_for(scenario: str) -> list[str]:
    return [image for image in IMAGE_PACKAGES if not missing_packages(image, scenario)]


def image_provides_packages(cfg: StackConfig) -> list[Problem]:
    missing = missing_packages(cfg.image, cfg.scenario)
    if not missing:
        return []
    allowed = images_for(cfg.scenario)
    return [
        Problem(
            "image",
            f"cannot boot scenario {cfg.scenario}: it lacks {', '.join(missing)}; "
            f"allowed for {cfg.scenario}: {', '.join(allowed) or 'none'}",
            cfg.image,
        )
    ]
