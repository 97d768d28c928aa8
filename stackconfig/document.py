"""The `config:` block of Pulumi.yaml, generated from the model so the two cannot drift.

`python -m stackconfig.document` prints the block, `--write` puts it into Pulumi.yaml; tests
fail when Pulumi.yaml differs."""

from __future__ import annotations

import sys
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, SecretStr

from stackconfig.model import StackConfig
from stackconfig.scenarios import is_scoped, scenarios_of


def _pulumi_type(annotation: Any) -> str | None:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _pulumi_type(args[0]) if len(args) == 1 else None
    if origin is typing.Annotated:
        return _pulumi_type(typing.get_args(annotation)[0])
    if origin is list:
        return "array"
    if origin is typing.Literal or annotation in (str, SecretStr):
        return "string"
    if annotation is bool:
        return "boolean"
    if annotation is int:
        return "integer"
    return None  # floats and objects: Pulumi.yaml has no such type; the model checks them


def config_block(model: type[BaseModel] = StackConfig) -> dict[str, Any]:
    block: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        key = field.alias or name
        entry: dict[str, Any] = {}
        kind = _pulumi_type(field.annotation)
        if kind:
            entry["type"] = kind
        if kind == "array":
            entry["items"] = {"type": "string"}
        description = field.description or ""
        scoped = is_scoped(field)
        entry["description"] = description
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if extra.get("secret"):
            entry["secret"] = True
        if not field.is_required():
            default = field.get_default(call_default_factory=True)
            if scoped and default is not None and not isinstance(default, BaseModel):
                # Every stack gets the declared default, and the other scenarios refuse the key:
                # it is unset here, and the model gives its scenarios the default.
                shown = f"{default:g}" if isinstance(default, float) else default
                description = f"{description.rstrip('.')}; default {shown}."
                default = None
            # Pulumi treats a declared key without a default as required; "" means unset.
            if default is None:
                default = "" if kind == "string" else {}
                if kind == "boolean":
                    # A boolean cannot say "unset" (the scenario decides): no declared type, {}.
                    del entry["type"]
            elif isinstance(default, BaseModel):
                default = {}  # the model fills in each sub-key's default
            entry["default"] = default
        if scoped:
            description += f" Scenarios: {', '.join(scenarios_of(field))}."
        entry["description"] = description
        block[key] = entry
    return block


def render() -> str:
    return yaml.safe_dump({"config": config_block()}, sort_keys=False, width=100)


def write(path: Path) -> None:
    """Replace the `config:` block of Pulumi.yaml, keeping everything above it."""
    text = path.read_text()
    head = text[: text.index("\nconfig:") + 1] if "\nconfig:" in text else text
    path.write_text(head + render())


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write(Path(__file__).resolve().parent.parent / "Pulumi.yaml")
    else:
        sys.stdout.write(render())
