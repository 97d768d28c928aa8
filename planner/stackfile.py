"""Read Pulumi.yaml and Pulumi.<stack>.yaml the way the Pulumi CLI hands config to a program."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# Stands in for an encrypted value the planner cannot decrypt (it has no passphrase).
SECRET_PLACEHOLDER = "planner-placeholder-secret"


@dataclass(frozen=True)
class StackFile:
    project: str
    stack: str
    config: dict[str, str]
    secret_keys: list[str]


def _as_config_string(value: Any) -> str:
    # The CLI passes every value as a string: JSON for lists and objects, lowercase booleans.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def _full_key(project: str, key: str) -> str:
    return key if ":" in key else f"{project}:{key}"


def load(project_dir: Path, stack: str, stack_file: Path | None = None) -> StackFile:
    project_file = yaml.safe_load((project_dir / "Pulumi.yaml").read_text())
    project = project_file["name"]
    path = stack_file or project_dir / f"Pulumi.{stack}.yaml"
    if not path.exists():
        known = sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in project_dir.glob("Pulumi.*.yaml"))
        raise FileNotFoundError(f"no stack file {path.name}; stacks here: {', '.join(known)}")
    stack_data = yaml.safe_load(path.read_text()) or {}

    config: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, decl in (project_file.get("config") or {}).items():
        if isinstance(decl, dict) and "default" in decl:
            config[_full_key(project, key)] = _as_config_string(decl["default"])
    for key, value in (stack_data.get("config") or {}).items():
        full = _full_key(project, key)
        if isinstance(value, dict) and set(value) == {"secure"}:
            config[full] = SECRET_PLACEHOLDER
            secret_keys.append(full)
        else:
            config[full] = _as_config_string(value)
    return StackFile(project=project, stack=stack, config=config, secret_keys=secret_keys)
