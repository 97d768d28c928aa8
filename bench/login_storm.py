"""Benchmark: a workshop's login storm on the single hub. The single hub's rendered
jupyterhub_config.py (shared-password login, written by the hub-config script and run with
configurable-http-proxy as a process of its own, as tests/e2e runs it) in a real JupyterHub on
loopback; N participants at once GET the login form, post it back with its XSRF token, make
their Unix account (the rendered add-user script, through the authenticator), ask for their
server at /hub/spawn as the home page's button does, and wait for it on the progress event
stream as the spawn-pending page does. When `concurrent_spawn_limit` sends a 429, a
participant waits the Retry-After it names and asks again. Figures go into the README, never
into a test. Needs root, adduser and configurable-http-proxy (`make system-deps`).

    python -m bench.login_storm [--users 100 1000] [--set JupyterHub.concurrent_spawn_limit=50]

Each N runs twice in the same run, with the same client and spawner: first the floor, the same
hub with JupyterHub's own DummyAuthenticator taking the shared password (no Unix accounts, no
login or pre-spawn hook), then the project's rendered config as it is (`--no-floor` skips it).

The spawner: the rendered config's own settings and hooks (the shared folder's pre-spawn
hook included), but a spawner whose servers are one process shared by every user: JupyterHub's
own mock single-user server (`jupyterhub.tests.mocksu`, a tornado echo server). The hub still
does a whole spawn per user: database rows, an API token, the pre-spawn hook, the HTTP check
that the server answers, the proxy route, the progress events. JupyterHub's MockSpawner starts
one such process per user (40 MB each, 40 GB for 1000) and a real notebook server takes more
still; what one real server costs this machine is `bench/swarm_spawn.py`'s floor.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import resource
import secrets
import ssl
import statistics
import string
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from tests.e2e.conftest import STACK, Hub, local_hub
from tests.hubclient import free_port

PASSWORD = "storm-workshop-pass"
_XSRF_FIELD = re.compile(r'name="_xsrf"\s+value="([^"]+)"')

# The spawner the benchmark swaps in (see the module's docstring); everything else is the
# rendered config. State survives a hub restart, so a restarted hub finds N running servers.
SHARED_SERVER_SPAWNER = '''
from jupyterhub.spawner import Spawner


class SharedMockServerSpawner(Spawner):
    """Every user's server is the one mock single-user server at {url}."""

    _running = False

    async def start(self):
        self._running = True
        return {url!r}

    async def poll(self):
        return None if self._running else 0

    async def stop(self, now=False):
        self._running = False

    def get_state(self):
        return {{**super().get_state(), "running": self._running}}

    def load_state(self, state):
        super().load_state(state)
        self._running = bool(state.get("running"))

    def clear_state(self):
        super().clear_state()
        self._running = False


c.JupyterHub.spawner_class = SharedMockServerSpawner
'''


# The floor (see the module's docstring): what stock JupyterHub does for the same logins.
FLOOR = f"""
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = {PASSWORD!r}
c.Authenticator.post_auth_hook = None
c.Spawner.pre_spawn_hook = None
"""


def storm_stack(users: int) -> dict[str, Any]:
    """The single-hub stack an organiser sizes for `users`: shared-password login for anyone,
    concurrentUsers = users (the rendered active_server_limit), and a hub flavor and per-user
    memory for which the config model accepts that many."""
    return {
        **{k: v for k, v in STACK.items() if k != "oauthClientSecret"},
        "auth": {"type": "shared-password", "allowAll": True, "admins": []},
        "workshopPassword": PASSWORD,
        "hubFlavor": "m3.2xl",
        "concurrentUsers": users,
        "userMemoryGb": 0.2,
    }


@contextlib.contextmanager
def mock_server() -> Iterator[str]:
    """JupyterHub's mock single-user server on a free loopback port; its base URL."""
    url = f"http://127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [sys.executable, "-m", "jupyterhub.tests.mocksu"],
        env={**os.environ, "JUPYTERHUB_SERVICE_URL": url + "/"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/", timeout=2, trust_env=False).status_code == 200:
                    break
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the mock single-user server did not start")
            time.sleep(0.2)
        yield url
    finally:
        process.kill()
        process.wait(10)


# --- watching the hub from outside ------------------------------------------------------------


@dataclass
class Usage:
    """Peak RSS and CPU of a process, sampled every `interval` seconds."""

    pid: int
    interval: float = 0.5
    peak_rss: int = 0
    peak_cpu_pct: float = 0.0
    cpu_s: float = 0.0
    children_cpu_s: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Usage:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()

    def _run(self) -> None:
        process = psutil.Process(self.pid)
        first = process.cpu_times()
        last, last_t = first, time.monotonic()
        while not self._stop.wait(self.interval):
            try:
                times, rss = process.cpu_times(), process.memory_info().rss
            except psutil.NoSuchProcess:
                return
            now = time.monotonic()
            self.peak_rss = max(self.peak_rss, rss)
            used = (times.user + times.system) - (last.user + last.system)
            self.peak_cpu_pct = max(self.peak_cpu_pct, 100 * used / (now - last_t))
            self.cpu_s = (times.user + times.system) - (first.user + first.system)
            self.children_cpu_s = (times.children_user + times.children_system) - (
                first.children_user + first.children_system
            )
            last, last_t = times, now


# --- one participant --------------------------------------------------------------------------


@dataclass
class Participant:
    name: str
    login_s: float | None = None
    spawn_s: float | None = None
    throttled: int = 0  # 429s from concurrent_spawn_limit
    error: str | None = None


async def storm_one(browser: httpx.AsyncClient, who: Participant, go: asyncio.Event) -> None:
    async with browser:
        await go.wait()
        try:
            start = time.perf_counter()
            form = await browser.get("/hub/login")
            token = _XSRF_FIELD.search(form.text)
            if form.status_code != 200 or token is None:
                who.error = f"login form: {form.status_code}"
                return
            posted = await browser.post(
                "/hub/login",
                data={"username": who.name, "password": PASSWORD, "_xsrf": token.group(1)},
            )
            if posted.status_code != 302:
                who.error = f"login: {posted.status_code}"
                return
            who.login_s = time.perf_counter() - start

            start = time.perf_counter()
            while True:
                asked = await browser.get("/hub/spawn")
                if asked.status_code == 429 and "Retry-After" in asked.headers:
                    who.throttled += 1
                    await asyncio.sleep(float(asked.headers["Retry-After"]))
                    continue
                break
            if asked.status_code != 302:
                who.error = f"spawn: {asked.status_code} {asked.text[:120]!r}"
                return
            if "/spawn-pending/" in asked.headers["location"]:
                pending = await browser.get(asked.headers["location"])
                # The page's EventSource sends the XSRF token as a query parameter.
                xsrf = browser.cookies.get("_xsrf", "")
                progress = f"/hub/api/users/{who.name}/server/progress"
                async with browser.stream("GET", progress, params={"_xsrf": xsrf}) as events:
                    if events.status_code != 200:
                        who.error = f"progress: {events.status_code} (pending page {pending.status_code})"
                        return
                    async for line in events.aiter_lines():
                        if not line.startswith("data:"):
                            continue
                        event = json.loads(line[5:])
                        if event.get("failed"):
                            who.error = f"spawn failed: {event.get('message')}"
                            return
                        if event.get("ready"):
                            break
                    else:
                        who.error = "progress stream ended before ready"
                        return
            who.spawn_s = time.perf_counter() - start
        except httpx.HTTPError as exc:
            who.error = f"{type(exc).__name__}: {exc}"[:160]


async def storm(base: str, names: list[str], timeout: float) -> tuple[list[Participant], float]:
    go = asyncio.Event()
    people = [Participant(name) for name in names]
    # A browser each (its own cookies), made before the start: one TLS context for all of them
    # (the hub is plain HTTP on loopback; a context each cost seconds of CPU per hundred).
    tls = ssl.create_default_context()
    browsers = [httpx.AsyncClient(base_url=base, timeout=timeout, trust_env=False, verify=tls) for _ in names]
    tasks = [asyncio.create_task(storm_one(b, who, go)) for b, who in zip(browsers, people, strict=True)]
    await asyncio.sleep(0.5)  # every client waiting at the start line
    start = time.perf_counter()
    go.set()
    await asyncio.gather(*tasks)
    return people, time.perf_counter() - start


# --- the report -------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def describe(values: list[float]) -> str:
    if not values:
        return "none"
    return f"p50 {statistics.median(values):6.2f} s  p95 {percentile(values, 0.95):6.2f} s  max {max(values):6.2f} s"


def make_roster(hub: Hub, names: list[str]) -> float:
    """Seconds to add every participant ahead of time, as `python -m jshub.users create` does
    (the hub makes each one's Unix account then), so that the storm itself makes none."""
    start = time.perf_counter()
    for first in range(0, len(names), 20):
        hub.expect(hub.api("POST", "/users", json={"usernames": names[first : first + 20]}), 201)
    return time.perf_counter() - start


def ready_servers(hub: Hub) -> int:
    """How many servers the hub reports ready, a page (of at most 200) at a time."""
    count, offset = 0, 0
    while True:
        page = hub.expect(hub.api("GET", f"/users?state=ready&limit=200&offset={offset}"), 200).json()
        if not page:
            return count
        count += len(page)
        offset += len(page)


def run_storm(
    users: int,
    settings: dict[str, str],
    proxy_command: str,
    timeout: float,
    roster: bool,
    floor: bool = False,
) -> dict[str, Any]:
    extra_lines = [f"c.{key} = {value}" for key, value in settings.items()]
    if floor:
        extra_lines.insert(0, FLOOR)
    tag = "".join(secrets.choice(string.ascii_lowercase) for _ in range(3))
    names = [f"st{tag}{i:04d}" for i in range(users)]
    load_before = os.getloadavg()
    with mock_server() as url:
        extra = SHARED_SERVER_SPAWNER.format(url=url) + "\n".join(extra_lines) + "\n"
        with local_hub(storm_stack(users), proxy_command, extra_config=extra) as hub:
            assert hub.process is not None and hub.proxy is not None
            roster_s = make_roster(hub, names) if roster else None
            idle_rss = psutil.Process(hub.process.pid).memory_info().rss
            with Usage(hub.process.pid) as hub_use, Usage(hub.proxy.pid) as proxy_use:
                people, total = asyncio.run(storm(hub.public_url, names, timeout))
            load_after = os.getloadavg()
            ready = ready_servers(hub)
            restart_s = restart_time(hub)
            log = hub.log_text()
    errors = Counter(who.error.split(":")[0] for who in people if who.error)
    return {
        "hub": "floor (DummyAuthenticator, no hooks)" if floor else "the project's single hub",
        "users": users,
        "settings": settings,
        "total_s": total,
        "login_s": [w.login_s for w in people if w.login_s is not None],
        "spawn_s": [w.spawn_s for w in people if w.spawn_s is not None],
        "throttled_429": sum(w.throttled for w in people),
        "users_throttled": sum(1 for w in people if w.throttled),
        "errors": dict(errors),
        "error_samples": [w.error for w in people if w.error][:5],
        "ready_servers": ready,
        "roster_s": roster_s,
        "hub_rss_idle_mib": idle_rss / 2**20,
        "hub_rss_peak_mib": hub_use.peak_rss / 2**20,
        "hub_cpu_s": hub_use.cpu_s,
        "hub_children_cpu_s": hub_use.children_cpu_s,
        "hub_cpu_peak_pct": hub_use.peak_cpu_pct,
        "proxy_rss_peak_mib": proxy_use.peak_rss / 2**20,
        "proxy_cpu_s": proxy_use.cpu_s,
        "restart_s": restart_s,
        "event_loop_warnings": log.count("Event loop was unresponsive"),
        "loadavg_before": load_before,
        "loadavg_after": load_after,
    }


def restart_time(hub: Hub) -> float | str:
    """Seconds from SIGTERM to a hub answering again with every server running (init_spawners
    polls and checks each one), or why it did not within Hub.start's wait."""
    start = time.perf_counter()
    try:
        hub.restart()
    except AssertionError as exc:
        return f"not answering after {time.perf_counter() - start:.0f} s: {str(exc).splitlines()[0]}"
    return time.perf_counter() - start


def report(result: dict[str, Any]) -> str:
    n = result["users"]
    lines = [
        f"{result['hub']}, N={n}  settings {result['settings'] or '(as rendered)'}"
        + (f", roster made ahead in {result['roster_s']:.0f} s" if result["roster_s"] is not None else "")
        + "  "
        f"loadavg before {result['loadavg_before'][0]:.2f}, after {result['loadavg_after'][0]:.2f}",
        f"  total (all {n} logged in and ready)   {result['total_s']:.1f} s",
        f"  login ({len(result['login_s'])} ok)   {describe(result['login_s'])}",
        f"  spawn ({len(result['spawn_s'])} ready)   {describe(result['spawn_s'])}",
        f"  429s from concurrent_spawn_limit   {result['throttled_429']} "
        f"({result['users_throttled']} users waited)",
        f"  errors   {result['errors'] or 'none'}  {result['error_samples'] or ''}",
        f"  servers the hub reports ready   {result['ready_servers']}",
        f"  hub RSS idle {result['hub_rss_idle_mib']:.0f} MiB, peak {result['hub_rss_peak_mib']:.0f} MiB;"
        f" hub CPU {result['hub_cpu_s']:.1f} s (peak {result['hub_cpu_peak_pct']:.0f}% of a core),"
        f" its children (adduser, hooks) {result['hub_children_cpu_s']:.1f} s",
        f"  proxy RSS peak {result['proxy_rss_peak_mib']:.0f} MiB, CPU {result['proxy_cpu_s']:.1f} s",
        f"  'event loop unresponsive' warnings in the hub log   {result['event_loop_warnings']}",
        f"  hub restart with {result['ready_servers']} running servers to answering   "
        + (f"{r:.1f} s" if isinstance(r := result["restart_s"], float) else str(r)),
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, nargs="+", default=[100, 1000])
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="Class.trait=VALUE",
        help="a setting after the rendered config (a Python literal), to try a tuning",
    )
    parser.add_argument("--timeout", type=float, default=900, help="per request (seconds)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--no-floor", action="store_true", help="skip the floor's run")
    parser.add_argument(
        "--roster",
        action="store_true",
        help="add the participants (and so their accounts) before the storm, as jshub.users does",
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root: the hub creates Unix accounts")
    proxy_command = subprocess.run(
        ["bash", "-c", "command -v configurable-http-proxy"], capture_output=True, text=True, check=False
    ).stdout.strip()
    if not proxy_command:
        raise SystemExit("configurable-http-proxy is not installed (make system-deps)")
    settings = dict(item.split("=", 1) for item in args.set)
    # A thousand browsers, and a hub and proxy with a connection each.
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(f"login storm on {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    results = []
    for users in args.users:
        floor = None
        if not args.no_floor:
            floor = run_storm(users, settings, proxy_command, args.timeout, roster=False, floor=True)
            results.append(floor)
            print(report(floor), flush=True)
        result = run_storm(users, settings, proxy_command, args.timeout, args.roster)
        results.append(result)
        print(report(result), flush=True)
        if floor is not None:
            print(
                f"  vs the floor: total {result['total_s'] / floor['total_s']:.2f}x, login p95 "
                f"{percentile(result['login_s'], 0.95):.1f} s against {percentile(floor['login_s'], 0.95):.1f} s",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
