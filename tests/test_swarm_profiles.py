"""swarm.profiles: spawn-page choices of an image with its own limits. Refused by key when they
cannot work; otherwise rendered into the swarm hub's settings, which load into the pinned
dockerspawner's real SwarmSpawner: its form lists the profiles, the chosen one's image passes
the spawner's own allowed-images check and its limits are the service's resources."""

from __future__ import annotations

import asyncio
import sys
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest
from dockerspawner import SwarmSpawner
from tornado import web
from traitlets.config import Config

from renderers.hub_config import HUB_DIR, HubConfigSpec
from stackconfig import ConfigError
from stackconfig.model import DEFAULT_NOTEBOOK_IMAGE
from tests.conftest import make_config
from tests.hub_config_local import settings_of

sys.path.insert(0, str(HUB_DIR))
import jshub_settings

COURSE = "ghcr.io/example/bio101:2025.09.1"
PROFILES = [
    {"displayName": "Standard", "description": "Numpy, pandas, matplotlib"},
    {
        "displayName": "Course image, large",
        "image": COURSE,
        "cpuLimit": 4,
        "memoryLimitGb": 8,
        "cpuReservation": 1,
        "memoryReservationGb": 2,
        "default": True,
    },
]


def swarm(**section: Any) -> dict[str, Any]:
    return {"scenario": "swarm", "swarm": {"workerCount": 2, **section}}


def problems(**config: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        make_config(**config)
    return [str(p) for p in caught.value.problems]


def test_the_default_notebook_image_is_one_a_course_can_use() -> None:
    # minimal-notebook has no numpy; scipy-notebook has numpy, pandas and matplotlib.
    assert DEFAULT_NOTEBOOK_IMAGE.startswith("quay.io/jupyter/scipy-notebook:")
    cfg = make_config(**swarm())
    assert cfg.swarm is not None and cfg.swarm.allowed_images == [DEFAULT_NOTEBOOK_IMAGE]


def test_profiles_that_cannot_work_are_refused_by_key() -> None:
    found = problems(**swarm(allowedImages=[COURSE], profiles=PROFILES))
    assert any(
        p.startswith("swarm.allowedImages = ['ghcr.io/example/bio101:2025.09.1']: set together")
        for p in found
    )

    two = [{**p, "default": True} for p in PROFILES]
    assert "swarm.profiles: more than one profile has default: true" in problems(**swarm(profiles=two))

    same = [PROFILES[0], {**PROFILES[0], "image": COURSE}]
    assert "swarm.profiles = 'Standard': two profiles have this displayName; each needs its own" in problems(
        **swarm(profiles=same)
    )

    # The default m3.medium: 8 vCPUs, 30 GB, 1 GB of which Docker and the OS keep.
    found = problems(**swarm(profiles=[{"displayName": "Huge", "memoryLimitGb": 40, "cpuLimit": 12}]))
    assert any(
        p.startswith("swarm.profiles[0].memoryLimitGb = 40.0: more than one m3.medium worker offers")
        and "29 GB" in p
        for p in found
    )
    assert any(
        p.startswith("swarm.profiles[0].cpuLimit = 12.0: more than one m3.medium worker") for p in found
    )
    make_config(
        **swarm(
            workerFlavor="m3.large", profiles=[{"displayName": "Big", "memoryLimitGb": 40, "cpuLimit": 12}]
        )
    )

    found = problems(**swarm(profiles=[{"displayName": "Odd", "memoryLimitGb": 2, "memoryReservationGb": 3}]))
    assert any(
        p.startswith("swarm.profiles[0].memoryReservationGb = 3.0: the reservation 3 exceeds") for p in found
    )
    # The swarm's reservation is what a profile's small limit is held to when it sets none.
    found = problems(**swarm(userCpuReservation=1, profiles=[{"displayName": "Tiny", "cpuLimit": 0.5}]))
    assert any(p.startswith("swarm.profiles[0].cpuLimit = 0.5: the reservation 1 exceeds") for p in found)

    (unpinned,) = problems(
        **swarm(profiles=[{"displayName": "Latest", "image": "quay.io/jupyter/scipy-notebook"}])
    )
    assert unpinned.startswith("swarm.profiles.0.image = 'quay.io/jupyter/scipy-notebook': not a pinned")


def test_the_workers_hold_concurrent_users_at_the_largest_profile_reservation() -> None:
    # An m3.medium holds 16 notebooks reserving 0.5 CPU, 8 reserving the large profile's 1 CPU:
    # 20 users need 3 workers, not 2.
    make_config(concurrentUsers=20, **swarm())
    found = problems(concurrentUsers=20, **swarm(profiles=PROFILES))
    assert any(p.startswith("swarm.workerCount = 2:") and "use at least 3 workers" in p for p in found)
    make_config(concurrentUsers=20, **swarm(workerCount=3, profiles=PROFILES))


def swarm_spawner(settings: dict[str, Any]) -> Any:
    """The hub's settings for the spawner loaded as the hub loads them, into the real class."""
    c = Config()
    jshub_settings.apply_settings(c, {k: settings[k] for k in ("SwarmSpawner", "Spawner")}, {})
    user = SimpleNamespace(name="bob", admin=False, url="/user/bob/")
    return SwarmSpawner(config=c, user=user)


def test_profiles_reach_the_swarm_spawner_as_a_form_an_image_and_limits() -> None:
    spec = HubConfigSpec.from_config(make_config(**swarm(profiles=PROFILES)))
    settings = settings_of(spec)
    # The preselected profile's image is the spawner's default; only profiles' images are allowed.
    assert settings["SwarmSpawner"]["image"] == COURSE
    assert settings["SwarmSpawner"]["allowed_images"] == [COURSE, DEFAULT_NOTEBOOK_IMAGE]

    spawner = swarm_spawner(settings)
    form = spawner.options_form
    assert form.index("Standard") < form.index("Course image, large")
    assert 'value="course-image-large" checked' in form and "4 CPU, 8192M memory" in form
    assert "Numpy, pandas, matplotlib" in form

    def home(*args: Any, **kwargs: Any) -> bytes:
        return b"home=/export/home/bob uid=10001 gid=100\n"

    client = SimpleNamespace(containers=SimpleNamespace(run=home), close=lambda: None)

    def start(formdata: dict[str, list[str]]) -> Any:
        spawner = swarm_spawner(settings)
        spawner.user_options = spawner.run_options_from_form(formdata)
        with mock.patch("docker.from_env", lambda: client):
            asyncio.run(spawner.run_pre_spawn_hook())
        return spawner

    standard = start({"profile": ["standard"]})
    assert asyncio.run(standard.check_allowed(standard.user_options["image"])) == DEFAULT_NOTEBOOK_IMAGE
    # The swarm's defaults: userCpu 1, userMemoryGb 1, reservations 0.5 CPU and 0.5 GB.
    assert (standard.cpu_limit, standard.mem_limit) == (1.0, 1024**3)
    assert (standard.cpu_guarantee, standard.mem_guarantee) == (0.5, 512 * 1024**2)
    assert standard.extra_container_spec["user"] == "10001:100"

    large = start({})  # nothing chosen: the preselected profile
    assert large.user_options == {"profile": "course-image-large", "image": COURSE}
    assert asyncio.run(large.check_allowed(large.user_options["image"])) == COURSE
    assert (large.cpu_limit, large.mem_limit, large.cpu_guarantee, large.mem_guarantee) == (
        4.0,
        8 * 1024**3,
        1.0,
        2 * 1024**3,
    )

    with pytest.raises(web.HTTPError, match="no profile 'gpu'"):
        start({"profile": ["gpu"]})
    # Through the API, an image asked for directly gives way to the profile's.
    spawner = swarm_spawner(settings)
    spawner.user_options = {"image": "example.org/not-allowed:1"}
    with mock.patch("docker.from_env", lambda: client):
        asyncio.run(spawner.run_pre_spawn_hook())
    assert spawner.user_options["image"] == COURSE


def test_without_profiles_the_swarm_offers_its_images_as_before() -> None:
    settings = settings_of(HubConfigSpec.from_config(make_config(**swarm())))
    assert "options_form" not in settings["SwarmSpawner"]
    assert "profiles" not in settings["Spawner"]["pre_spawn_hook"]["kwargs"]
    assert swarm_spawner(settings).options_form == ""  # one image: no form


def test_the_tests_spawner_is_the_one_the_swarm_hub_installs() -> None:
    from importlib.metadata import version

    pins = (HUB_DIR / "swarm" / "requirements.txt").read_text().split()
    assert f"dockerspawner=={version('dockerspawner')}" in pins
