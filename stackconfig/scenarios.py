"""Which scenarios read a key: declared on the key itself, and checked before the model is built.

A field without a declaration belongs to every scenario. A field that only some scenarios read
carries `json_schema_extra=only("single", "hpc", swarm="...")`: the scenarios that read it and,
for another scenario, what that scenario offers instead; `needed=` makes the key required in
its scenarios, with the message that says how to give it. Sections (`monitoring`, ...) declare
their own keys the same way.

`foreign_keys` refuses a key of another scenario by name, with its value and the keys that
scenario reads; `Pulumi.yaml` names each key's scenarios (stackconfig/document.py). Because
Pulumi hands every declared key to the program with its `Pulumi.yaml` default, that default is
"unset" ("" or {}) for a key of some scenarios only, and an unset key is never refused."""

from __future__ import annotations

import typing
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from stackconfig.errors import Problem

SCENARIOS: tuple[str, ...] = ("single", "hpc", "swarm", "k8s")


def only(*scenarios: str, needed: str | None = None, **instead: str) -> dict[str, Any]:
    """The `json_schema_extra` of a key read only by `scenarios`; `instead[s]` tells a user of
    scenario `s` what to set there; `needed` is the message when one of them lacks the key."""
    unknown = (set(scenarios) | set(instead)) - set(SCENARIOS)
    if unknown or not scenarios or set(scenarios) & set(instead):
        raise ValueError(f"only({scenarios}, {sorted(instead)}): name scenarios of {SCENARIOS}, each once")
    extra: dict[str, Any] = {"scenarios": list(scenarios)}
    if instead:
        extra["instead"] = dict(instead)
    if needed:
        extra["needed"] = needed
    return extra


def _extra(field: FieldInfo) -> dict[str, Any]:
    return field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}


def scenarios_of(field: FieldInfo) -> tuple[str, ...]:
    """The scenarios that read a field, in SCENARIOS order."""
    declared = _extra(field).get("scenarios")
    if not isinstance(declared, list):
        return SCENARIOS
    return tuple(s for s in SCENARIOS if s in declared)


def is_scoped(field: FieldInfo) -> bool:
    """Whether some scenario does not read the field."""
    return scenarios_of(field) != SCENARIOS


def keys_of(model: type[BaseModel], scenario: str) -> list[str]:
    """The keys of `model` that `scenario` reads, sorted."""
    return sorted(f.alias or n for n, f in model.model_fields.items() if scenario in scenarios_of(f))


def unset(value: Any) -> bool:
    """A value that stands for "not set": Pulumi.yaml's default of an optional key."""
    return value is None or (isinstance(value, (str, dict)) and not value)


def words(names: tuple[str, ...] | list[str]) -> str:
    """`single`, `single and hpc`, `single, hpc and swarm`."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def section_model(field: FieldInfo) -> type[BaseModel] | None:
    """The model of a section field (`Section` or `Section | None`), or None."""
    annotation = field.annotation
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _shown(value: Any, field: FieldInfo) -> bool:
    # Never echo a secret; a section or a multi-line text (a PEM) says nothing useful in one line.
    if _extra(field).get("secret") or isinstance(value, dict):
        return False
    return not (isinstance(value, str) and "\n" in value)


def _refusal(key: str, value: Any, field: FieldInfo, scenario: str, where: str, keys: list[str]) -> Problem:
    scenarios = scenarios_of(field)
    instead = _extra(field).get("instead", {}).get(scenario)
    if instead is None:
        instead = f"remove it, or set scenario: {scenarios[0]}" if len(scenarios) == 1 else "remove it"
    message = (
        f"not a key of scenario {scenario}, only of {words(scenarios)} ({instead}); "
        f"keys of {where}: {', '.join(keys)}"
    )
    return Problem(key, message, value) if _shown(value, field) else Problem(key, message)


def foreign_keys(
    values: Mapping[str, Any], model: type[BaseModel], scenario: str, prefix: str = ""
) -> tuple[dict[str, Any], list[Problem]]:
    """`values` without the keys `scenario` does not read (sections included), and a problem
    for each of those that was set or for a key the scenario needs and lacks. Keys the model
    does not know are kept for the model to name."""
    fields: dict[str, FieldInfo] = dict(model.model_fields)
    fields.update({f.alias: f for f in model.model_fields.values() if f.alias})
    where = f"{prefix.rstrip('.')} on scenario {scenario}" if prefix else f"scenario {scenario}"
    kept: dict[str, Any] = {}
    problems: list[Problem] = []
    for key, value in values.items():
        field = fields.get(key)
        if field is None:
            kept[key] = value
            continue
        if scenario not in scenarios_of(field):
            if not unset(value):
                problems.append(
                    _refusal(prefix + key, value, field, scenario, where, keys_of(model, scenario))
                )
            continue
        section = section_model(field)
        if section is not None and isinstance(value, dict):
            value, found = foreign_keys(value, section, scenario, f"{prefix}{key}.")
            problems += found
        kept[key] = value
    for name, field in model.model_fields.items():
        key = field.alias or name
        needed = _extra(field).get("needed")
        if needed and scenario in scenarios_of(field) and unset(values.get(key, values.get(name))):
            problems.append(Problem(prefix + key, needed))
    return kept, problems
