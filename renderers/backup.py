"""Backups with restic: the scripts and systemd units the hub's VM runs, the environment file
holding the repository's credentials, and the script that installs them over SSH.

Everything here is delivered by one remote command, not by user data: a change of schedule or
retention re-runs that command and leaves the server alone (a change of user data would
replace the server)."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from catalog.jetstream2 import OBJECT_STORE_REGION, OBJECT_STORE_S3_ENDPOINT
from renderers import render
from renderers.hub_config import HubPaths

TAG = "jshub"
BACKUP_SERVICE = "jshub-backup"
CHECK_SERVICE = "jshub-backup-check"
# Run by systemd when a backup fails (OnFailure=): records the failure for the check.
FAILED_SERVICE = "jshub-backup-failed"
# Prometheus node exporter's textfile collector reads *.prom here (Debian/Ubuntu's
# prometheus-node-exporter default --collector.textfile.directory).
TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"
METRICS_FILE = "jshub_backup.prom"
_HEREDOC = "JSHUB_BACKUP_EOF"


@dataclass(frozen=True)
class BackupPaths:
    """Where things are on the VM that backs up. Tests point these at a scratch folder."""

    home_root: str
    # The live SQLite database of the hub; the backup takes a consistent copy of it.
    database: str
    env_file: str = "/etc/jshub-backup/restic.env"
    state_dir: str = "/var/lib/jshub-backup"
    textfile_dir: str = TEXTFILE_DIR
    bin_dir: str = "/usr/local/sbin"
    unit_dir: str = "/etc/systemd/system"
    # A failed backup's record (time, result, its last log lines), read by the check until the
    # next successful backup removes it. The hub's VMs keep it on the data volume, beside the
    # database: a rebuilt root disk does not forget a failure.
    failure_file: str = "/var/lib/jshub-backup/last-failure"

    @property
    def database_copy_dir(self) -> str:
        return f"{self.state_dir}/database"

    @property
    def database_copy(self) -> str:
        return f"{self.database_copy_dir}/{self.database.rsplit('/', 1)[-1]}"


def hub_backup_paths(paths: HubPaths | None = None) -> BackupPaths:
    """A hub VM (scenarios single and hpc), or the swarm manager with the image's paths."""
    paths = paths or HubPaths()
    return BackupPaths(
        home_root=paths.home_root,
        database=f"{paths.state_dir}/jupyterhub.sqlite",
        failure_file=f"{paths.state_dir}/backup-failed",
    )


def restic_host(project: str, stack: str) -> str:
    """The host name a stack's snapshots carry: the Pulumi project and stack, which neither a
    replaced server nor a new hub name changes (the hub's name used to be the host, so a rename
    split restic's history in two)."""
    return f"{project}-{stack}"


@dataclass(frozen=True)
class BackupSpec:
    # Snapshots carry this host name (restic_host). The scripts select this stack's snapshots by
    # the tag alone, so the snapshots an older release took under the hub's name count too: the
    # repository is the stack's own (its password is the stack's).
    host: str
    paths: BackupPaths
    schedule: str
    keep_daily: int
    keep_weekly: int
    keep_monthly: int
    max_age_hours: float
    check_schedule: str = "hourly"

    @property
    def max_age_s(self) -> int:
        return int(self.max_age_hours * 3600)


def render_backup_script(spec: BackupSpec) -> str:
    return render("backup-run.sh.j2", spec=spec, paths=spec.paths, tag=TAG, check=_check_command(spec))


def render_failure_script(spec: BackupSpec) -> str:
    return render("backup-failed.sh.j2", paths=spec.paths, unit=f"{BACKUP_SERVICE}.service")


def render_check_script(spec: BackupSpec) -> str:
    return render("backup-check.sh.j2", spec=spec, paths=spec.paths, tag=TAG, metrics_file=METRICS_FILE)


def render_restore_script(spec: BackupSpec) -> str:
    return render("backup-restore.sh.j2", spec=spec, paths=spec.paths, tag=TAG)


def _check_command(spec: BackupSpec) -> str:
    return f"{spec.paths.bin_dir}/{CHECK_SERVICE}"


def render_units(spec: BackupSpec) -> dict[str, str]:
    """The systemd units by file name: the backup and the freshness check, each on a timer, and
    the unit that records a failed backup."""
    bin_dir = spec.paths.bin_dir
    return {
        f"{BACKUP_SERVICE}.service": render(
            "backup-service.j2",
            description="Back up JupyterHub homes and database to object storage (restic)",
            command=f"{bin_dir}/{BACKUP_SERVICE}",
            background=True,
            on_failure=f"{FAILED_SERVICE}.service",
        ),
        f"{FAILED_SERVICE}.service": render(
            "backup-service.j2",
            description="Record a failed JupyterHub backup for jshub-backup-check",
            command=f"{bin_dir}/{FAILED_SERVICE}",
            background=False,
            on_failure="",
        ),
        f"{BACKUP_SERVICE}.timer": render(
            "backup-timer.j2", description="JupyterHub backup schedule", schedule=spec.schedule, delay="15min"
        ),
        f"{CHECK_SERVICE}.service": render(
            "backup-service.j2",
            description="Check that the last JupyterHub backup is recent",
            command=_check_command(spec),
            background=False,
            on_failure="",
        ),
        f"{CHECK_SERVICE}.timer": render(
            "backup-timer.j2",
            description="Check the JupyterHub backup's age",
            schedule=spec.check_schedule,
            delay="5min",
        ),
    }


def scripts(spec: BackupSpec) -> dict[str, str]:
    """The commands installed into bin_dir, by name."""
    return {
        BACKUP_SERVICE: render_backup_script(spec),
        CHECK_SERVICE: render_check_script(spec),
        FAILED_SERVICE: render_failure_script(spec),
        "jshub-restore": render_restore_script(spec),
    }


def repository(container: str, endpoint: str = OBJECT_STORE_S3_ENDPOINT) -> str:
    """restic's name for an S3 bucket at an endpoint: s3:https://host:port/bucket."""
    return f"s3:{endpoint.rstrip('/')}/{container}"


_ENV_VALUE = re.compile(r"^[A-Za-z0-9:/._+=-]+$")


def render_env_file(
    repository: str, access_key: str, secret_key: str, password: str, region: str = OBJECT_STORE_REGION
) -> str:
    """The root-only file the scripts read: where the repository is and how to open it."""
    values = {
        "RESTIC_REPOSITORY": repository,
        "RESTIC_PASSWORD": password,
        "AWS_ACCESS_KEY_ID": access_key,
        "AWS_SECRET_ACCESS_KEY": secret_key,
        "AWS_DEFAULT_REGION": region,
    }
    for key, value in values.items():
        # Checked, never echoed: the value may be a secret.
        if not _ENV_VALUE.match(value):
            raise ValueError(f"{key} holds characters the environment file cannot carry unquoted")
    return "".join(f"{key}={shlex.quote(value)}\n" for key, value in values.items())


def render_install_script(spec: BackupSpec) -> str:
    """Run over SSH by the stack, with the environment file on standard input."""
    files = [(f"{spec.paths.bin_dir}/{name}", "0755", text) for name, text in scripts(spec).items()]
    files += [(f"{spec.paths.unit_dir}/{name}", "0644", text) for name, text in render_units(spec).items()]
    for path, _, text in files:
        if _HEREDOC in text.splitlines():
            raise ValueError(f"{path} contains the here-document delimiter {_HEREDOC}")
    env_dir = spec.paths.env_file.rsplit("/", 1)[0]
    return render(
        "backup-install.sh.j2",
        paths=spec.paths,
        env_dir=env_dir,
        files=files,
        delimiter=_HEREDOC,
        timers=[f"{BACKUP_SERVICE}.timer", f"{CHECK_SERVICE}.timer"],
    )
