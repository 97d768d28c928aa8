"""The change model is the pinned SDKs' own word: regenerated from them, it must equal the
checked-in table, cover every type the program creates, and refuse wording it does not know."""

from __future__ import annotations

import inspect
from typing import Any

import pulumi_command
import pulumi_openstack
import pytest

from planner import changemodel
from planner.plan import plan_stack

MAGNUM = {"k8s.engine": "magnum", "k8s.k3sVersion": None}


def test_the_checked_in_table_matches_the_installed_sdks() -> None:
    assert changemodel.TABLE.read_text() == changemodel.render(changemodel.build()), (
        "run `python -m planner.changemodel --write` and review what the provider changed"
    )


@pytest.mark.parametrize(
    ("stack", "overrides"),
    [
        ("dev", None),
        ("gateway-hpc", None),
        ("persistent-swarm", None),
        ("workshop-k8s", None),
        ("workshop-k8s", MAGNUM),
        ("dev", {"networkMode": "create", "networkName": "n", "subnetName": "s", "quotas": {"routers": 2}}),
    ],
)
def test_every_type_the_program_creates_is_in_the_table(stack: str, overrides: dict[str, Any] | None) -> None:
    plan = plan_stack(stack, overrides=overrides)
    types = {
        r["type"] for r in plan["resources"] if r["custom"] and not r["type"].startswith("pulumi:providers:")
    }
    assert types <= set(changemodel.load()["types"]), types - set(changemodel.load()["types"])


def _doc(cls: type, prop: str) -> str:
    return " ".join(inspect.getdoc(getattr(cls, prop)).split())  # type: ignore[arg-type]


def test_instance_verbs_are_what_the_sdk_says() -> None:
    # Read straight from the SDK class, independently of the generator's parser.
    args = pulumi_openstack.compute.InstanceArgs
    assert "Changing this rebuilds the existing server" in _doc(args, "image_name")
    assert "Changing this resizes the existing server" in _doc(args, "flavor_name")
    assert "Changing this creates a new server" in _doc(args, "user_data")
    table = changemodel.load()["types"]["openstack:compute/instance:Instance"]["inputs"]
    assert table["imageName"]["verb"] == table["imageId"]["verb"] == "rebuild"
    assert table["flavorName"]["verb"] == table["flavorId"]["verb"] == "resize"
    assert table["userData"]["verb"] == table["keyPair"]["verb"] == table["networks"]["verb"] == "replace"
    assert table["metadata"]["verb"] == "update"


def test_magnum_force_new_fields_are_flagged() -> None:
    assert "Changing this creates a new cluster" in _doc(
        pulumi_openstack.containerinfra.ClusterArgs, "flavor"
    )
    cluster = changemodel.load()["types"]["openstack:containerinfra/cluster:Cluster"]["inputs"]
    for key in ("flavor", "masterFlavor", "masterCount", "labels", "dockerVolumeSize", "keypair"):
        assert cluster[key]["verb"] == "replace", key
    assert "nodeCount" not in cluster  # resized in place
    group = changemodel.load()["types"]["openstack:containerinfra/nodeGroup:NodeGroup"]["inputs"]
    assert group["maxNodeCount"]["verb"] == group["minNodeCount"]["verb"] == "update"
    assert group["flavorId"]["verb"] == "replace"


def test_command_triggers_replace_unless_an_update_command_is_set() -> None:
    assert "otherwise it will be replaced" in _doc(pulumi_command.remote.CommandArgs, "triggers")
    token = "command:remote:Command"
    assert changemodel.effect(token, "triggers", ["a"], ["b"], {"create": "x"}).verb == "replace"
    assert (
        changemodel.effect(token, "triggers", ["a"], ["b"], {"create": "x", "update": "y"}).verb == "update"
    )
    assert changemodel.effect(token, "create", "a", "b", {"create": "b"}).verb == "update"
    assert changemodel.reruns(token)


def test_silent_kubernetes_rules_look_inside_the_object() -> None:
    pvc = "kubernetes:core/v1:PersistentVolumeClaim"
    grow = changemodel.effect(
        pvc,
        "spec",
        {"resources": {"requests": {"storage": "5Gi"}}, "storageClassName": "a"},
        {"resources": {"requests": {"storage": "9Gi"}}, "storageClassName": "a"},
        {},
    )
    assert grow.verb == "update"
    moved = changemodel.effect(pvc, "spec", {"storageClassName": "a"}, {"storageClassName": "b"}, {})
    assert moved.verb == "replace" and not moved.documented
    renamed = changemodel.effect(pvc, "metadata", {"name": "a"}, {"name": "b"}, {})
    assert renamed.verb == "replace"
    labels = changemodel.effect(pvc, "metadata", {"labels": {"a": "1"}}, {"labels": {"a": "2"}}, {})
    assert labels.verb == "update"
    release = "kubernetes:helm.sh/v3:Release"
    assert changemodel.effect(release, "version", "1", "2", {}).verb == "update"
    assert changemodel.effect(release, "name", "a", "b", {}).verb == "replace"


def test_unknown_wording_stops_the_generation() -> None:
    with pytest.raises(ValueError, match="unknown wording"):
        changemodel._verb_of("reticulates the existing splines")
