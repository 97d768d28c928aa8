"""JetstreamNetwork: the allocation's own network, or a new one with its router."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pulumi
import pulumi_openstack as openstack

from catalog import AUTO_ALLOCATED_NETWORK, EXTERNAL_NETWORK
from stackconfig.model import overlapping


class NetworkNotFoundError(pulumi.RunError):
    """The network or subnet that networkMode `existing` reuses is not in the allocation.

    Jetstream2 makes `auto_allocated_network` for an allocation, but a new allocation may not
    have it yet."""

    def __init__(self, what: str, key: str, name: str, cause: Exception) -> None:
        self.name = name
        super().__init__(
            f"{key} = {name!r}: no {what} of that name was found in this allocation "
            f"(networkMode: existing reuses it). A new Jetstream2 allocation may not have "
            f"{AUTO_ALLOCATED_NETWORK} yet. Either set networkMode: create, and the stack makes a "
            f"network, subnet and router of its own (the allocation's quota must allow the "
            f"router), or set {key} to a {what} that exists. The provider said: {cause}"
        )


class SubnetOverlapError(pulumi.RunError):
    """The existing subnet shares addresses with a network the cluster gives its containers."""

    def __init__(self, name: str, cidr: str, clashes: list[tuple[str, str]]) -> None:
        what = " and ".join(f"{w} {c}" for w, c in clashes)
        super().__init__(
            f"subnetName = {name!r}: its CIDR {cidr} overlaps {what}, so the nodes would have two "
            f"routes to the same addresses. Use networkMode: create (the stack makes a subnet clear "
            f"of them, or set subnetCidr), or set subnetName to a subnet outside them."
        )


@dataclass(frozen=True)
class JetstreamNetworkArgs:
    mode: Literal["existing", "create"]
    network_name: str
    subnet_name: str
    cidr: str
    dns_nameservers: tuple[str, ...] = ("8.8.8.8", "1.1.1.1")
    # (what, CIDR) of networks the VMs' subnet must not overlap: an existing subnet is checked
    # when it is looked up (networkMode create is checked with the config).
    reserved: tuple[tuple[str, str], ...] = ()


class JetstreamNetwork(pulumi.ComponentResource):
    """An allocation may own only one router, which Jetstream2 already spent on
    `auto_allocated_network`: `existing` reuses that network; `create` builds a new network,
    subnet and router (for allocations whose quota allows a second router)."""

    network_id: pulumi.Output[str]
    subnet_id: pulumi.Output[str]
    # The subnet's CIDR: the one made, or the existing one's as looked up (None if the lookup
    # did not say).
    cidr: str | None

    def __init__(
        self, name: str, args: JetstreamNetworkArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("jshub:index:JetstreamNetwork", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOutputOptions(parent=self)
        if args.mode == "existing":
            # Looked up directly (not as Outputs) so that a missing network stops the program
            # here with our message, not with the provider's "query returned no results".
            lookup = pulumi.InvokeOptions(parent=self)
            try:
                network = openstack.networking.get_network(name=args.network_name, opts=lookup)
            except Exception as exc:
                raise NetworkNotFoundError("network", "networkName", args.network_name, exc) from exc
            try:
                subnet = openstack.networking.get_subnet(
                    name=args.subnet_name, network_id=network.id, opts=lookup
                )
            except Exception as exc:
                raise NetworkNotFoundError("subnet", "subnetName", args.subnet_name, exc) from exc
            clashes = overlapping(subnet.cidr, args.reserved) if subnet.cidr else []
            if clashes:
                raise SubnetOverlapError(args.subnet_name, subnet.cidr, clashes)
            self.network_id = pulumi.Output.from_input(network.id)
            self.subnet_id = pulumi.Output.from_input(subnet.id)
            self.cidr = subnet.cidr or None
        else:
            external = openstack.networking.get_network_output(
                name=EXTERNAL_NETWORK, external=True, opts=invoke
            )
            net = openstack.networking.Network(
                f"{name}-network", name=args.network_name, admin_state_up=True, opts=child
            )
            sub = openstack.networking.Subnet(
                f"{name}-subnet",
                name=args.subnet_name,
                network_id=net.id,
                cidr=args.cidr,
                ip_version=4,
                dns_nameservers=list(args.dns_nameservers),
                opts=child,
            )
            router = openstack.networking.Router(
                f"{name}-router",
                name=f"{args.network_name}-router",
                external_network_id=external.id,
                opts=child,
            )
            openstack.networking.RouterInterface(
                f"{name}-router-interface", router_id=router.id, subnet_id=sub.id, opts=child
            )
            self.network_id = net.id
            self.subnet_id = sub.id
            self.cidr = args.cidr
        self.register_outputs({"network_id": self.network_id, "subnet_id": self.subnet_id})
