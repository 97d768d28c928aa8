"""A stand-in for `kubectl` against a cluster that does not exist here, for the k8s backup
script: it answers the reads the script makes from a state folder (claims, pods, the ConfigMap,
Jobs, the CronJob) and, for `apply -f -`, saves the Job and runs it on this machine: the
containers' commands as written in the Job, with every container path under `<state>/root`
and each volume moved there, to its mount path, while a container runs. Everything the Job's containers run (python3's sqlite3 copy, sh, restic)
is real; only scheduling and mounting are done here.

Run as `python3 tests/k8s_backup_cluster.py <kubectl arguments>` with KUBECTL_STATE set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

STATE = Path(os.environ.get("KUBECTL_STATE", "."))


def _load(name: str) -> Any:
    return json.loads((STATE / name).read_text())


ROOT = STATE / "root"


def _mapped(path: str) -> str:
    """A container path as a path on this machine: the container's file system is ROOT."""
    return str(ROOT) + path


def _volume_dir(volume: dict[str, Any], job: str) -> Path:
    """Where a volume's files are kept between mounts."""
    if "persistentVolumeClaim" in volume:
        return STATE / "volumes" / volume["persistentVolumeClaim"]["claimName"]
    folder = STATE / "emptydirs" / job / volume["name"]
    folder.mkdir(parents=True, exist_ok=True)
    if "configMap" in volume:
        for key, text in _load("configmap.json")["data"].items():
            (folder / key).write_text(text)
    return folder


def _run_container(container: dict[str, Any], volumes: dict[str, Path], log: Any) -> int:
    """Mount (move each volume's folder to ROOT + its mount path), run, unmount (move it back):
    every container sees a volume at the same path, as in a cluster."""
    mounted = []
    for mount in container.get("volumeMounts", []):
        where = Path(_mapped(mount["mountPath"]))
        if where.exists():
            raise RuntimeError(f"{where} is in the way of a mount")
        where.parent.mkdir(parents=True, exist_ok=True)
        volumes[mount["name"]].rename(where)
        mounted.append((where, volumes[mount["name"]]))
    try:
        env = {"PATH": os.environ["PATH"], "HOME": str(STATE)}
        for ref in container.get("envFrom", []):
            env |= _load(f"secret-{ref['secretRef']['name']}.json")
        for item in container.get("env", []):
            env[item["name"]] = item["value"]
        # Paths in the Job (not PATH: the tools are this machine's) are under ROOT.
        env = {k: _mapped(v) if v.startswith("/") and k != "PATH" else v for k, v in env.items()}
        argv = [_mapped(a) if a.startswith("/") else a for a in container["command"]]
        return subprocess.run(argv, env=env, stdout=log, stderr=subprocess.STDOUT, check=False).returncode
    finally:
        for where, home in mounted:
            where.rename(home)


def apply(manifest: str) -> int:
    job = yaml.safe_load(manifest)
    name = job["metadata"]["name"]
    jobs = STATE / "jobs"
    jobs.mkdir(exist_ok=True)
    (jobs / f"{name}.yaml").write_text(manifest)
    pod = job["spec"]["template"]["spec"]
    volumes = {v["name"]: _volume_dir(v, name) for v in pod["volumes"]}
    for volume in volumes.values():
        volume.parent.mkdir(parents=True, exist_ok=True)
        volume.mkdir(exist_ok=True)
    code = 0
    with (jobs / f"{name}.log").open("w") as log:
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            code = _run_container(container, volumes, log)
            if code:
                break
    subprocess.run(["rm", "-rf", str(STATE / "emptydirs" / name)], check=True)
    (jobs / f"{name}.status").write_text("Complete" if code == 0 else "Failed")
    print(f"job.batch/{name} created")
    return 0


def _job_object(manifest: Path) -> dict[str, Any]:
    """A saved Job as `kubectl get jobs -o json` lists it: its metadata (the creation time the
    manifest carries, else the file's), and once finished its condition, from the time it ended."""
    job = yaml.safe_load(manifest.read_text())
    meta = job["metadata"]
    if "creationTimestamp" not in meta:
        meta["creationTimestamp"] = _stamp(manifest.stat().st_mtime)
    status = manifest.with_suffix(".status")
    if status.exists():
        condition = {"type": status.read_text(), "status": "True"}
        job["status"] = {"conditions": [{**condition, "lastTransitionTime": _stamp(status.stat().st_mtime)}]}
    return job


def _stamp(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def main(argv: list[str]) -> int:
    args = list(argv)
    while args and args[0].startswith("--namespace"):
        args = args[2:] if args[0] == "--namespace" else args[1:]
    verb, rest = args[0], args[1:]
    if verb == "apply":
        return apply(sys.stdin.read())
    if verb == "logs":
        log = STATE / "jobs" / f"{rest[0].split('/', 1)[1]}.log"
        if not log.exists():
            print(f"error: {rest[0]} not found", file=sys.stderr)
            return 1
        lines = log.read_text().splitlines(keepends=True)
        tail = next((int(a.split("=", 1)[1]) for a in rest if a.startswith("--tail=")), None)
        print("".join(lines[-tail:] if tail else lines), end="")
        return 0
    if verb != "get":
        print(f"unexpected kubectl {verb}", file=sys.stderr)
        return 2
    kind = rest[0]
    if kind == "pvc" and "-l" in rest:
        print(json.dumps(_load("claims.json")))
    elif kind == "pvc":
        return (
            0
            if rest[1]
            in {c["metadata"]["name"] for c in _load("claims.json")["items"]}
            | {d.name for d in (STATE / "volumes").iterdir()}
            else 1
        )
    elif kind == "pods":
        print(json.dumps(_load("pods.json")))
    elif kind == "configmap":
        print(json.dumps(_load("configmap.json")))
    elif kind == "cronjob":
        print(json.dumps(_load("cronjob.json")))
    elif kind == "jobs":
        print(json.dumps({"items": [_job_object(p) for p in sorted((STATE / "jobs").glob("*.yaml"))]}))
    elif kind == "job":
        status = (STATE / "jobs" / f"{rest[1]}.status").read_text()
        print(json.dumps({"status": {"conditions": [{"type": status, "status": "True"}]}}))
    else:
        print(f"unexpected kubectl get {kind}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
