"""The instances' network. networkMode `existing` on an allocation without the network: our own
message, naming the network and the `networkMode: create` way out, before anything is created.
The k3s nodes' subnet, made or reused, stays clear of k3s's pod and service networks."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from pulumi.runtime import mocks

import planner.harness
from components import JetstreamNetwork, JetstreamNetworkArgs
from components.network import NetworkNotFoundError, SubnetOverlapError
from planner.mocks import PlanMocks
from planner.plan import PlanError, plan_stack
from stackconfig.model import K3S_NETWORKS
from tests.conftest import run_mocked

# What the OpenStack provider answers when a lookup by name finds nothing.
NO_RESULTS = "Your query returned no results. Please change your search criteria and try again."


def missing(token: str) -> type[PlanMocks]:
    class Missing(PlanMocks):
        def call(self, args: mocks.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
            if args.token == token:
                return {}, [("", NO_RESULTS)]
            return super().call(args)

    return Missing


def build(network: str = "auto_allocated_network", subnet: str = "auto_allocated_subnet_v4") -> None:
    JetstreamNetwork("net", JetstreamNetworkArgs("existing", network, subnet, "10.0.0.0/24"))


def test_a_missing_network_gets_our_message_and_the_create_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(planner.harness, "PlanMocks", missing("openstack:networking/getNetwork:getNetwork"))
    with pytest.raises(NetworkNotFoundError) as caught:
        run_mocked(build)
    message = str(caught.value)
    assert message.startswith("networkName = 'auto_allocated_network': no network of that name was found")
    assert "networkMode: create" in message
    assert NO_RESULTS in message  # the provider's own words stay, at the end


def test_a_missing_subnet_names_the_subnet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(planner.harness, "PlanMocks", missing("openstack:networking/getSubnet:getSubnet"))
    with pytest.raises(NetworkNotFoundError, match=r"^subnetName = 'lab-subnet': no subnet of that name"):
        run_mocked(lambda: build(subnet="lab-subnet"))


def test_nothing_is_created_when_the_lookup_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    recorded: list[str] = []

    class Recording(missing("openstack:networking/getNetwork:getNetwork")):  # type: ignore[misc,valid-type]
        def new_resource(self, args: mocks.MockResourceArgs) -> tuple[str, dict[str, Any]]:
            recorded.append(args.typ)
            return super().new_resource(args)

    monkeypatch.setattr(planner.harness, "PlanMocks", Recording)
    with pytest.raises(NetworkNotFoundError):
        run_mocked(build)
    assert [t for t in recorded if t.startswith("openstack:")] == []


def test_a_network_that_exists_is_used() -> None:
    rec = run_mocked(build)
    tokens = [i["token"] for i in rec.invokes]
    assert tokens == [
        "openstack:networking/getNetwork:getNetwork",
        "openstack:networking/getSubnet:getSubnet",
    ]


# networkMode create (the second router it needs is left out of the quota check).
CREATE = {"networkMode": "create", "networkName": "hub-net", "subnetName": "hub-subnet"}


def created_subnet(stack: str, **overrides: Any) -> str:
    plan = plan_stack(stack, overrides={**CREATE, **overrides}, check_quotas=False)
    (subnet,) = [r for r in plan["resources"] if r["type"] == "openstack:networking/subnet:Subnet"]
    return str(subnet["inputs"]["cidr"])


def test_the_k3s_nodes_subnet_is_made_clear_of_k3s_networks() -> None:
    cidr = ipaddress.ip_network(created_subnet("workshop-k8s"))
    assert not any(cidr.overlaps(ipaddress.ip_network(c)) for _, c in K3S_NETWORKS)


def test_the_other_scenarios_keep_the_subnet_they_were_deployed_with() -> None:
    # A subnet's CIDR cannot change in place: a new default would replace the subnet and every
    # port on it. Only k8s, whose nodes could not have worked on it, gets another.
    assert created_subnet("dev") == created_subnet("persistent-swarm") == "10.42.0.0/24"
    assert created_subnet("workshop-k8s", subnetCidr="10.50.0.0/24") == "10.50.0.0/24"


def with_subnet(cidr: str) -> type[PlanMocks]:
    class Subnet(PlanMocks):
        def call(self, args: mocks.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
            result, failures = super().call(args)
            if args.token == "openstack:networking/getSubnet:getSubnet":
                result["cidr"] = cidr
            return result, failures

    return Subnet


def test_an_existing_subnet_inside_k3s_pod_network_stops_the_k8s_stack(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recorded: list[str] = []

    class Recording(with_subnet("10.42.7.0/24")):  # type: ignore[misc,valid-type]
        def new_resource(self, args: mocks.MockResourceArgs) -> tuple[str, dict[str, Any]]:
            recorded.append(args.typ)
            return super().new_resource(args)

    monkeypatch.setattr(planner.harness, "PlanMocks", Recording)
    with pytest.raises(PlanError) as caught:
        plan_stack("workshop-k8s")
    message = str(caught.value)
    assert (
        "subnetName = 'auto_allocated_subnet_v4': its CIDR 10.42.7.0/24 overlaps k3s's pod network 10.42.0.0/16"
        in message
    )
    assert "networkMode: create" in message
    assert [t for t in recorded if t.startswith("openstack:")] == []


def test_an_existing_subnet_is_checked_only_against_the_networks_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(planner.harness, "PlanMocks", with_subnet("10.43.0.0/24"))
    reserved = (("k3s's service network", "10.43.0.0/16"),)

    def build_with(reserved: tuple[tuple[str, str], ...]) -> None:
        JetstreamNetwork("net", JetstreamNetworkArgs("existing", "n", "s", "10.0.0.0/24", reserved=reserved))

    with pytest.raises(SubnetOverlapError, match=r"overlaps k3s's service network 10.43.0.0/16"):
        run_mocked(lambda: build_with(reserved))
    # A swarm's or a single hub's VMs have no such networks: the same subnet serves them.
    run_mocked(lambda: build_with(()))
    assert plan_stack("persistent-swarm")["resources"]
