"""The protected shared-data claim is not awaited by pulumi-kubernetes (a fixed 5 minutes, often
too short for a fresh CephFS); the storage check Job, which mounts it and is awaited, proves
that it bound."""

from __future__ import annotations

import copy

from pulumi_kubernetes.yaml import yaml as k8s_yaml

from renderers import k8s_objects
from renderers.z2jh import SHARED_DATA_CLAIM
from tests.builders import build, k8s_config
from tests.conftest import one

CLAIM = "kubernetes:core/v1:PersistentVolumeClaim"
JOB = "kubernetes:batch/v1:Job"


def test_the_claim_carries_the_skip_await_annotation_the_sdk_itself_uses() -> None:
    claim = k8s_objects.shared_data_claim("jhub", 100)
    # The SDK's own helper (what its skipAwait options write) leaves our claim unchanged.
    marked = copy.deepcopy(claim)
    k8s_yaml._skip_await(marked, None)
    assert marked == claim
    without = copy.deepcopy(claim)
    del without["metadata"]["annotations"]
    k8s_yaml._skip_await(without, None)
    assert without == claim


def test_only_the_claim_skips_the_await_and_the_awaited_job_mounts_it() -> None:
    rec = build(k8s_config())
    claim, job = one(rec, CLAIM), one(rec, JOB)
    assert claim.inputs["metadata"]["annotations"] == {"pulumi.com/skipAwait": "true"}
    assert "pulumi.com/skipAwait" not in (job.inputs["metadata"].get("annotations") or {})
    assert claim.urn in job.dependency_urns
    volumes = job.inputs["spec"]["template"]["spec"]["volumes"]
    assert {"name": "shared", "persistentVolumeClaim": {"claimName": SHARED_DATA_CLAIM}} in volumes
    assert claim.protect
