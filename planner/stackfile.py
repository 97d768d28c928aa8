"""Read Pulumi.yaml and Pulumi.<stack>.yaml the way the Pulumi CLI hands config to a program."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# Stands in for an encrypted value the planner cannot decrypt (it has no passphrase).
SECRET_PLACEHOLDER = "planner-placeholder-secret"

# How the example stack files mark a value every operator must replace: in the value itself or
# in a comment on its line.
PLACEHOLDER_MARKER = "REPLACE_ME"


@dataclass(frozen=True)
class StackFile:
    project: str
    stack: str
    config: dict[str, str]
    secret_keys: list[str]
    # Keys (dotted, without the project prefix) still holding a value marked REPLACE_ME.
    placeholders: list[str]


def _as_config_string(value: Any) -> str:
    # The CLI passes every value as a string: JSON for lists and objects, lowercase booleans.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def _full_key(project: str, key: str) -> str:
    return key if ":" in key else f"{project}:{key}"


def _set_path(config: dict[str, Any], project: str, dotted: str, value: Any) -> None:
    """`auth.clientId=x` sets a key inside the object config `auth`; a value of None removes
    the key (`pulumi config rm`), as a copy of a stack for another engine needs."""
    key, *rest = dotted.split(".")
    full = _full_key(project, key)
    if not rest:
        if value is None:
            config.pop(full, None)
        else:
            config[full] = value
        return
    node = config.setdefault(full, {})
    if isinstance(node, str):
        node = config[full] = json.loads(node)
    for part in rest[:-1]:
        node = node.setdefault(part, {})
    if value is None:
        node.pop(rest[-1], None)
    else:
        node[rest[-1]] = value


# libyaml's parser when PyYAML was built with it (the wheels are): the same safe subset, several
# times faster on Pulumi.yaml and on the cloud-init of every node of a large cluster.
_SAFE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str) -> Any:
    """`yaml.safe_load`, through libyaml when it is there."""
    return yaml.load(text, Loader=_SAFE_LOADER)


def marked_placeholders(text: str, project: str) -> list[str]:
    """The config keys of a stack file whose value is marked REPLACE_ME (in the value or in a
    comment on the value's line), as dotted paths: `allocation`, `adminCidrs[0]`,
    `auth.clientId`, `oauthClientSecret` (an encrypted value counts as its key's)."""
    lines = text.splitlines()
    document = yaml.compose(text, Loader=_SAFE_LOADER)
    if not isinstance(document, yaml.MappingNode):
        return []
    config = next((v for k, v in document.value if k.value == "config"), None)
    found: list[str] = []

    def walk(node: yaml.Node, path: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = str(key_node.value)
                if key == "secure" and path:
                    walk(value_node, path)
                elif path:
                    walk(value_node, f"{path}.{key}")
                else:
                    walk(value_node, key.removeprefix(f"{project}:"))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, f"{path}[{index}]")
        elif PLACEHOLDER_MARKER in lines[node.start_mark.line]:
            found.append(path)

    if config is not None:
        walk(config, "")
    return found


def _overridden(key: str, overrides: dict[str, Any]) -> bool:
    return any(key == o or key.startswith((f"{o}.", f"{o}[")) for o in overrides)


def load(
    project_dir: Path,
    stack: str,
    stack_file: Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> StackFile:
    project_file = load_yaml((project_dir / "Pulumi.yaml").read_text())
    project = project_file["name"]
    path = stack_file or project_dir / f"Pulumi.{stack}.yaml"
    if not path.exists():
        known = sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in project_dir.glob("Pulumi.*.yaml"))
        raise FileNotFoundError(f"no stack file {path.name}; stacks here: {', '.join(known)}")
    text = path.read_text()
    stack_data = load_yaml(text) or {}

    values: dict[str, Any] = {}
    secret_keys: list[str] = []
    for key, decl in (project_file.get("config") or {}).items():
        if isinstance(decl, dict) and "default" in decl:
            values[_full_key(project, key)] = decl["default"]
    for key, value in (stack_data.get("config") or {}).items():
        full = _full_key(project, key)
        if isinstance(value, dict) and set(value) == {"secure"}:
            # One per key, long enough for every rule (workshopAdminPassword: 32 characters, not
            # workshopPassword's value).
            values[full] = f"{SECRET_PLACEHOLDER}-{key.rpartition(':')[2]}"
            secret_keys.append(full)
        else:
            values[full] = value
    for dotted, value in (overrides or {}).items():
        _set_path(values, project, dotted, value)
    config = {key: _as_config_string(value) for key, value in values.items()}
    placeholders = [
        key for key in marked_placeholders(text, project) if not _overridden(key, overrides or {})
    ]
    return StackFile(
        project=project, stack=stack, config=config, secret_keys=secret_keys, placeholders=placeholders
    )
