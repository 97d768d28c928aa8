"""User data survives every change short of a deliberate delete: for each example stack, plan
it as it is and with a change, and judge the two resource sets by what pulumi_openstack's own
docstrings say replaces a volume or an attachment (read here, not from the planner's table)."""

from __future__ import annotations

from typing import Any

import pulumi_openstack
import pytest

from planner.diff import dangerous, diff_plans
from planner.plan import plan_stack
from tests.sdk_docs import sdk_verb

VOLUME = "openstack:blockstorage/volume:Volume"
ATTACH = "openstack:compute/volumeAttach:VolumeAttach"

# (stack, change): changes of image, flavor and cloud-init (anything rendered into user data),
# and shrinking, for every example stack. The image can change only where a second image is
# allowed (scenario k8s; the hub scenarios need Featured-Ubuntu24, stackconfig/images.py).
CHANGES: list[tuple[str, dict[str, Any]]] = [
    ("dev", {"hubFlavor": "m3.medium"}),
    ("dev", {"idleTimeoutMinutes": 240}),  # re-rendered jupyterhub_config.py: new user data
    ("dev", {"auth": {"type": "cilogon", "clientId": "cilogon:/client_id/x", "admins": ["jdoe"]}}),
    ("dev", {"concurrentUsers": 2}),
    ("workshop-k8s", {"image": "Featured-Ubuntu22"}),
    ("workshop-k8s", {"k8s.workerFlavor": "m3.2xl", "quotas.cores": 300, "quotas.ramGb": 1000}),
    ("workshop-k8s", {"k8s.controlPlaneFlavor": "m3.large"}),
    ("workshop-k8s", {"k8s.workerCount": 2}),  # shrinking the cluster
    ("workshop-k8s", {"k8s.k3sVersion": "v1.33.6+k3s1"}),  # new node user data
    ("workshop-k8s", {"idleTimeoutMinutes": 90}),
    ("gateway-hpc", {"hubFlavor": "m3.medium"}),
    ("gateway-hpc", {"hpc.defaultWallHours": 1}),  # re-rendered spawner config
    ("persistent-swarm", {"swarm.workerFlavor": "m3.large"}),
    ("persistent-swarm", {"swarm.managerFlavor": "m3.quad"}),
    ("persistent-swarm", {"swarm.workerCount": 2}),  # shrinking the swarm
    ("persistent-swarm", {"swarm.homeQuotaGb": 20}),
]


@pytest.fixture(scope="module")
def baselines() -> dict[str, dict[str, Any]]:
    return {stack: plan_stack(stack) for stack in {s for s, _ in CHANGES}}


def _data_volumes(plan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in plan["resources"] if r["type"] == VOLUME}


@pytest.mark.parametrize(("stack", "change"), CHANGES, ids=[f"{s}:{','.join(c)}" for s, c in CHANGES])
def test_change_never_replaces_or_deletes_a_data_volume(
    baselines: dict[str, dict[str, Any]], stack: str, change: dict[str, Any]
) -> None:
    before = baselines[stack]
    after = plan_stack(stack, overrides=change)
    changed = [r for r in after["resources"] if r not in before["resources"]]
    assert changed, "the change must change some input, or this test proves nothing"
    assert not dangerous(diff_plans(before, after))
    volumes_before, volumes_after = _data_volumes(before), _data_volumes(after)
    assert volumes_before.keys() <= volumes_after.keys()
    for name, volume in volumes_after.items():
        assert volume["protect"] and volume["retain_on_delete"], name
        if name in volumes_before:
            old = volumes_before[name]["inputs"]
            for key in old.keys() | volume["inputs"].keys():
                # "Changing this creates a new volume": such an input must never move.
                if sdk_verb(pulumi_openstack.blockstorage.VolumeArgs, key) == "replace":
                    assert old.get(key) == volume["inputs"].get(key), f"{name}: {key} would replace it"
            assert old == volume["inputs"], f"{name} changed"
    # An attachment may move to a replacement server, but never disappears.
    attach_before = {r["name"] for r in before["resources"] if r["type"] == ATTACH}
    attach_after = {r["name"] for r in after["resources"] if r["type"] == ATTACH}
    assert attach_before <= attach_after
