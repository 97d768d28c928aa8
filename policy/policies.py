"""The pack's `ResourceValidationPolicy` objects: thin adapters from the policy engine's
`ResourceValidationArgs` to the pure rules in `policy.rules`.

This module never constructs `PolicyPack` (that starts a gRPC server and blocks forever), so
tests import it and call each policy's `validate` directly; `policy/__main__.py` builds the pack.

What the engine does and does not tell a policy pack (pulumi_policy 1.21.0):
- inputs arrive with secrets already decrypted and unmarked (pulumi/pulumi-policy#241), so the
  pack counts an input as secret when its top-level name is in the resource's
  `additionalSecretOutputs`; generated SDKs list every schema-secret input there (e.g.
  `adminPass`, `connection`, a Kubernetes Secret's `data`), and a program that passes its own
  secret input lists it there too. The offline planner sees real secret markers and is exact.
- `retainOnDelete` is not sent to packs, so in the pack a data volume must be `protect`ed
  (the program sets both).
- values not known until deploy time are sentinels; they become `rules.UNKNOWN` and rules skip
  them. The engine runs the pack again at `pulumi up`, with the values known."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Secret,
)
from pulumi_policy.proxy import (
    UNKNOWN_ARCHIVE_VALUE,
    UNKNOWN_ARRAY_VALUE,
    UNKNOWN_ASSET_VALUE,
    UNKNOWN_BOOLEAN_VALUE,
    UNKNOWN_NUMBER_VALUE,
    UNKNOWN_OBJECT_VALUE,
    UNKNOWN_STRING_VALUE,
)

from policy.rules import RULES, SECRET, UNKNOWN, ResourceMeta, RuleSpec

PACK_NAME = "jupyterhub-jetstream"
ALLOW_WORLD_SSH_KEY = "allowSshFromAnywhere"

_UNKNOWNS = frozenset(
    {
        UNKNOWN_ARCHIVE_VALUE,
        UNKNOWN_ARRAY_VALUE,
        UNKNOWN_ASSET_VALUE,
        UNKNOWN_BOOLEAN_VALUE,
        UNKNOWN_NUMBER_VALUE,
        UNKNOWN_OBJECT_VALUE,
        UNKNOWN_STRING_VALUE,
    }
)


def plain(value: Any) -> Any:
    """Plain dicts and lists from the engine's props, read through pulumi_policy's proxies
    (whose item access raises on unknown values) with unknowns and secrets as markers."""
    if isinstance(value, Secret):
        return SECRET
    if isinstance(value, str):
        return UNKNOWN if value in _UNKNOWNS else value
    if isinstance(value, Mapping):
        target = _target(value)
        return {str(k): plain(v) for k, v in target.items()}
    if isinstance(value, Sequence) and not isinstance(value, bytes):
        target = _target(value)
        return [plain(v) for v in target]
    return value


def _target(proxy: Any) -> Any:
    # pulumi_policy's proxies hand out their unchecked contents under this key.
    try:
        return proxy["__target"]
    except (KeyError, TypeError, IndexError):
        return proxy


def meta_from_args(args: ResourceValidationArgs) -> ResourceMeta:
    config = args.get_config() or {}
    return ResourceMeta(
        name=args.name,
        protect=bool(args.opts.protect),
        retain_on_delete=False,  # not sent to policy packs
        secret_paths=frozenset(args.opts.additional_secret_outputs or ()),
        allow_world_ssh=bool(config.get(ALLOW_WORLD_SSH_KEY, False)),
    )


def _validate(spec: RuleSpec) -> Any:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        props = plain(args.props)
        for message in spec.check(args.resource_type, props, meta_from_args(args)):
            report_violation(f"{args.name}: {message}", None)

    validate.__name__ = f"validate_{spec.name.replace('-', '_')}"
    return validate


SSH_CONFIG = PolicyConfigSchema(
    properties={
        ALLOW_WORLD_SSH_KEY: {
            "type": "boolean",
            "default": False,
            "description": "The stack's allowSshFromAnywhere: permit port 22 from 0.0.0.0/0 and ::/0.",
        }
    }
)


def _policy(spec: RuleSpec) -> ResourceValidationPolicy:
    return ResourceValidationPolicy(
        name=spec.name,
        description=spec.description,
        validate=_validate(spec),
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=SSH_CONFIG if spec.name == "security-group-ingress" else None,
    )


POLICIES: list[ResourceValidationPolicy] = [_policy(spec) for spec in RULES]
BY_NAME: dict[str, ResourceValidationPolicy] = {p.name: p for p in POLICIES}
