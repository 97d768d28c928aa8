"""A small iptables evaluator for rendered firewall scripts: the rules are rebuilt from the
`iptables`/`ip6tables` calls a recording stand-in logged, and a packet is walked through the
chains as the kernel walks them (first match wins, jumps into user chains, RETURN back). It
knows only the matches the project's scripts use and refuses any other option, so a rule it
cannot read fails the test rather than being skipped."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

BUILT_IN = ("INPUT", "FORWARD", "OUTPUT")
VERDICTS = ("ACCEPT", "DROP", "REJECT")


@dataclass(frozen=True)
class Packet:
    """The first packet of a connection (`state` NEW) or a packet of one already open."""

    proto: str  # tcp, udp or icmp
    dst: str
    src: str = "172.18.0.2"
    dport: int | None = None
    iface: str = "docker_gwbridge"
    state: str = "NEW"


@dataclass(frozen=True)
class Rule:
    proto: str | None = None
    dst: str | None = None
    src: str | None = None
    iface: str | None = None
    dport: int | None = None
    states: frozenset[str] | None = None
    target: str = ""

    def matches(self, packet: Packet) -> bool:
        if self.proto is not None and self.proto != packet.proto:
            return False
        if self.dport is not None and self.dport != packet.dport:
            return False
        if self.iface is not None and self.iface != packet.iface:
            return False
        if self.states is not None and packet.state not in self.states:
            return False
        if self.dst is not None and ipaddress.ip_address(packet.dst) not in ipaddress.ip_network(self.dst):
            return False
        return self.src is None or ipaddress.ip_address(packet.src) in ipaddress.ip_network(self.src)


def parse_rule(spec: list[str]) -> Rule:
    options: dict[str, object] = {}
    args = iter(spec)
    for arg in args:
        if arg == "-p":
            options["proto"] = next(args)
        elif arg == "-d":
            options["dst"] = next(args)
        elif arg == "-s":
            options["src"] = next(args)
        elif arg == "-i":
            options["iface"] = next(args)
        elif arg == "--dport":
            if options.get("proto") not in ("tcp", "udp"):
                raise ValueError(f"--dport without -p tcp/udp in {spec}")
            options["dport"] = int(next(args))
        elif arg == "-m":
            if next(args) != "conntrack":
                raise ValueError(f"unknown match module in {spec}")
        elif arg == "--ctstate":
            options["states"] = frozenset(next(args).split(","))
        elif arg == "-j":
            options["target"] = next(args)
        elif arg == "--reject-with":
            next(args)  # how a REJECT answers; rejected either way
        else:
            raise ValueError(f"the evaluator does not know {arg!r} (in {spec})")
    if not options.get("target"):
        raise ValueError(f"a rule without -j: {spec}")
    return Rule(**options)  # type: ignore[arg-type]


class Table:
    """One tool's (iptables or ip6tables) filter table, as the recorded calls left it."""

    def __init__(self) -> None:
        self.chains: dict[str, list[Rule]] = {name: [] for name in BUILT_IN}

    def apply(self, args: list[str]) -> None:
        args = [a for a in args if a != "-w"]
        command, chain, rest = args[0], args[1], args[2:]
        if command == "-N":
            if chain in self.chains:
                raise ValueError(f"iptables -N {chain}: chain already exists")
            self.chains[chain] = []
        elif command == "-F":
            self.chains[chain].clear()
        elif command == "-X":
            if self.chains.get(chain):
                raise ValueError(f"iptables -X {chain}: chain is not empty")
            self.chains.pop(chain, None)
        elif command == "-A":
            self.chains[chain].append(parse_rule(rest))
        elif command == "-I":
            position = int(rest.pop(0)) if rest and rest[0].isdigit() else 1
            self.chains[chain].insert(position - 1, parse_rule(rest))
        elif command == "-D":
            rule = parse_rule(rest)
            if rule in self.chains.get(chain, []):
                self.chains[chain].remove(rule)
        elif command != "-C":
            raise ValueError(f"the evaluator does not know the command {command!r}")

    def verdict(self, chain: str, packet: Packet) -> str | None:
        """ACCEPT, DROP or REJECT, or None when the packet leaves `chain` without one (it goes
        on to whatever follows: Docker's own rules, the chain's policy)."""
        for rule in self.chains[chain]:
            if not rule.matches(packet):
                continue
            if rule.target == "RETURN":
                return None
            if rule.target in VERDICTS:
                return rule.target
            found = self.verdict(rule.target, packet)
            if found is not None:
                return found
        return None


def tables(calls: Iterable[list[str]], prefix: tuple[str, ...] = ()) -> dict[str, Table]:
    """Tables by tool name, from calls that begin with `prefix` and then the tool."""
    out: dict[str, Table] = {}
    for call in calls:
        if tuple(call[: len(prefix)]) != prefix:
            continue
        tool, *args = call[len(prefix) :]
        out.setdefault(tool, Table())
        try:
            out[tool].apply(args)
        except KeyError as exc:
            raise ValueError(f"{tool} {' '.join(args)}: no chain {exc}") from None
    return out
