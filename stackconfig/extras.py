"""The escape hatches, checked: `hubExtraConfig` (JupyterHub settings the stack does not model)
against the hub's own classes and traits, and `k8s.helmValues` against the Zero to JupyterHub
chart's values schema. Neither may set what the stack owns."""

from __future__ import annotations

import copy
import difflib
import functools
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from stackconfig import hub_traits
from stackconfig.errors import Problem
from stackconfig.model import StackConfig

# The chart's values schema and defaults, verbatim from the chart the stack installs
# (renderers/z2jh.py CHART_VERSION); tests/test_hub_options.py holds them equal to the tests'
# copy in tests/fixtures/upstream/z2jh, whose README says where they come from.
Z2JH_DIR = Path(__file__).resolve().parent / "upstream" / "z2jh"

# Where the stack runs each class: a class of another scenario or login does nothing there.
_CLASS_SCENARIOS: dict[str, tuple[str, ...]] = {
    "LocalProcessSpawner": ("single",),
    "SystemdSpawner": ("single",),
    "SlurmSpawner": ("hpc",),
    "LocalAuthenticator": ("single",),
    "Proxy": ("single", "hpc", "swarm"),
    "ConfigurableHTTPProxy": ("single", "hpc", "swarm"),
}
_CLASS_LOGINS: dict[str, tuple[str, ...]] = {
    "SharedPasswordAuthenticator": ("shared-password",),
    "NativeAuthenticator": ("native",),
    "OAuthenticator": ("github", "cilogon"),
    "GitHubOAuthenticator": ("github",),
    "CILogonOAuthenticator": ("cilogon",),
}

# What the stack owns in the chart's values, by path; the value says why or what to set.
HELM_OWNED: dict[str, str] = {
    "hub.config": "set hubExtraConfig (checked against JupyterHub's traits)",
    "hub.extraConfig": "Python the stack cannot check, which could override its services and secrets; "
    "set hubExtraConfig",
    "hub.extraFiles.jshub-settings": "the stack's hub module",
    "hub.extraFiles.jshub-kube": "the stack's hub module",
    "hub.services.jshub-admin": "the stack's admin service",
    "hub.services.jshub-metrics": "the stack's metrics service (monitoring)",
    "hub.services.grafana": "the stack's Grafana service (monitoring)",
    "hub.loadRoles.jshub-admin": "the stack's admin service's role",
    "hub.loadRoles.jshub-metrics": "the stack's metrics service's role",
    "hub.loadRoles.user": "set sharing",
    "hub.cookieSecret": "a secret the chart makes",
    "hub.existingSecret": "the stack's secrets are in its own Secrets",
    "hub.allowNamedServers": "set namedServersPerUser",
    "hub.namedServerLimitPerUser": "set namedServersPerUser",
    "proxy.secretToken": "the proxy token is a secret the chart makes",
    "cull": "set idleTimeoutMinutes, maxServerAgeHours and cullIdleUsers",
}
# The hub's environment variables that carry the stack's secrets (hub.extraEnv).
SECRET_ENV = (
    "JSHUB_ADMIN_TOKEN",
    "OAUTH_CLIENT_SECRET",
    "WORKSHOP_PASSWORD",
    "WORKSHOP_ADMIN_PASSWORD",
    "JSHUB_METRICS_TOKEN",
    "JSHUB_GRAFANA_TOKEN",
)


def deep_merge(base: Any, override: Any) -> Any:
    """Helm's merge of values over values: maps merge, everything else replaces."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = copy.deepcopy(base)
        for key, value in override.items():
            out[key] = deep_merge(out[key], value) if key in out else copy.deepcopy(value)
        return out
    return copy.deepcopy(override)


def _close(word: str, known: list[str]) -> str:
    match = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    return f"did you mean {match[0]!r}? " if match else ""


def _markers(value: Any) -> bool:
    if isinstance(value, list):
        return any(_markers(item) for item in value)
    if isinstance(value, dict):
        return any(str(k).startswith("$") for k in value) or any(_markers(v) for v in value.values())
    return False


def hub_extra_config_problems(cfg: StackConfig) -> list[Problem]:
    catalog = hub_traits.catalog()
    problems: list[Problem] = []
    for cls, traits in cfg.hub_extra_config.items():
        key = f"hubExtraConfig.{cls}"
        if cls not in catalog:
            problems.append(
                Problem(
                    key,
                    f"not a class the stack's hubs configure; {_close(cls, list(catalog))}"
                    f"known: {', '.join(sorted(catalog))} (k8s servers: k8s.helmValues singleuser)",
                )
            )
            continue
        scenarios = _CLASS_SCENARIOS.get(cls)
        if scenarios and cfg.scenario not in scenarios:
            problems.append(
                Problem(key, f"scenario {cfg.scenario} does not run {cls} (only {', '.join(scenarios)})")
            )
            continue
        logins = _CLASS_LOGINS.get(cls)
        if logins and cfg.auth.type not in logins:
            problems.append(
                Problem(key, f"auth.type {cfg.auth.type} does not use {cls} (only {', '.join(logins)})")
            )
            continue
        known = catalog[cls]["traits"]
        for trait, value in traits.items():
            here = f"{key}.{trait}"
            if trait not in known:
                problems.append(
                    Problem(
                        here,
                        f"not a configurable trait of {cls}; {_close(trait, list(known))}"
                        f"see `jupyterhub --help-all` for {cls}'s traits",
                    )
                )
            elif (why := hub_traits.owner(cls, trait)) is not None:
                problems.append(Problem(here, f"owned by the stack: {why}"))
            elif _markers(value):
                problems.append(
                    Problem(
                        here,
                        "keys starting with '$' are the stack's settings markers (they read the "
                        "hub's secrets): write plain values",
                    )
                )
    return problems


@functools.cache
def z2jh_schema() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((Z2JH_DIR / "values.schema.yaml").read_text())
    return loaded


@functools.cache
def z2jh_defaults() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((Z2JH_DIR / "values.yaml").read_text())
    return loaded


def _paths(value: Any, prefix: str = "") -> list[str]:
    """Every path of `value`, maps walked: `hub`, `hub.config`, `hub.config.JupyterHub`, ..."""
    if not isinstance(value, dict):
        return []
    found = []
    for key, item in value.items():
        here = f"{prefix}{key}"
        found += [here, *_paths(item, here + ".")]
    return found


def _owned(values: dict[str, Any]) -> list[Problem]:
    problems = [
        Problem(f"k8s.helmValues.{path}", f"owned by the stack: {HELM_OWNED[path]}")
        for path in _paths(values)
        if path in HELM_OWNED
    ]
    env = values.get("hub", {}).get("extraEnv") if isinstance(values.get("hub"), dict) else None
    names = list(env) if isinstance(env, dict) else [e.get("name") for e in env or [] if isinstance(e, dict)]
    problems += [
        Problem(
            f"k8s.helmValues.hub.extraEnv.{name}", "owned by the stack: it carries one of the stack's secrets"
        )
        for name in names
        if name in SECRET_ENV
    ]
    return problems


def _schema_problems(values: dict[str, Any]) -> list[Problem]:
    # As Helm does: the chart's defaults with the values merged over them, against its schema.
    merged = deep_merge(z2jh_defaults(), values)
    problems: list[Problem] = []
    validator = jsonschema.Draft7Validator(z2jh_schema())
    for error in sorted(validator.iter_errors(merged), key=lambda e: list(map(str, e.absolute_path))):
        path = ".".join(map(str, error.absolute_path))
        key = f"k8s.helmValues.{path}".rstrip(".")
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            allowed = sorted(error.schema.get("properties", {}))
            for extra in sorted(set(error.instance) - set(allowed)):
                problems.append(
                    Problem(
                        f"{key}.{extra}",
                        f"not a key of the Zero to JupyterHub chart's values here; {_close(extra, allowed)}"
                        f"known keys: {', '.join(allowed)}",
                    )
                )
        elif isinstance(error.instance, (dict, list)):
            problems.append(Problem(key, f"the chart's values schema refuses it: {error.message}"))
        else:
            message = f"the chart's values schema refuses it: {error.message}"
            problems.append(Problem(key, message, error.instance))
    return problems


def helm_values_problems(cfg: StackConfig) -> list[Problem]:
    if cfg.scenario != "k8s" or cfg.k8s is None or not cfg.k8s.helm_values:
        return []
    values = cfg.k8s.helm_values
    return _owned(values) or _schema_problems(values)
