"""k8s changes that would move the cluster under its members: refused by `make diff` (exit 4)
with what to do instead.

Judged by the pinned SDK's own words (read here, not from planner/change_model.json) and by
Pulumi's ignore_changes semantics: an input in ignore_changes keeps its *stored* value, also when
the resource is replaced, so a replaced k3s node boots with the user data it was first created
with (its `server:` address among them)."""

from __future__ import annotations

import inspect
from functools import cache
from typing import Any

import pulumi_openstack
import pytest
import yaml

from planner.diff import EXIT_OK, EXIT_QUORUM, diff_plans, exit_code, render
from planner.diff import main as diff_main
from planner.plan import deployed_plan, plan_on
from renderers import k3s
from tests.builders import kubeconfig_server

INSTANCE = "openstack:compute/instance:Instance"
PORT = "openstack:networking/port:Port"
CP = [f"k8s-cp-{i}" for i in range(3)]
WORKERS = [f"k8s-worker-{i}" for i in range(3)]
NETWORK_MOVE = {"networkMode": "create", "networkName": "k8s-net", "quotas.routers": 2}


def says(args_cls: type, prop: str) -> str:
    return " ".join((inspect.getdoc(getattr(args_cls, prop)) or "").split())


@cache
def baseline() -> dict[str, Any]:
    return deployed_plan("workshop-k8s")


def by_name(plan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in plan["resources"]}


def stored_k3s_config(server: dict[str, Any]) -> dict[str, Any]:
    """The k3s config.yaml in a server's user data as the plan records it."""
    user_data = yaml.safe_load(server["inputs"]["userData"])
    (entry,) = [f for f in user_data["write_files"] if f["path"] == k3s.CONFIG_FILE]
    config: dict[str, Any] = yaml.safe_load(entry["content"])
    return config


# --- hand-built plans --------------------------------------------------------------------------


def _server(
    name: str, role: str, user_data: str, key_pair: str = "k1", port: str | None = None
) -> dict[str, Any]:
    return {
        "type": INSTANCE,
        "name": name,
        "parent": None,
        "custom": True,
        "inputs": {"keyPair": key_pair, "userData": user_data, "metadata": {"role": role}},
        "protect": False,
        "retain_on_delete": False,
        "delete_before_replace": True,
        "depends_on": [],
        "data_dependencies": {"networks": [port]} if port else {},
        "ignore_changes": ["userData"],
        "replace_on_changes": [],
    }


def test_a_worker_replaced_with_changed_ignored_user_data_is_refused() -> None:
    assert "Changing this creates a new server" in says(pulumi_openstack.compute.InstanceArgs, "key_pair")
    before = {"resources": [_server("w-0", "k8s-worker", "server: https://10.0.0.5:6443")]}
    after = {"resources": [_server("w-0", "k8s-worker", "server: https://10.0.0.9:6443", key_pair="k2")]}
    diff = diff_plans(before, after)
    assert [(c.name, c.action, c.ignored) for c in diff] == [("w-0", "replace", ["userData"])]
    [move] = diff.moves
    assert move.server == "w-0" and not move.new_address
    assert "stale user data" in move.describe()
    assert exit_code(diff) == EXIT_QUORUM
    text = render(diff, {"keyPair": "k2"})
    assert "!! REFUSED (keyPair): server (k8s-worker): w-0 is replaced with stale user data" in text
    assert "Instead: a server gets this configuration's user data only when it is created anew" in text


def test_a_replacement_with_the_same_user_data_or_an_ignored_change_alone_is_no_move() -> None:
    before = {"resources": [_server("w-0", "k8s-worker", "same")]}
    # Replaced, but the stored user data is what the configuration renders: nothing is stale.
    replaced = {"resources": [_server("w-0", "k8s-worker", "same", key_pair="k2")]}
    diff = diff_plans(before, replaced)
    assert [c.action for c in diff] == ["replace"] and diff.moves == [] and exit_code(diff) == EXIT_OK
    # Changed user data on a server that stays: ignored, the server is kept as it is.
    kept = {"resources": [_server("w-0", "k8s-worker", "other")]}
    diff = diff_plans(before, kept)
    assert list(diff) == [] and diff.moves == [] and [c.name for c in diff.kept] == ["w-0"]


# --- workshop-k8s ------------------------------------------------------------------------------


def test_a_network_change_that_moves_the_control_plane_exits_4() -> None:
    before, after = baseline(), plan_on(baseline(), "workshop-k8s", overrides=NETWORK_MOVE)
    old, new = by_name(before), by_name(after)
    # The SDK: a port's network "creates a new port" (a new address), and a server's networks
    # (the port it is attached by) "creates a new server".
    assert "Changing this creates a new port" in says(pulumi_openstack.networking.PortArgs, "network_id")
    assert "Changing this creates a new server" in says(pulumi_openstack.compute.InstanceArgs, "networks")
    for node in CP + WORKERS:
        port = f"{node}-port"
        assert old[port]["inputs"]["networkId"] != new[port]["inputs"]["networkId"], port
        assert new[f"{node}-server"]["data_dependencies"]["networks"] == [port]
        # Pulumi creates the new server with the stored (ignored) user data.
        assert "userData" in new[f"{node}-server"]["ignore_changes"]
    # What the replaced cp-1, cp-2 and the workers would boot with: cp-0's old address, on a
    # port the change replaces.
    server_urls = {stored_k3s_config(old[f"{n}-server"]).get("server") for n in CP[1:] + WORKERS}
    (url,) = server_urls
    assert (
        url.startswith("https://10.0.0.")
        and "k8s-cp-0-port" in old["k8s-cp-1-server"]["data_dependencies"]["userData"]
    )

    diff = diff_plans(before, after)
    assert {c.name: c.action for c in diff if c.type == INSTANCE} == {
        f"{n}-server": "replace" for n in CP + WORKERS
    }
    moved = {m.server: m for m in diff.moves}
    assert set(moved) == {f"{n}-server" for n in CP + WORKERS}
    assert all(moved[f"{n}-server"].new_address for n in CP)
    assert exit_code(diff) == EXIT_QUORUM
    text = render(diff, NETWORK_MOVE)
    assert "k8s-cp-0-server gets a new address: its port k8s-cp-0-port is replaced" in text
    assert "deploy a new stack there, restore the homes" in text
    # Not announced as a safe roll any more.
    assert "Rolled: k8s control plane" not in text


def test_make_diff_exits_4_on_a_network_move(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--stack", "workshop-k8s", *(f"--set={k}={v}" for k, v in NETWORK_MOVE.items())]
    assert diff_main(args) == EXIT_QUORUM
    out = capsys.readouterr().out
    assert "!! REFUSED (networkMode, networkName, quotas.routers): k8s control plane" in out
    assert "Instead: k3s cannot move a control-plane node in place" in out


def test_another_subnet_moves_the_control_plane_in_place_and_exits_4() -> None:
    # The SDK says nothing about a change of a port's fixed_ips: it is updated in place, and the
    # running node gets an address on the other subnet while etcd and the nodes keep the old one.
    assert "Changing this" not in says(pulumi_openstack.networking.PortArgs, "fixed_ips")
    before, after = baseline(), plan_on(baseline(), "workshop-k8s", overrides={"subnetName": "other-subnet"})
    old, new = by_name(before), by_name(after)
    assert old["k8s-cp-0-port"]["inputs"]["fixedIps"] != new["k8s-cp-0-port"]["inputs"]["fixedIps"]
    diff = diff_plans(before, after)
    assert {c.name for c in diff if c.type == INSTANCE} == set()
    assert {m.server for m in diff.moves} == {f"{n}-server" for n in CP}
    assert exit_code(diff) == EXIT_QUORUM
    assert "the fixed IPs of its port k8s-cp-0-port change in place" in render(diff, {"subnetName": "x"})


def test_a_new_key_pair_replaces_nodes_that_keep_their_addresses_and_user_data() -> None:
    before, after = baseline(), plan_on(baseline(), "workshop-k8s", overrides={"keyPair": "another-key"})
    old, new = by_name(before), by_name(after)
    for node in CP + WORKERS:
        assert old[f"{node}-port"]["inputs"] == new[f"{node}-port"]["inputs"]
        assert old[f"{node}-server"]["inputs"]["userData"] == new[f"{node}-server"]["inputs"]["userData"]
    diff = diff_plans(before, after)
    assert {c.name: c.action for c in diff if c.type == INSTANCE} == {
        f"{n}-server": "replace" for n in CP + WORKERS
    }
    assert diff.moves == [] and diff.quorum == []
    assert exit_code(diff) == EXIT_OK
    assert "Rolled: k8s control plane" in render(diff, {"keyPair": "another-key"})


def test_a_new_subnet_range_moves_the_control_plane_and_exits_4() -> None:
    # The SDK is silent on a subnet's cidr; terraform-provider-openstack marks it ForceNew (the
    # change table's rule for it is checked here): a new subnet, whose ID every port's fixed IPs
    # take, in place.
    from planner import changemodel

    effect = changemodel.effect(
        "openstack:networking/subnet:Subnet", "cidr", "10.44.0.0/24", "10.45.0.0/24", {}
    )
    assert effect.verb == "replace" and "ForceNew" in effect.says
    assert "Changing this" not in says(pulumi_openstack.networking.SubnetArgs, "cidr")
    before = deployed_plan("workshop-k8s", overrides=NETWORK_MOVE)
    after = plan_on(before, "workshop-k8s", overrides={**NETWORK_MOVE, "subnetCidr": "10.45.0.0/24"})
    assert by_name(after)["k8s-cp-0-port"]["data_dependencies"]["fixedIps"] == ["net-subnet"]
    diff = diff_plans(before, after)
    assert {c.name: c.action for c in diff if c.name == "net-subnet"} == {"net-subnet": "replace"}
    assert {m.server for m in diff.moves} == {f"{n}-server" for n in CP}
    assert exit_code(diff) == EXIT_QUORUM


# --- a new hub name --------------------------------------------------------------------------------

# What k3s puts in every server's serving certificate on 6443 whatever `tls-san` says (k3s
# pkg/cluster/https.go, newListener), with the default cluster domain.
K3S_FIXED_SANS = (
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)


def test_a_new_hub_name_leaves_the_api_certificate_check_and_the_nodes_alone() -> None:
    assert k3s.API_SERVER_NAME in K3S_FIXED_SANS
    # The kubeconfig the stack's provider uses checks the certificate against that fixed name,
    # before and after a new hubHostname: the certificate, made at the first boot, still matches.
    for hostname in ("hub", "jupyter"):
        cluster, _ = kubeconfig_server("10.0.0.0/24", hubHostname=hostname)
        assert cluster["tls-server-name"] == k3s.API_SERVER_NAME, hostname
    before, after = baseline(), plan_on(baseline(), "workshop-k8s", overrides={"hubHostname": "jupyter"})
    # The nodes' user data does not carry the hub's name (no tls-san to go stale).
    for node in CP + WORKERS:
        config = stored_k3s_config(by_name(before)[f"{node}-server"])
        assert "tls-san" not in config, node
    diff = diff_plans(before, after)
    assert [c.name for c in [*diff, *diff.kept] if c.type == INSTANCE] == []
    assert diff.moves == [] and exit_code(diff) == EXIT_OK
