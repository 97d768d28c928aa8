"""make diff against a deployed state (`--state`, a `pulumi stack export`): the planner writes
such an export of its own plan (`make plan EXPORT=`), and these tests edit it as a refresh, a
stale checkpoint or an older program would have left it."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from planner import state
from planner.__main__ import main as plan_main
from planner.diff import EXIT_DATA, EXIT_INVALID, EXIT_OK, EXIT_QUORUM, diff_plans, reruns
from planner.diff import main as diff_main
from planner.mocks import placeholder_id, placeholder_image_id, secret_digest
from planner.plan import deployed_plan, plan_stack
from planner.stackfile import SECRET_PLACEHOLDER

INSTANCE = "openstack:compute/instance:Instance"
FIP = "openstack:networking/floatingIp:FloatingIp"
OLD_IMAGE_ID = "5e1c0ffe-0000-4000-8000-000000000024"
REAL_NET = "a11ca7ed-0000-4000-8000-00000000ne71"
REAL_SUBNET = "a11ca7ed-0000-4000-8000-0000000sub01"

Export = dict[str, Any]


def _exported(stack: str, tmp_path_factory: pytest.TempPathFactory) -> Export:
    path = tmp_path_factory.mktemp(stack) / "export.json"
    assert plan_main(["--stack", stack, "--out", str(path.parent / "plan"), "--export", str(path)]) == 0
    return dict(json.loads(path.read_text()))


@pytest.fixture(scope="module")
def dev_export(tmp_path_factory: pytest.TempPathFactory) -> Export:
    return _exported("dev", tmp_path_factory)


@pytest.fixture(scope="module")
def swarm_export(tmp_path_factory: pytest.TempPathFactory) -> Export:
    return _exported("persistent-swarm", tmp_path_factory)


@pytest.fixture
def run_diff(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[..., tuple[int, str]]]:
    def run(stack: str, export: Export, *settings: str) -> tuple[int, str]:
        path = tmp_path / "state.json"
        path.write_text(json.dumps(export))
        code = diff_main(["--stack", stack, "--state", str(path), *(f"--set={s}" for s in settings)])
        return code, capsys.readouterr().out

    yield run


def _resources(export: Export) -> list[dict[str, Any]]:
    return list(export["deployment"]["resources"])


def _named(export: Export, name: str) -> dict[str, Any]:
    return next(r for r in _resources(export) if r["urn"].endswith(f"::{name}"))


def test_a_plans_own_export_is_the_deployed_stack_it_plans(
    dev_export: Export, swarm_export: Export, run_diff: Callable[..., tuple[int, str]]
) -> None:
    """Read back, the export is the plan: nothing to do, and no secret in it but digests."""
    for stack, export in (("dev", dev_export), ("persistent-swarm", swarm_export)):
        assert export["version"] == 3
        code, out = run_diff(stack, export)
        assert code == EXIT_OK, out
        assert "No resource changes." in out and "NOT COMPARED" not in out
        text = json.dumps(export)
        assert SECRET_PLACEHOLDER not in text and '"plaintext"' not in text
    secrets = _named(dev_export, "hub-secrets")["inputs"]["stdin"]
    assert set(secrets) == {state.SECRET_SIG_KEY, state.DIGEST_KEY}


@pytest.mark.parametrize("stack", ["gateway-hpc", "workshop-k8s"])
def test_every_stacks_own_export_diffs_to_nothing(
    stack: str, tmp_path_factory: pytest.TempPathFactory, run_diff: Callable[..., tuple[int, str]]
) -> None:
    code, out = run_diff(stack, _exported(stack, tmp_path_factory))
    assert code == EXIT_OK and "No resource changes." in out, out


def test_a_refresh_that_recorded_another_image_rebuilds_the_server_and_reruns_its_root_disk_steps(
    dev_export: Export, run_diff: Callable[..., tuple[int, str]]
) -> None:
    """After `pulumi refresh` the provider recorded the image the hub really booted, which the
    featured name no longer points at; the config did not change."""
    booted = placeholder_image_id("Featured-Ubuntu24")
    export = json.loads(json.dumps(dev_export).replace(booted, OLD_IMAGE_ID))
    server = _named(export, "hub-vm-server")
    server["inputs"]["imageName"] = server["outputs"]["imageName"] = "Featured-Ubuntu24 (2026-10)"
    assert server["outputs"]["imageId"] == OLD_IMAGE_ID

    before = state.read_export(export)
    after = plan_stack(
        "dev", deployed=[(r["type"], r["name"]) for r in before.plan["resources"]], stored=before.stored
    )
    planned = {r["name"]: r for r in after["resources"]}
    # The stored ID reached the steps (the mock's callbacks ran on the state), and the rebuilt
    # server's image is read again, so the steps' triggers change.
    assert planned["hub-vm-server"]["id"] == server["id"]
    assert planned["hub-secrets"]["inputs"]["triggers"][0] == server["id"]
    assert planned["hub-secrets"]["inputs"]["triggers"][1] == booted
    diff = diff_plans(before.plan, after)
    actions = {c.name: c.action for c in diff}
    assert actions["hub-vm-server"] == "rebuild"
    assert {"hub-secrets", "hub-config", "backup-install"} <= set(reruns(diff))
    hub = next(c for c in diff if c.name == "hub-vm-server")
    assert not [w for w in hub.warnings if "does NOT run again" in w], hub.warnings

    code, out = run_diff("dev", export)
    assert code == EXIT_OK
    assert "rebuild  openstack:compute/instance:Instance  hub-vm-server" in out
    assert "imageName: Featured-Ubuntu24 (2026-10) => Featured-Ubuntu24" in out
    assert "hub-secrets runs again" in out and "hub-config runs again" in out

    # Pinning the image the hub booted (its imageId output) is no change; another one rebuilds.
    code, out = run_diff("dev", export, f"imageId={OLD_IMAGE_ID}")
    assert code == EXIT_OK and "No resource changes." in out, out
    code, out = run_diff("dev", export, f"imageId={booted}")
    assert "rebuild  openstack:compute/instance:Instance  hub-vm-server" in out
    assert f"imageId: (none) => {booted}" not in out and "hub-secrets runs again" in out


def test_a_replaced_server_boots_with_its_stored_user_data_not_the_new_one(
    swarm_export: Export, run_diff: Callable[..., tuple[int, str]]
) -> None:
    """The manager ignores userData changes; its stored user data is older than the program's.
    A drifted key pair replaces it, and Pulumi creates the replacement with the stored value."""
    export = copy.deepcopy(swarm_export)
    manager = _named(export, "swarm-manager-server")
    planned = manager["inputs"]["userData"]
    first = planned.splitlines()[2]
    stale = planned.replace(first, "# written by an older version of the stack", 1)
    manager["inputs"]["userData"] = manager["outputs"]["userData"] = stale
    manager["inputs"]["keyPair"] = manager["outputs"]["keyPair"] = "jshub-deploy-2025"

    code, out = run_diff("persistent-swarm", export)
    assert code == EXIT_QUORUM, out
    assert "replace  openstack:compute/instance:Instance  swarm-manager-server" in out
    assert "keyPair: Changing this creates a new server." in out
    assert (
        "the replacement boots with the stored user data, not the new one (stored line 3: "
        "# written by an older version of the stack; this configuration's: " + first.strip()[:20]
    ) in out

    # The stale user data alone changes nothing: the server is kept as it is.
    manager["inputs"]["keyPair"] = manager["outputs"]["keyPair"] = swarm_export_key(swarm_export)
    code, out = run_diff("persistent-swarm", export)
    assert code == EXIT_OK, out
    assert "= keep     openstack:compute/instance:Instance  swarm-manager-server" in out


def swarm_export_key(export: Export) -> str:
    return str(_named(export, "swarm-manager-server")["inputs"]["keyPair"])


def test_a_changed_secret_input_shows_without_its_value(
    dev_export: Export, run_diff: Callable[..., tuple[int, str]]
) -> None:
    export = copy.deepcopy(dev_export)
    stdin = _named(export, "hub-secrets")["inputs"]["stdin"]
    planned_digest = stdin[state.DIGEST_KEY]
    stdin[state.DIGEST_KEY] = secret_digest("the secrets file of an earlier deployment")
    code, out = run_diff("dev", export)
    assert code == EXIT_OK
    assert "command:remote:Command  hub-secrets" in out
    assert "stdin: a secret, changed (its SHA-256 digest differs; the value is not shown)" in out
    assert SECRET_PLACEHOLDER not in out and planned_digest not in out and stdin[state.DIGEST_KEY] not in out

    # An export made with --show-secrets: its plaintext is hashed, never printed.
    del stdin[state.DIGEST_KEY]
    stdin["plaintext"] = json.dumps("HUB_COOKIE=an-earlier-value")
    code, out = run_diff("dev", export)
    assert "stdin: a secret, changed" in out and "an-earlier-value" not in out

    # A plain export holds the ciphertext only: said, not guessed.
    del stdin["plaintext"]
    stdin["ciphertext"] = "v1:AAAA:BBBB"
    code, out = run_diff("dev", export)
    assert code == EXIT_OK
    assert "No resource changes." in out
    assert "?? NOT COMPARED (the export holds these secrets encrypted): " in out
    assert "hub-secrets.stdin" in out and "--show-secrets" in out


def test_what_the_state_holds_and_the_plan_does_not_is_deleted_with_the_states_flags(
    dev_export: Export, run_diff: Callable[..., tuple[int, str]]
) -> None:
    export = copy.deepcopy(dev_export)
    fip = _named(export, "hub-vm-fip")
    retained = copy.deepcopy(fip)
    retained["urn"] = fip["urn"].replace("::hub-vm-fip", "::old-hub-fip")
    retained["retainOnDelete"], retained["protect"] = True, False
    export["deployment"]["resources"].append(retained)
    code, out = run_diff("dev", export)
    assert code == EXIT_OK, out
    assert "- delete   openstack:networking/floatingIp:FloatingIp  old-hub-fip" in out
    assert "retain_on_delete: the old one is left in the allocation" in out

    retained["protect"] = True
    code, out = run_diff("dev", export)
    assert code == EXIT_DATA
    assert "PROTECTED: `pulumi up` refuses to delete a protected resource" in out
    assert "!! DATA AT RISK: old-hub-fip (delete)" in out


def test_a_file_that_is_not_an_export_is_refused_by_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(deployed_plan("dev")))
    assert diff_main(["--stack", "dev", "--state", str(path)]) == EXIT_INVALID
    err = capsys.readouterr().err
    assert f"{path}: not a `pulumi stack export` of a version-3 deployment" in err


def test_what_the_cloud_looked_up_is_taken_from_the_state(
    dev_export: Export, run_diff: Callable[..., tuple[int, str]]
) -> None:
    """A real export holds the allocation's real network and subnet IDs where the plan has its
    look-ups' placeholders: those are no change. A port the state has on another network of
    the program's own making would be."""
    export = json.loads(
        json.dumps(dev_export)
        .replace(
            placeholder_id("openstack:networking/getNetwork:getNetwork", "auto_allocated_network"), REAL_NET
        )
        .replace(
            placeholder_id("openstack:networking/getSubnet:getSubnet", "auto_allocated_subnet_v4"),
            REAL_SUBNET,
        )
    )
    assert REAL_NET in json.dumps(_named(export, "hub-vm-port")["inputs"])
    code, out = run_diff("dev", export)
    assert code == EXIT_OK and "No resource changes." in out, out

    group = _named(export, "hub-vm-port")["inputs"]["securityGroupIds"]
    group[0] = "7e57ab1e-0000-4000-8000-000000000024"
    code, out = run_diff("dev", export)
    assert "openstack:networking/port:Port  hub-vm-port" in out and "securityGroupIds" in out


def test_a_resource_whose_parents_changed_is_created_anew_and_the_stored_one_deleted(
    dev_export: Export, run_diff: Callable[..., tuple[int, str]]
) -> None:
    """The state's URN says where the resource was made; an older program made the data volume
    outside the hub's component. Without an alias the engine sees another resource."""
    export = copy.deepcopy(dev_export)
    volume = _named(export, "hub-vm-data")
    volume["urn"] = volume["urn"].replace("jshub:index:JetstreamVM$", "")
    code, out = run_diff("dev", export)
    assert code == EXIT_DATA, out
    assert "+- replace  openstack:blockstorage/volume:Volume  hub-vm-data" in out
    assert "because its URN changes (parents HubVM => HubVM > JetstreamVM)" in out
