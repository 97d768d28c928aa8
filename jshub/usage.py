"""Who used how many server-hours and SUs, per day:

    python -m jshub.usage [--ssh USER@HOST] [--record FILE ...] [--since DATE] [--csv FILE]
    python -m jshub.usage sample --record FILE         append what runs now to FILE
    python -m jshub.usage --sacct USER@HOST            hpc: the notebook jobs SLURM accounted

The hub's REST API says when each running server `started`, but keeps no history: a server that
stopped is gone from it. So usage comes from three places, merged:
- the servers running now, from the API (started → now);
- the hub's usage record: lines of JSON its `usage-record` service (hub/jshub_usage.py, on the
  VM and swarm hubs) appends every few minutes to the data volume, read over SSH (--ssh), or
  files given with --record (`sample` writes one from anywhere that reaches the hub, e.g. from
  cron for the k8s hub, which keeps none); each sample names the servers running then and when
  each started, and a server counts from its start to the last sample that saw it (so at most
  one sample period is missed at its end);
- on hpc, SLURM's accounting (`sacct` over SSH on the login node): each notebook job's start,
  end and allocated cores.

SUs: a server-hour is charged the server's share of its VM (its CPU over the VM's vCPUs, times
the flavor's SU/hour: planner.burn.server_su_per_hour), from the stack's `usage_basis` output or
--flavor/--cpu. An hpc job's SUs are its core-hours times --hpc-su-per-core-hour (the HPC
system's own charge, 1 unless given). Days are UTC days; a span across midnight is split."""

from __future__ import annotations

import argparse
import csv
import io
import json
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from catalog import FLAVORS
from catalog.su import server_su_per_hour
from jshub import target
from jshub.hubapi import HubAPI
from jshub.users import all_users


@dataclass(frozen=True)
class Span:
    """One server's time: `key` tells it apart from other servers (user, server name and start)."""

    user: str
    start: datetime
    end: datetime
    su_per_hour: float
    key: str

    def hours(self) -> float:
        return max(0.0, (self.end - self.start).total_seconds() / 3600)


@dataclass(frozen=True)
class Row:
    day: date
    user: str
    server_hours: float
    sus: float


def parse_time(text: str) -> datetime:
    """JupyterHub's ISO 8601 (with Z), or SLURM's local-less `2026-12-08T01:02:03` (as UTC)."""
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def running_servers(users: Iterable[dict[str, Any]]) -> list[dict[str, str]]:
    """What a sample records: each started server's user, name and start time."""
    found = []
    for user in users:
        for name, server in (user.get("servers") or {}).items():
            if server and server.get("started"):
                found.append({"user": user["name"], "server": name, "started": server["started"]})
    return found


def sample_line(now: datetime, users: Iterable[dict[str, Any]]) -> str:
    return json.dumps({"t": now.isoformat(), "servers": running_servers(users)}, sort_keys=True)


def spans_from_samples(lines: Iterable[str], su_per_hour: float) -> list[Span]:
    """A server (user, name, start) runs from its start to the last sample that saw it. A line
    that is not a sample (a write cut short) is skipped."""
    last_seen: dict[tuple[str, str, str], datetime] = {}
    for line in lines:
        try:
            sample = json.loads(line)
            seen_at = parse_time(sample["t"])
            servers = sample["servers"]
        except (ValueError, KeyError, TypeError):
            continue
        for s in servers:
            key = (s["user"], s["server"], s["started"])
            last_seen[key] = max(seen_at, last_seen.get(key, seen_at))
    return [
        Span(user, parse_time(started), end, su_per_hour, f"{user}/{server}@{started}")
        for (user, server, started), end in last_seen.items()
    ]


def spans_from_api(users: Iterable[dict[str, Any]], now: datetime, su_per_hour: float) -> list[Span]:
    return [
        Span(
            s["user"], parse_time(s["started"]), now, su_per_hour, f"{s['user']}/{s['server']}@{s['started']}"
        )
        for s in running_servers(users)
    ]


# sacct's fields, in this order, one job a line ("|"-separated with --parsable2).
SACCT_FIELDS = "JobID,User,Start,End,AllocCPUS"


def sacct_command(since: date) -> list[str]:
    """Every user's jobs (allocations only, -X) since `since`, as SLURM accounted them."""
    return [
        "sacct", "--allusers", "--allocations", "--noheader", "--parsable2",
        f"--format={SACCT_FIELDS}", f"--starttime={since.isoformat()}",
    ]  # fmt: skip


def spans_from_sacct(text: str, now: datetime, su_per_core_hour: float) -> list[Span]:
    """A job not started (Start `Unknown`/`None`) took no time; one still running ends now."""
    spans = []
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) != 5:
            continue
        job, user, start, end, cores = parts
        if start in ("Unknown", "None", ""):
            continue
        finish = now if end in ("Unknown", "None", "") else parse_time(end)
        spans.append(Span(user, parse_time(start), finish, int(cores) * su_per_core_hour, f"job {job}"))
    return spans


def merge(*sources: Iterable[Span]) -> list[Span]:
    """The same server seen by the record and by the API counts once, to its latest end."""
    best: dict[str, Span] = {}
    for span in (s for source in sources for s in source):
        if span.key not in best or span.end > best[span.key].end:
            best[span.key] = span
    return list(best.values())


def by_day(spans: Iterable[Span], since: date | None = None) -> list[Row]:
    """Server-hours and SUs per (UTC day, user), each span split at midnight."""
    totals: dict[tuple[date, str], tuple[float, float]] = {}
    for span in spans:
        start = span.start.astimezone(UTC)
        end = span.end.astimezone(UTC)
        while start < end:
            midnight = datetime.combine(start.date() + timedelta(days=1), datetime.min.time(), UTC)
            part_end = min(end, midnight)
            hours = (part_end - start).total_seconds() / 3600
            if since is None or start.date() >= since:
                h, su = totals.get((start.date(), span.user), (0.0, 0.0))
                totals[(start.date(), span.user)] = (h + hours, su + hours * span.su_per_hour)
            start = part_end
    return [Row(day, user, h, su) for (day, user), (h, su) in sorted(totals.items())]


def table(rows: list[Row], basis: str) -> str:
    header = ["day", "user", "server-hours", "SUs"]
    body = [[r.day.isoformat(), r.user, f"{r.server_hours:.2f}", f"{r.sus:.2f}"] for r in rows]
    total = ["total", "", f"{sum(r.server_hours for r in rows):.2f}", f"{sum(r.sus for r in rows):.2f}"]
    cells = [header, *body, total]
    widths = [max(len(c[i]) for c in cells) for i in range(4)]
    lines = [
        "  ".join(
            c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cell, widths, strict=True))
        )
        for cell in cells
    ]
    return "\n".join([*lines, f"SUs: {basis}"])


def to_csv(rows: list[Row]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["day", "user", "server_hours", "sus"])
    for r in rows:
        writer.writerow([r.day.isoformat(), r.user, f"{r.server_hours:.4f}", f"{r.sus:.4f}"])
    return out.getvalue()


def vm_basis(flavor: str, cpu: float) -> tuple[float, str]:
    """SU per server-hour and how it is reckoned, for a server of `cpu` cores on a `flavor` VM."""
    f = FLAVORS[flavor]
    rate = server_su_per_hour(cpu, f)
    return rate, (
        f"each server-hour is charged its share of its VM: {min(cpu, f.vcpus):g} of the {f.vcpus} vCPUs "
        f"of a {flavor} ({f.su_per_hour:g} SU/hour) = {rate:g} SU per server-hour"
    )


def _basis_from_stack(args: argparse.Namespace) -> dict[str, Any]:
    if args.flavor and args.cpu is not None:
        return {"flavor": args.flavor, "cpu": args.cpu, "record": None}
    try:
        outputs = target.stack_values(args.stack)
    except target.TargetError:
        outputs = {}
    basis = outputs.get("usage_basis")
    found: dict[str, Any] = basis if isinstance(basis, dict) else {}
    return {
        "flavor": args.flavor or found.get("flavor"),
        "cpu": args.cpu if args.cpu is not None else found.get("cpu"),
    }


def ssh_cat(destination: str, path: str) -> list[str]:
    """Read the hub's usage record (root's file on the data volume): never a password prompt."""
    return ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=15", destination, "sudo", "-n", "cat", path]


def _read_records(paths: list[Path]) -> Iterator[str]:
    for path in paths:
        with path.open(encoding="utf-8") as f:
            yield from f


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jshub.usage", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", nargs="?", choices=["report", "sample"], default="report")
    target.add_arguments(parser)
    parser.add_argument(
        "--record", type=Path, action="append", default=[], help="a usage record (repeatable)"
    )
    parser.add_argument("--since", type=date.fromisoformat, help="first UTC day to report (YYYY-MM-DD)")
    parser.add_argument(
        "--csv", type=Path, help="also write the rows to this CSV file ('-': standard output)"
    )
    parser.add_argument("--flavor", choices=sorted(FLAVORS), help="the flavor of the VMs servers run on")
    parser.add_argument("--cpu", type=float, help="CPU cores one server takes of its VM")
    parser.add_argument(
        "--ssh",
        metavar="USER@HOST",
        help="read the hub's usage record over SSH (the hub VM, or the swarm manager: ubuntu@<public_ip>)",
    )
    parser.add_argument(
        "--record-path", help="where the record is on that host (default: the stack's usage_basis)"
    )
    parser.add_argument("--sacct", metavar="USER@HOST", help="hpc: read SLURM's accounting over SSH")
    parser.add_argument(
        "--hpc-su-per-core-hour", type=float, default=1.0, help="the HPC system's charge (default 1)"
    )
    args = parser.parse_args(argv)
    now = datetime.now(UTC)

    if args.action == "sample":
        if len(args.record) != 1:
            parser.error("sample appends to exactly one --record FILE")
        try:
            hub_target = target.resolve(args)
        except target.TargetError as exc:
            print(f"jshub.usage: {exc}", file=sys.stderr)
            return 2
        line = sample_line(now, all_users(HubAPI(hub_target.url, hub_target.token)))
        with args.record[0].open("a", encoding="utf-8") as f:
            f.write(line + "\n")
        return 0

    spans: list[Span] = []
    if args.sacct:
        since = args.since or (now.date() - timedelta(days=30))
        ssh = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=15", args.sacct]
        done = subprocess.run([*ssh, *sacct_command(since)], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(f"jshub.usage: sacct on {args.sacct} failed: {done.stderr.strip()[:400]}", file=sys.stderr)
            return 1
        spans = spans_from_sacct(done.stdout, now, args.hpc_su_per_core_hour)
        basis = f"each job's allocated cores × {args.hpc_su_per_core_hour:g} SU per core-hour (the HPC system's charge)"
    else:
        found = _basis_from_stack(args)
        if found["flavor"] not in FLAVORS or found["cpu"] is None:
            print(
                "jshub.usage: give --flavor and --cpu (the stack has no usage_basis output)", file=sys.stderr
            )
            return 2
        rate, basis = vm_basis(found["flavor"], float(found["cpu"]))
        try:
            hub_target = target.resolve(args)
        except target.TargetError as exc:
            print(f"jshub.usage: {exc}", file=sys.stderr)
            return 2
        lines = list(_read_records(args.record))
        if args.ssh:
            path = args.record_path or found.get("record")
            if not path:
                print("jshub.usage: give --record-path (the stack has no usage record)", file=sys.stderr)
                return 2
            done = subprocess.run(ssh_cat(args.ssh, path), capture_output=True, text=True, check=False)
            if done.returncode != 0:
                print(
                    f"jshub.usage: reading {path} on {args.ssh} failed: {done.stderr.strip()[:400]}",
                    file=sys.stderr,
                )
                return 1
            lines += done.stdout.splitlines()
        live = spans_from_api(all_users(HubAPI(hub_target.url, hub_target.token)), now, rate)
        spans = merge(spans_from_samples(lines, rate), live)
    rows = by_day(spans, args.since)
    print(table(rows, basis))
    if args.csv is not None:
        text = to_csv(rows)
        if str(args.csv) == "-":
            sys.stdout.write(text)
        else:
            args.csv.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
