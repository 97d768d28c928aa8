"""Backups the tests build from, shared by the VM hubs' backup tests, the k8s CronJob's and
the stack's: the VM hub's and the k8s release's BackupSpec, and what a restore is checked
against (a user's home, the hub's database, an empty bucket, the state of a file tree). The
S3 endpoint and the Unix account they need are fixtures (tests/conftest.py)."""

from __future__ import annotations

import hashlib
import os
import pwd
import sqlite3
from pathlib import Path

from renderers import k8s_backup as kb
from renderers.backup import BackupSpec, hub_backup_paths, restic_host


def spec() -> BackupSpec:
    return BackupSpec(
        host="jupyterhub-jetstream-dev",
        paths=hub_backup_paths(),
        schedule="*-*-* 03:15:00",
        keep_daily=7,
        keep_weekly=4,
        keep_monthly=6,
        max_age_hours=30,
    )


K8S_HOST = restic_host("jupyterhub-jetstream", "workshop-k8s")
K8S_NAMESPACE = "jupyterhub"
K8S_SPEC = kb.K8sBackupSpec(
    namespace=K8S_NAMESPACE,
    host=K8S_HOST,
    schedule="15 3 * * *",
    keep_daily=7,
    keep_weekly=4,
    keep_monthly=6,
    max_age_hours=30,
)


def tree_state(root: Path) -> dict[str, tuple[str, int, int, int]]:
    """sha256 (or link target), owner, group and mode of everything under root."""
    state = {}
    for path in sorted([root, *root.rglob("*")]):
        st = path.lstat()
        if path.is_symlink():
            digest = "-> " + os.readlink(path)
        elif path.is_file():
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            digest = "dir"
        state[str(path.relative_to(root.parent))] = (digest, st.st_uid, st.st_gid, st.st_mode)
    return state


def make_home(home_root: Path, user: str) -> Path:
    entry = pwd.getpwnam(user)
    home = home_root / user
    (home / "work" / "data").mkdir(parents=True)
    (home / "analysis.ipynb").write_text('{"cells": [], "nbformat": 4, "nbformat_minor": 5}\n')
    (home / "work" / "data" / "results.csv").write_bytes(os.urandom(512 * 1024))
    (home / "work" / "notes.md").write_text("# thesis notes\n")
    (home / ".bashrc").write_text("export EDITOR=nano\n")
    (home / "work" / "latest.csv").symlink_to("data/results.csv")
    (home / ".cache" / "pip").mkdir(parents=True)
    (home / ".cache" / "pip" / "wheel").write_bytes(os.urandom(1024))
    for path in [home, *home.rglob("*")]:
        os.lchown(path, entry.pw_uid, entry.pw_gid)
    home.chmod(0o700)
    (home / "work" / "notes.md").chmod(0o600)
    return home


def make_database(path: Path) -> None:
    path.parent.mkdir(parents=True, mode=0o700)
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, admin INTEGER)")
        db.executemany("INSERT INTO users (name, admin) VALUES (?, ?)", [("alice", 1), ("bob", 0)])


def rows(path: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as db:
        return list(db.execute("SELECT id, name, admin FROM users ORDER BY id"))


def make_bucket(endpoint: str, name: str) -> None:
    """The stack makes the container before the first backup runs: an empty bucket."""
    import boto3

    boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    ).create_bucket(Bucket=name)
