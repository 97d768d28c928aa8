"""The SLURM spawner as the hub loads it (hub/jshub_slurm.py, from its config folder), and one
built with the hpc example's partitions, for the spawner's unit tests and the queue tests."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from renderers.hub_config import HubConfigSpec
from tests.builders import hpc_config

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "hub"))
import jshub_slurm

__all__ = ["jshub_slurm", "spawner"]


def spawner(**traits: Any) -> Any:
    defaults: dict[str, Any] = {
        "login_host": "login.hpc.example.edu",
        "ssh_key_file": "/etc/jupyterhub/hpc/id_hpc",
        "known_hosts_file": "/etc/jupyterhub/hpc/known_hosts",
        "partitions": HubConfigSpec.from_config(hpc_config()).spawner.partitions,  # type: ignore[union-attr]
    }
    return jshub_slurm.JetstreamSlurmSpawner(user=SimpleNamespace(name="jdoe"), **{**defaults, **traits})
