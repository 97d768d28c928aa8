"""Backups on Kubernetes: restic, run by a CronJob, from the same `backup` config as the VMs.

Homes on the k8s scenario are one Ceph RBD volume per user (ReadWriteOnce: attached to one node
at a time), created by KubeSpawner and labelled `component=singleuser-storage`; the hub database
is the chart's `hub-db-dir` claim. Nothing can mount all of them at once, and a volume in use is
attached to its notebook's node. So the CronJob runs a small script (kubectl + jq) that starts one
Job per volume, on the node where the volume is mounted if it is (a second pod on the same node
may mount a ReadWriteOnce volume too, read-only here), anywhere otherwise. Each Job's restic
container runs the same script (`volume.sh`); the hub database is first copied with SQLite's
online backup API by the hub's own image, as on the VMs. The Job templates live in the ConfigMap
next to the scripts, with `@PLACEHOLDER@`s the script fills in; the tests fill them in the same
way and validate the result.

Snapshots: `/homes/<claim>` per user, `/shared-data` for the shared folder and `/hub-db` for
the database, host = `<project>-<stack>` (renderers.backup.restic_host, as on the VMs), tag
`jshub`; the commands select by the tag alone and the retention groups by path, so snapshots an
older release took under the hub's name count too. `restic init` runs only when there is no
repository (the VMs' probe, renderers/templates/_restic-probe.sh.j2). The CronJob's `status.lastSuccessfulTime` (kube-state-metrics:
`kube_cronjob_status_last_successful_time`) is the freshness the monitoring alerts on; a run
with any failed Job fails, and leaves it where it was."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from renderers import render
from renderers.backup import TAG
from renderers.k8s_objects import LABELS
from renderers.z2jh import CHART_VERSION, SHARED_DATA_CLAIM

# Pinned images. restic's official image (Alpine: busybox sh); kubectl with jq and a shell; the
# chart's own hub image for the consistent copy of the database (it has Python's sqlite3).
RESTIC_IMAGE = "docker.io/restic/restic:0.18.0"
KUBECTL_IMAGE = "docker.io/alpine/k8s:1.33.5"
HUB_IMAGE = f"quay.io/jupyterhub/k8s-hub:{CHART_VERSION}"

CRONJOB = "home-backup"
CONFIGMAP = "home-backup"
SECRET = "home-backup-restic"
SERVICE_ACCOUNT = "home-backup"
SCRIPT = "home-backup.sh"
VOLUME_SCRIPT = "volume.sh"
JOB_TEMPLATES = ("home-job.yaml", "restore-job.yaml", "database-job.yaml", "prune-job.yaml")
# Z2JH's claim for the hub database, and where the hub mounts it.
DATABASE_CLAIM = "hub-db-dir"
HUB_DB_MOUNT = "/srv/jupyterhub"
DATABASE_FILE = "jupyterhub.sqlite"
HOMES_ROOT = "/homes"
DATABASE_ROOT = "/hub-db"
SHARED_ROOT = "/shared-data"
SCRIPTS_MOUNT = "/scripts"
# The repository's environment, as on the VMs (renderers.backup.render_env_file).
SECRET_KEYS = (
    "RESTIC_REPOSITORY",
    "RESTIC_PASSWORD",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
)
# One volume's backup: a first one of a full home, at a few tens of MB/s to object storage.
JOB_TIMEOUT_S = 3 * 3600
# A finished Job (and its pod, with its log) stays this long, then goes.
JOB_TTL_S = 3 * 24 * 3600
PLACEHOLDERS = ("@NAME@", "@CLAIM@", "@SOURCE@", "@MODE@", "@NODE@", "@SNAPSHOT@", "@RESTORE_PATH@")


@dataclass(frozen=True)
class K8sBackupSpec:
    namespace: str
    # Snapshots carry this host name (renderers.backup.restic_host), as on the VMs; the scripts
    # select by the tag alone, so those taken under an older host name (the hub's) count too.
    host: str
    # cron, UTC (stackconfig.backup.cron_schedule of backup.schedule).
    schedule: str
    keep_daily: int
    keep_weekly: int
    keep_monthly: int
    max_age_hours: int

    @property
    def max_age_s(self) -> int:
        return self.max_age_hours * 3600


def _labels(component: str) -> dict[str, str]:
    return {**LABELS, "app.kubernetes.io/name": CRONJOB, "app.kubernetes.io/component": component}


def render_driver_script(spec: K8sBackupSpec) -> str:
    return render(
        "k8s-backup.sh.j2",
        script=SCRIPT,
        namespace=spec.namespace,
        configmap=CONFIGMAP,
        cronjob=CRONJOB,
        database_claim=DATABASE_CLAIM,
        job_prefix=CRONJOB,
        job_timeout_s=JOB_TIMEOUT_S,
        max_age_s=spec.max_age_s,
        max_age_hours=spec.max_age_hours,
        homes_root=HOMES_ROOT,
        database_root=DATABASE_ROOT,
        shared_claim=SHARED_DATA_CLAIM,
        shared_root=SHARED_ROOT,
    )


def render_volume_script(spec: K8sBackupSpec) -> str:
    return render(
        "k8s-backup-volume.sh.j2",
        restic_image=RESTIC_IMAGE,
        secret=SECRET,
        host=spec.host,
        tag=TAG,
        keep_daily=spec.keep_daily,
        keep_weekly=spec.keep_weekly,
        keep_monthly=spec.keep_monthly,
    )


# What a restic container may do as root: read every file and put files back with their owners
# and modes; nothing else.
_RESTIC_SECURITY = {
    "runAsUser": 0,
    "runAsGroup": 0,
    "allowPrivilegeEscalation": False,
    "capabilities": {
        "drop": ["ALL"],
        "add": ["CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID"],
    },
}
_NON_ROOT = {
    "runAsNonRoot": True,
    "runAsUser": 1000,
    "runAsGroup": 100,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
}


def _restic_container(env: dict[str, str], mounts: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": "restic",
        "image": RESTIC_IMAGE,
        "command": ["sh", f"{SCRIPTS_MOUNT}/{VOLUME_SCRIPT}"],
        "env": [{"name": k, "value": v} for k, v in {**env, "RESTIC_CACHE_DIR": "/cache"}.items()],
        "envFrom": [{"secretRef": {"name": SECRET}}],
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "2Gi"}},
        "securityContext": _RESTIC_SECURITY,
        "volumeMounts": [
            {"name": "scripts", "mountPath": SCRIPTS_MOUNT, "readOnly": True},
            {"name": "cache", "mountPath": "/cache"},
            *mounts,
        ],
    }


def _job(
    template: str, containers: list[dict[str, Any]], volumes: list[dict[str, Any]], **pod: Any
) -> dict[str, Any]:
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        **pod,
        "containers": containers,
        "volumes": [
            {"name": "scripts", "configMap": {"name": CONFIGMAP, "defaultMode": 0o555}},
            {"name": "cache", "emptyDir": {"sizeLimit": "5Gi"}},
            *volumes,
        ],
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "@NAME@", "labels": _labels(template.removesuffix("-job.yaml"))},
        "spec": {
            # restic's own retries cover the network; a second attempt covers a lost node.
            "backoffLimit": 1,
            "activeDeadlineSeconds": JOB_TIMEOUT_S,
            "ttlSecondsAfterFinished": JOB_TTL_S,
            "template": {"metadata": {"labels": _labels("volume")}, "spec": pod_spec},
        },
    }


def job_templates() -> dict[str, dict[str, Any]]:
    """The Job templates by key in the ConfigMap, as objects with `@PLACEHOLDER@`s."""
    # A volume in use is attached to its pod's node: the Job must run there (the driver drops
    # the nodeSelector for a volume nobody uses).
    on_node = {"nodeSelector": {"kubernetes.io/hostname": "@NODE@"}}
    env = {"MODE": "@MODE@", "SOURCE": "@SOURCE@", "SNAPSHOT": "@SNAPSHOT@", "RESTORE_PATH": "@RESTORE_PATH@"}
    home, restore = (
        _job(
            template,
            [_restic_container(env, [{"name": "volume", "mountPath": "@SOURCE@", "readOnly": read_only}])],
            [{"name": "volume", "persistentVolumeClaim": {"claimName": "@CLAIM@", "readOnly": read_only}}],
            **on_node,
        )
        for template, read_only in (("home-job.yaml", True), ("restore-job.yaml", False))
    )
    copy = (
        "import sqlite3, sys\n"
        "source = sqlite3.connect(f'file:{sys.argv[1]}?mode=ro', uri=True, timeout=60)\n"
        "target = sqlite3.connect(sys.argv[2])\n"
        "source.backup(target)\n"
        "target.close()\n"
        "source.close()\n"
    )
    database = _job(
        "database-job.yaml",
        [_restic_container(env, [{"name": "copy", "mountPath": "@SOURCE@", "readOnly": True}])],
        [
            {"name": "volume", "persistentVolumeClaim": {"claimName": "@CLAIM@", "readOnly": True}},
            {"name": "copy", "emptyDir": {"sizeLimit": "2Gi"}},
        ],
        **on_node,
        # SQLite's online backup API: a consistent copy while the hub writes, as on the VMs.
        initContainers=[
            {
                "name": "copy-database",
                "image": HUB_IMAGE,
                "command": [
                    "python3",
                    "-c",
                    copy,
                    f"{HUB_DB_MOUNT}/{DATABASE_FILE}",
                    f"{DATABASE_ROOT}/{DATABASE_FILE}",
                ],
                "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "512Mi"}},
                "securityContext": _NON_ROOT,
                "volumeMounts": [
                    {"name": "volume", "mountPath": HUB_DB_MOUNT, "readOnly": True},
                    {"name": "copy", "mountPath": DATABASE_ROOT},
                ],
            }
        ],
    )
    prune = _job("prune-job.yaml", [_restic_container({"MODE": "@MODE@"}, [])], [])
    return {
        "home-job.yaml": home,
        "restore-job.yaml": restore,
        "database-job.yaml": database,
        "prune-job.yaml": prune,
    }


def template_text(obj: dict[str, Any]) -> str:
    """A Job template as the driver reads it: block YAML, one key a line, so that dropping the
    nodeSelector is a two-line `sed` range."""
    return yaml.safe_dump(obj, sort_keys=False, default_flow_style=False, width=10000)


def fill(template: str, **values: str) -> str:
    """What the driver's `render_job` does, for tests and docs: drop the nodeSelector when there
    is no node, then replace each `@KEY@`."""
    lines = template.splitlines(keepends=True)
    if not values.get("node"):
        out, skipping = [], False
        for line in lines:
            if line.strip() == "nodeSelector:":
                skipping = True
            if not skipping:
                out.append(line)
            if skipping and "@NODE@" in line:
                skipping = False
        lines = out
    text = "".join(lines)
    for key in PLACEHOLDERS:
        text = text.replace(key, values.get(key.strip("@").lower(), ""))
    return text


def configmap(spec: K8sBackupSpec) -> dict[str, Any]:
    data = {
        SCRIPT: render_driver_script(spec),
        VOLUME_SCRIPT: render_volume_script(spec),
        **{name: template_text(obj) for name, obj in job_templates().items()},
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": CONFIGMAP, "namespace": spec.namespace, "labels": _labels("scripts")},
        "data": data,
    }


def secret_env(
    repository: str, access_key: str, secret_key: str, password: str, region: str
) -> dict[str, str]:
    """The Secret's values: the same environment as the VMs' file (renderers.backup.render_env_file)."""
    return {
        "RESTIC_REPOSITORY": repository,
        "RESTIC_PASSWORD": password,
        "AWS_ACCESS_KEY_ID": access_key,
        "AWS_SECRET_ACCESS_KEY": secret_key,
        "AWS_DEFAULT_REGION": region,
    }


def restic_secret(namespace: str, env: dict[str, str]) -> dict[str, Any]:
    """The repository's credentials (plain values here: the component marks them secret)."""
    missing = set(SECRET_KEYS) - set(env)
    if missing:
        raise ValueError(f"the backup Secret needs {sorted(missing)}")
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": SECRET, "namespace": namespace, "labels": _labels("credentials")},
        "type": "Opaque",
        "stringData": {k: env[k] for k in SECRET_KEYS},
    }


def service_account(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": SERVICE_ACCOUNT, "namespace": namespace, "labels": _labels("driver")},
        "automountServiceAccountToken": True,
    }


def role(namespace: str) -> dict[str, Any]:
    """What the driver does: read claims, pods (and a failed Job's log) and its own ConfigMap;
    start and watch Jobs."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": SERVICE_ACCOUNT, "namespace": namespace, "labels": _labels("driver")},
        "rules": [
            {"apiGroups": [""], "resources": ["persistentvolumeclaims", "pods"], "verbs": ["get", "list"]},
            # A failed volume Job's last lines, copied into the run's own log.
            {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
            {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [CONFIGMAP], "verbs": ["get"]},
            {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list", "create", "patch"]},
        ],
    }


def role_binding(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": SERVICE_ACCOUNT, "namespace": namespace, "labels": _labels("driver")},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": SERVICE_ACCOUNT},
        "subjects": [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": namespace}],
    }


def cronjob(spec: K8sBackupSpec) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": CRONJOB, "namespace": spec.namespace, "labels": _labels("driver")},
        "spec": {
            "schedule": spec.schedule,
            "timeZone": "Etc/UTC",
            # A run still going when the next is due finishes first; the next waits for its turn.
            "concurrencyPolicy": "Forbid",
            # A run missed by more than this (the cluster was down) is skipped, not run late.
            "startingDeadlineSeconds": 3600,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "metadata": {"labels": _labels("driver")},
                "spec": {
                    "backoffLimit": 0,
                    "template": {
                        "metadata": {"labels": _labels("driver")},
                        "spec": {
                            "serviceAccountName": SERVICE_ACCOUNT,
                            "restartPolicy": "Never",
                            "containers": [
                                {
                                    "name": "driver",
                                    "image": KUBECTL_IMAGE,
                                    "command": ["sh", f"{SCRIPTS_MOUNT}/{SCRIPT}", "backup"],
                                    # kubectl keeps its discovery cache under $HOME; the user
                                    # has none in the image.
                                    "env": [{"name": "HOME", "value": "/tmp"}],
                                    "resources": {
                                        "requests": {"cpu": "10m", "memory": "32Mi"},
                                        "limits": {"memory": "128Mi"},
                                    },
                                    "securityContext": _NON_ROOT,
                                    "volumeMounts": [
                                        {"name": "scripts", "mountPath": SCRIPTS_MOUNT, "readOnly": True}
                                    ],
                                }
                            ],
                            "volumes": [
                                {"name": "scripts", "configMap": {"name": CONFIGMAP, "defaultMode": 0o555}}
                            ],
                        },
                    },
                },
            },
        },
    }


def restore_command(namespace: str, *args: str) -> str:
    """The one command an admin runs (kubectl and jq on their machine)."""
    key = SCRIPT.replace(".", "\\.")
    return (
        f"kubectl -n {namespace} get configmap {CONFIGMAP} -o jsonpath='{{.data.{key}}}' | sh -s -- "
        + " ".join(args)
    )
