"""The k8s hub's hooks (shipped through the chart's `hub.extraFiles`, named in `hub.config`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def shared_data_writable_for_admins(claim: str) -> Callable[[Any], None]:
    """A pre-spawn hook: admins may write the shared folder (the volume of claim `claim`);
    everyone else mounts it read-only, as the chart's values say."""

    def writable_for_admins(spawner: Any) -> None:
        if spawner.user.admin:
            spawner.volume_mounts = [
                {**mount, "readOnly": False} if mount.get("name") == claim else mount
                for mount in spawner.volume_mounts
            ]

    return writable_for_admins
