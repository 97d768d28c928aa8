"""A workshop's roster on a deployed hub:

    python -m jshub.users create ROSTER        create the users (and admins) of the roster
    python -m jshub.users list [ROSTER]        list the hub's users (or the roster's, with absent ones)
    python -m jshub.users remove ROSTER --yes  delete the roster's users (their servers stop)
    python -m jshub.users warm-up ROSTER [--concurrency N]
                                               start their servers ahead of time, N at once

ROSTER is a CSV (username[,admin]) or a text file with one username a line. Every command is
idempotent: what already is as the roster says is left alone. A bad line is reported with its
number and the others proceed; the exit status is then 1. The hub is the stack's (`url` and
`admin_token` outputs) unless --url/--token or JSHUB_URL/JSHUB_TOKEN say otherwise."""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jshub import roster, target
from jshub.hubapi import HubAPI, HubError
from jshub.progress import Progress

PAGINATION = "application/jupyterhub-pagination+json"


@dataclass
class Outcome:
    """What happened to each roster line, and the lines that failed."""

    counts: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, what: str) -> None:
        with self._lock:
            self.counts[what] = self.counts.get(what, 0) + 1

    def fail(self, entry: roster.Entry | roster.BadLine, reason: str) -> None:
        with self._lock:
            if isinstance(entry, roster.BadLine):
                self.failures.append(str(entry))
            else:
                self.failures.append(f"line {entry.line}: {entry.name}: {reason}")

    def summary(self) -> str:
        parts = [f"{what} {n}" for what, n in self.counts.items()]
        if self.failures:
            parts.append(f"failed {len(self.failures)}")
        return ", ".join(parts) or "nothing to do"


def all_users(hub: HubAPI) -> Iterator[dict[str, Any]]:
    """Every user, page by page (JupyterHub 2+ paginates /users)."""
    offset = 0
    while True:
        response = hub.expect(
            hub.api("GET", "/users", params={"offset": offset, "limit": 200}, headers={"Accept": PAGINATION}),
            200,
        )
        body = response.json()
        items: list[dict[str, Any]] = body["items"] if isinstance(body, dict) else body
        yield from items
        pagination = body.get("_pagination") if isinstance(body, dict) else None
        if not pagination or not pagination.get("next") or not items:
            return
        offset = pagination["next"]["offset"]


def _reason(exc: Exception) -> str:
    return str(exc).splitlines()[0][:300]


def create(hub: HubAPI, entries: list[roster.Entry], out: Outcome, progress: Progress) -> None:
    existing = {u["name"]: u for u in all_users(hub)}
    for entry in entries:
        progress.started()
        try:
            model = existing.get(entry.name)
            if model is None:
                hub.expect(
                    hub.api("POST", f"/users/{entry.name}", data=json.dumps({"admin": entry.admin})), 201
                )
                out.count("created")
            elif entry.admin and not model.get("admin"):
                hub.expect(hub.api("PATCH", f"/users/{entry.name}", data=json.dumps({"admin": True})), 200)
                out.count("made admin")
            else:
                # Never demoted: an admin from the stack's auth.admins may be on the roster too.
                out.count("already there")
        except (HubError, OSError) as exc:
            out.fail(entry, _reason(exc))
            progress.finished(False)
            continue
        progress.finished(True)


def remove(hub: HubAPI, entries: list[roster.Entry], out: Outcome, progress: Progress) -> None:
    for entry in entries:
        progress.started()
        try:
            # The hub stops a running server before it deletes its user.
            status = hub.expect(hub.api("DELETE", f"/users/{entry.name}"), 204, 404).status_code
            out.count("removed" if status == 204 else "not there")
        except (HubError, OSError) as exc:
            out.fail(entry, _reason(exc))
            progress.finished(False)
            continue
        progress.finished(True)


def start_server(hub: HubAPI, name: str, timeout: float, poll_s: float = 1.0) -> str:
    """Start the user's server unless it runs; wait until ready. The hub answers 429 while
    its concurrent_spawn_limit is reached: wait as it asks, and ask again."""
    deadline = time.monotonic() + timeout
    while True:
        server = hub.server(name)
        if server and server.get("ready"):
            return "already running"
        if server is None or not server.get("pending"):
            response = hub.api("POST", f"/users/{name}/server", data="{}")
            if response.status_code == 429:
                if time.monotonic() > deadline:
                    raise HubError(f"the hub kept answering 429 (spawn limit) for {timeout:g}s")
                time.sleep(float(response.headers.get("Retry-After", "2")))
                continue
            hub.expect(response, 201, 202, 400)  # 400: it started meanwhile
        break

    def ready() -> bool:
        server = hub.server(name)
        if server is None:
            raise HubError(f"{name}'s server stopped while starting (the hub's log says why)")
        return bool(server.get("ready"))

    hub.wait_for(ready, f"{name}'s server to be ready", max(1.0, deadline - time.monotonic()), poll_s)
    return "started"


def warm_up(
    hub: HubAPI,
    entries: list[roster.Entry],
    out: Outcome,
    progress: Progress,
    concurrency: int,
    timeout: float,
) -> None:
    def one(entry: roster.Entry) -> None:
        progress.started()
        try:
            if hub.user(entry.name) is None:
                raise HubError("no such user on the hub: create it first")
            out.count(start_server(hub, entry.name, timeout))
        except (HubError, OSError) as exc:
            out.fail(entry, _reason(exc))
            progress.finished(False)
            return
        progress.finished(True)

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, entries))


def list_users(hub: HubAPI, entries: list[roster.Entry] | None) -> list[list[str]]:
    users = {u["name"]: u for u in all_users(hub)}
    names = [e.name for e in entries] if entries is not None else sorted(users)
    rows = []
    for name in names:
        model = users.get(name)
        if model is None:
            rows.append([name, "-", "absent", "-"])
            continue
        server = model.get("servers", {}).get("")
        state = (
            "none"
            if not server
            else ("ready" if server.get("ready") else server.get("pending") or "starting")
        )
        rows.append([name, "admin" if model.get("admin") else "", state, model.get("last_activity") or "-"])
    return rows


def _table(rows: list[list[str]]) -> str:
    header = ["name", "admin", "server", "last activity"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]
    )


def _read(path: Path) -> tuple[list[roster.Entry], list[roster.BadLine]]:
    return roster.parse(path.read_text(encoding="utf-8-sig"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jshub.users",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    target.add_arguments(parser)
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("create", "remove", "warm-up"):
        sub = commands.add_parser(name)
        sub.add_argument("roster", type=Path)
    commands.add_parser("list").add_argument("roster", type=Path, nargs="?")
    commands.choices["remove"].add_argument(
        "--yes", action="store_true", help="really delete (on k8s the users' home volumes go with them)"
    )
    warm = commands.choices["warm-up"]
    warm.add_argument("--concurrency", type=int, default=10, help="servers starting at once (default 10)")
    warm.add_argument("--timeout", type=float, default=600.0, help="seconds for each server (default 600)")
    args = parser.parse_args(argv)

    entries: list[roster.Entry] | None = None
    bad: list[roster.BadLine] = []
    if args.roster is not None:
        try:
            entries, bad = _read(args.roster)
        except OSError as exc:
            print(f"jshub.users: cannot read the roster: {exc}", file=sys.stderr)
            return 2
    if args.command == "warm-up" and args.concurrency < 1:
        parser.error("--concurrency must be 1 or more")
    try:
        hub_target = target.resolve(args)
    except target.TargetError as exc:
        print(f"jshub.users: {exc}", file=sys.stderr)
        return 2
    hub = HubAPI(hub_target.url, hub_target.token)

    if args.command == "list":
        print(_table(list_users(hub, entries)))
        for line in bad:
            print(f"skipped {line}", file=sys.stderr)
        return 1 if bad else 0

    assert entries is not None
    if args.command == "remove" and not args.yes:
        print(f"would remove {len(entries)} users: {', '.join(e.name for e in entries)}", file=sys.stderr)
        print(
            "add --yes to remove them (their servers stop; on k8s their home volumes are deleted)",
            file=sys.stderr,
        )
        return 1
    out = Outcome()
    for line in bad:
        out.fail(line, line.reason)
    progress = Progress(args.command, len(entries))
    actions: dict[str, Callable[[], None]] = {
        "create": lambda: create(hub, entries, out, progress),
        "remove": lambda: remove(hub, entries, out, progress),
        "warm-up": lambda: warm_up(hub, entries, out, progress, args.concurrency, args.timeout),
    }
    try:
        actions[args.command]()
    finally:
        progress.close()
    for failure in sorted(out.failures, key=lambda f: int(f.split()[1].rstrip(":"))):
        print(failure, file=sys.stderr)
    extra = f", at most {progress.peak_active} at once" if args.command == "warm-up" else ""
    print(f"{args.command}: {out.summary()}{extra} ({time.monotonic() - progress.start:.1f}s)")
    return 1 if out.failures else 0


if __name__ == "__main__":
    sys.exit(main())
