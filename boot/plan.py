"""What a VM role boots with, read from the files `make plan` writes (plan/<stack>/).

A role is an `openstack:compute/instance:Instance` of the plan: its user data is
plan/<stack>/<instance>/cloud-init.yaml, byte for byte; its data volumes are the
VolumeAttach resources that depend on it (their `volumeId`, the placeholder the rendered
volume script looks for); its remote steps are the stack's `command:remote:Command`s that
depend on it, in the order `pulumi up` would run them (dependencies first).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The plan's placeholders (IDs, addresses) come from the planner's mocks: the same functions
# give the same values.
from planner.mocks import _placeholder_ip, placeholder_id

REPO = Path(__file__).resolve().parent.parent
INSTANCE = "openstack:compute/instance:Instance"
VOLUME_ATTACH = "openstack:compute/volumeAttach:VolumeAttach"
REMOTE_COMMAND = "command:remote:Command"
PORT = "openstack:networking/port:Port"
SECRET = "[secret]"


class PlanError(RuntimeError):
    pass


@dataclass(frozen=True)
class RemoteStep:
    """A remote command as the plan records it. `stdin_is_secret`: at deploy time Pulumi feeds
    it a secret (an env file, a key), which the caller must supply."""

    name: str
    script: str
    stdin_is_secret: bool
    depends_on: tuple[str, ...]


@dataclass(frozen=True)
class Role:
    stack: str
    instance: str
    user_data: str
    volume_ids: tuple[str, ...]
    remote_steps: tuple[RemoteStep, ...]
    flavor: str
    private_address: str | None  # the planned address of its port (a placeholder of the plan)
    url: str | None = None  # the stack's `url` output: the hub's public name

    def step(self, name: str) -> RemoteStep:
        """The remote step called `name`, or the one step whose name ends with `-<name>`."""
        exact = [s for s in self.remote_steps if s.name == name]
        found = exact or [s for s in self.remote_steps if s.name.endswith(f"-{name}")]
        if len(found) != 1:
            names = [s.name for s in self.remote_steps]
            raise KeyError(f"{self.instance}: {len(found)} remote steps match {name!r} among {names}")
        return found[0]


def ensure_plan(stack: str, out: Path, stack_file: Path | None = None, fresh: bool = False) -> dict[str, Any]:
    """`out`/plan.json, running the planner (`make plan`) into `out` first when it is missing
    (or always, `fresh`); `stack_file` in place of Pulumi.<stack>.yaml."""
    path = out / "plan.json"
    if fresh or not path.exists():
        extra = ["--stack-file", str(stack_file)] if stack_file else []
        subprocess.run(
            [sys.executable, "-m", "planner", "--stack", stack, "--out", str(out), *extra],
            cwd=REPO,
            check=True,
            capture_output=True,
        )
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def instances(plan: dict[str, Any]) -> list[str]:
    return [r["name"] for r in plan["resources"] if r["type"] == INSTANCE]


def _ordered(steps: list[RemoteStep]) -> list[RemoteStep]:
    names = {s.name for s in steps}
    done: list[RemoteStep] = []
    pending = list(steps)
    while pending:
        ready = [
            s for s in pending if all(d not in names or d in {x.name for x in done} for d in s.depends_on)
        ]
        if not ready:  # a cycle cannot come from Pulumi; keep the plan's order if it did
            ready = pending[:1]
        done.append(ready[0])
        pending.remove(ready[0])
    return done


def load_role(
    stack: str,
    instance: str | None = None,
    out: Path | None = None,
    stack_file: Path | None = None,
    fresh: bool = False,
) -> Role:
    """The role `instance` (default: the stack's first VM) from the plan in `out` (default
    plan/<stack>, as `make plan` writes it), planned first if missing (always, `fresh`)."""
    out = out or REPO / "plan" / stack
    plan = ensure_plan(stack, out, stack_file, fresh)
    names = instances(plan)
    if not names:
        raise PlanError(f"stack {stack} has no VM (scenario {plan.get('scenario')})")
    instance = instance or names[0]
    if instance not in names:
        raise PlanError(f"ROLE={instance} is not a VM of stack {stack}; its VMs: {', '.join(names)}")
    user_data_path = out / instance / "cloud-init.yaml"
    if not user_data_path.exists():
        raise PlanError(f"{user_data_path} is missing: run `make plan STACK={stack}`")
    resource = next(r for r in plan["resources"] if r["name"] == instance)
    volume_ids = tuple(
        r["inputs"]["volumeId"]
        for r in plan["resources"]
        if r["type"] == VOLUME_ATTACH and instance in r["depends_on"]
    )
    steps = [
        RemoteStep(
            name=r["name"],
            script=r["inputs"]["create"],
            stdin_is_secret=r["inputs"].get("stdin") == SECRET,
            depends_on=tuple(r["depends_on"]),
        )
        for r in plan["resources"]
        if r["type"] == REMOTE_COMMAND and instance in r["depends_on"] and "create" in r["inputs"]
    ]
    # The VM's own port: the one its `networks` name (a worker also depends on the manager's
    # port, for the address its user data is written with).
    own = {n.get("port") for n in resource["inputs"].get("networks", [])}
    ports = [
        r["name"]
        for r in plan["resources"]
        if r["type"] == PORT
        and r["name"] in resource["depends_on"]
        and placeholder_id(PORT, r["name"]) in own
    ]
    return Role(
        stack=stack,
        instance=instance,
        user_data=user_data_path.read_text(),
        volume_ids=volume_ids,
        remote_steps=tuple(_ordered(steps)),
        flavor=str(resource["inputs"].get("flavorName", "")),
        private_address=planned_address(ports[0]) if ports else None,
        url=plan.get("outputs", {}).get("url"),
    )


def planned_address(port: str) -> str:
    """The fixed IP the planner's mocks give a port: what the rendered scripts (exports, swarm
    advertise address) were written for."""
    return _placeholder_ip("10.0.0", port)
