"""Scenario k8s configuration: the k8s section, sizing and the arithmetic in its errors."""

from __future__ import annotations

from typing import Any

import pytest

from stackconfig import ConfigError, sizing
from tests.conftest import make_config

WORKSHOP: dict[str, Any] = {
    "scenario": "k8s",
    "concurrentUsers": 100,
    "userMemoryGb": 4,
    "userCpu": 2,
}


def k8s(**section: Any) -> dict[str, Any]:
    return {**WORKSHOP, "k8s": {"cephVolumeGb": 1000, **section}}


def problems(**overrides: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        make_config(**overrides)
    return [str(p) for p in info.value.problems]


def test_scenario_k8s_requires_its_section_and_other_scenarios_refuse_it() -> None:
    (message,) = problems(**WORKSHOP)
    assert message.startswith("k8s: scenario k8s needs a k8s section")
    (message,) = problems(k8s={"engine": "k3s"})
    assert message.startswith("k8s: not a key of scenario single, only of k8s")


def test_section_takes_the_documented_defaults_and_empty_reads_as_unset() -> None:
    # Pulumi.yaml declares `k8s: {}` as the default, so an empty section means "no section".
    assert problems(scenario="k8s", k8s={})[0].startswith("k8s: scenario k8s needs a k8s section")
    cfg = make_config(scenario="k8s", k8s={"engine": "k3s"})
    assert cfg.k8s is not None
    assert (cfg.k8s.engine, cfg.k8s.control_plane_count, cfg.k8s.worker_flavor) == ("k3s", 3, "m3.xl")


def test_worker_count_is_derived_from_users_and_guarantees() -> None:
    # m3.xl: (125 - 2) GB / 2 GB = 61 users by memory, (32 - 0.5) / 0.5 = 63 by CPU -> 61 per worker.
    cfg = make_config(**k8s(userMemoryGuaranteeGb=2))
    assert sizing.worker_fit(cfg.k8s).users == 61  # type: ignore[arg-type]
    assert sizing.worker_count(cfg) == 2
    cfg = make_config(**k8s(userMemoryGuaranteeGb=2, workerFlavor="m3.medium"))
    # (30 - 2) / 2 = 14 per worker -> ceil(100 / 14) = 8
    assert sizing.worker_count(cfg) == 8


def test_too_few_workers_is_refused_with_the_arithmetic() -> None:
    (message,) = problems(**k8s(workerCount=1, userMemoryGuaranteeGb=2))
    assert message.startswith("k8s.workerCount = 1: too few workers")
    for part in (
        "125 GB − 2 GB reserved = 123 GB",
        "÷ userMemoryGuaranteeGb 2 = 61 users",
        "31.5, ÷ userCpuGuarantee 0.5 = 63 users",
        "concurrentUsers 100 ÷ 61 per worker = 2 workers",
        "at least 2",
    ):
        assert part in message
    make_config(**k8s(workerCount=2, userMemoryGuaranteeGb=2))


def test_magnum_counts_ceph_and_hub_pods_on_the_workers() -> None:
    # Ceph: 3 OSDs × 4 + 3 mons × 1 + 2 mgrs × 0.5 + 2 MDS × 4 = 24 GB, + 2 GB hub pods = 26 GB;
    # CPU 3 + 3 + 1 + 2 + 1 = 10, which at 0.5 per user is 20 user slots.
    cfg = make_config(**k8s(engine="magnum", userMemoryGuaranteeGb=2, workerFlavor="m3.medium"))
    overhead = sizing.worker_overhead(cfg.k8s)  # type: ignore[arg-type]
    assert (overhead.memory_gb, overhead.cpu, overhead.slots(cfg.k8s)) == (26.0, 10.0, 20)  # type: ignore[arg-type]
    assert sizing.worker_count(cfg) == 9  # ceil((100 + 20) / 14)
    (message,) = problems(
        **k8s(engine="magnum", userMemoryGuaranteeGb=2, workerFlavor="m3.medium", workerCount=8)
    )
    assert "+ 20 slots for Ceph and the hub pods on the workers (26 GB, 10 CPU)" in message
    assert "= 9 workers" in message


def test_limits_above_a_worker_and_guarantees_above_limits_are_refused() -> None:
    found = problems(**{**k8s(workerFlavor="m3.small", userCpuGuarantee=3), "userCpu": 2})
    assert any(p.startswith("k8s.userCpuGuarantee = 3.0: exceeds the limit userCpu 2") for p in found)
    assert any(p.startswith("userCpu = 2.0: more than one m3.small worker offers") for p in found)
    found = problems(**k8s(workerFlavor="m3.tiny"))
    assert any(
        p.startswith("userMemoryGb = 4.0: more than one m3.tiny worker offers after the node's reserve (1 GB")
        for p in found
    )


def test_k3s_control_plane_must_hold_etcd_and_ceph() -> None:
    (message,) = problems(**k8s(controlPlaneFlavor="m3.quad"))
    assert message.startswith("k8s.controlPlaneFlavor = 'm3.quad'")
    assert "= 13.5 GB and 5.5 CPU, but m3.quad offers 13 GB" in message
    assert "smallest flavor that fits is m3.medium" in message
    # magnum runs no pods on its control plane: the same flavor is fine there.
    make_config(**k8s(engine="magnum", controlPlaneFlavor="m3.quad"))


def test_ceph_capacity_must_hold_the_homes() -> None:
    (message,) = problems(**k8s(cephVolumeGb=200))
    assert message.startswith("k8s.cephVolumeGb = 200")
    assert "3 OSDs × 200 GB = 600 GB raw ÷ 3 replicas × 0.85 (nearfull) = 170 GB usable" in message
    assert "concurrentUsers 100 × userStorageGb 5 + sharedDataGb 50 + 1 GB hub database = 551 GB" in message
    assert "at least 649" in message
    make_config(**k8s(cephVolumeGb=649))


def test_one_node_dev_cluster_keeps_one_replica_and_one_mon() -> None:
    cfg = make_config(scenario="k8s", k8s={"controlPlaneCount": 1})
    assert cfg.k8s is not None
    assert (sizing.ceph_mons(cfg.k8s), sizing.ceph_replicas(cfg.k8s)) == (1, 1)
    assert problems(scenario="k8s", k8s={"controlPlaneCount": 2})[0].startswith("k8s.controlPlaneCount = 2")


def test_nested_typos_are_named_with_a_suggestion() -> None:
    (message,) = problems(scenario="k8s", k8s={"workerCont": 3})
    assert message.startswith("k8s.workerCont: unknown key; did you mean 'workerCount'?")
    (message,) = problems(scenario="k8s", k8s={"userImage": "quay.io/jupyter/base-notebook:latest"})
    assert "not a pinned container image" in message
    (message,) = problems(scenario="k8s", k8s={"k3sVersion": "1.33"})
    assert message.startswith("k8s.k3sVersion = '1.33': not a k3s release tag")


def test_keys_of_the_other_engine_are_refused() -> None:
    found = problems(**k8s(maxWorkerCount=5, magnumTemplate="t"))
    assert "k8s.maxWorkerCount = 5: applies only to engine magnum, and engine is k3s; remove it" in found
    assert "k8s.magnumTemplate = 't': applies only to engine magnum, and engine is k3s; remove it" in found
    (message,) = problems(**k8s(engine="magnum", k3sVersion="v1.33.5+k3s1"))
    assert message.startswith("k8s.k3sVersion = 'v1.33.5+k3s1': applies only to engine k3s")


def test_profiles_are_checked_against_limits_and_default() -> None:
    found = problems(
        **k8s(
            profiles=[
                {"displayName": "Big", "memoryGuaranteeGb": 8, "memoryLimitGb": 6, "default": True},
                {"displayName": "Small", "default": True},
            ]
        )
    )
    assert "k8s.profiles[0] = 'Big': memory guarantee 8 exceeds its limit 6" in found
    assert "k8s.profiles: more than one profile has default: true" in found
    (message,) = problems(**k8s(profiles=[{"displayName": "Huge", "memoryLimitGb": 200}]))
    assert message.startswith("k8s.profiles['Huge'].memoryLimitGb = 200.0: more than one m3.xl worker offers")
