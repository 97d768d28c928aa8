"""RoleSecurityGroup: one security group per role, ingress listed explicitly."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Literal

import pulumi
import pulumi_openstack as openstack

WORLD = ("0.0.0.0/0", "::/0")


@dataclass(frozen=True)
class Ingress:
    """Allow `protocol` on ports `port_min`-`port_max` from a CIDR or from members of a group
    (`from_self`: this same group, for cluster traffic)."""

    description: str
    protocol: Literal["tcp", "udp", "icmp"]
    port_min: int | None = None
    port_max: int | None = None
    cidr: str | None = None
    from_self: bool = False

    def __post_init__(self) -> None:
        if (self.cidr is None) == (not self.from_self):
            raise ValueError(f"{self.description}: give exactly one of cidr or from_self")

    @property
    def ethertype(self) -> str:
        if self.cidr is None:
            return "IPv4"
        return "IPv6" if ipaddress.ip_network(self.cidr).version == 6 else "IPv4"

    @property
    def slug(self) -> str:
        ports = f"{self.port_min}" if self.port_min == self.port_max else f"{self.port_min}-{self.port_max}"
        if self.from_self:
            source = "members"
        elif self.cidr in WORLD:
            source = "anywhere-" + self.ethertype.lower()
        else:
            source = re.sub(r"[^0-9a-zA-Z]+", "-", str(self.cidr)).strip("-")
        return f"{self.protocol}-{ports}-{source}"


def web_ingress() -> list[Ingress]:
    return [
        Ingress(f"{name} from anywhere", "tcp", port, port, cidr=cidr)
        for port, name in ((80, "http"), (443, "https"))
        for cidr in WORLD
    ]


def ssh_ingress(cidrs: list[str]) -> list[Ingress]:
    return [Ingress(f"ssh from {cidr}", "tcp", 22, 22, cidr=cidr) for cidr in cidrs]


@dataclass(frozen=True)
class RoleSecurityGroupArgs:
    role: str
    ingress: list[Ingress] = field(default_factory=list)


class RoleSecurityGroup(pulumi.ComponentResource):
    """The `default` group is left alone; every VM gets the groups of its roles only."""

    group_id: pulumi.Output[str]

    def __init__(
        self, name: str, args: RoleSecurityGroupArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("jshub:index:RoleSecurityGroup", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        group = openstack.networking.SecGroup(
            f"{name}-group",
            name=name,
            description=f"jupyterhub-jetstream {args.role}",
            opts=child,
        )
        seen: set[str] = set()
        for rule in args.ingress:
            if rule.slug in seen:
                continue
            seen.add(rule.slug)
            openstack.networking.SecGroupRule(
                f"{name}-{rule.slug}",
                description=rule.description,
                direction="ingress",
                ethertype=rule.ethertype,
                protocol=rule.protocol,
                port_range_min=rule.port_min,
                port_range_max=rule.port_max,
                remote_ip_prefix=rule.cidr,
                remote_group_id=group.id if rule.from_self else None,
                security_group_id=group.id,
                opts=child,
            )
        self.group_id = group.id
        self.register_outputs({"group_id": self.group_id})
