"""What this stack already holds: read at construction time from the stack's own last
checkpoint, so a component can tell a member that exists (changed on day 2, one at a time) from
one that does not yet (created on day 1, all at once).

The engine's builtin provider serves the invoke `pulumi:pulumi:readStackResourceOutputs` (the
backend's GetStackResourceOutputs): for `{"stackName": "<org>/<project>/<stack>"}` it returns
`{"name": ..., "outputs": {<urn>: {"type": <type>, "outputs": {...}}, ...}}`, one entry per
resource of the stack's last checkpoint (none for a new stack)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pulumi
from pulumi.runtime import invoke

from components.vm import INSTANCE_TYPE, SERVER_SUFFIX

READ_TOKEN = "pulumi:pulumi:readStackResourceOutputs"

# (type token, resource name)
DeployedResource = tuple[str, str]


def stack_name() -> str:
    return f"{pulumi.get_organization()}/{pulumi.get_project()}/{pulumi.get_stack()}"


def _name(urn: str) -> str:
    # urn:pulumi:<stack>::<project>::<qualified type>::<name>
    return urn.rsplit("::", 1)[-1]


def parse_resources(result: Mapping[str, Any] | None) -> frozenset[DeployedResource] | None:
    """The (type, name) of every resource in the invoke's result; None when it does not have the
    shape the engine gives (then nothing can be told about the stack)."""
    if not isinstance(result, Mapping) or not isinstance(result.get("outputs"), Mapping):
        return None
    found = set()
    for urn, entry in result["outputs"].items():
        if (
            not isinstance(urn, str)
            or not isinstance(entry, Mapping)
            or not isinstance(entry.get("type"), str)
        ):
            return None
        found.add((entry["type"], _name(urn)))
    return frozenset(found)


def existing_resources() -> frozenset[DeployedResource] | None:
    """The (type, name) of every resource this stack's last checkpoint holds (empty for a stack
    never deployed), or None with a warning when the read fails: callers then treat every member
    as existing, which keeps day-2 changes one at a time and only costs day 1 its speed."""
    name = stack_name()
    try:
        result = invoke(READ_TOKEN, {"stackName": name})
    except Exception as exc:  # any failure of the read falls back the same way
        reason = str(exc)
    else:
        parsed = parse_resources(result.value) if result.is_known else None
        if parsed is not None:
            return parsed
        reason = "the engine's answer holds no resource list"
    pulumi.log.warn(
        f"could not read which resources stack {name} already holds ({reason}): every cluster "
        "member is treated as existing, so new members are created one after another"
    )
    return None


def existing_vms(resources: Iterable[DeployedResource] | None) -> frozenset[str] | None:
    """The names of the JetstreamVMs whose server exists (None: not known)."""
    if resources is None:
        return None
    return frozenset(
        name.removesuffix(SERVER_SUFFIX)
        for kind, name in resources
        if kind == INSTANCE_TYPE and name.endswith(SERVER_SUFFIX)
    )
