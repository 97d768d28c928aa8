"""A stack's deployed state as `pulumi stack export` writes it, for `make diff STATE=<file>`.

Reading: the export (`{"version": 3, "deployment": {"resources": [...]}}`, one ResourceV3 per
resource: urn, custom, id, type, inputs, outputs, parent, protect, retainOnDelete, dependencies,
propertyDependencies, provider, ignoreChanges, ...) becomes the same plan form the planner
builds, so `planner.diff.diff_plans` compares it with the plan under the same change model. The
plan is then run with the stored IDs and outputs (StoredResource): what a dependent takes from
a resource that stays is what the cloud really gave it.

Writing: `make plan EXPORT=<file>` writes a plan in that format, as if it had been deployed.

Secrets. In a real export a secret is `{"4dabf18193072939515e22adb298388d":
"1b47061264138c4ac30d75fd1eb44270", "ciphertext": "..."}`, encrypted by the stack's secrets
provider, which cannot be read here. The plan's secrets are placeholders and are compared by
the SHA-256 of their value (planner.mocks.secret_digest), never shown. So:
  - the planner's own export stores that digest (`"jshubSha256"`) instead of a ciphertext;
  - an export made with `pulumi stack export --show-secrets` holds each secret's `plaintext`:
    it is hashed on reading and dropped;
  - a secret that has only its ciphertext cannot be compared: the diff lists it as such.
A stored secret output (a password, a private key) never enters the program: the plan keeps
its placeholder there."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planner.mocks import SECRET, secret_digest

SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
# Where the planner's own export keeps a secret's digest (it has no secrets provider).
DIGEST_KEY = "jshubSha256"
STACK_TYPE = "pulumi:pulumi:Stack"
MAGIC = "jshub-plan-export"


class StateError(Exception):
    """The file is not a `pulumi stack export` of a version-3 deployment."""


@dataclass
class StoredResource:
    """What the state holds for one resource: its ID, its inputs and its outputs (secret outputs
    left out: the plan keeps its placeholders for them)."""

    id: str
    inputs: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    secret_outputs: frozenset[str] = frozenset()


@dataclass
class State:
    plan: dict[str, Any]
    stored: dict[tuple[str, str], StoredResource]
    # (resource, input path) of secrets the export holds only encrypted.
    opaque: list[tuple[str, str]]
    # Resources the state holds but `pulumi up` does not act on (pending deletes, reads).
    skipped: list[str]


def _is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SECRET_SIG_KEY) == SECRET_SIG


def _digest(value: dict[str, Any]) -> str | None:
    if isinstance(value.get(DIGEST_KEY), str):
        return str(value[DIGEST_KEY])
    if isinstance(value.get("plaintext"), str):
        return secret_digest(json.loads(value["plaintext"]))
    return None


def _unseal(
    value: Any, path: str, digests: dict[str, str], secret_paths: list[str], opaque: list[str]
) -> Any:
    """The state's value with each secret replaced by "[secret]", its digest recorded."""
    if _is_secret(value):
        secret_paths.append(path)
        digest = _digest(value)
        if digest is None:
            opaque.append(path)
        else:
            digests[path] = digest
        return SECRET
    if isinstance(value, dict):
        return {
            k: _unseal(v, f"{path}.{k}".lstrip("."), digests, secret_paths, opaque) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_unseal(v, f"{path}[{i}]", digests, secret_paths, opaque) for i, v in enumerate(value)]
    return value


def _name(urn: str) -> str:
    # urn:pulumi:<stack>::<project>::<qualified type>::<name>
    return urn.rsplit("::", 1)[-1]


def _qualified_type(urn: str) -> str:
    # The types of the resource's parents and its own, joined by `$`.
    parts = urn.split("::")
    return parts[2] if len(parts) == 4 else ""


def qualified_type(plan: Mapping[str, Any], name: str) -> str:
    """The type part of the URN the engine gives resource `name` of `plan`: its parents' types
    and its own, joined by `$` (the stack itself is left out)."""
    by_name = {r["name"]: r for r in plan["resources"]}
    chain, parent = [by_name[name]["type"]], by_name[name]["parent"]
    while parent in by_name:
        chain.insert(0, by_name[parent]["type"])
        parent = by_name[parent]["parent"]
    return "$".join(chain)


def _is_default_provider(resource: Mapping[str, Any]) -> bool:
    # The engine's own providers (`default_5_5_3`): the program never registers them.
    return str(resource.get("type", "")).startswith("pulumi:providers:") and _name(
        str(resource.get("urn", ""))
    ).startswith("default")


def read_export(source: Path | Mapping[str, Any]) -> State:
    """The export at `source` (a path, or the parsed document) as a plan and stored resources."""
    try:
        document = json.loads(source.read_text()) if isinstance(source, Path) else source
    except (OSError, ValueError) as exc:
        raise StateError(f"{source}: cannot read a `pulumi stack export` file: {exc}") from None
    deployment = document.get("deployment") if isinstance(document, Mapping) else None
    if not isinstance(deployment, Mapping) or document.get("version") != 3:
        raise StateError(
            f"{source}: not a `pulumi stack export` of a version-3 deployment "
            '(expected {"version": 3, "deployment": {"resources": [...]}})'
        )
    raw = [r for r in deployment.get("resources") or [] if isinstance(r, Mapping)]
    names = {str(r.get("urn", "")): _name(str(r.get("urn", ""))) for r in raw}
    resources: list[dict[str, Any]] = []
    stored: dict[tuple[str, str], StoredResource] = {}
    opaque: list[tuple[str, str]] = []
    skipped: list[str] = []
    for r in raw:
        urn, kind = str(r.get("urn", "")), str(r.get("type", ""))
        name = _name(urn)
        if kind == STACK_TYPE or _is_default_provider(r):
            continue
        if r.get("delete") or r.get("external"):
            skipped.append(f"{name} ({'pending delete' if r.get('delete') else 'read, not managed'})")
            continue
        digests: dict[str, str] = {}
        secret_paths: list[str] = []
        hidden: list[str] = []
        inputs = _unseal(r.get("inputs") or {}, "", digests, secret_paths, hidden)
        opaque += [(name, path) for path in hidden]
        out_digests: dict[str, str] = {}
        out_paths: list[str] = []
        outputs = _unseal(r.get("outputs") or {}, "", out_digests, out_paths, [])
        secret_outputs = frozenset(p.split(".", 1)[0].split("[", 1)[0] for p in out_paths)
        stored[(kind, name)] = StoredResource(
            str(r.get("id") or ""),
            inputs,
            {k: v for k, v in outputs.items() if k not in secret_outputs},
            secret_outputs,
        )
        provider = str(r.get("provider") or "").rsplit("::", 1)[0]
        resources.append(
            {
                "type": kind,
                "name": name,
                "qualified_type": _qualified_type(urn),
                "parent": names.get(str(r.get("parent") or "")),
                "custom": bool(r.get("custom")),
                "inputs": inputs,
                "protect": bool(r.get("protect")),
                "retain_on_delete": bool(r.get("retainOnDelete")),
                # Not stored: the engine takes it from the program (a delete never needs it).
                "delete_before_replace": False,
                "depends_on": sorted({names[u] for u in r.get("dependencies") or [] if u in names}),
                "data_dependencies": {
                    key: sorted({names[u] for u in urns if u in names})
                    for key, urns in sorted((r.get("propertyDependencies") or {}).items())
                    if any(u in names for u in urns)
                },
                "secret_inputs": secret_paths,
                "secret_digests": digests,
                "id": str(r.get("id") or ""),
                "computed": {k: v for k, v in outputs.items() if inputs.get(k) != v},
                "output_secret_digests": out_digests,
                "deleted_with": names.get(str(r.get("deletedWith") or "")),
                "ignore_changes": list(r.get("ignoreChanges") or []),
                "replace_on_changes": list(r.get("replaceOnChanges") or []),
                "provider": names.get(provider),
            }
        )
    resources.sort(key=lambda r: (r["name"], r["type"]))
    return State({"resources": resources, "source": str(source)}, stored, opaque, skipped)


def _sealed(value: Any, path: str, digests: Mapping[str, str]) -> Any:
    """A plan value with each "[secret]" written as a secret that carries its digest."""
    if value == SECRET and path in digests:
        return {SECRET_SIG_KEY: SECRET_SIG, DIGEST_KEY: digests[path]}
    if isinstance(value, dict):
        return {k: _sealed(v, f"{path}.{k}".lstrip("."), digests) for k, v in value.items()}
    if isinstance(value, list):
        return [_sealed(v, f"{path}[{i}]", digests) for i, v in enumerate(value)]
    return value


def export_plan(plan: Mapping[str, Any], project: str) -> dict[str, Any]:
    """`plan` as `pulumi stack export` would write it once deployed: IDs and outputs are the
    plan's placeholders, and each secret carries the digest of its (placeholder) value."""
    stack = plan["stack"]
    by_name = {r["name"]: r for r in plan["resources"]}
    stack_urn = f"urn:pulumi:{stack}::{project}::{STACK_TYPE}::{project}-{stack}"
    urns: dict[str, str] = {}

    def urn(name: str) -> str:
        if name not in urns:
            urns[name] = f"urn:pulumi:{stack}::{project}::{qualified_type(plan, name)}::{name}"
        return urns[name]

    resources: list[dict[str, Any]] = [{"urn": stack_urn, "custom": False, "type": STACK_TYPE}]
    for r in plan["resources"]:
        inputs = _sealed(r["inputs"], "", r.get("secret_digests", {}))
        computed = _sealed(r.get("computed", {}), "", r.get("output_secret_digests", {}))
        outputs = {**inputs, **computed}
        entry: dict[str, Any] = {
            "urn": urn(r["name"]),
            "custom": r["custom"],
            "type": r["type"],
            "inputs": inputs,
            "outputs": outputs,
            "parent": urn(r["parent"]) if r["parent"] in by_name else stack_urn,
            "dependencies": [urn(n) for n in r["depends_on"] if n in by_name],
            "propertyDependencies": {
                key: [urn(n) for n in names if n in by_name] for key, names in r["data_dependencies"].items()
            },
        }
        if r["custom"]:
            entry["id"] = r.get("id", "")
        if r.get("provider") in by_name:
            provider = by_name[r["provider"]]
            entry["provider"] = f"{urn(provider['name'])}::{provider.get('id', '')}"
        for key, option in (
            ("protect", "protect"),
            ("retainOnDelete", "retain_on_delete"),
            ("ignoreChanges", "ignore_changes"),
            ("replaceOnChanges", "replace_on_changes"),
        ):
            if r.get(option):
                entry[key] = r[option]
        if r.get("deleted_with") in by_name:
            entry["deletedWith"] = urn(r["deleted_with"])
        resources.append(entry)
    return {
        "version": 3,
        "deployment": {
            "manifest": {"time": "1970-01-01T00:00:00Z", "magic": MAGIC, "version": "planner"},
            "secrets_providers": {"type": "none"},
            "resources": resources,
        },
    }
