"""The swarm scenario's hub, run for real on a local single-node Docker Swarm: the hub image
built from hub/swarm/Dockerfile, the production renderer's jupyterhub_config.py as a docker
config, the stack's hub service spec as a swarm service. A user's notebook is spawned as a
swarm service and answers through the proxy; the hub's container is killed, swarm brings it
back, and the user's files and server record survive.

Needs root, docker.io and debootstrap (`make system-deps`); without them the test skips, or
fails when the CI variable is set. See tests/e2e/swarm_local.py for what differs from
production (paths, ports, DNS round robin and host-mode ports, quotas off) and why.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require
from tests.e2e.swarm_local import (
    LocalSwarmHub,
    build_images,
    docker,
    environment_ready,
    random_user,
    start_dockerd,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def swarm_hub() -> Iterator[LocalSwarmHub]:
    reason = environment_ready()
    require(reason is None, reason or "")
    start_dockerd()
    image, timings = build_images()
    print(f"\nimages: base {timings['base_image_s']:.1f}s, hub {timings['hub_image_s']:.1f}s")
    hub = LocalSwarmHub.create(image)
    try:
        hub.start()
        yield hub
    finally:
        hub.close()


def test_notebook_is_a_swarm_service_reachable_through_the_proxy_and_survives_a_hub_crash(
    swarm_hub: LocalSwarmHub,
) -> None:
    hub = swarm_hub
    user = random_user()
    hub.expect(hub.api("POST", f"/users/{user}"), 201)

    started = time.monotonic()
    server = hub.start_server(user)
    print(f"\nspawn to ready: {time.monotonic() - started:.1f}s")
    assert server["url"] == f"/user/{user}/"

    # The notebook is a swarm service with the configured limits, reservations, placement,
    # user and the home from the (stand-in) NFS export.
    service = hub.service_inspect(f"jupyter-{user}")
    assert service is not None, f"no swarm service for {user}\n{hub.diagnose()}"
    spec = service["Spec"]["TaskTemplate"]
    container = spec["ContainerSpec"]
    assert container["Image"].split("@")[0] == hub.image
    assert container["User"] == "1000:100"
    assert spec["Resources"]["Limits"] == {"NanoCPUs": 1_000_000_000, "MemoryBytes": 1024 * 1024 * 1024}
    assert spec["Resources"]["Reservations"] == {"NanoCPUs": 250_000_000, "MemoryBytes": 256 * 1024 * 1024}
    assert spec["Placement"]["Constraints"] == ["node.labels.jshub.notebooks==true"]
    home = hub.home_root / user
    assert {"Type": "bind", "Source": str(home), "Target": "/home/jovyan"}.items() <= container["Mounts"][
        0
    ].items()
    assert home.is_dir() and home.stat().st_uid == 1000 and (home.stat().st_mode & 0o777) == 0o700

    # Reachable through the proxy, and it writes to the user's home.
    hub.expect(hub.user_api(user, "GET", "/status"), 200)
    note = {"type": "file", "format": "text", "content": "kept across a hub crash\n"}
    hub.expect(hub.user_api(user, "PUT", "/contents/notes.txt", json=note), 200, 201)
    assert (home / "notes.txt").read_text() == note["content"]

    # Kill the hub's container: swarm starts a new one, which finds the running notebook in
    # the database on the volume and routes to it again through a new proxy.
    before = hub.hub_container()
    assert before
    docker("kill", before)
    hub.wait_for(
        lambda: (c := hub.hub_container()) is not None and c != before,
        "swarm to start a new hub container",
        120,
    )
    hub.wait_answering()
    server = hub.server(user)
    assert server and server["ready"], f"{user}'s server record was lost: {server}\n{hub.diagnose()}"
    after = hub.service_inspect(f"jupyter-{user}")
    assert after is not None and after["ID"] == service["ID"], "the notebook service was replaced"
    content = hub.wait_for(
        lambda: (r := hub.user_api(user, "GET", "/contents/notes.txt")).status_code == 200 and r.json(),
        "the notebook to answer through the new proxy",
        60,
    )
    assert content["content"] == note["content"]

    # Stopping removes the service; the home and its files stay for next time.
    hub.stop_server(user)
    hub.wait_for(lambda: hub.service_inspect(f"jupyter-{user}") is None, "the service to go", 60)
    assert (home / "notes.txt").read_text() == note["content"]


def test_second_spawn_reuses_the_home(swarm_hub: LocalSwarmHub) -> None:
    hub = swarm_hub
    user = random_user()
    hub.expect(hub.api("POST", f"/users/{user}"), 201)
    home = hub.home_root / user
    hub.start_server(user)
    hub.expect(
        hub.user_api(user, "PUT", "/contents/a.txt", json={"type": "file", "format": "text", "content": "1"}),
        200,
        201,
    )
    hub.stop_server(user)
    hub.start_server(user)
    listing = hub.expect(hub.user_api(user, "GET", "/contents/"), 200).json()
    assert "a.txt" in {item["name"] for item in listing["content"]}
    hub.stop_server(user)
    assert (
        json.loads(docker("service", "ls", "--format", "json", "--filter", f"name=jupyter-{user}") or "null")
        is None
    )
    assert Path(home / "a.txt").exists()


def test_hub_service_is_the_production_spec_with_proxy_and_idle_culler(swarm_hub: LocalSwarmHub) -> None:
    hub = swarm_hub
    service = hub.service_inspect(hub.service.name)
    assert service is not None
    spec = service["Spec"]
    assert spec["TaskTemplate"]["Placement"]["Constraints"] == ["node.role==manager"]
    assert spec["TaskTemplate"]["RestartPolicy"]["Condition"] == "any"
    targets = {c["File"]["Name"] for c in spec["TaskTemplate"]["ContainerSpec"]["Configs"]}
    assert targets == {"/etc/jupyterhub/jupyterhub_config.py"}
    secrets = {s["File"]["Name"] for s in spec["TaskTemplate"]["ContainerSpec"]["Secrets"]}
    assert secrets == {"oauth_client_secret", "jshub_admin_token"}
    container = hub.hub_container()
    assert container
    processes = docker("top", container, "-ww", "-eo", "pid,args")
    assert "configurable-http-proxy" in processes, processes
    assert "jupyterhub_idle_culler" in processes, processes


def test_an_image_outside_allowed_images_is_refused(swarm_hub: LocalSwarmHub) -> None:
    hub = swarm_hub
    user = random_user()
    hub.expect(hub.api("POST", f"/users/{user}"), 201)
    response = hub.api("POST", f"/users/{user}/server", json={"image": "example.org/not-allowed:1"})
    assert response.status_code >= 400, response.text
    assert hub.service_inspect(f"jupyter-{user}") is None
