"""The backup, check and restore commands the hub VM runs, for real: the rendered scripts
(only the endpoint, the paths and the environment file's place changed) drive the real restic
against a real S3 server on loopback (moto), on a home of real files owned by a real Unix
user. Checksums, owners and modes are compared after each restore."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from renderers.backup import (
    METRICS_FILE,
    BackupPaths,
    BackupSpec,
    render_env_file,
    repository,
    scripts,
)
from tests.backup_builders import make_bucket, make_database, make_home, rows, tree_state
from tests.conftest import require_root, require_tool
from tests.hubclient import free_port

# restic_host("jupyterhub-jetstream", "dev"); releases before it used the hub's name.
HOST = "jupyterhub-jetstream-dev"
OLD_HOST = "hub.cis230000.projects.jetstream-cloud.org"


class Hub:
    """The rendered commands installed under a scratch root, talking to one bucket."""

    def __init__(
        self, root: Path, endpoint: str, bucket: str, max_age_hours: float = 30, host: str = HOST
    ) -> None:
        self.root = root
        self.bucket = bucket
        self.paths = BackupPaths(
            home_root=str(root / "data" / "home"),
            database=str(root / "data" / "hub" / "jupyterhub.sqlite"),
            env_file=str(root / "etc" / "jshub-backup" / "restic.env"),
            state_dir=str(root / "var" / "lib" / "jshub-backup"),
            textfile_dir=str(root / "var" / "lib" / "prometheus" / "node-exporter"),
            bin_dir=str(root / "usr" / "local" / "sbin"),
            failure_file=str(root / "data" / "hub" / "backup-failed"),
        )
        self.spec = BackupSpec(
            host=host,
            paths=self.paths,
            schedule="*-*-* 03:15:00",
            keep_daily=7,
            keep_weekly=4,
            keep_monthly=6,
            max_age_hours=max_age_hours,
        )
        self.install(endpoint, bucket)

    def install(self, endpoint: str, bucket: str, password: str = "correct-horse-battery-staple") -> None:
        bin_dir = Path(self.paths.bin_dir)
        bin_dir.mkdir(parents=True, exist_ok=True)
        for name, text in scripts(self.spec).items():
            (bin_dir / name).write_text(text)
            (bin_dir / name).chmod(0o755)
        env = Path(self.paths.env_file)
        env.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # The region Jetstream2 documents; moto accepts any.
        env.write_text(render_env_file(repository(bucket, endpoint), "testing", "testing", password))
        env.chmod(0o600)

    @property
    def shim_dir(self) -> Path:
        return self.root / "shim"

    @property
    def calls_log(self) -> Path:
        return self.root / "restic-calls.log"

    def shim_restic(self, script: str | None = None) -> None:
        """Put a `restic` first on the scripts' PATH that logs its arguments (one call a line),
        then runs the real restic, or the given shell text instead."""
        real = require_tool("restic", "backs up homes (Debian package restic)")
        self.shim_dir.mkdir(exist_ok=True)
        shim = self.shim_dir / "restic"
        body = script if script is not None else f'exec {real} "$@"\n'
        shim.write_text(f'#!/bin/bash\necho "$*" >>{self.calls_log}\n{body}')
        shim.chmod(0o755)

    def restic_calls(self) -> list[str]:
        return self.calls_log.read_text().splitlines() if self.calls_log.exists() else []

    def run(self, command: str, *args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ)
        if self.shim_dir.is_dir():
            env["PATH"] = f"{self.shim_dir}:{env['PATH']}"
        result = subprocess.run(
            [f"{self.paths.bin_dir}/{command}", *args], capture_output=True, text=True, check=False, env=env
        )
        assert result.returncode == expect, (
            f"{command} {args}: {result.returncode}\n{result.stdout}\n{result.stderr}"
        )
        return result

    def metrics(self) -> dict[str, float]:
        text = (Path(self.paths.textfile_dir) / METRICS_FILE).read_text()
        return {
            m.group(1): float(m.group(2))
            for m in re.finditer(r"^(jshub_backup_\w+)\{[^}]*\} (\S+)$", text, re.MULTILINE)
        }


def snapshot_ids(hub: Hub) -> list[str]:
    env = dict(os.environ)
    for line in Path(hub.paths.env_file).read_text().splitlines():
        key, _, value = line.partition("=")
        env[key] = value.strip("'")
    out = subprocess.run(
        ["restic", "snapshots", "--json", "--tag", "jshub"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return [s["id"] for s in sorted(json.loads(out.stdout), key=lambda s: s["time"])]


def test_backup_and_restore_a_users_home_round_trip(s3_endpoint: str, unix_user: str, tmp_path: Path) -> None:
    require_tool("restic", "backs up homes (Debian package restic)")
    hub = Hub(tmp_path, s3_endpoint, f"jshub-backup-{uuid.uuid4().hex[:8]}")
    home_root = Path(hub.paths.home_root)
    home = make_home(home_root, unix_user)
    make_database(Path(hub.paths.database))
    original = tree_state(home)

    before = int(time.time())
    out = hub.run("jshub-backup")
    assert "limit 30 h" in out.stdout, out.stdout  # the freshness check ran after the backup
    metrics = hub.metrics()
    assert before - 1 <= metrics["jshub_backup_last_success_timestamp_seconds"] <= time.time() + 1
    assert metrics["jshub_backup_fresh"] == 1 and metrics["jshub_backup_repository_up"] == 1
    assert metrics["jshub_backup_max_age_seconds"] == 30 * 3600
    first = snapshot_ids(hub)
    assert len(first) == 1

    # A user deletes a notebook, overwrites results, and makes a new file.
    (home / "analysis.ipynb").unlink()
    (home / "work" / "data" / "results.csv").write_bytes(b"oops")
    (home / "work" / "notes.md").unlink()
    (home / "new-since-backup.txt").write_text("keep me")

    # One path, in place: only that file comes back.
    hub.run("jshub-restore", unix_user, "work/data/results.csv")
    now = tree_state(home)
    key = f"{unix_user}/work/data/results.csv"
    assert now[key] == original[key]
    assert f"{unix_user}/analysis.ipynb" not in now

    # The whole home, in place: everything as it was, with owners and modes; newer files stay.
    hub.run("jshub-restore", unix_user)
    now = tree_state(home)
    assert {k: v for k, v in now.items() if k != f"{unix_user}/new-since-backup.txt"} == original
    assert (home / "new-since-backup.txt").read_text() == "keep me"

    # The whole home to another folder; caches are not in the backup (rebuilt, they only cost storage).
    hub.run("jshub-restore", unix_user, "--target", str(tmp_path / "whole"))
    cache = f"{unix_user}/.cache"
    assert tree_state(tmp_path / "whole" / unix_user) == {
        k: v for k, v in original.items() if not k.startswith(cache)
    }

    # A later backup the same day: the retention (keepDaily 7) keeps one snapshot per day, so
    # `forget --prune` drops the first.
    (home / "work" / "notes.md").write_text("# rewritten\n")
    hub.run("jshub-backup")
    second = snapshot_ids(hub)
    assert len(second) == 1 and second != first

    # A path to another folder from a named snapshot; the home is not touched.
    (home / "work" / "notes.md").write_text("# changed again, not backed up\n")
    target = tmp_path / "restored"
    hub.run("jshub-restore", unix_user, "work", "--snapshot", second[0][:8], "--target", str(target))
    assert (target / "work" / "notes.md").read_text() == "# rewritten\n"
    copied = tree_state(target / "work")
    expected = {
        k.replace(f"{unix_user}/", "", 1): v
        for k, v in tree_state(home).items()
        if k.startswith(f"{unix_user}/work")
    }
    notes = "work/notes.md"
    assert {k: v for k, v in copied.items() if k != notes} == {
        k: v for k, v in expected.items() if k != notes
    }
    assert copied[notes][1:] == expected[notes][1:]  # owner, group and mode kept
    assert (home / "work" / "notes.md").read_text() == "# changed again, not backed up\n"

    # Mistakes are refused before anything is written.
    assert "not in snapshot" in hub.run("jshub-restore", unix_user, "no/such/file", expect=1).stderr
    hub.run("jshub-restore", unix_user, "../other-user", expect=64)
    hub.run("jshub-restore", unix_user, "work", "--snapshot", "; rm -rf /", expect=64)
    hub.run("jshub-restore", unix_user, "work", "--target", str(target), expect=1)  # exists already


def test_disaster_recovery_restores_every_home_and_the_database(
    s3_endpoint: str, unix_user: str, tmp_path: Path
) -> None:
    require_tool("restic", "backs up homes (Debian package restic)")
    hub = Hub(tmp_path, s3_endpoint, f"jshub-backup-{uuid.uuid4().hex[:8]}")
    home_root = Path(hub.paths.home_root)
    make_home(home_root, unix_user)
    make_database(Path(hub.paths.database))
    original = {k: v for k, v in tree_state(home_root).items() if "/.cache" not in k}
    hub.run("jshub-backup")

    # The data volume is lost: a new, empty one is mounted where the old one was.
    subprocess.run(["rm", "-rf", str(home_root), str(Path(hub.paths.database).parent)], check=True)
    home_root.mkdir(parents=True)
    home_root.chmod(0o755)
    hub.run("jshub-restore", "--all")

    assert tree_state(home_root) == original
    assert rows(Path(hub.paths.database)) == [(1, "alice", 1), (2, "bob", 0)]
    assert Path(hub.paths.database).stat().st_mode & 0o777 == 0o600


def test_check_fails_when_the_newest_snapshot_is_older_than_max_age(s3_endpoint: str, tmp_path: Path) -> None:
    require_root("runs the hub's backup commands as they run on the VM")
    require_tool("restic", "backs up homes (Debian package restic)")
    hub = Hub(tmp_path, s3_endpoint, f"jshub-backup-{uuid.uuid4().hex[:8]}", max_age_hours=30)
    # Nothing backed up yet: the check fails.
    Path(hub.paths.home_root).mkdir(parents=True)
    hub.run("jshub-backup-check", expect=2)  # no repository at all yet
    assert hub.metrics()["jshub_backup_repository_up"] == 0

    # A repository whose newest snapshot of this hub is 31 hours old (restic backup --time).
    env = dict(os.environ)
    for line in Path(hub.paths.env_file).read_text().splitlines():
        key, _, value = line.partition("=")
        env[key] = value.strip("'")
    subprocess.run(["restic", "init"], env=env, check=True, capture_output=True)
    assert "no backup of" in hub.run("jshub-backup-check", expect=1).stderr
    assert hub.metrics()["jshub_backup_repository_up"] == 1 and hub.metrics()["jshub_backup_fresh"] == 0
    old = time.time() - 31 * 3600
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(old))
    subprocess.run(
        ["restic", "backup", "--host", HOST, "--tag", "jshub", "--time", stamp, hub.paths.home_root],
        env=env,
        check=True,
        capture_output=True,
    )
    result = hub.run("jshub-backup-check", expect=1)
    assert "31 h old, more than backup.maxAgeHours (30 h)" in result.stderr
    metrics = hub.metrics()
    assert metrics["jshub_backup_fresh"] == 0 and metrics["jshub_backup_repository_up"] == 1
    assert abs(metrics["jshub_backup_last_success_timestamp_seconds"] - old) <= 1

    # A snapshot without the stack's tag (an operator's own) does not count.
    subprocess.run(
        ["restic", "backup", "--host", HOST, "--tag", "by-hand", hub.paths.home_root],
        env=env,
        check=True,
        capture_output=True,
    )
    hub.run("jshub-backup-check", expect=1)

    # A real backup now makes it pass; a limit below its age makes the same repository fail.
    hub.run("jshub-backup")
    assert hub.metrics()["jshub_backup_fresh"] == 1
    strict = Hub(tmp_path / "strict", s3_endpoint, hub.bucket, max_age_hours=0.0001)  # 0.36 s
    time.sleep(1)
    strict.run("jshub-backup-check", expect=1)
    assert strict.metrics()["jshub_backup_fresh"] == 0

    # A wrong password: the repository cannot be read, and the check says so.
    hub.install(s3_endpoint, hub.bucket, password="wrong")
    hub.run("jshub-backup-check", expect=2)
    assert hub.metrics()["jshub_backup_repository_up"] == 0


def inits(hub: Hub) -> list[str]:
    return [call for call in hub.restic_calls() if call.split()[:1] == ["init"]]


def test_the_first_run_makes_the_repository_and_later_runs_do_not(s3_endpoint: str, tmp_path: Path) -> None:
    require_root("runs the hub's backup commands as they run on the VM")
    bucket = f"jshub-backup-{uuid.uuid4().hex[:8]}"
    make_bucket(s3_endpoint, bucket)
    hub = Hub(tmp_path, s3_endpoint, bucket)
    hub.shim_restic()
    Path(hub.paths.home_root).mkdir(parents=True)
    (Path(hub.paths.home_root) / "notes.txt").write_text("first\n")

    # Before the first backup the check says the repository is not there yet, and makes nothing.
    assert "no restic repository at" in hub.run("jshub-backup-check", expect=2).stderr
    assert inits(hub) == []

    first = hub.run("jshub-backup")
    assert "no restic repository at" in first.stdout and "making it" in first.stdout
    assert len(inits(hub)) == 1
    hub.run("jshub-backup")
    assert len(inits(hub)) == 1, hub.restic_calls()
    assert len(snapshot_ids(hub)) == 1  # the second run's snapshot, the first forgotten (keepDaily)


def test_a_wrong_password_fails_the_run_naming_it_and_makes_nothing(s3_endpoint: str, tmp_path: Path) -> None:
    require_root("runs the hub's backup commands as they run on the VM")
    bucket = f"jshub-backup-{uuid.uuid4().hex[:8]}"
    make_bucket(s3_endpoint, bucket)
    hub = Hub(tmp_path, s3_endpoint, bucket)
    Path(hub.paths.home_root).mkdir(parents=True)
    hub.run("jshub-backup")
    before = snapshot_ids(hub)

    # A later stack adopted the container with another password (or the file was edited).
    hub.install(s3_endpoint, bucket, password="not-the-repository-password")
    hub.shim_restic()
    failed = hub.run("jshub-backup", expect=1)
    assert "wrong password: RESTIC_PASSWORD in" in failed.stderr, failed.stderr
    assert hub.paths.env_file in failed.stderr
    assert "already initialized" not in failed.stderr
    assert inits(hub) == [] and not any(c.startswith("backup") for c in hub.restic_calls())
    check = hub.run("jshub-backup-check", expect=2)
    assert "wrong password" in check.stderr

    hub.install(s3_endpoint, bucket)
    assert snapshot_ids(hub) == before  # nothing written with the wrong password


def test_an_unreachable_repository_fails_with_restics_words_and_makes_nothing(
    s3_endpoint: str, tmp_path: Path
) -> None:
    require_root("runs the hub's backup commands as they run on the VM")
    closed = f"http://127.0.0.1:{free_port()}"
    hub = Hub(tmp_path, closed, f"jshub-backup-{uuid.uuid4().hex[:8]}")
    hub.shim_restic()
    Path(hub.paths.home_root).mkdir(parents=True)
    failed = hub.run("jshub-backup", expect=1)
    assert "cannot open the repository at s3:http://127.0.0.1" in failed.stderr, failed.stderr
    assert "connection refused" in failed.stderr
    assert inits(hub) == []


# restic >= 0.17 (not packaged here) says which failure it met by exit code: a stand-in restic
# answers `cat config` as the documented codes do, and lists one fresh snapshot.
FAKE_RESTIC = """case "$1" in
cat) echo "$FAKE_MESSAGE" >&2; exit "$FAKE_STATUS" ;;
snapshots) echo "[{\\"time\\": \\"$(date -u +%Y-%m-%dT%H:%M:%SZ)\\"}]" ;;
esac
exit 0
"""


@pytest.mark.parametrize(
    ("status", "message", "makes", "says"),
    [
        (10, "Fatal: repository does not exist: unable to open config file", True, ""),
        (12, "Fatal: wrong password or no key found", False, "wrong password: RESTIC_PASSWORD in"),
        (1, "Fatal: unable to open config file: Stat: Access Denied.", False, "cannot open the repository"),
        (11, "Fatal: unable to create lock in backend: repository is already locked", False, "cannot open"),
    ],
)
def test_restic_exit_codes_decide_whether_to_make_the_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, status: int, message: str, makes: bool, says: str
) -> None:
    hub = Hub(tmp_path, "http://127.0.0.1:9", "jshub-backup-exit-codes")
    hub.shim_restic(FAKE_RESTIC)
    Path(hub.paths.home_root).mkdir(parents=True)
    monkeypatch.setenv("FAKE_STATUS", str(status))
    monkeypatch.setenv("FAKE_MESSAGE", message)
    result = hub.run("jshub-backup", expect=0 if makes else 1)
    assert bool(inits(hub)) is makes, hub.restic_calls()
    assert says in result.stderr and (makes or message in result.stderr), result.stderr


def restic_env(hub: Hub) -> dict[str, str]:
    env = dict(os.environ)
    for line in Path(hub.paths.env_file).read_text().splitlines():
        key, _, value = line.partition("=")
        env[key] = value.strip("'")
    return env


def snapshot_hosts(hub: Hub) -> dict[str, str]:
    """Every snapshot in the repository, any tag or host: ID -> host."""
    out = subprocess.run(
        ["restic", "snapshots", "--json"], env=restic_env(hub), capture_output=True, text=True, check=True
    )
    return {s["id"]: s["hostname"] for s in json.loads(out.stdout)}


def test_snapshots_from_before_the_stable_host_are_listed_restored_and_aged_out(
    s3_endpoint: str, unix_user: str, tmp_path: Path
) -> None:
    """A deployment whose snapshots carry the hub's name (as releases before restic_host wrote
    them) upgrades: restore finds the old snapshots, and the retention treats old and new as
    one history."""
    require_tool("restic", "backs up homes (Debian package restic)")
    bucket = f"jshub-backup-{uuid.uuid4().hex[:8]}"
    old = Hub(tmp_path, s3_endpoint, bucket, host=OLD_HOST)
    home = make_home(Path(old.paths.home_root), unix_user)
    make_database(Path(old.paths.database))
    old.run("jshub-backup")  # today, under the hub's name
    # Three days ago, under the hub's name, with the same paths as the script backs up.
    (home / "work" / "notes.md").write_text("# three days ago\n")
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(time.time() - 3 * 86400))
    paths = [old.paths.home_root, old.paths.database_copy_dir]
    subprocess.run(
        ["restic", "backup", "--host", OLD_HOST, "--tag", "jshub", "--time", stamp, *paths],
        env=restic_env(old),
        check=True,
        capture_output=True,
    )
    before = snapshot_hosts(old)
    assert sorted(before.values()) == [OLD_HOST, OLD_HOST]

    # The upgrade: the same repository and paths, the stable host.
    new = Hub(tmp_path, s3_endpoint, bucket, host=HOST)
    listing = new.run("jshub-restore", "--list").stdout
    assert listing.count(OLD_HOST) == 2, listing
    new.run("jshub-backup-check")  # today's snapshot under the old name counts as fresh
    oldest = snapshot_ids(new)[0]
    target = tmp_path / "restored"
    new.run("jshub-restore", unix_user, "work/notes.md", "--snapshot", oldest[:8], "--target", str(target))
    assert (target / "notes.md").read_text() == "# three days ago\n"
    (home / "work" / "notes.md").write_text("# today\n")
    new.run("jshub-restore", unix_user, "work/notes.md")  # latest: today's, under the old name
    assert (home / "work" / "notes.md").read_text() == "# thesis notes\n"

    # Today's backup under the new name: one history, so keepDaily keeps one snapshot for today
    # (the new one) and the one from three days ago; today's old-name snapshot is forgotten.
    new.run("jshub-backup")
    after = snapshot_hosts(new)
    assert sorted(after.values()) == sorted([HOST, OLD_HOST]), after
    assert oldest in after and after[oldest] == OLD_HOST


def test_a_failed_backup_is_recorded_reported_and_cleared_by_the_next_success(
    s3_endpoint: str, tmp_path: Path
) -> None:
    """jshub-backup.service fails -> systemd starts jshub-backup-failed.service (OnFailure=),
    whose command records it; the check and the smoke test report it until a backup succeeds.
    systemd is not PID 1 here: stand-ins for systemctl and journalctl answer as they would for
    the failed unit, the journal holding what the failed run really printed."""
    require_root("runs the hub's backup commands as they run on the VM")
    require_tool("restic", "backs up homes (Debian package restic)")
    from jshub.smoke import backup_state

    bucket = f"jshub-backup-{uuid.uuid4().hex[:8]}"
    make_bucket(s3_endpoint, bucket)
    hub = Hub(tmp_path, s3_endpoint, bucket)
    Path(hub.paths.home_root).mkdir(parents=True)
    failure = Path(hub.paths.failure_file)
    check = [f"{hub.paths.bin_dir}/jshub-backup-check"]
    hub.run("jshub-backup")
    assert not failure.exists() and hub.metrics()["jshub_backup_last_run_failed"] == 0
    assert "h old (limit 30 h)" in backup_state(check)

    hub.install(s3_endpoint, bucket, password="not-the-repository-password")
    failed = hub.run("jshub-backup", expect=1)
    journal = tmp_path / "journal.txt"
    journal.write_text(failed.stdout + failed.stderr)
    hub.shim_dir.mkdir(exist_ok=True)
    for name, body in {
        "systemctl": 'case "$*" in *Result*) echo exit-code ;; *InvocationID*) echo 0f1e2d3c ;; esac\n',
        "journalctl": f'[[ "$*" == *_SYSTEMD_INVOCATION_ID=0f1e2d3c* ]] && cat {journal}\n',
    }.items():
        (hub.shim_dir / name).write_text(f"#!/bin/bash\n{body}")
        (hub.shim_dir / name).chmod(0o755)
    before = int(time.time())
    hub.run("jshub-backup-failed")
    lines = failure.read_text().splitlines()
    assert before <= int(lines[0]) <= time.time()
    assert lines[1].startswith("jshub-backup.service failed (exit-code) at ")
    assert any("wrong password: RESTIC_PASSWORD in" in line for line in lines[2:]), lines

    reported = hub.run("jshub-backup-check", expect=3).stderr
    assert "the last backup run failed at" in reported and "wrong password: RESTIC_PASSWORD" in reported
    assert hub.metrics()["jshub_backup_last_run_failed"] == 1
    with pytest.raises(RuntimeError, match=r"exited 3: .*the last backup run failed at .*wrong password"):
        backup_state(check)
    # The password put right: the next backup succeeds and the record is gone.
    hub.install(s3_endpoint, bucket)
    hub.run("jshub-backup")
    assert not failure.exists()
    assert hub.metrics()["jshub_backup_last_run_failed"] == 0
    hub.run("jshub-backup-check")
