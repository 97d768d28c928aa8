"""networkMode `existing` on an allocation without the network: our own message, naming the
network and the `networkMode: create` way out, before anything is created."""

from __future__ import annotations

from typing import Any

import pytest
from pulumi.runtime import mocks

import planner.harness
from components import JetstreamNetwork, JetstreamNetworkArgs
from components.network import NetworkNotFoundError
from planner.mocks import PlanMocks
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
