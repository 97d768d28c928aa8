"""Build a StackConfig from Pulumi config (or a plain mapping), turning every failure into a
Problem that names the key, the value and what is allowed."""

from __future__ import annotations

import difflib
import json
import typing
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from stackconfig.errors import ConfigError, Problem
from stackconfig.model import StackConfig
from stackconfig.rules import check
from stackconfig.scenarios import SCENARIOS, foreign_keys

PROJECT = "jupyterhub-jetstream"


def _aliases(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _secret_keys(model: type[BaseModel]) -> set[str]:
    return {
        f.alias or name
        for name, f in model.model_fields.items()
        if isinstance(f.json_schema_extra, dict) and f.json_schema_extra.get("secret")
    }


def _decode(value: Any) -> Any:
    # Pulumi hands every config value to the program as a string; lists and objects are JSON.
    if isinstance(value, str) and value[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel]:
    model: type[BaseModel] = StackConfig
    for part in loc[:-1]:
        field = next((f for n, f in model.model_fields.items() if (f.alias or n) == part), None)
        annotation = getattr(field, "annotation", None)
        # `Section | None` and `list[Item]`: look inside for the model.
        inner = [a for a in typing.get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
        if inner:
            annotation = inner[0]
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        else:
            break
    return model


def _problem(error: Mapping[str, Any]) -> Problem:
    loc = tuple(error["loc"])
    key = ".".join(str(p) for p in loc) or "(stack)"
    kind = error["type"]
    if kind == "extra_forbidden":
        known = _aliases(_model_at(loc))
        close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return Problem(key, f"unknown key; {hint}known keys: {', '.join(sorted(known))}")
    if kind == "missing":
        if len(loc) == 1:
            return Problem(key, f"is required: pulumi config set {PROJECT}:{loc[0]} ...")
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
        return Problem(key, f"is required: pulumi config set --path '{path}' ...")
    message = str(error["msg"]).removeprefix("Value error, ")
    if "pattern" in kind:
        message += " (lowercase letters and digits, starting with a letter)"
    value = error.get("input")
    if isinstance(value, dict):  # a rule of a whole section: its message names what is wrong
        return Problem(key, message)
    return Problem(key, message, value)


def parse(
    raw: Mapping[str, Any],
    *,
    secret_keys: Iterable[str] = (),
    namespace: str = PROJECT,
) -> StackConfig:
    """Validate raw config. Keys may be bare (`hubFlavor`) or namespaced (`project:hubFlavor`);
    keys of other namespaces (provider config such as `openstack:*`) are ignored."""
    values: dict[str, Any] = {}
    for full_key, value in raw.items():
        ns, _, key = full_key.rpartition(":")
        if ns in ("", namespace):
            values[key] = _decode(value)
    declared_secret = {k.rpartition(":")[2] for k in secret_keys}
    problems = [
        Problem(key, f"holds a secret and must be stored encrypted: pulumi config set --secret {key} ...")
        # An optional secret left at its empty default (Pulumi.yaml) holds nothing to protect.
        for key in sorted(
            _secret_keys(StackConfig) & {k for k, v in values.items() if v != ""} - declared_secret
        )
    ]
    # The keys of another scenario, named before the model sees them (an unknown scenario is the
    # model's to name).
    scenario = values.get("scenario")
    if isinstance(scenario, str) and scenario.strip() in SCENARIOS:
        values, foreign = foreign_keys(values, StackConfig, scenario.strip())
        problems += foreign
    try:
        cfg = StackConfig.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(problems + [_problem(e) for e in exc.errors()]) from None
    problems += check(cfg)
    if problems:
        raise ConfigError(problems)
    return cfg


def from_pulumi(namespace: str = PROJECT) -> StackConfig:
    """Read every config value of the running program, as `pulumi up` or the mocks hold it."""
    from pulumi.runtime import config as runtime_config

    raw = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    secret = set(runtime_config.get_config_secret_keys_env()) | set(runtime_config._SECRET_KEYS.get())
    return parse(raw, secret_keys=secret, namespace=namespace)
