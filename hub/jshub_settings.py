"""The hub's settings as data: `{Class: {trait: value}}`, written by the stack as JSON beside the
static jupyterhub_config.py (VM and swarm hubs) or into the chart's `hub.config` (k8s), and put
into JupyterHub's config here, as TLJH's `configurer.apply_config` and Z2JH's `get_config` do.

The stack writes plain JSON. What JSON cannot say, a value says with a marker this module
resolves when the hub starts:

- `{"$env": NAME}`: the environment variable NAME (the hub does not start without it); with
  `"default": D`, D when NAME is unset or empty. Secrets reach the hub only so: the settings
  name them, the environment file (or the container's secrets) holds them.
- `{"$import": "module.name"}`: an object of a hub module (a hook function).
- `{"$call": "module.name", "kwargs": {...}}`: what that factory returns for those arguments
  (a hook with its parameters).
- `{"$sys": "executable"}`: the interpreter the hub runs on.
- a list item `{"$if_env": NAME, "value": V}`: V when NAME is set and not empty, else nothing.

Class traits that take an import string (`JupyterHub.authenticator_class`) stay strings:
JupyterHub imports them itself.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

Settings = dict[str, dict[str, Any]]

_MARKERS = frozenset({"$env", "$import", "$call", "$sys"})


def import_object(name: str) -> Any:
    """`module.attr` (the module importable from the hub's sys.path)."""
    module, _, attr = name.rpartition(".")
    if not module:
        raise ValueError(f"not a dotted name: {name!r}")
    return getattr(importlib.import_module(module), attr)


def resolve(value: Any, environ: Mapping[str, str] | None = None) -> Any:
    """`value` with every marker replaced by what it stands for."""
    env = os.environ if environ is None else environ
    if isinstance(value, list):
        items = []
        for item in value:
            if isinstance(item, dict) and "$if_env" in item:
                if not env.get(item["$if_env"]):
                    continue
                item = item["value"]
            items.append(resolve(item, env))
        return items
    if not isinstance(value, dict):
        return value
    marker = [key for key in value if key.startswith("$")]
    if not marker:
        return {key: resolve(item, env) for key, item in value.items()}
    if len(marker) != 1 or marker[0] not in _MARKERS:
        raise ValueError(f"unknown settings marker {marker} in {value!r}")
    if "$env" in value:
        if "default" in value:
            return env.get(value["$env"]) or value["default"]
        try:
            return env[value["$env"]]
        except KeyError:
            raise KeyError(f"the hub's environment has no {value['$env']}") from None
    if "$import" in value:
        return import_object(value["$import"])
    if "$call" in value:
        return import_object(value["$call"])(**resolve(value.get("kwargs", {}), env))
    if value["$sys"] != "executable":
        raise ValueError(f"unknown $sys value in {value!r}")
    return sys.executable


def has_marker(value: Any) -> bool:
    if isinstance(value, list):
        return any(has_marker(item) for item in value)
    if isinstance(value, dict):
        return any(key.startswith("$") for key in value) or any(has_marker(v) for v in value.values())
    return False


def apply_settings(
    c: Any, settings: Mapping[str, Mapping[str, Any]], environ: Mapping[str, str] | None = None
) -> None:
    """Set each `c.<Class>.<trait>` of `settings`, markers resolved."""
    for cls, traits in settings.items():
        section = c[cls]
        for trait, value in traits.items():
            section[trait] = resolve(value, environ)


def load_settings(path: str | Path) -> Settings:
    settings = json.loads(Path(path).read_text())
    if not isinstance(settings, dict) or not all(isinstance(v, dict) for v in settings.values()):
        raise ValueError(f"{path}: expected {{Class: {{trait: value}}}}")
    return settings


def resolve_config(c: Any, environ: Mapping[str, str] | None = None) -> None:
    """Resolve the markers already in `c` (k8s: the chart put `hub.config` there as it is)."""
    for cls in list(c.keys()):
        section = c[cls]
        if not hasattr(section, "keys"):
            continue
        for trait in list(section.keys()):
            if has_marker(section[trait]):
                section[trait] = resolve(section[trait], environ)


def service_tokens_from_env(
    c: Any, tokens: Mapping[str, str], environ: Mapping[str, str] | None = None
) -> None:
    """Give each of `c.JupyterHub.services` named in `tokens` the API token from that environment
    variable (k8s: the chart defines the services, the stack's Secret holds their tokens)."""
    env = os.environ if environ is None else environ
    for service in c.JupyterHub.services:
        if service["name"] in tokens:
            service["api_token"] = env[tokens[service["name"]]]
