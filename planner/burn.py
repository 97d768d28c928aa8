"""How long the allocation lasts at the stack's SU/hour, and what shelving between workshop days saves.

Jetstream2 charges a SHELVED instance no SUs (0%), a STOPPED one 50% and a SUSPENDED one 75% of
its rate: https://docs.jetstream-cloud.org/general/access/ ("SHELVED instances will not be charged
SUs"; "If you do not wish to be charged, shelve your instance"). Volumes, ports and floating IPs
are not charged SUs either way, so a shelved stack costs nothing per hour and keeps its data."""

from __future__ import annotations

import math
from datetime import date, timedelta
from typing import Any

from catalog.su import days_left

SHELVING_SOURCE = "https://docs.jetstream-cloud.org/general/access/"

SHELVE_CAVEATS = (
    "state on data volumes survives; a shelved server keeps its ID, port and floating IP (the "
    "floating IP stays allocated and counts against the quota)",
    "the hub is down while shelved: nobody can log in, and backups and alerts on its VM do not run "
    "(the backup-age alert may fire after unshelving until the next backup)",
    "how long an unshelve takes is not known offline: unshelve well before the day starts and "
    "check the hub (`make smoke`)",
)
K8S_CAVEAT = (
    "a k8s cluster is shelved and unshelved as a whole (every node, control plane included), "
    "never some nodes only"
)


def _days(hours: float) -> float:
    return round(hours / 24, 1)


def allocation(
    su_per_hour: float,
    balance: float | None,
    warn_days: int,
    workshop_hours: float,
    workshop_days: int,
    today: date,
    max_su_per_hour: float | None = None,
    key: str = "allocationSus",
) -> dict[str, Any]:
    """Days `balance` lasts with the stack running 24/7, the date it runs out, and warnings
    when that is fewer than `warn_days` or a workshop of `workshop_days` days of
    `workshop_hours` each does not fit. `max_su_per_hour`: the same at an autoscaler's bound.
    `key`: the config key that holds `balance` (warnings name it)."""
    result: dict[str, Any] = {
        "balance_su": balance,
        "warn_days": warn_days,
        "as_of": today.isoformat(),
        "days_left": None,
        "runs_out_on": None,
        "days_left_at_max": None,
        "workshop_fits_24x7": None,
        "workshop_fits_shelved": None,
        "warnings": [],
    }
    if balance is None:
        return result
    warnings: list[str] = result["warnings"]
    if su_per_hour > 0:
        hours_left = days_left(balance, su_per_hour) * 24
        result["days_left"] = _days(hours_left)
        # The day the balance reaches zero: the last whole day it covers ends before it.
        result["runs_out_on"] = (today + timedelta(days=math.floor(hours_left / 24))).isoformat()
        if hours_left < warn_days * 24:
            warnings.append(
                f"{key} {balance:g} SU lasts {hours_left / 24:.1f} days at {su_per_hour:g} SU/hour "
                f"running 24/7 (runs out on {result['runs_out_on']}), fewer than allocationWarnDays "
                f"{warn_days}: ask for more SUs, or shelve the stack when it is not in use"
            )
    if max_su_per_hour is not None and max_su_per_hour > su_per_hour:
        result["days_left_at_max"] = _days(balance / max_su_per_hour)
    shelved_su = su_per_hour * workshop_hours * workshop_days
    running_su = su_per_hour * (24 * (workshop_days - 1) + workshop_hours)
    result["workshop_fits_shelved"] = shelved_su <= balance
    result["workshop_fits_24x7"] = running_su <= balance
    days = (
        f"{workshop_days} days of {workshop_hours:g} hours"
        if workshop_days > 1
        else f"{workshop_hours:g} hours"
    )
    if shelved_su > balance:
        warnings.append(
            f"a workshop of {days} needs {shelved_su:g} SU at {su_per_hour:g} SU/hour, more than "
            f"{key} {balance:g} SU"
        )
    elif running_su > balance:
        warnings.append(
            f"a workshop of {days} needs {running_su:g} SU with the stack running from its first hour to "
            f"its last, more than {key} {balance:g} SU; it fits ({shelved_su:g} SU) only if the "
            "stack is shelved between the days"
        )
    return result


def shelving(
    instances: list[dict[str, Any]],
    su_per_hour: float,
    workshop_hours: float,
    workshop_days: int,
    scenario: str,
) -> dict[str, Any]:
    """What shelving every VM outside `workshop_hours` of each of `workshop_days` days saves
    against running 24/7 over those days, and which VMs can be shelved."""
    running = su_per_hour * 24 * workshop_days
    shelved = su_per_hour * min(workshop_hours, 24) * workshop_days
    vms = []
    for i in instances:
        # Magnum's node groups are Cluster API machines: Magnum, not this stack, owns them.
        magnum = i["magnum"]
        vms.append(
            {
                "name": i["name"],
                "count": i["count"],
                "su_per_hour": i["su_per_hour"],
                "shelvable": not magnum,
                "why": "Magnum's node group: Magnum manages its servers (none can be shelved by this stack)"
                if magnum
                else "a server of this stack; its data volumes keep their state",
            }
        )
    caveats = list(SHELVE_CAVEATS)
    if scenario == "k8s":
        caveats.insert(1, K8S_CAVEAT)
    return {
        "source": SHELVING_SOURCE,
        "shelved_su_per_hour": 0,
        "workshop_days": workshop_days,
        "hours_per_day": workshop_hours,
        "su_running_24x7": running,
        "su_shelved_between_days": shelved,
        "su_saved": running - shelved,
        "saved_percent": round(100 * (running - shelved) / running, 1) if running else 0.0,
        "su_saved_per_day_shelved": su_per_hour * 24,
        "vms": vms,
        "caveats": caveats,
    }


def lines(c: dict[str, Any]) -> list[str]:
    """The plan's text for the allocation and shelving."""
    a, s = c["allocation"], c["shelving"]
    out: list[str] = []
    if a["balance_su"] is None:
        out.append("  allocation: set allocationSus (the SU balance) to see how many days it lasts")
    elif a["days_left"] is None:
        spends = (
            "its SUs are all GPU SUs (allocationGpuSus)"
            if c.get("gpu_su_per_hour")
            else "the stack burns no SUs on Jetstream2"
        )
        out.append(f"  allocation: {a['balance_su']:g} SU; {spends}")
    else:
        at_max = (
            f"; {a['days_left_at_max']:g} days if the autoscaler reaches its bound"
            if a["days_left_at_max"] is not None
            else ""
        )
        read = a.get("read")
        counted = f" ({read['balance_su']:g} SU on {read['on']}, less the stack's burn since)" if read else ""
        out.append(
            f"  allocation: {a['balance_su']:g} SU{counted} lasts {a['days_left']:g} days running 24/7 "
            f"(from {a['as_of']}: runs out on {a['runs_out_on']}){at_max}"
        )
    shelvable = [v["name"] for v in s["vms"] if v["shelvable"]]
    out.append(
        f"  shelving ({s['source']}: shelved servers are charged no SUs): {s['workshop_days']} "
        f"day(s) of {s['hours_per_day']:g} hours cost {s['su_shelved_between_days']:g} SU with the stack "
        f"shelved in between, {s['su_running_24x7']:g} SU running 24/7: saves {s['su_saved']:g} SU "
        f"({s['saved_percent']:g}%); each whole day shelved saves {s['su_saved_per_day_shelved']:g} SU"
    )
    if shelvable:
        out.append(
            f"    can be shelved: {', '.join(shelvable)} (`shelved: true`, or README: Shelving between workshop days)"
        )
    for v in s["vms"]:
        if not v["shelvable"]:
            out.append(f"    not by this stack: {v['name']}: {v['why']}")
    out += [f"    - {caveat}" for caveat in s["caveats"]]
    gpu = c.get("allocation_gpu")
    if c.get("gpu_su_per_hour") and gpu is not None:
        if gpu["balance_su"] is None:
            out.append(
                "  GPU allocation: set allocationGpuSus (the Jetstream2 GPU balance) to see how many days it lasts"
            )
        elif gpu["days_left"] is not None:
            out.append(
                f"  GPU allocation: {gpu['balance_su']:g} SU lasts {gpu['days_left']:g} days running 24/7 "
                f"(runs out on {gpu['runs_out_on']})"
            )
    out += [f"WARNING: {w}" for w in a["warnings"] + (gpu["warnings"] if gpu else [])]
    return out
