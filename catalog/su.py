"""Jetstream2's SU arithmetic, in one place: what a server burns of its VM, and how long an
allocation's balance lasts at a stack's burn. A running instance costs its flavor's vCPUs × SU
rate per hour (docs.jetstream-cloud.org/general/instance-flavors); the planner, the stack's
outputs, the alert rule and the operators' commands all reckon with these functions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from catalog.jetstream2 import Flavor


def days_left(balance: float, su_per_hour: float) -> float:
    """Days `balance` SUs last at `su_per_hour`, running around the clock."""
    return balance / su_per_hour / 24


def balance_at(balance: float, as_of: date, su_per_hour: float, now: datetime) -> float:
    """What is left at `now` of `balance` SUs read at the start of `as_of` (UTC), with the stack
    running since then at `su_per_hour`."""
    start = datetime.combine(as_of, datetime.min.time(), UTC)
    return balance - su_per_hour * max(0.0, (now - start).total_seconds()) / 3600


@dataclass(frozen=True)
class Burn:
    """A deployed stack's burn: `balance_su` read on `as_of` (UTC), `su_per_hour` with every
    server running, and the days below which the operator is warned."""

    su_per_hour: float
    balance_su: float
    as_of: date
    warn_days: int

    def output(self) -> dict[str, Any]:
        """As the stack exports it (`allocation_burn`)."""
        return {
            "su_per_hour": self.su_per_hour,
            "balance_su": self.balance_su,
            "as_of": self.as_of.isoformat(),
            "warn_days": self.warn_days,
        }

    @classmethod
    def from_output(cls, value: dict[str, Any]) -> Burn:
        return cls(
            float(value["su_per_hour"]),
            float(value["balance_su"]),
            date.fromisoformat(str(value["as_of"])),
            int(value["warn_days"]),
        )

    def days_left_at(self, now: datetime) -> float | None:
        """None when the stack burns nothing."""
        if self.su_per_hour <= 0:
            return None
        return days_left(balance_at(self.balance_su, self.as_of, self.su_per_hour, now), self.su_per_hour)

    def alert_expr(self) -> str:
        """PromQL that holds while fewer than warn_days are left: days_left_at, with
        Prometheus's time() as now."""
        start = int(datetime.combine(self.as_of, datetime.min.time(), UTC).timestamp())
        balance, rate = float(self.balance_su), float(self.su_per_hour)
        # vector(): an alert needs a series; a comparison of two scalars is refused.
        return (
            f"({balance!r} - {rate!r} * (vector(time()) - {start}) / 3600) / ({rate!r} * 24) "
            f"< {self.warn_days}"
        )


def server_su_per_hour(cpu: float, flavor: Flavor) -> float:
    """A user's server's share of its VM's SUs per hour: its CPU (limit, reservation or
    guarantee: whatever the scenario sets aside for it) over the VM's vCPUs, times the flavor's
    rate; never more than the whole VM."""
    return min(cpu, flavor.vcpus) / flavor.vcpus * flavor.su_per_hour
