"""make diff on hand-built plans (quorum chains, protect, delete_before_replace) and on the real
stacks for the bars: a rebuild is not a replacement, ignored user data changes nothing, and a
control plane is never rebuilt all at once without saying so."""

from __future__ import annotations

import copy
import itertools
from typing import Any

import pulumi
import pulumi_openstack as openstack
import pytest

from planner.diff import (
    EXIT_DATA,
    EXIT_OK,
    EXIT_QUORUM,
    EXIT_REFUSED,
    diff_plans,
    exit_code,
    quorum_problems,
    render,
    reruns,
)
from planner.diff import main as diff_main
from planner.harness import run_program
from planner.plan import deployed_plan, plan_on

INSTANCE = "openstack:compute/instance:Instance"
COMMAND = "command:remote:Command"


def _resource(type_: str, name: str, inputs: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "type": type_,
        "name": name,
        "parent": None,
        "custom": True,
        "inputs": inputs,
        "protect": False,
        "retain_on_delete": False,
        "delete_before_replace": False,
        "depends_on": [],
        "data_dependencies": {},
        "ignore_changes": [],
        "replace_on_changes": [],
        **extra,
    }


def _node(
    name: str, role: str, image: str = "Featured-Ubuntu24", waits_for: str | None = None
) -> dict[str, Any]:
    inputs = {"imageName": image, "flavorName": "m3.medium", "metadata": {"role": role}}
    return _resource(INSTANCE, name, inputs, depends_on=[waits_for] if waits_for else [])


def _ready(name: str, node: str, image: str) -> dict[str, Any]:
    """A readiness check on `node` that the image change runs again (image in its triggers)."""
    return _resource(
        COMMAND,
        name,
        {"create": "wait-ready", "triggers": [f"id-{node}", image]},
        depends_on=[node],
        data_dependencies={"triggers": [node]},
        replace_on_changes=["triggers"],
    )


def _cluster(image: str, chained: bool) -> dict[str, Any]:
    role = "k8s-control-plane"
    resources = [_node("cp-0", role, image)]
    if chained:
        resources += [
            _ready("cp-0-ready", "cp-0", image),
            _node("cp-1", role, image, waits_for="cp-0-ready"),
            _ready("cp-1-ready", "cp-1", image),
            _node("cp-2", role, image, waits_for="cp-1-ready"),
        ]
    else:
        resources += [_node("cp-1", role, image), _node("cp-2", role, image)]
    return {"resources": resources}


def test_a_control_plane_rebuilt_at_once_is_a_quorum_problem() -> None:
    diff = diff_plans(_cluster("Featured-Ubuntu24", False), _cluster("Featured-Ubuntu22", False))
    assert {c.name: c.action for c in diff} == {"cp-0": "rebuild", "cp-1": "rebuild", "cp-2": "rebuild"}
    (problem,) = diff.quorum
    assert problem.members == ["cp-0", "cp-1", "cp-2"] and "imageName" in problem.describe()
    assert exit_code(diff) == EXIT_QUORUM


def test_a_chain_of_readiness_checks_serialises_the_rebuilds() -> None:
    diff = diff_plans(_cluster("Featured-Ubuntu24", True), _cluster("Featured-Ubuntu22", True))
    actions = {c.name: c.action for c in diff}
    assert actions["cp-0"] == actions["cp-1"] == actions["cp-2"] == "rebuild"
    assert actions["cp-0-ready"] == actions["cp-1-ready"] == "replace"
    assert diff.quorum == [] and exit_code(diff) == EXIT_OK


def test_a_chain_that_does_not_run_again_does_not_serialise() -> None:
    before, after = _cluster("Featured-Ubuntu24", True), _cluster("Featured-Ubuntu22", True)
    for plan in (before, after):  # the checks trigger on the instance ID only
        for r in plan["resources"]:
            if r["type"] == COMMAND:
                r["inputs"]["triggers"] = r["inputs"]["triggers"][:1]
    diff = diff_plans(before, after)
    assert "cp-0-ready" not in {c.name for c in diff}
    assert [p.members for p in diff.quorum] == [["cp-0", "cp-1", "cp-2"]]


def test_the_only_manager_replaced_is_a_quorum_problem_but_a_resize_is_not() -> None:
    before = {"resources": [_node("mgr", "swarm-manager")]}
    replaced = copy.deepcopy(before)
    replaced["resources"][0]["inputs"]["userData"] = "new"
    before["resources"][0]["inputs"]["userData"] = "old"
    diff = diff_plans(before, replaced)
    assert [c.action for c in diff] == ["replace"] and len(diff.quorum) == 1
    resized = copy.deepcopy(before)
    resized["resources"][0]["inputs"]["flavorName"] = "m3.large"
    diff = diff_plans(before, resized)
    assert [c.action for c in diff] == ["resize"] and quorum_problems(before, resized, list(diff)) == []


def test_replacing_a_protected_resource_exits_3_and_delete_before_replace_is_said() -> None:
    before = {"resources": [_node("hub", "hub")]}
    before["resources"][0].update(protect=True, delete_before_replace=True)
    after = copy.deepcopy(before)
    after["resources"][0]["inputs"]["keyPair"] = "other"
    diff = diff_plans(before, after)
    (change,) = diff
    assert change.action == "replace"
    assert any(w.startswith("PROTECTED") for w in change.warnings)
    assert any("deleted first" in n for n in change.notes)
    assert exit_code(diff) == EXIT_DATA


VOLUME = "openstack:blockstorage/volume:Volume"


@pytest.mark.parametrize(
    ("protect", "retain", "fate"),
    [
        (True, True, ""),
        (True, False, ""),
        (False, True, "the hub gets a new, empty volume; the files stay on the old one, detached"),
        (False, False, "the hub gets a new, empty volume; the old one is deleted with the files"),
    ],
    ids=["protected-retained", "protected", "retained", "neither"],
)
def test_a_replaced_data_volume_is_data_at_risk_whether_protected_retained_or_neither(
    protect: bool, retain: bool, fate: str
) -> None:
    """Retained or not, a replaced volume leaves the hub with a new, empty one: the users' files
    are gone from it. Only `protect` stops `pulumi up` (and says so)."""
    inputs = {"size": 100, "availabilityZone": "nova", "name": "hub-vm-data"}
    before = {
        "resources": [_resource(VOLUME, "hub-vm-data", inputs, protect=protect, retain_on_delete=retain)]
    }
    after = copy.deepcopy(before)
    after["resources"][0]["inputs"]["availabilityZone"] = "nova-2"
    diff = diff_plans(before, after)
    (change,) = diff
    assert change.action == "replace" and change.reasons == [
        "availabilityZone: Changing this creates a new volume."
    ]
    assert exit_code(diff) == EXIT_DATA
    (data,) = [w for w in change.warnings if w.startswith("DATA VOLUME")]
    assert data.startswith("DATA VOLUME REPLACE: it holds user data") and data.endswith(fate)
    assert any(w.startswith("PROTECTED") for w in change.warnings) == protect
    assert "!! DATA AT RISK: hub-vm-data (replace)" in render(diff, {"x": 1}).splitlines()
    # Dropped from the program: the same finding.
    gone = diff_plans(before, {"resources": []})
    assert [c.action for c in gone] == ["delete"] and exit_code(gone) == EXIT_DATA


def test_options_are_recorded_as_the_engine_gets_them() -> None:
    """ignore_changes and replace_on_changes given in snake_case reach the engine (and the plan)
    in camelCase, the names the inputs carry."""

    def program() -> None:
        openstack.compute.Instance(
            "vm",
            flavor_name="m3.small",
            image_name="Featured-Ubuntu24",
            user_data="#cloud-config\n",
            opts=pulumi.ResourceOptions(ignore_changes=["user_data"], replace_on_changes=["image_name"]),
        )

    recording = run_program(program, "p", "s", {}, [])
    (vm,) = [r for r in recording.registrations if r.type == INSTANCE]
    assert vm.ignore_changes == ["userData"] and vm.replace_on_changes == ["imageName"]
    assert "userData" in vm.inputs and "imageName" in vm.inputs


# --- the real stacks ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dev() -> dict[str, Any]:
    return deployed_plan("dev")


def test_dev_image_rebuilds_the_hub_and_its_root_disk_steps_follow(
    dev: dict[str, Any], capsys: pytest.CaptureFixture[str], next_image: str
) -> None:
    diff = diff_plans(dev, plan_on(dev, "dev", overrides={"image": next_image}))
    actions = {c.name: c.action for c in diff}
    assert actions["hub-vm-server"] == "rebuild"
    server = next(c for c in diff if c.name == "hub-vm-server")
    # They trigger on the image the server booted, which the rebuild changes.
    assert {"hub-secrets", "hub-config", "backup-install", "hub-user-env"} <= set(reruns(diff))
    assert not [w for w in server.warnings if "does NOT run again" in w], server.warnings
    assert diff_main(["--stack", "dev", "--set", f"image={next_image}"]) == EXIT_OK
    assert "rebuild  openstack:compute/instance:Instance  hub-vm-server" in capsys.readouterr().out


def test_a_data_volume_shrink_is_refused_by_key_and_a_growth_says_to_grow_the_filesystem(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert diff_main(["--stack", "dev", "--set", "hubDataVolumeGb=50"]) == EXIT_REFUSED
    out = capsys.readouterr().out
    assert (
        "!! REFUSED: hubDataVolumeGb: 100 => 50 GB would shrink the Cinder volume hub-vm-data, "
        "and Cinder volumes cannot shrink" in out
    )
    assert diff_main(["--stack", "dev", "--set", "hubDataVolumeGb=200"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "REFUSED" not in out and "the filesystem on it keeps its size until grown" in out
    assert "resize2fs" in out


def test_workshop_image_rolls_the_control_plane_one_node_at_a_time(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The bar: an image change never rebuilds every control-plane node at once. Each node's
    server waits for the readiness step of the one before, which the change runs again."""
    before = deployed_plan("workshop-k8s")
    diff = diff_plans(before, plan_on(before, "workshop-k8s", overrides={"image": "Featured-Ubuntu22"}))
    assert diff.quorum == []
    (roll,) = diff.rolls
    assert roll.members == ["k8s-cp-0-server", "k8s-cp-1-server", "k8s-cp-2-server"]
    assert set(roll.actions.values()) == {"rebuild"}
    assert {"k8s-cp-0-ready", "k8s-cp-1-ready", "k8s-cp-2-ready"} <= set(reruns(diff))
    assert diff_main(["--stack", "workshop-k8s", "--set", "image=Featured-Ubuntu22"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "Rolled: k8s control plane" in out and "k8s-cp-0-server (rebuild) then k8s-cp-1-server" in out


def test_a_k3s_version_bump_upgrades_every_node_in_place(capsys: pytest.CaptureFixture[str]) -> None:
    """No server is touched: each node's upgrade step and its readiness check run again, and
    each node's server waits for the previous node's readiness check, so they go one by one."""
    before = deployed_plan("workshop-k8s")
    after = plan_on(before, "workshop-k8s", overrides={"k8s.k3sVersion": "v1.33.6+k3s1"})
    diff = diff_plans(before, after)
    assert not [c for c in diff if c.type == INSTANCE]
    nodes = sorted(r["name"].removesuffix("-server") for r in before["resources"] if r["type"] == INSTANCE)
    assert {f"{n}-k3s" for n in nodes} | {f"{n}-ready" for n in nodes} <= set(reruns(diff))
    by_name = {r["name"]: r for r in after["resources"]}
    for previous, node in itertools.pairwise(n for n in nodes if n.startswith("k8s-cp-")):
        assert f"{previous}-ready" in by_name[f"{node}-server"]["depends_on"], node
    assert diff_main(["--stack", "workshop-k8s", "--set", "k8s.k3sVersion=v1.33.6+k3s1"]) == EXIT_OK
    assert "No quorum is disturbed at once." in capsys.readouterr().out


def test_invalid_config_exits_2() -> None:
    assert diff_main(["--stack", "dev", "--set", "hubFlavor=m9.huge"]) == 2
