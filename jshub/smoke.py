"""Smoke test of a deployed hub, end to end, as a user would use it:

    python -m jshub.smoke [--url URL] [--stack NAME] [--timeout SECONDS] [--ssh USER@HOST]

creates a throw-away user, starts their server, runs a cell through the kernel's websocket
(prints the Python version, writes a file in the home), restarts the server and checks the file
is still there, stops the server and deletes the user. With --ssh USER@HOST it also runs
jshub-backup-check on the hub's VM over SSH, so a failed or stale backup fails the smoke test
without any monitoring. Prints each step's time, then the days the allocation has left at the
stack's burn (its allocation_burn output), with a WARNING when fewer than allocationWarnDays;
exits 1 naming the step that failed (after cleaning up what it can), 2 when there is no hub to
talk to. A warning alone does not change the exit status."""

from __future__ import annotations

import argparse
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from catalog.su import Burn
from jshub import target
from jshub.hubapi import HubAPI, wait_until

DEFAULT_USER = "jshub-smoke"
MARKER_FILE = "jshub-smoke.txt"
# Installed by the stack's backup-install on the VM that holds the homes (renderers/backup.py).
BACKUP_CHECK = "/usr/local/sbin/jshub-backup-check"


def ssh_backup_check(destination: str) -> list[str]:
    """The command that runs the backup check on the hub's VM: never a password prompt."""
    return ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=15", destination, "sudo", "-n", BACKUP_CHECK]


def backup_state(command: list[str], timeout: float = 300) -> str:
    """What jshub-backup-check says when it passes; raises with what it says when it does not
    (exit 1: stale or none, 2: the repository cannot be read, 3: the last run failed)."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        said = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()
        raise RuntimeError(f"jshub-backup-check exited {done.returncode}: " + " | ".join(said[:12]))
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "backups fresh"


@dataclass
class Step:
    name: str
    seconds: float
    detail: str
    ok: bool


@dataclass
class Smoke:
    hub: HubAPI
    user: str = DEFAULT_USER
    timeout: float = 600.0
    # Right after `pulumi up` the hub may be restarting behind its proxy: its 502/503/504 (or no
    # answer at all) is waited out this long before "reach the hub" fails.
    hub_timeout: float = 120.0
    # The backup check to run after the hub's steps (ssh_backup_check), or None for none.
    backup_check: list[str] | None = None
    steps: list[Step] = field(default_factory=list)
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True)

    def step(self, name: str, action: Callable[[], str]) -> None:
        self.log(f"... {name}")
        start = time.monotonic()
        try:
            detail = action()
        except Exception as exc:
            self.steps.append(Step(name, time.monotonic() - start, f"{type(exc).__name__}: {exc}", False))
            raise
        self.steps.append(Step(name, time.monotonic() - start, detail, True))

    def run(self) -> bool:
        """Every step in turn; on a failure, clean up and return False."""
        token = secrets.token_hex(16)
        hub = self.hub
        try:
            self.step("reach the hub", lambda: f"JupyterHub {self._version()} at {hub.public_url}")
            self.step("create user", self._create_user)
            self.step("start server", self._start)
            self.step("run a cell", lambda: self._write(token))
            self.step("stop server", self._stop)
            self.step("start server again", self._start)
            self.step("file kept after restart", lambda: self._check(token))
            self.step("stop server again", self._stop)
            self.step("delete user", self._delete_user)
            if self.backup_check is not None:
                command = self.backup_check
                self.step("backups", lambda: backup_state(command))
        except Exception:
            self._clean_up()
            return False
        return True

    def _version(self) -> str:
        def answered() -> str | None:
            response = self.hub.api("GET", "/")
            if response.status_code in (502, 503, 504):  # the proxy is up, the hub not yet
                return None
            return str(self.hub.expect(response, 200).json()["version"])

        return wait_until(answered, "the hub to answer", self.hub_timeout, poll_s=2)

    def _create_user(self) -> str:
        note = ""
        if self.hub.user(self.user) is not None:
            # Left over from an interrupted run: start from nothing.
            self._remove(self.user)
            note = " (removed one left from an earlier run)"
        self.hub.expect(self.hub.api("POST", f"/users/{self.user}"), 201)
        return f"{self.user}{note}"

    def _start(self) -> str:
        server = self.hub.start_server(self.user, timeout=self.timeout, poll_s=1.0)
        return f"ready at {server['url']}"

    def _stop(self) -> str:
        self.hub.stop_server(self.user, timeout=self.timeout)
        return "stopped"

    def _write(self, token: str) -> str:
        code = (
            "import pathlib, sys\n"
            f"pathlib.Path.home().joinpath({MARKER_FILE!r}).write_text({token!r})\n"
            "print(sys.version.split()[0], pathlib.Path.home())\n"
        )
        version, home = self.hub.run_code(self.user, code, timeout=120).split()
        return f"Python {version}, wrote {home}/{MARKER_FILE}"

    def _check(self, token: str) -> str:
        code = (
            "import pathlib\n"
            f"path = pathlib.Path.home() / {MARKER_FILE!r}\n"
            "print(path.read_text() if path.exists() else 'missing')\n"
        )
        found = self.hub.run_code(self.user, code, timeout=120).strip()
        if found != token:
            raise AssertionError(f"{MARKER_FILE} in the home holds {found[:40]!r}, not what was written")
        return f"{MARKER_FILE} still there"

    def _delete_user(self) -> str:
        self.hub.expect(self.hub.api("DELETE", f"/users/{self.user}"), 204)
        if self.hub.user(self.user) is not None:
            raise AssertionError(f"the hub still lists {self.user} after deleting it")
        return "deleted"

    def _remove(self, user: str) -> None:
        if self.hub.server(user) is not None:
            self.hub.stop_server(user, timeout=self.timeout)
        self.hub.expect(self.hub.api("DELETE", f"/users/{user}"), 204, 404)

    def _clean_up(self) -> None:
        try:
            if self.hub.user(self.user) is not None:
                self._remove(self.user)
                self.log(f"cleaned up: {self.user} stopped and deleted")
        except Exception as exc:
            self.log(f"could not clean up {self.user}: {exc}; delete it in the admin page")


def allocation_lines(burn: dict[str, Any] | None, now: datetime) -> list[str]:
    """What the stack's `allocation_burn` output says at `now`: the days left, and a WARNING
    line (which does not fail the smoke test) when fewer than allocationWarnDays remain."""
    if not burn:
        return []
    b = Burn.from_output(burn)
    days = b.days_left_at(now)
    if days is None:
        return [f"allocation: the stack burns no SUs ({b.balance_su:g} SU read on {b.as_of})"]
    runs_out = (now + timedelta(days=max(days, 0))).date().isoformat()
    said = (
        f"{max(days, 0):.1f} days left at {b.su_per_hour:g} SU/hour running 24/7 (allocationSus "
        f"{b.balance_su:g} SU read on {b.as_of}; runs out about {runs_out})"
    )
    if days < b.warn_days:
        return [
            f"WARNING: allocation: {said}, fewer than allocationWarnDays {b.warn_days}: ask for more SUs, "
            "or shelve the stack between workshop days (README: Shelving between workshop days)"
        ]
    return [f"allocation: {said}"]


def stack_burn(args: argparse.Namespace) -> dict[str, Any] | None:
    """The stack's allocation_burn output, or None (no such output, or no stack to read)."""
    try:
        value = target.stack_values(args.stack).get("allocation_burn")
    except (target.TargetError, OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def table(steps: list[Step]) -> str:
    width = max([len("step"), *(len(s.name) for s in steps)])
    lines = [f"{'step':<{width}}  {'seconds':>8}  result"]
    for s in steps:
        first = s.detail.splitlines()[0] if s.detail else ""
        lines.append(f"{s.name:<{width}}  {s.seconds:8.2f}  {'ok' if s.ok else 'FAILED'}: {first}")
    lines.append(f"{'total':<{width}}  {sum(s.seconds for s in steps):8.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jshub.smoke", description=__doc__.split("\n\n")[0])
    target.add_arguments(parser)
    parser.add_argument("--user", default=DEFAULT_USER, help=f"the throw-away user (default {DEFAULT_USER})")
    parser.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="seconds to wait for a server to start or stop (default 600)",
    )
    parser.add_argument(
        "--hub-timeout",
        type=float,
        default=120.0,
        help="seconds to wait for a hub that is starting (its proxy answers 502-504) (default 120)",
    )
    parser.add_argument(
        "--ssh",
        metavar="USER@HOST",
        help="also run jshub-backup-check on the hub's VM over SSH (e.g. ubuntu@<public_ip>); "
        "a failed, stale or unreadable backup fails the smoke test",
    )
    args = parser.parse_args(argv)
    try:
        hub_target = target.resolve(args)
    except target.TargetError as exc:
        print(f"jshub.smoke: {exc}", file=sys.stderr)
        return 2
    smoke = Smoke(
        HubAPI(hub_target.url, hub_target.token),
        user=args.user,
        timeout=args.timeout,
        hub_timeout=args.hub_timeout,
        backup_check=ssh_backup_check(args.ssh) if args.ssh else None,
    )
    ok = smoke.run()
    print(table(smoke.steps))
    for line in allocation_lines(stack_burn(args), datetime.now(UTC)):
        print(line)
    if not ok:
        failed = smoke.steps[-1]
        print(f"smoke test FAILED at step {failed.name!r}: {failed.detail}", file=sys.stderr)
        return 1
    print("smoke test passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
