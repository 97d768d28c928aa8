"""Turn a recording into the plan: JSON contract, a readable tree, cost, rendered files."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from planner import stackfile
from planner.harness import Recording
from planner.mocks import SECRET, UNKNOWN

ABSENT = object()

PLACEHOLDER_NOTE = (
    "IDs, IP addresses, keys and tokens in this plan are placeholders from offline mocks; "
    "the cloud assigns the real ones at `pulumi up`."
)
INSTANCE = "openstack:compute/instance:Instance"
REMOTE_COMMAND = "command:remote:Command"


def build_plan(stack: str, scenario: str, recording: Recording) -> dict[str, Any]:
    by_urn = {r.urn: r for r in recording.registrations}
    resources = []
    # Registration order depends on when asynchronous inputs resolve; sort for stable plans.
    for r in sorted(recording.registrations, key=lambda r: (r.name, r.type)):
        parent = by_urn.get(r.parent_urn)
        resources.append(
            {
                "type": r.type,
                "name": r.name,
                "parent": parent.name if parent else None,
                "custom": r.custom,
                "inputs": r.inputs,
                "protect": r.protect,
                "retain_on_delete": r.retain_on_delete,
                "delete_before_replace": r.delete_before_replace,
                "depends_on": sorted({by_urn[u].name for u in r.dependency_urns if u in by_urn}),
                "data_dependencies": {
                    key: sorted({by_urn[u].name for u in urns if u in by_urn})
                    for key, urns in sorted(r.property_dependency_urns.items())
                    if any(u in by_urn for u in urns)
                },
                "secret_inputs": r.secret_inputs,
                # SHA-256 of each secret input's value (the plan's placeholders): `make diff
                # --state` compares secrets by these, and never shows them.
                "secret_digests": r.secret_digests,
                "id": r.id,
                "aliased": r.aliased,
                # What the provider adds to the inputs (an address, the booted image's ID).
                "computed": {k: v for k, v in r.outputs.items() if r.inputs.get(k, ABSENT) != v},
                "output_secret_digests": r.output_secret_digests,
                "deleted_with": by_urn[r.deleted_with_urn].name if r.deleted_with_urn in by_urn else None,
                "ignore_changes": r.ignore_changes,
                "replace_on_changes": r.replace_on_changes,
                "provider": by_urn[r.provider_urn].name if r.provider_urn in by_urn else None,
            }
        )
    return {
        "stack": stack,
        "scenario": scenario,
        "note": PLACEHOLDER_NOTE,
        "resources": resources,
        "invokes": recording.invokes,
        "outputs": recording.outputs,
    }


def tree(plan: dict[str, Any]) -> str:
    children: dict[str | None, list[dict[str, Any]]] = {}
    for r in plan["resources"]:
        children.setdefault(r["parent"], []).append(r)
    lines: list[str] = []

    def walk(parent: str | None, depth: int) -> None:
        for r in children.get(parent, []):
            flags = [
                f
                for f, on in (("protected", r["protect"]), ("retained on delete", r["retain_on_delete"]))
                if on
            ]
            extra = f"  [{', '.join(flags)}]" if flags else ""
            lines.append(f"{'  ' * depth}+ {r['type']}  {r['name']}{extra}")
            walk(r["name"], depth + 1)

    walk(None, 0)
    return "\n".join(lines)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def write_artifacts(plan: dict[str, Any], out_dir: Path) -> list[Path]:
    """Every file the plan would put on a machine: each VM's user data, the files it writes,
    and the scripts remote commands run."""
    written: list[Path] = []

    def write(path: Path, text: str, mode: int = 0o644) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(mode)
        written.append(path)

    for r in plan["resources"]:
        folder = out_dir / _safe(r["name"])
        user_data = r["inputs"].get("userData") if r["type"] == INSTANCE else None
        if isinstance(user_data, str) and user_data not in (SECRET, UNKNOWN):
            write(folder / "cloud-init.yaml", user_data)
            for item in (stackfile.load_yaml(user_data) or {}).get("write_files", []):
                mode = int(str(item.get("permissions", "0644")), 8)
                write(folder / "files" / item["path"].lstrip("/"), item.get("content", ""), mode)
        if r["type"] == REMOTE_COMMAND:
            for phase in ("create", "update", "delete"):
                script = r["inputs"].get(phase)
                if isinstance(script, str) and script not in (SECRET, UNKNOWN):
                    write(folder / f"{phase}.sh", script, 0o755)
    return written
