"""Plain Kubernetes objects the k8s stack creates itself (next to the two charts). Each passes
`kubernetes-validate --strict` in the tests."""

from __future__ import annotations

from typing import Any

from renderers.rook import BLOCK_CLASS, FILESYSTEM_CLASS
from renderers.z2jh import HUB_SECRETS, MONITORING_SECRET, OAUTH_SECRET, OAUTH_SECRET_KEY, SHARED_DATA_CLAIM

# A small pinned image for the storage check; Docker Hub's official busybox.
CHECK_IMAGE = "docker.io/library/busybox:1.37.0"
STORAGE_READY_JOB = "storage-ready"
# The notebook images' user: jovyan (1000), group users (100).
NOTEBOOK_UID, NOTEBOOK_GID = 1000, 100
LABELS = {"app.kubernetes.io/managed-by": "jupyterhub-jetstream"}


def namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": dict(LABELS)}}


def oauth_secret(ns: str, client_secret: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": OAUTH_SECRET, "namespace": ns, "labels": dict(LABELS)},
        "type": "Opaque",
        "stringData": {OAUTH_SECRET_KEY: client_secret},
    }


def hub_secret(ns: str, data: dict[str, str]) -> dict[str, Any]:
    """The stack's own hub secrets (see renderers.z2jh.hub_secret_data)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": HUB_SECRETS, "namespace": ns, "labels": dict(LABELS)},
        "type": "Opaque",
        "stringData": data,
    }


def monitoring_tokens_secret(ns: str, data: dict[str, str]) -> dict[str, Any]:
    """The metrics and grafana services' tokens (see renderers.z2jh, monitoring)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": MONITORING_SECRET, "namespace": ns, "labels": dict(LABELS)},
        "type": "Opaque",
        "stringData": data,
    }


def shared_data_claim(ns: str, size_gb: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        # Binding is proven by the storage check Job that mounts it; pulumi-kubernetes would
        # otherwise wait a fixed 5 minutes for it to bind, often too short for a fresh CephFS.
        "metadata": {
            "name": SHARED_DATA_CLAIM,
            "namespace": ns,
            "labels": dict(LABELS),
            "annotations": {"pulumi.com/skipAwait": "true"},
        },
        "spec": {
            "accessModes": ["ReadWriteMany"],
            "storageClassName": FILESYSTEM_CLASS,
            "resources": {"requests": {"storage": f"{size_gb}Gi"}},
        },
    }


def storage_ready_job(ns: str) -> dict[str, Any]:
    """A Job that completes only when both Ceph storage classes work: it mounts the shared
    CephFS claim and a fresh RBD volume, writes to each, and hands the shared folder to the
    notebook user. Pulumi waits for the Job, so the hub is installed on working storage. It has
    no TTL: the Job stays (one finished pod), so a refresh does not find it gone and rerun it."""
    script = (
        "set -eu; "
        "echo ok > /check/block/probe; "
        f"chown {NOTEBOOK_UID}:{NOTEBOOK_GID} /check/shared; chmod 2775 /check/shared; "
        "echo ok > /check/shared/.storage-ready"
    )
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": STORAGE_READY_JOB, "namespace": ns, "labels": dict(LABELS)},
        "spec": {
            "backoffLimit": 30,
            "activeDeadlineSeconds": 3600,
            "template": {
                "metadata": {"labels": dict(LABELS)},
                "spec": {
                    "restartPolicy": "OnFailure",
                    "containers": [
                        {
                            "name": "check",
                            "image": CHECK_IMAGE,
                            "command": ["sh", "-c", script],
                            "resources": {
                                "requests": {"cpu": "10m", "memory": "16Mi"},
                                "limits": {"memory": "64Mi"},
                            },
                            "volumeMounts": [
                                {"name": "shared", "mountPath": "/check/shared"},
                                {"name": "block", "mountPath": "/check/block"},
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "shared", "persistentVolumeClaim": {"claimName": SHARED_DATA_CLAIM}},
                        {
                            "name": "block",
                            "ephemeral": {
                                "volumeClaimTemplate": {
                                    "spec": {
                                        "accessModes": ["ReadWriteOnce"],
                                        "storageClassName": BLOCK_CLASS,
                                        "resources": {"requests": {"storage": "1Gi"}},
                                    }
                                }
                            },
                        },
                    ],
                },
            },
        },
    }
