"""A worker leaves a cluster drained: its removal step's delete command runs before its server
is deleted (Pulumi deletes a resource's dependents first), and only then; a roll, a rebuild no
config change asked for or any other change never runs it.

The k3s drain script runs against a stand-in `k3s kubectl` that answers as a cluster would, for
a Ready node, a dead one, one already gone and one whose drain times out."""

from __future__ import annotations

import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from planner.diff import diff_plans, exit_code
from planner.plan import deployed_plan, plan_on
from renderers import k3s
from tests.conftest import require_tool
from tests.stubs import stub

COMMAND = "command:remote:Command"
INSTANCE = "openstack:compute/instance:Instance"


@cache
def _plan(stack: str) -> dict[str, Any]:
    return deployed_plan(stack)


def _by_name(plan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in plan["resources"]}


def _workers(plan: dict[str, Any]) -> list[str]:
    return [
        r["name"].removesuffix("-server")
        for r in plan["resources"]
        if r["type"] == INSTANCE and "-worker-" in r["name"]
    ]


@pytest.mark.parametrize(
    ("stack", "drains"), [("workshop-k8s", "kubectl drain"), ("persistent-swarm", "--availability drain")]
)
def test_every_worker_server_waits_for_a_removal_step_that_drains_it(stack: str, drains: str) -> None:
    plan = _plan(stack)
    resources = _by_name(plan)
    workers = _workers(plan)
    assert workers, "the example stack has workers"
    for worker in workers:
        removal = resources[f"{worker}-removal"]
        # Dependents are deleted first: the server goes only after this step's delete ran.
        assert f"{worker}-server" in removal["depends_on"]
        assert drains in removal["inputs"]["delete"] and worker in removal["inputs"]["delete"]
        # Never replaced: no triggers, and an update command, so an input change is an update.
        assert "triggers" not in removal["inputs"] and removal["inputs"]["update"]
    # No other command on a worker has a delete command that a replacement would run.
    with_delete = {r["name"] for r in plan["resources"] if r["type"] == COMMAND and r["inputs"].get("delete")}
    assert {n for n in with_delete if "-worker-" in n} == {f"{w}-removal" for w in workers}


@pytest.mark.parametrize(
    ("stack", "key"), [("workshop-k8s", "k8s.workerCount"), ("persistent-swarm", "swarm.workerCount")]
)
def test_fewer_workers_drain_the_removed_ones_before_their_servers_go(stack: str, key: str) -> None:
    before = _plan(stack)
    workers = _workers(before)
    after = plan_on(before, stack, overrides={key: len(workers) - 1})
    gone = workers[-1]
    changes = {c.name: c for c in diff_plans(before, after)}
    assert changes[f"{gone}-server"].action == "delete"
    removal = changes[f"{gone}-removal"]
    assert removal.action == "delete"
    assert any(note.startswith("its delete command runs") for note in removal.notes), removal.notes
    assert exit_code(diff_plans(before, after)) == 0


ROLLS = [
    ("workshop-k8s", {"k8s.workerFlavor": "m3.large", "k8s.workerCount": 4}),
    ("workshop-k8s", {"k8s.k3sVersion": "v1.33.6+k3s1"}),
    ("workshop-k8s", {"image": "NEXT"}),
    ("persistent-swarm", {"swarm.workerFlavor": "m3.large"}),
    ("persistent-swarm", {"image": "NEXT"}),
]


@pytest.mark.parametrize(("stack", "change"), ROLLS)
def test_a_roll_never_runs_a_delete_command(stack: str, change: dict[str, Any], next_image: str) -> None:
    change = {k: next_image if v == "NEXT" else v for k, v in change.items()}
    before = _plan(stack)
    changes = diff_plans(before, plan_on(before, stack, overrides=change))
    assert any(c.action != "update" for c in changes), "the change disturbs the workers"
    old = _by_name(before)
    for c in changes:
        if c.type == COMMAND and c.action in ("replace", "delete"):
            assert not old[c.name]["inputs"].get("delete"), f"{c.name}'s delete command would run on a roll"


# --- the drain script against a stand-in cluster --------------------------------------------------


def _drain(
    tmp_path: Path, *, exists: bool, ready: str, drain_ok: bool
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    bash = require_tool("bash", "runs the rendered drain script")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    stub(bin_dir, "sudo", 'exec "$@"\n')
    stub(
        bin_dir,
        "k3s",
        f'printf "%s\\n" "$*" >>{calls}\n'
        'args="$*"\n'
        'case "$args" in\n'
        f'  *"get node k8s-worker-2 -o jsonpath"*) echo {ready} ;;\n'
        f'  *"get node k8s-worker-2"*) exit {0 if exists else 1} ;;\n'
        f'  *" drain "*) exit {0 if drain_ok else 1} ;;\n'
        '  *"get volumeattachments"*) echo "csi-abc csi-def " ;;\n'
        "esac\n",
    )
    script = k3s.render_node_drain_script("k8s-worker-2", wait_s=30)
    result = subprocess.run(
        [bash, "-c", script], capture_output=True, text=True, env={"PATH": f"{bin_dir}:/usr/bin:/bin"}
    )
    return result, calls.read_text().splitlines() if calls.exists() else []


def _verbs(calls: list[str]) -> list[str]:
    """Each kubectl call as its verb and object, without the global flags."""
    out = []
    for call in calls:
        words = [w for w in call.split() if not w.startswith("--request-timeout")]
        assert words[:2] == ["kubectl", "--request-timeout=60s"] or words[0] == "kubectl", call
        out.append(" ".join(words[1:3]))
    return out


def test_a_ready_worker_is_cordoned_drained_and_deleted_with_its_leftovers(tmp_path: Path) -> None:
    result, calls = _drain(tmp_path, exists=True, ready="True", drain_ok=True)
    assert result.returncode == 0, result.stderr
    verbs = _verbs(calls)
    assert verbs.index("cordon k8s-worker-2") < verbs.index("drain k8s-worker-2") < verbs.index("delete node")
    drain = next(c for c in calls if " drain " in c)
    for flag in ("--ignore-daemonsets", "--delete-emptydir-data", "--timeout=30s"):
        assert flag in drain
    assert any(
        "delete pods" in c and "spec.nodeName=k8s-worker-2" in c and "--all-namespaces" in c for c in calls
    )
    assert any("delete volumeattachments csi-abc csi-def" in c for c in calls)
    assert "node k8s-worker-2 drained" in result.stdout


def test_a_dead_worker_is_not_waited_for(tmp_path: Path) -> None:
    result, calls = _drain(tmp_path, exists=True, ready="Unknown", drain_ok=True)
    assert result.returncode == 0
    assert not any(" drain " in c for c in calls), "a NotReady node's pods never leave: no drain"
    assert any(c.split()[1:3] == ["delete", "node"] or "delete node k8s-worker-2" in c for c in calls)
    assert "not Ready (Unknown)" in result.stderr


def test_a_drain_that_times_out_still_removes_the_node(tmp_path: Path) -> None:
    result, calls = _drain(tmp_path, exists=True, ready="True", drain_ok=False)
    assert result.returncode == 0
    assert "did not drain within 30s" in result.stderr
    assert any("delete node k8s-worker-2" in c for c in calls)


def test_a_worker_already_gone_is_nothing_to_do(tmp_path: Path) -> None:
    result, calls = _drain(tmp_path, exists=False, ready="", drain_ok=True)
    assert result.returncode == 0
    assert len(calls) == 1 and "not in the cluster" in result.stdout


def test_the_drain_script_passes_shellcheck(tmp_path: Path) -> None:
    tool = require_tool("shellcheck", "lints the rendered shell scripts")
    path = tmp_path / "drain.sh"
    path.write_text(k3s.render_node_drain_script("k8s-worker-2"))
    result = subprocess.run([tool, "--severity=style", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
