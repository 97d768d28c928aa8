"""`make diff STACK=dev SET="hubFlavor=m3.quad"`: what a config change would do.

Plans the stack as it is and with the changes, then lists resources created, updated (with the
changed inputs), replaced (and why) and deleted. Replaced servers and anything that touches a
data-bearing volume are flagged. Exit status: 0 no data volume is replaced or deleted; 3 one
would be; 2 either configuration is invalid."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from planner.plan import PROJECT_DIR, PlanError, plan_stack
from planner.replacements import replaces

INSTANCE = "openstack:compute/instance:Instance"
VOLUME = "openstack:blockstorage/volume:Volume"
ATTACH = "openstack:compute/volumeAttach:VolumeAttach"


@dataclass
class Change:
    action: str  # create | update | replace | delete
    type: str
    name: str
    changed: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _is_data_volume(resource: dict[str, Any]) -> bool:
    return resource["type"] == VOLUME and (resource["protect"] or resource["retain_on_delete"])


def diff_plans(before: dict[str, Any], after: dict[str, Any]) -> list[Change]:
    old = {(r["type"], r["name"]): r for r in before["resources"] if r["custom"]}
    new = {(r["type"], r["name"]): r for r in after["resources"] if r["custom"]}
    changes: dict[tuple[str, str], Change] = {}
    for key in new.keys() - old.keys():
        changes[key] = Change("create", *key)
    for key in old.keys() - new.keys():
        changes[key] = Change("delete", *key)
    for key in old.keys() & new.keys():
        a, b = old[key]["inputs"], new[key]["inputs"]
        changed = {k: (a.get(k), b.get(k)) for k in a.keys() | b.keys() if a.get(k) != b.get(k)}
        if changed:
            forced = replaces(key[0], set(changed))
            change = Change("replace" if forced else "update", *key, changed=changed)
            change.reasons = [f"{k} changed" for k in sorted(forced)]
            changes[key] = change

    # A replaced resource gets a new ID: whatever takes that ID in a replace-on-change input is
    # replaced too, and the rest of its dependents are updated. Repeat until nothing moves.
    moved = True
    while moved:
        moved = False
        replaced = {name for (_, name), c in changes.items() if c.action == "replace"}
        for key, resource in new.items():
            current = changes.get(key)
            if current and current.action in ("replace", "create"):
                continue
            for input_name, sources in resource.get("data_dependencies", {}).items():
                hit = sorted(set(sources) & replaced)
                if not hit:
                    continue
                reason = f"{input_name} takes the new ID of {', '.join(hit)}"
                if replaces(key[0], {input_name}):
                    changes[key] = Change(
                        "replace", *key, changed=current.changed if current else {}, reasons=[reason]
                    )
                    moved = True
                    break
                if not current:
                    current = changes[key] = Change("update", *key, reasons=[reason])
    for (type_, name), change in changes.items():
        resource = new.get((type_, name)) or old[(type_, name)]
        if type_ == INSTANCE and change.action in ("replace", "delete"):
            change.warnings.append(
                "VM REPLACED: the server is deleted and booted again from its image and cloud-init"
            )
        if _is_data_volume(resource) and change.action != "create":
            change.warnings.append(f"DATA VOLUME {change.action.upper()}D: it holds user data")
        if type_ == ATTACH and change.action == "replace":
            change.warnings.append(
                "the volume is detached and attached to the new server; its files are kept"
            )
        if type_ == ATTACH and change.action == "delete":
            change.warnings.append("the volume is detached; it and its files are kept")
    return sorted(
        changes.values(), key=lambda c: (["create", "update", "replace", "delete"].index(c.action), c.name)
    )


def dangerous(changes: list[Change]) -> list[Change]:
    return [c for c in changes if c.type == VOLUME and c.action in ("replace", "delete")]


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    text = text.replace("\n", "⏎")
    return text if len(text) <= 60 else text[:57] + "..."


def render(changes: list[Change], settings: dict[str, Any]) -> str:
    symbol = {"create": "+", "update": "~", "replace": "+-", "delete": "-"}
    lines = [f"Changes: {', '.join(f'{k}={v}' for k, v in settings.items()) or '(none)'}", ""]
    if not changes:
        lines.append("No resource changes.")
    for c in changes:
        lines.append(f"{symbol[c.action]:>2} {c.action:8} {c.type}  {c.name}")
        for reason in c.reasons:
            lines.append(f"             because {reason}")
        for key, (a, b) in sorted(c.changed.items()):
            lines.append(f"             {key}: {_short(a)} => {_short(b)}")
        for warning in c.warnings:
            lines.append(f"             !! {warning}")
    counts = {a: sum(1 for c in changes if c.action == a) for a in ("create", "update", "replace", "delete")}
    lines += ["", ", ".join(f"{n} to {a}" for a, n in counts.items())]
    bad = dangerous(changes)
    lines.append(
        "!! DATA AT RISK: " + ", ".join(f"{c.name} ({c.action})" for c in bad)
        if bad
        else "No data volume is replaced or deleted."
    )
    return "\n".join(lines)


def parse_settings(pairs: list[str]) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"error: --set takes key=value, got {pair!r}")
        settings[key] = yaml.safe_load(value) if value else ""
    return settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make diff", description=__doc__)
    parser.add_argument("--stack", required=True)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--project-dir", type=Path, default=PROJECT_DIR)
    args = parser.parse_args(argv)
    settings = parse_settings(args.set)
    try:
        before = plan_stack(args.stack, project_dir=args.project_dir)
        after = plan_stack(args.stack, project_dir=args.project_dir, overrides=settings)
    except PlanError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    changes = diff_plans(before, after)
    print(render(changes, settings))
    if args.json:
        args.json.write_text(json.dumps([c.__dict__ for c in changes], indent=2, default=str) + "\n")
    return 3 if dangerous(changes) else 0


if __name__ == "__main__":
    sys.exit(main())
