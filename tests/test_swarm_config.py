"""The swarm section of the stack config: defaults, rules, and the generated Pulumi.yaml."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from planner import stackfile
from stackconfig import ConfigError, parse
from tests.conftest import make_config

ROOT = Path(__file__).resolve().parent.parent


def problems(**overrides: object) -> str:
    with pytest.raises(ConfigError) as info:
        make_config(**overrides)
    return str(info.value)


def test_swarm_section_has_working_defaults() -> None:
    cfg = make_config(scenario="swarm", swarm={"workerCount": 3})
    assert cfg.swarm is not None
    assert cfg.swarm.worker_count == 3
    assert cfg.swarm.home_quota_gb == 10
    assert cfg.swarm.allowed_images[0].startswith("quay.io/jupyter/")


def test_scenario_swarm_requires_the_section_and_others_refuse_it() -> None:
    assert "swarm: scenario swarm needs a swarm section" in problems(scenario="swarm")
    assert (
        "swarm: not a key of scenario single, only of swarm (remove it, or set scenario: swarm)"
        in problems(swarm={"workerCount": 2})
    )


def test_unknown_swarm_key_names_the_nested_key_and_suggests() -> None:
    text = problems(scenario="swarm", swarm={"workerCont": 2})
    assert "swarm.workerCont: unknown key; did you mean 'workerCount'?" in text


def test_too_few_workers_for_the_reservations_names_workercount() -> None:
    text = problems(scenario="swarm", concurrentUsers=100, swarm={"workerCount": 1})
    assert "swarm.workerCount = 1:" in text and "use at least 7 workers" in text


def test_reservation_above_limit_is_refused() -> None:
    text = problems(scenario="swarm", userMemoryGb=1, swarm={"workerCount": 2, "userMemoryReservationGb": 2})
    assert "swarm.userMemoryReservationGb = 2.0: more than the limit userMemoryGb 1" in text


def test_worker_flavor_must_hold_one_notebook() -> None:
    text = problems(scenario="swarm", userMemoryGb=8, swarm={"workerCount": 9, "workerFlavor": "m3.tiny"})
    assert "swarm.workerFlavor = 'm3.tiny'" in text
    # No worker count can help, so none is suggested.
    assert "swarm.workerCount" not in text and "use at least" not in text


def test_a_reservation_no_worker_can_hold_names_the_flavor_not_the_count() -> None:
    text = problems(
        scenario="swarm",
        userMemoryGb=2,
        swarm={"workerCount": 2, "workerFlavor": "m3.small", "userMemoryReservationGb": 8},
    )
    assert "swarm.userMemoryReservationGb = 8.0: more than the limit" in text
    assert "swarm.workerFlavor = 'm3.small': m3.small (2 vCPUs, 5 GB after 1 GB" in text
    assert "cannot reserve 0.5 CPU and 8 GB for one notebook" in text
    assert "swarm.workerCount" not in text


@pytest.mark.parametrize("key", ["workerFlavor", "managerFlavor"])
def test_gpu_flavors_are_refused_by_key_with_the_reason(key: str) -> None:
    text = problems(scenario="swarm", swarm={"workerCount": 2, key: "g3.medium"})
    assert (
        f"swarm.{key} = 'g3.medium': g3.medium is a GPU flavor, and a swarm cannot give notebooks GPUs"
        in text
    )
    assert "a Docker Swarm service has no device requests" in text
    assert "scenario hpc (a partition with maxGpus)" in text


def test_swarm_services_still_have_no_device_requests() -> None:
    """The refusal above rests on this: a plain container takes device requests (`--gpus`), a swarm
    service's container spec does not, neither in docker-py (the hub's SwarmSpawner creates the
    notebook services with it) nor in pulumi-docker (the stack's own services); only generic
    resources, which count a node's GPUs without giving one to the container. When a version
    adds device requests to services, this fails: revisit swarm_has_no_gpu_flavors."""
    import docker.types
    import pulumi_docker

    def fields(kind: object) -> set[str]:
        return set(inspect.signature(kind).parameters)  # type: ignore[arg-type]

    assert "device_requests" in fields(pulumi_docker.ContainerArgs)
    assert "device_requests" in fields(docker.types.HostConfig)
    for spec in (docker.types.ContainerSpec, pulumi_docker.ServiceTaskSpecContainerSpecArgs):
        assert not {f for f in fields(spec) if "device" in f or "gpu" in f}, spec
    assert "generic_resources" in fields(docker.types.Resources)
    assert "generic_resources" in fields(pulumi_docker.ServiceTaskSpecResourcesReservationArgs)


def test_images_need_a_tag_and_quota_overrides_valid_names() -> None:
    assert "swarm.allowedImages.0 = 'ubuntu'" in problems(
        scenario="swarm", swarm={"allowedImages": ["ubuntu"]}
    )
    latest = problems(scenario="swarm", swarm={"allowedImages": ["example.org/a:latest"]})
    assert "never :latest" in latest
    text = problems(scenario="swarm", swarm={"workerCount": 2, "homeQuotaOverrides": {"bad name": 5}})
    assert "homeQuotaOverrides" in text


def test_persistent_swarm_stack_file_is_valid() -> None:
    stack = stackfile.load(ROOT, "persistent-swarm")
    cfg = parse(stack.config, secret_keys=stack.secret_keys)
    assert cfg.scenario == "swarm" and cfg.swarm is not None
    assert cfg.swarm.home_quota_overrides


def test_overlay_mtu_defaults_to_openstack_vxlan_and_names_the_key_when_out_of_range() -> None:
    cfg = make_config(scenario="swarm", swarm={"workerCount": 2})
    assert cfg.swarm is not None and cfg.swarm.overlay_mtu == 1450
    assert make_config(scenario="swarm", swarm={"overlayMtu": 1500}).swarm.overlay_mtu == 1500  # type: ignore[union-attr]
    # Containers would get 50 bytes less: below IPv6's minimum of 1280.
    text = problems(scenario="swarm", swarm={"overlayMtu": 1300})
    assert "swarm.overlayMtu" in text and "1300" in text and "1330" in text
