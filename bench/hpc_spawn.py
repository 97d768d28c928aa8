"""Benchmark: request-to-ready time of a notebook through the real SLURM path (sbatch over SSH
to a loopback login node, single-node SLURM) against the same hub with LocalProcessSpawner on
the same machine as the floor; for one user (median of --runs spawns) and for --users
concurrent users. Figures go into docs/hpc.md, never into a test. Needs root, SLURM, munge and
sshd (`make system-deps`).

    python -m bench.hpc_spawn [--runs 5] [--users 30] [--connectivity direct]

Request-to-ready is the time from POST /hub/api/users/NAME/server until the hub's progress
stream reports the server ready (the hub has then reached it over HTTP).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from tests.e2e_hpc.conftest import (
    SERVICES,
    Hub,
    LoginNode,
    kill_pids,
    processes_mentioning,
    squeue,
    start_hub,
)
from tests.hubclient import free_port

PREFIX = "jshb"


def make_accounts(root: Path, count: int, client_key: Path) -> list[str]:
    names = [f"{PREFIX}{i:02d}{os.urandom(2).hex()}" for i in range(count)]
    (root / "home").mkdir(mode=0o755)
    public = Path(f"{client_key}.pub").read_text()
    for name in names:
        home = root / "home" / name
        subprocess.run(["useradd", "--create-home", "--home-dir", str(home), "--shell", "/bin/bash", name],
                       check=True, capture_output=True)  # fmt: skip
        subprocess.run(["usermod", "-p", "*", name], check=True, capture_output=True)
        ssh = home / ".ssh"
        ssh.mkdir(mode=0o700)
        (ssh / "authorized_keys").write_text(public)
        (ssh / "authorized_keys").chmod(0o600)
        for path in (ssh, ssh / "authorized_keys"):
            shutil.chown(path, name, name)
    return names


def remove_accounts(names: list[str]) -> None:
    for name in names:
        subprocess.run(["scancel", "-u", name], check=False, capture_output=True)
    for name in names:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            subprocess.run(["pkill", "-KILL", "-u", name], check=False)
            if subprocess.run(["pgrep", "-u", name], capture_output=True).returncode:
                break
            time.sleep(0.2)
        subprocess.run(["userdel", "--remove", name], check=False, capture_output=True)


@contextlib.contextmanager
def per_user_login_node(root: Path, users: int) -> Iterator[tuple[LoginNode, list[str]]]:
    """SLURM running, `users` new accounts that one hub key logs in to, and an sshd on a free
    loopback port as their login node. On exit the accounts' jobs, processes and homes go, and
    every process whose command line names `root` (the sshd, any hub left) is killed."""
    subprocess.run(["bash", str(SERVICES / "start-slurm.sh")], check=True, capture_output=True)
    names: list[str] = []
    try:
        client_key = root / "hub-key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(client_key)], check=True)
        names = make_accounts(root, users, client_key)
        port = free_port()
        state = root / "login"
        subprocess.run(
            ["bash", str(SERVICES / "start-login-node.sh"), str(state), str(port), f"{PREFIX}*"],
            check=True,
            capture_output=True,
        )
        host_key = " ".join((state / "host_key.pub").read_text().split()[:2])
        yield (
            LoginNode(state=state, port=port, account=names[0], host_key=host_key, client_key=client_key),
            names,
        )
    finally:
        remove_accounts(names)
        left = [n for n in names if squeue(n)]
        if left:
            print(f"warning: jobs left for {left}")
        kill_pids(processes_mentioning(str(root)))


def spawn_time(hub: Hub, name: str) -> float:
    """Seconds from the spawn request until the progress stream says ready."""
    start = time.perf_counter()
    response = hub.api("POST", f"/users/{name}/server", data=json.dumps({}))
    if response.status_code not in (201, 202):
        raise RuntimeError(f"{name}: {response.status_code} {response.text[:300]}")
    if response.status_code == 202:
        with hub.http.get(
            f"{hub.public_url}/hub/api/users/{name}/server/progress", stream=True, timeout=600
        ) as events:
            for line in events.iter_lines(decode_unicode=True):
                if not line or not line.startswith("data:"):
                    continue
                event = json.loads(line[5:])
                if event.get("failed"):
                    raise RuntimeError(f"{name}: {event.get('message')}")
                if event.get("ready"):
                    break
    return time.perf_counter() - start


def stop_all(hub: Hub, names: list[str]) -> None:
    for name in names:
        hub.api("DELETE", f"/users/{name}/server")
    for name in names:
        hub.wait_for(lambda n=name: hub.server(n) is None, f"{name}'s server to stop", timeout=120)  # type: ignore[misc]


def one_user(hub: Hub, name: str, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        times.append(spawn_time(hub, name))
        stop_all(hub, [name])
    return times


def concurrent(hub: Hub, names: list[str]) -> tuple[list[float], list[str]]:
    times: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def run(name: str) -> None:
        try:
            value = spawn_time(hub, name)
            with lock:
                times.append(value)
        except Exception as exc:  # a benchmark reports every failure
            with lock:
                errors.append(str(exc))

    threads = [threading.Thread(target=run, args=(n,)) for n in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stop_all(hub, names)
    return times, errors


def summary(label: str, times: list[float]) -> str:
    if not times:
        return f"{label:44} (none)"
    return (
        f"{label:44} n={len(times):2d} median {statistics.median(times):6.2f} s  "
        f"min {min(times):6.2f}  max {max(times):6.2f}"
    )


def measure_paths(
    root: Path, login: LoginNode, names: list[str], args: argparse.Namespace, hubs: list[Hub]
) -> tuple[dict[str, list[float]], dict[str, list[str]]]:
    """Request-to-ready times of the floor (LocalProcessSpawner) and of the SLURM path, each on
    a hub of its own (appended to `hubs` so the caller stops them whatever happens)."""
    results: dict[str, list[float]] = {}
    failures: dict[str, list[str]] = {}
    for label, spawner in (
        ("LocalProcessSpawner (floor)", "local"),
        (f"SLURM over SSH ({args.connectivity})", "slurm"),
    ):
        extra = {} if spawner == "slurm" else {
            "JupyterHub.spawner_class": "jupyterhub.spawner.LocalProcessSpawner",
            "Spawner.http_timeout": "300", "Spawner.start_timeout": "600",
        }  # fmt: skip
        hub = start_hub(
            root / f"hub-{spawner}",
            login,
            args.connectivity,
            {"accountMode": "per-user"},
            {"concurrentUsers": args.users},
            extra,
        )
        hubs.append(hub)
        for name in names:
            hub.expect(hub.api("POST", f"/users/{name}"), 201)
        results[f"{label}, 1 user"] = one_user(hub, names[0], args.runs)
        times, errors = concurrent(hub, names)
        results[f"{label}, {args.users} concurrent"] = times
        failures[label] = errors
        hub.stop()
    return results, failures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--users", type=int, default=30)
    parser.add_argument("--connectivity", choices=("direct", "ssh-tunnel"), default="direct")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root: it starts SLURM and sshd and creates Unix accounts")

    root = Path(tempfile.mkdtemp(prefix="jshub-bench-"))
    root.chmod(0o755)
    hubs: list[Hub] = []
    try:
        with per_user_login_node(root, args.users) as (login, names):
            try:
                results, failures = measure_paths(root, login, names, args, hubs)
            finally:
                for hub in hubs:
                    hub.stop()
        print(f"\nrequest-to-ready on {os.cpu_count()} CPUs ({time.strftime('%Y-%m-%d')}):")
        for label, times in results.items():
            print(summary(label, times))
        for label, errors in failures.items():
            print(f"{label}: {len(errors)} failed spawns" + (f": {errors[:3]}" if errors else ""))
        floor = statistics.median(results["LocalProcessSpawner (floor), 1 user"])
        slurm = statistics.median(results[f"SLURM over SSH ({args.connectivity}), 1 user"])
        print(f"one user: SLURM path / floor = {slurm / floor:.2f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
