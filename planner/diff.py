"""`make diff STACK=dev SET="hubFlavor=m3.quad" [STATE=state.json]`: what a change would do.

Plans the stack as deployed (as a stack that already holds what its first `pulumi up` creates),
or reads it from STATE, a `pulumi stack export` of the deployed stack (planner/state.py: drift
after a refresh, stale ignored inputs and secrets by digest then show), and plans it with the
changes on top of it, then says for every resource what `pulumi up` would do, with
the provider's own words for why (planner/change_model.json, read from the pinned SDKs):

  create   a new resource
  update   changed in place (a remote command runs again)
  resize   same server, new flavor: it reboots; disks and ID are kept
  rebuild  same server, root disk re-imaged: everything on it that is not on a data volume is
           lost and cloud-init runs again; the ID is kept, so nothing triggered on it runs again
  replace  a new resource with a new ID (before or after the old one is deleted)
  delete   gone (a retained resource is left in the allocation, unmanaged)

It honours `ignore_changes`, `replace_on_changes`, `delete_before_replace` and `protect`, and
follows a replacement's new ID through every input that takes it (data dependencies, triggers).

Exit status:
  0  nothing below;
  2  either configuration is invalid (or the stack file is missing);
  3  a data volume (any Volume: protected, retained on delete or neither), or any protected
     resource, would be replaced or deleted (`pulumi up` refuses a protected one);
  4  a quorum would be disturbed at once: more than one member of a group (k8s control-plane
     nodes: etcd; ...) resized, rebuilt, replaced or deleted without a re-run readiness step
     between them, or the only member of a one-member group (the swarm manager, which is also the
     swarm's NFS server) rebuilt, replaced or deleted; or a cluster would be moved under its
     members: a member of such a group given a new address (its port replaced, or its fixed IPs
     changed), or any server replaced while its user data is in ignore_changes and differs
     (Pulumi creates the replacement with the stored, stale user data: a k3s node would join
     the old addresses). These name what to do instead.
  5  the cloud would refuse the change: a Cinder volume made smaller (Cinder can only extend a
     volume; `pulumi up` would stop with an error half-way).
3 wins over 5, and 5 over 4, when several apply."""

from __future__ import annotations

import argparse
import itertools
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from planner import changemodel
from planner.datadiff import ABSENT, MAX_LEAVES, data_changes
from planner.mocks import SECRET as SECRET_MARK
from planner.mocks import placeholder_id
from planner.plan import PROJECT_DIR, PlanError, deployed_plan, deployed_resources, plan_stack
from planner.state import StateError, qualified_type, read_export

INSTANCE = "openstack:compute/instance:Instance"
PORT = "openstack:networking/port:Port"
VOLUME = "openstack:blockstorage/volume:Volume"
ATTACH = "openstack:compute/volumeAttach:VolumeAttach"
COMMAND = "command:remote:Command"

ACTIONS = ("create", "update", "resize", "rebuild", "replace", "delete")
SYMBOL = {"create": "+", "update": "~", "resize": "~>", "rebuild": "~!", "replace": "+-", "delete": "-"}
DISTURBING = frozenset({"resize", "rebuild", "replace", "delete"})
# A one-member group loses its state with its only member; a resize keeps the disks.
LOSES_STATE = frozenset({"rebuild", "replace", "delete"})

EXIT_OK, EXIT_INVALID, EXIT_DATA, EXIT_QUORUM, EXIT_REFUSED = 0, 2, 3, 4, 5

# Instance metadata `role` → the quorum (or single point of state) its members form.
QUORUM_ROLES: dict[str, str] = {
    "k8s-control-plane": "k8s control plane (etcd quorum, Ceph mons)",
    "swarm-manager": "swarm manager (the swarm's only manager and its NFS server)",
}

# What to do instead of moving a member of each quorum group (ClusterMove).
MOVE_ADVICE: dict[str, str] = {
    "k8s-control-plane": (
        "k3s cannot move a control-plane node in place: etcd's member list and every node's "
        "`server:` address hold the old addresses, and a replaced node boots with its stored user "
        "data. Keep {keys} unchanged; to move the hub (to another network, say), deploy a new "
        "stack there, restore the homes and the hub database from the backups (docs/k8s.md, "
        "Backups and restore), then point the DNS name at it"
    ),
    "swarm-manager": (
        "the swarm's workers and NFS clients know the manager by its old address. Keep {keys} "
        "unchanged; to move the hub, deploy a new stack and restore the homes from the backups"
    ),
}
STALE_ADVICE = (
    "a server gets this configuration's user data only when it is created anew, never when it is "
    "replaced: keep {keys} unchanged (a k3s worker can be removed with a lower workerCount, "
    "which drains it first, and added back with the new user data)"
)

SHOW_SECRETS = (
    "`pulumi stack export --show-secrets --file <f>` writes each secret's plaintext, which make "
    "diff hashes and never prints; that file holds the stack's secrets: keep it private, delete it "
    "after"
)

# Stands in for the ID and outputs a replaced resource gets from the cloud.
NEW_ID = "(new, after the replacement)"


@dataclass
class Change:
    action: str  # one of ACTIONS
    type: str
    name: str
    changed: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Inputs that changed but are in ignore_changes: `pulumi up` leaves them as they are.
    ignored: list[str] = field(default_factory=list)


@dataclass
class QuorumProblem:
    group: str
    members: list[str]
    actions: dict[str, str]
    causes: list[str]

    def describe(self) -> str:
        who = ", ".join(f"{m} ({self.actions[m]})" for m in self.members)
        return f"{self.group}: {who} at once, because {'; '.join(self.causes)}"


@dataclass
class QuorumRoll:
    """Members of a quorum group the change disturbs one after another: each member's server
    waits for a readiness step of the one before, which the change runs again."""

    group: str
    members: list[str]
    actions: dict[str, str]

    def describe(self) -> str:
        order = " then ".join(f"{m} ({self.actions[m]})" for m in self.members)
        return f"{self.group}: one at a time, {order}, each after the one before is ready again"


@dataclass
class ClusterMove:
    """A server the change would move under its cluster: a quorum member given a new address,
    or a server replaced while its user data is in ignore_changes and differs. Pulumi keeps the
    stored value of an ignored input, also for a replacement: the new server boots with the user
    data the old one was created with (for a k3s node: the old `server:` address and etcd peers)."""

    server: str
    role: str | None
    causes: list[str]
    new_address: bool = False

    @property
    def group(self) -> str:
        return QUORUM_ROLES.get(self.role or "", f"server ({self.role or 'no role'})")

    def describe(self) -> str:
        return f"{self.group}: {self.server} {'; '.join(self.causes)}"

    def advice(self, keys: str) -> str:
        advice = MOVE_ADVICE.get(self.role or "") if self.new_address else None
        return (advice or STALE_ADVICE).format(keys=keys)


@dataclass
class Shrink:
    """A Cinder volume the change makes smaller: Cinder only extends volumes."""

    volume: str
    old_gb: int
    new_gb: int
    # The changed settings whose value is the new size (the key that sizes this volume).
    keys: list[str] = field(default_factory=list)

    def describe(self) -> str:
        what = " or ".join(self.keys) if self.keys else f"the size of {self.volume}"
        return (
            f"{what}: {self.old_gb} => {self.new_gb} GB would shrink the Cinder volume {self.volume}, "
            "and Cinder volumes cannot shrink (only extend): keep it at "
            f"{self.old_gb} GB or more"
        )


def shrinks(diff: Diff | list[Change], settings: dict[str, Any] | None = None) -> list[Shrink]:
    found = []
    for c in diff:
        if c.type != VOLUME or "size" not in c.changed:
            continue
        old, new = c.changed["size"]
        if isinstance(old, int | float) and isinstance(new, int | float) and new < old:
            keys = sorted(k for k, v in (settings or {}).items() if v == new)
            found.append(Shrink(c.name, int(old), int(new), keys))
    return found


@dataclass
class Diff:
    changes: list[Change]
    # Resources whose every change is ignored (ignore_changes): nothing happens to them.
    kept: list[Change]
    quorum: list[QuorumProblem]
    rolls: list[QuorumRoll] = field(default_factory=list)
    moves: list[ClusterMove] = field(default_factory=list)
    # (resource, input) holding a secret a deployed state keeps only encrypted: not compared.
    uncompared: list[tuple[str, str]] = field(default_factory=list)

    def __iter__(self) -> Any:
        return iter(self.changes)

    def __len__(self) -> int:
        return len(self.changes)

    def __bool__(self) -> bool:
        return bool(self.changes)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _is_data_volume(resource: dict[str, Any]) -> bool:
    # The program makes a Cinder volume only to keep data off a root disk (the policy pack
    # insists each is protected or retained). Neither option keeps the data on the hub: a
    # replacement attaches a new, empty volume, and a retained old one is left detached.
    return resource["type"] == VOLUME


def _matches(key: str, patterns: list[str]) -> bool:
    """Does input `key` fall under one of these option paths (`userData`, `spec.template`, `*`)?"""
    for pattern in patterns:
        top = re.split(r"[.\[]", _camel(pattern), maxsplit=1)[0]
        if pattern == "*" or top == key:
            return True
    return False


def _verb(resource: dict[str, Any], key: str, old: Any, new: Any) -> changemodel.InputEffect:
    effect = changemodel.effect(resource["type"], key, old, new, resource["inputs"])
    if _matches(key, resource.get("replace_on_changes", [])):
        return changemodel.InputEffect("replace", "replace_on_changes on this input", True)
    return effect


def _worst(verbs: list[str]) -> str:
    return max(verbs, key=changemodel.VERBS.index)


def _classify(resource: dict[str, Any], changed: dict[str, tuple[Any, Any]]) -> tuple[str, list[str]]:
    effects = {k: _verb(resource, k, a, b) for k, (a, b) in changed.items()}
    verb = _worst([e.verb for e in effects.values()])
    reasons = [
        f"{k}: {e.says}" + ("" if e.documented else " [not in the SDK's docstrings]")
        for k, e in sorted(effects.items())
        if e.verb == verb and verb != "update"
    ]
    return verb, reasons


def _ancestors(plan: dict[str, Any]) -> dict[str, set[str]]:
    """Every resource a resource waits for (depends_on and data dependencies), transitively."""
    direct: dict[str, set[str]] = {}
    for r in plan["resources"]:
        deps = set(r["depends_on"])
        for sources in r.get("data_dependencies", {}).values():
            deps |= set(sources)
        direct[r["name"]] = deps
    memo: dict[str, set[str]] = {}

    def walk(name: str) -> set[str]:
        if name in memo:
            return memo[name]
        memo[name] = set()
        found: set[str] = set()
        for d in direct.get(name, ()):
            found |= {d} | walk(d)
        memo[name] = found
        return found

    for name in direct:
        walk(name)
    return memo


def _role(resource: dict[str, Any]) -> str | None:
    metadata = resource["inputs"].get("metadata")
    return metadata.get("role") if isinstance(metadata, dict) else None


def quorum_problems(
    before: dict[str, Any], after: dict[str, Any], changes: list[Change]
) -> list[QuorumProblem]:
    """Groups of instances (by metadata role) of which the change disturbs too much at once."""
    return quorum_effects(before, after, changes)[0]


def quorum_effects(
    before: dict[str, Any], after: dict[str, Any], changes: list[Change]
) -> tuple[list[QuorumProblem], list[QuorumRoll]]:
    """Groups of instances (by metadata role) of which the change disturbs too much at once,
    and the groups it disturbs one member at a time.

    Disturbed members A, B, ... are serialised when they can be ordered so that each one's
    instance waits (depends_on or data, transitively) for a resource that waits for the one
    before and that this change runs again (a readiness check): then `pulumi up` finishes one
    member and checks it before it touches the next."""
    action = {c.name: c for c in changes}
    ancestors = _ancestors(after)
    rerun = {c.name for c in changes if c.type == COMMAND and c.action in ("update", "replace")}
    groups: dict[str, list[str]] = {}
    for r in before["resources"]:
        role = _role(r) if r["type"] == INSTANCE else None
        if role in QUORUM_ROLES:
            groups.setdefault(role, []).append(r["name"])
    problems: list[QuorumProblem] = []
    rolls: list[QuorumRoll] = []
    for role, members in sorted(groups.items()):
        disturbed = [m for m in members if m in action and action[m].action in DISTURBING]
        if not disturbed:
            continue
        causes = sorted({reason for m in disturbed for reason in action[m].reasons}) or ["it is deleted"]
        acts = {m: action[m].action for m in disturbed}
        if len(members) == 1:
            if acts[disturbed[0]] in LOSES_STATE:
                problems.append(QuorumProblem(QUORUM_ROLES[role], disturbed, acts, causes))
            continue
        if len(disturbed) < 2:
            continue
        # Order by how much each waits for: a member later in a chain waits for more.
        ordered = sorted(disturbed, key=lambda m: (len(ancestors.get(m, ())), m))

        def chained(first: str, then: str) -> bool:
            return any(first in ancestors.get(step, ()) for step in ancestors.get(then, set()) & rerun)

        if not all(chained(a, b) for a, b in itertools.pairwise(ordered)):
            problems.append(QuorumProblem(QUORUM_ROLES[role], ordered, acts, causes))
        else:
            rolls.append(QuorumRoll(QUORUM_ROLES[role], ordered, acts))
    return problems, rolls


def _address_moves(server: dict[str, Any], changes: dict[str, Change]) -> list[str]:
    """How a change gives `server` a new address: a port it is attached by (its `networks`)
    replaced or deleted, or that port's fixed IPs changed in place."""
    causes = []
    for port in server.get("data_dependencies", {}).get("networks", []):
        change = changes.get(port)
        if change is None or change.type != PORT:
            continue
        if change.action in ("replace", "delete"):
            why = f" ({'; '.join(change.reasons)})" if change.reasons else ""
            causes.append(f"gets a new address: its port {port} is {change.action}d{why}")
        elif "fixedIps" in change.changed:
            causes.append(f"gets a new address: the fixed IPs of its port {port} change in place")
    return causes


def cluster_moves(
    after: dict[str, Any],
    changes: list[Change],
    stored: dict[tuple[str, str], dict[str, Any]] | None = None,
) -> list[ClusterMove]:
    """Servers the change moves under their cluster (see ClusterMove). `stored`: the deployed
    state's resources, when the diff is made against one: then the stale user data is known."""
    by_name = {c.name: c for c in changes}
    moves = []
    for r in after["resources"]:
        if r["type"] != INSTANCE:
            continue
        role = _role(r)
        causes = _address_moves(r, by_name) if role in QUORUM_ROLES else []
        new_address = bool(causes)
        change = by_name.get(r["name"])
        if change is not None and change.action == "replace" and "userData" in change.ignored:
            causes.append(
                "is replaced with stale user data: userData is in ignore_changes, so Pulumi creates "
                "the new server with the value stored when this one was created, not this "
                "configuration's"
            )
            was = (stored or {}).get((INSTANCE, r["name"]))
            if was is not None:
                causes.append(
                    "the replacement boots with the stored user data, not the new one"
                    + _first_difference(was["inputs"].get("userData"), r["inputs"].get("userData"))
                )
        if causes:
            moves.append(ClusterMove(r["name"], role, causes, new_address))
    return moves


def _first_difference(stored: Any, planned: Any) -> str:
    """Where a stored text first differs from the planned one, as ` (stored line N: ... ; this
    configuration's: ...)`; nothing for a secret (neither is shown)."""
    if not isinstance(stored, str) or not isinstance(planned, str) or SECRET_MARK in (stored, planned):
        return ""
    a, b = stored.splitlines(), planned.splitlines()
    for n, (x, y) in enumerate(itertools.zip_longest(a, b, fillvalue="(none)"), start=1):
        if x != y:
            return (
                f" (stored line {n}: {_short(x.strip(), 70)}; this configuration's: {_short(y.strip(), 70)})"
            )
    return ""


def diff_plans(before: dict[str, Any], after: dict[str, Any]) -> Diff:
    old = {(r["type"], r["name"]): r for r in before["resources"] if r["custom"]}
    new = {(r["type"], r["name"]): r for r in after["resources"] if r["custom"]}
    changes: dict[tuple[str, str], Change] = {}
    kept: dict[tuple[str, str], Change] = {}
    for key in new.keys() - old.keys():
        changes[key] = Change("create", *key)
    for key in old.keys() - new.keys():
        changes[key] = Change("delete", *key)

    def apply(key: tuple[str, str], changed: dict[str, tuple[Any, Any]], extra: list[str]) -> None:
        resource = new[key]
        ignored = {k for k in changed if _matches(k, resource.get("ignore_changes", []))}
        effective = {k: v for k, v in changed.items() if k not in ignored}
        current = changes.get(key)
        if not effective:
            if ignored:
                holder = current or kept.setdefault(key, Change("update", *key))
                holder.ignored = sorted(set(holder.ignored) | ignored)
            return
        merged = {**(current.changed if current else {}), **effective}
        verb, reasons = _classify(resource, merged)
        change = Change(verb, *key, changed=merged, reasons=reasons + extra)
        held = current or kept.pop(key, None)
        if held:
            change.ignored = sorted(set(held.ignored) | ignored)
            change.reasons = sorted(set(held.reasons) | set(change.reasons))
        else:
            change.ignored = sorted(ignored)
        changes[key] = change

    from_state = "source" in before
    lookups = lookup_placeholders(after) if from_state else frozenset()
    secret_changes: dict[tuple[str, str], list[str]] = {}
    uncompared: list[tuple[str, str]] = []
    if from_state:
        for key in old.keys() & new.keys():
            was, now = old[key].get("qualified_type", ""), qualified_type(after, key[1])
            if was and was != now and not new[key].get("aliased"):
                changes[key] = Change(
                    "replace",
                    *key,
                    reasons=[
                        f"its URN changes (parents {_parents(was)} => {_parents(now)}): Pulumi creates "
                        "a new one and deletes the stored one (an alias in the program would keep it)"
                    ],
                )
    for key in old.keys() & new.keys():
        if key in changes:
            continue
        changed, secrets, unknown = _input_changes(old[key], new[key], from_state, lookups)
        uncompared += [(key[1], k) for k in unknown]
        if secrets:
            secret_changes[key] = secrets
        if changed:
            apply(key, changed, [])

    # A replaced resource gets a new ID and new outputs: every input that takes one of them
    # changes too. Repeat until nothing moves. A resized or rebuilt server keeps its ID.
    done: set[tuple[tuple[str, str], str]] = set()
    moved = True
    while moved:
        moved = False
        replaced = {name for (_, name), c in changes.items() if c.action == "replace"}
        for key, resource in new.items():
            current = changes.get(key)
            if current and current.action in ("replace", "create", "delete"):
                continue
            for input_name, sources in resource.get("data_dependencies", {}).items():
                hit = sorted(set(sources) & replaced)
                if not hit or (key, input_name) in done:
                    continue
                done.add((key, input_name))
                before_value = old[key]["inputs"].get(input_name) if key in old else None
                note = f"{input_name} takes the new ID or outputs of {', '.join(hit)}"
                apply(key, {input_name: (before_value, NEW_ID)}, [note])
                moved = True
    # Changed keys of propagated inputs show the new ID rather than an unchanged mock value.
    for key, change in changes.items():
        resource = new.get(key) or old[key]
        _annotate(change, resource, changes, new, old)
    for key, change in kept.items():
        if key[0] == INSTANCE and "userData" in change.ignored:
            change.notes.append(
                "userData changed but is in ignore_changes: this server keeps what its first boot "
                "installed (e.g. the version it runs); only servers created from now on get the new one"
            )
        else:
            change.notes.append(f"{', '.join(change.ignored)} changed but in ignore_changes: left as it is")
    for key, secrets in secret_changes.items():
        holder = changes.get(key) or kept.get(key)
        if holder is not None:
            holder.notes += [
                f"{k}: a secret, changed (its SHA-256 digest differs; the value is not shown)"
                for k in secrets
                if k in holder.changed or k in holder.ignored
            ]
    ordered = sorted(changes.values(), key=lambda c: (ACTIONS.index(c.action), c.name))
    problems, rolls = quorum_effects(before, after, ordered)
    moves = cluster_moves(after, ordered, old if from_state else None)
    return Diff(
        ordered, sorted(kept.values(), key=lambda c: c.name), problems, rolls, moves, sorted(set(uncompared))
    )


def _under(path: str, key: str) -> bool:
    return path == key or path.startswith((f"{key}.", f"{key}["))


def _parents(qualified: str) -> str:
    return " > ".join(t.rsplit(":", 1)[-1] for t in qualified.split("$")[:-1]) or "(the stack)"


def lookup_placeholders(plan: dict[str, Any]) -> frozenset[str]:
    """The IDs the plan's mocked look-ups returned (the allocation's network, its subnet, the DNS
    zone): placeholders for what the cloud answers at deploy time."""
    return frozenset(
        placeholder_id(i["token"], str(i["args"].get("name", ""))) for i in plan.get("invokes", [])
    )


def _looked_up(planned: Any, stored: Any, lookups: frozenset[str]) -> Any:
    """`planned` with each looked-up placeholder replaced by the stored value in its place: a
    look-up gives at deploy time what it gave before, which offline is only known from the state."""
    if isinstance(planned, str):
        return stored if planned in lookups and isinstance(stored, str) else planned
    if isinstance(planned, dict) and isinstance(stored, dict):
        return {k: _looked_up(v, stored.get(k), lookups) for k, v in planned.items()}
    if isinstance(planned, list) and isinstance(stored, list) and len(planned) == len(stored):
        return [_looked_up(x, y, lookups) for x, y in zip(planned, stored, strict=True)]
    return planned


def _input_changes(
    old: dict[str, Any], new: dict[str, Any], from_state: bool, lookups: frozenset[str] = frozenset()
) -> tuple[dict[str, tuple[Any, Any]], list[str], list[str]]:
    """The inputs that differ between a resource as it was (`old`) and as planned (`new`), the
    secret ones among them (compared by their digests, shown as "[secret]"), and the inputs
    holding a secret that cannot be compared (the state has only its ciphertext).

    Against a deployed state (`from_state`) only the inputs the program sets are compared: the
    state also holds what the provider filled in (its defaults, values it computed), which the
    program leaves to it. An input the state's inputs lack is compared with its output, as
    the providers compare with what they read back (an `imageId` pinned to the image a server
    booted by name is no change)."""
    a, b = old["inputs"], new["inputs"]
    if from_state:
        a = {**{k: v for k, v in (old.get("computed") or {}).items() if k in b}, **a}
        b = {k: _looked_up(v, a.get(k), lookups) for k, v in b.items()}
    keys = (b.keys() if from_state else a.keys() | b.keys()) - {"__defaults"}
    old_digests: dict[str, str] = old.get("secret_digests") or {}
    new_digests: dict[str, str] = new.get("secret_digests") or {}
    old_secret = set(old.get("secret_inputs") or old_digests)
    new_secret = set(new.get("secret_inputs") or new_digests)
    changed: dict[str, tuple[Any, Any]] = {}
    secrets: list[str] = []
    unknown: list[str] = []
    for k in sorted(keys):
        paths_a = {p for p in old_secret if _under(p, k)}
        paths_b = {p for p in new_secret if _under(p, k)}
        if a.get(k) != b.get(k):
            changed[k] = (a.get(k), b.get(k))
            if paths_a or paths_b:
                secrets.append(k)
            continue
        if not (paths_a or paths_b):
            continue
        if from_state and any(p not in old_digests for p in paths_a):
            unknown.append(k)
            continue
        if any(old_digests.get(p) != new_digests.get(p) for p in paths_a | paths_b):
            changed[k] = (a.get(k), b.get(k))
            secrets.append(k)
    return changed, secrets, unknown


def _annotate(
    change: Change,
    resource: dict[str, Any],
    changes: dict[tuple[str, str], Change],
    new: dict[tuple[str, str], dict[str, Any]],
    old: dict[tuple[str, str], dict[str, Any]],
) -> None:
    t, action = change.type, change.action
    if change.ignored and action != "create":
        change.notes.append(f"ignored (ignore_changes): {', '.join(change.ignored)}")
    if action == "rebuild" and t == INSTANCE:
        change.warnings.append(
            "REBUILD: same server and ID, root disk re-imaged: everything on the root disk that is "
            "not on a data volume is lost, and cloud-init runs again"
        )
        for (ct, cname), dependent in new.items():
            if ct != COMMAND:
                continue
            if not any(change.name in s for s in dependent.get("data_dependencies", {}).values()):
                continue
            other = changes.get((ct, cname))
            if other and other.action in ("update", "replace"):
                change.notes.append(f"{cname} runs again")
            else:
                change.warnings.append(
                    f"{cname} does NOT run again (the rebuild keeps the instance ID it triggers on): "
                    "what it put on the root disk is gone after the rebuild"
                )
    if action == "rebuild" and t == INSTANCE and change.changed.get("imageId", (None, None))[0] is None:
        change.notes.append(
            "pinning imageId: if it is the ID this server booted (`openstack server show <server> -c "
            "image`), the provider sees no change and nothing is rebuilt; offline, the plan cannot know "
            "that ID"
        )
    if action == "resize" and t == INSTANCE:
        change.warnings.append("RESIZE: same server, disks and ID, new flavor: it reboots (down for minutes)")
    if action == "replace" and t == INSTANCE:
        change.warnings.append(
            "VM REPLACED: a new server with a new ID, booted from its image and cloud-init; the old "
            "one and its root disk are deleted"
        )
    if action == "replace":
        if resource["delete_before_replace"]:
            change.notes.append(
                "delete_before_replace: the old one is deleted first, then the new one created: down "
                "in between"
            )
        else:
            change.notes.append("the new one is created first, then the old one deleted")
    if t == COMMAND and action in ("update", "replace"):
        inputs = resource["inputs"]
        if action == "update":
            change.notes.append(f"runs again: its {'update' if inputs.get('update') else 'create'} command")
        else:
            change.notes.append("runs again: its create command")
            previous = old.get((t, change.name), resource)["inputs"]
            if previous.get("delete"):
                change.notes.append(
                    "the old one's delete command then runs: " + _short(previous["delete"], 70)
                )
    if t == COMMAND and action == "delete" and resource["inputs"].get("delete"):
        change.notes.append("its delete command runs: " + _short(resource["inputs"]["delete"], 70))
    if resource["protect"] and action in ("replace", "delete"):
        change.warnings.append(f"PROTECTED: `pulumi up` refuses to {action} a protected resource and stops")
    if _is_data_volume(resource) and action != "create":
        change.warnings.append(
            f"DATA VOLUME {action.upper()}: it holds user data" + _data_fate(resource, action)
        )
    if resource["retain_on_delete"] and action in ("replace", "delete"):
        change.notes.append("retain_on_delete: the old one is left in the allocation, no longer managed")
    if t == VOLUME and "size" in change.changed and action == "update":
        old_gb, new_gb = change.changed["size"]
        if isinstance(old_gb, int | float) and isinstance(new_gb, int | float) and new_gb > old_gb:
            change.notes.append(
                "extended in place (enable_online_resize), but the filesystem on it keeps its size "
                "until grown on the server: `resize2fs <device>` (ext4: the hubs' data volumes) or "
                "`xfs_growfs <mount point>` (XFS: the swarm manager's)"
            )
    if t == ATTACH and action == "replace":
        change.notes.append("the volume is detached and attached again; its files are kept")
    if t == ATTACH and action == "delete":
        change.notes.append("the volume is detached; it and its files are kept")


def _data_fate(resource: dict[str, Any], action: str) -> str:
    """Where the users' files end up when an unprotected data volume is replaced or deleted (a
    protected one stops `pulumi up`, which the PROTECTED warning says)."""
    if action not in ("replace", "delete") or resource["protect"]:
        return ""
    fresh = "; the hub gets a new, empty volume" if action == "replace" else ""
    if resource["retain_on_delete"]:
        return f"{fresh}; the files stay on the old one, detached"
    return f"{fresh}; the old one is deleted with the files"


def dangerous(changes: Diff | list[Change]) -> list[Change]:
    """Replacements and deletions that lose data or that `pulumi up` refuses."""
    return [
        c
        for c in changes
        if c.action in ("replace", "delete")
        and any(w.startswith(("DATA VOLUME", "PROTECTED")) for w in c.warnings)
    ]


def reruns(changes: Diff | list[Change]) -> list[str]:
    """The remote commands this change runs again (or for the first time)."""
    return sorted(
        c.name for c in changes if c.type == COMMAND and c.action in ("create", "update", "replace")
    )


def exit_code(diff: Diff) -> int:
    if dangerous(diff):
        return EXIT_DATA
    if shrinks(diff):
        return EXIT_REFUSED
    if diff.quorum or diff.moves:
        return EXIT_QUORUM
    return EXIT_OK


def _short(value: Any, width: int = 60) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    text = text.replace("\n", "⏎")
    return text if len(text) <= width else text[: width - 3] + "..."


def _leaf(value: Any) -> str:
    return "(none)" if value is ABSENT else _short(json.dumps(value))


def render(diff: Diff, settings: dict[str, Any]) -> str:
    lines = [f"Changes: {', '.join(f'{k}={v}' for k, v in settings.items()) or '(none)'}", ""]
    if not diff.changes:
        lines.append("No resource changes.")
    pad = " " * 12
    for c in diff.changes:
        lines.append(f"{SYMBOL[c.action]:>2} {c.action:8} {c.type}  {c.name}")
        for reason in c.reasons:
            lines.append(f"{pad}because {reason}")
        for key, (a, b) in sorted(c.changed.items()):
            lines.append(f"{pad}{key}: {_short(a)} => {_short(b)}")
            # The data inside (the hub's settings in hub-config's script, a docker config).
            leaves = data_changes(a, b)
            for path, x, y in leaves[:MAX_LEAVES]:
                lines.append(f"{pad}  {path}: {_leaf(x)} => {_leaf(y)}")
            if len(leaves) > MAX_LEAVES:
                lines.append(f"{pad}  ... and {len(leaves) - MAX_LEAVES} more")
        for note in c.notes:
            lines.append(f"{pad}{note}")
        for warning in c.warnings:
            lines.append(f"{pad}!! {warning}")
    for c in diff.kept:
        lines.append(f" = keep     {c.type}  {c.name}")
        for note in c.notes:
            lines.append(f"{pad}{note}")
    counts = {a: sum(1 for c in diff.changes if c.action == a) for a in ACTIONS}
    lines += ["", ", ".join(f"{n} to {a}" for a, n in counts.items())]
    again = [n for n in reruns(diff) if any(c.name == n and c.action != "create" for c in diff.changes)]
    lines.append("Steps that run again: " + (", ".join(again) if again else "none"))
    bad = dangerous(diff)
    lines.append(
        "!! DATA AT RISK: " + ", ".join(f"{c.name} ({c.action})" for c in bad)
        if bad
        else "No data volume or protected resource is replaced or deleted."
    )
    for shrink in shrinks(diff, settings):
        lines.append(f"!! REFUSED: {shrink.describe()}")
    keys = ", ".join(settings) or "the change"
    if diff.quorum:
        for problem in diff.quorum:
            lines.append(f"!! QUORUM ({keys}): {problem.describe()}")
    else:
        lines.append("No quorum is disturbed at once.")
    for move in diff.moves:
        lines.append(f"!! REFUSED ({keys}): {move.describe()}")
    for advice in dict.fromkeys(m.advice(keys) for m in diff.moves):
        lines.append(f"   Instead: {advice}.")
    moved = {m.group for m in diff.moves}
    for roll in diff.rolls:
        if roll.group not in moved:
            lines.append(f"Rolled: {roll.describe()}.")
    if diff.uncompared:
        lines.append(
            "?? NOT COMPARED (the export holds these secrets encrypted): "
            + ", ".join(f"{name}.{key}" for name, key in diff.uncompared)
        )
        lines.append(f"   To compare them: {SHOW_SECRETS}")
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
    parser = argparse.ArgumentParser(
        prog="make diff", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stack", required=True)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--state",
        type=Path,
        metavar="FILE",
        help="compare with this `pulumi stack export` of the deployed stack instead of its config",
    )
    parser.add_argument("--json", type=Path)
    parser.add_argument("--project-dir", type=Path, default=PROJECT_DIR)
    args = parser.parse_args(argv)
    settings = parse_settings(args.set)
    skipped: list[str] = []
    try:
        if args.state:
            # The state is what `pulumi up` starts from: its inputs and outputs, its IDs.
            deployed = read_export(args.state)
            before = deployed.plan
            skipped = deployed.skipped
            after = plan_stack(
                args.stack,
                project_dir=args.project_dir,
                overrides=settings,
                deployed=deployed_resources(before),
                stored=deployed.stored,
            )
        else:
            # The change lands on the deployed stack, whose members all exist: the program
            # chains them (components/k8s_cluster.py), which a plan of a first `pulumi up`
            # would not.
            before = deployed_plan(args.stack, project_dir=args.project_dir)
            after = plan_stack(
                args.stack,
                project_dir=args.project_dir,
                overrides=settings,
                deployed=deployed_resources(before),
            )
    except (PlanError, StateError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    diff = diff_plans(before, after)
    if args.state:
        print(f"Against the deployed state in {args.state} (not the stack's config)")
        for name in skipped:
            print(f"   left out: {name}")
    print(render(diff, settings))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "changes": [c.__dict__ for c in diff.changes],
                    "kept": [c.__dict__ for c in diff.kept],
                    "quorum": [p.__dict__ for p in diff.quorum],
                    "rolls": [r.__dict__ for r in diff.rolls],
                    "moves": [m.__dict__ for m in diff.moves],
                    "uncompared": diff.uncompared,
                },
                indent=2,
                default=str,
            )
            + "\n"
        )
    return exit_code(diff)


if __name__ == "__main__":
    sys.exit(main())
