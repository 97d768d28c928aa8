"""The swarm scenario's hub, run for real on a local single-node Docker Swarm: the hub image
built from hub/swarm/Dockerfile, the production renderer's jupyterhub_config.py as a docker
config, and the hub's network and service as components/swarm_hub.py declares them to
pulumi-docker (recorded under Pulumi mocks, translated for the docker CLI). The nodes' firewall
and notebook isolation agent run as cloud-init installs them. A user's notebook is spawned as
a swarm service, runs as the user's own UID and answers through the proxy; it reaches neither
the NFS port, the node's Docker/swarm ports, the hub's API port nor another user's server; the
hub's container is killed, swarm brings it back, and the user's files and server record survive.

Needs root, docker.io and debootstrap (`make system-deps`); without them the test skips, or
fails when the CI variable is set. See tests/e2e/swarm_local.py for what differs from
production (paths, ports, DNS round robin and host-mode ports, the recording xfs_quota) and why.
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
    PortListener,
    UnsupportedSpecError,
    build_images,
    docker,
    environment_ready,
    node_address,
    production_service_args,
    random_user,
    start_dockerd,
)
from tests.jshub_commands import SMOKE_STEPS, run_jshub, smoke_rows

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


def user_uid(hub: LocalSwarmHub, user: str) -> int:
    entries = dict(line.split(":") for line in (hub.export / ".jshub-users").read_text().splitlines())
    return int(entries[user])


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
    # the user's own UID and the home from the (stand-in) NFS export.
    service = hub.service_inspect(f"jupyter-{user}")
    assert service is not None, f"no swarm service for {user}\n{hub.diagnose()}"
    spec = service["Spec"]["TaskTemplate"]
    container = spec["ContainerSpec"]
    uid = user_uid(hub, user)
    assert uid >= 10000
    assert container["Image"].split("@")[0] == hub.image
    assert container["User"] == f"{uid}:100"
    assert container["Labels"] == {"jshub.role": "notebook"}
    assert spec["Resources"]["Limits"] == {"NanoCPUs": 1_000_000_000, "MemoryBytes": 1024 * 1024 * 1024}
    assert spec["Resources"]["Reservations"] == {"NanoCPUs": 250_000_000, "MemoryBytes": 256 * 1024 * 1024}
    assert spec["Placement"]["Constraints"] == ["node.labels.jshub.notebooks==true"]
    home = hub.home_root / user
    assert {"Type": "bind", "Source": str(home), "Target": "/home/jovyan"}.items() <= container["Mounts"][
        0
    ].items()
    assert home.is_dir() and home.stat().st_uid == uid and (home.stat().st_mode & 0o777) == 0o700

    # Reachable through the proxy, and it writes to the user's home as the user's UID.
    hub.expect(hub.user_api(user, "GET", "/status"), 200)
    note = {"type": "file", "format": "text", "content": "kept across a hub crash\n"}
    hub.expect(hub.user_api(user, "PUT", "/contents/notes.txt", json=note), 200, 201)
    assert (home / "notes.txt").read_text() == note["content"]
    assert (home / "notes.txt").stat().st_uid == uid

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


def test_second_spawn_reuses_the_home_and_the_uid(swarm_hub: LocalSwarmHub) -> None:
    hub = swarm_hub
    user = random_user()
    hub.expect(hub.api("POST", f"/users/{user}"), 201)
    home = hub.home_root / user
    hub.start_server(user)
    uid = user_uid(hub, user)
    hub.expect(
        hub.user_api(user, "PUT", "/contents/a.txt", json={"type": "file", "format": "text", "content": "1"}),
        200,
        201,
    )
    hub.stop_server(user)
    hub.start_server(user)
    listing = hub.expect(hub.user_api(user, "GET", "/contents/"), 200).json()
    assert "a.txt" in {item["name"] for item in listing["content"]}
    assert user_uid(hub, user) == uid
    service = hub.service_inspect(f"jupyter-{user}")
    assert service is not None and service["Spec"]["TaskTemplate"]["ContainerSpec"]["User"] == f"{uid}:100"
    hub.stop_server(user)
    assert (
        json.loads(docker("service", "ls", "--format", "json", "--filter", f"name=jupyter-{user}") or "null")
        is None
    )
    assert Path(home / "a.txt").exists()


def test_notebooks_reach_neither_nfs_nor_the_node_nor_each_other_only_the_proxy(
    swarm_hub: LocalSwarmHub,
) -> None:
    hub = swarm_hub
    alice, bob = random_user(), random_user()
    for user in (alice, bob):
        hub.expect(hub.api("POST", f"/users/{user}"), 201)
        hub.start_server(user)
    # Different users, different UIDs: NFS permissions keep their homes apart.
    assert user_uid(hub, alice) != user_uid(hub, bob)
    a = hub.notebook_container(alice)
    assert hub.exec_python(a, "import os; print(os.getuid())") == str(user_uid(hub, alice))

    # The NFS port on the node's address, with a listener standing in for the NFS server: open
    # from the node itself and, while the firewall is off, from the notebook; closed with it on.
    address = node_address()
    nfs = PortListener(address, 2049)
    try:
        assert hub.connects(a, address, 2049) == "ConnectionRefusedError"
        hub.run_firewall("stop")
        try:
            assert hub.connects(a, address, 2049) == "open", "control: the path is open without the firewall"
        finally:
            hub.run_firewall("start")
        assert hub.connects(a, address, 2049) == "ConnectionRefusedError"
    finally:
        nfs.close()
    assert nfs.accepted == 1, "only the control connection got through"

    # The swarm manager port (Docker's cluster API) listens on every address of the node.
    assert hub.connects(a, address, 2377) == "ConnectionRefusedError"
    assert hub.exec_python(a, "import os; print(os.path.exists('/var/run/docker.sock'))") == "False"

    # Bob's server answers the hub (through the proxy) but not Alice's notebook.
    hub.expect(hub.user_api(bob, "GET", "/status"), 200)
    assert hub.connects(a, f"jupyter-{bob}", 8888) == "ConnectionRefusedError"
    b = hub.notebook_container(bob)
    assert hub.connects(b, f"jupyter-{alice}", 8888) == "ConnectionRefusedError"
    # The hub: its proxy port only. Its API and the proxy's API are on loopback in its container.
    assert hub.connects(a, hub.service_name, 8000) == "open"
    assert hub.connects(a, hub.service_name, 8081) == "ConnectionRefusedError"
    assert hub.connects(a, hub.service_name, 8001) == "ConnectionRefusedError"
    api = hub.exec_python(
        a,
        "import os, urllib.request; "
        "print(urllib.request.urlopen(os.environ['JUPYTERHUB_API_URL'] + '/', timeout=5).status)",
    )
    assert api == "200"
    assert hub.exec_python(a, "import os; print(os.environ['JUPYTERHUB_API_URL'])") == (
        f"http://{hub.service_name}:8000/hub/api"
    )
    for user in (alice, bob):
        hub.stop_server(user)


def test_overlay_mtu_comes_from_the_stack(swarm_hub: LocalSwarmHub) -> None:
    hub = swarm_hub
    options = json.loads(docker("network", "inspect", hub.network_name, "--format", "{{json .Options}}"))
    assert options["com.docker.network.driver.mtu"] == "1450"
    hub_container = hub.hub_container()
    assert hub_container
    mtus = hub.exec_python(
        hub_container,
        "import json, os; print(json.dumps({i: int(open(f'/sys/class/net/{i}/mtu').read()) "
        "for i in os.listdir('/sys/class/net')}))",
    )
    # Docker takes the option as the network under the overlay: the container's overlay
    # interface is 50 bytes smaller (VXLAN), docker_gwbridge's stays at the host's.
    assert sorted(json.loads(mtus).values()) == [1400, 1500, 65536], mtus


def test_a_quota_override_is_applied_with_the_exact_xfs_quota_commands(swarm_hub: LocalSwarmHub) -> None:
    hub = swarm_hub
    user, other = hub.quota_user, random_user()
    before = len(hub.quota_calls())
    for name in (user, other):
        hub.expect(hub.api("POST", f"/users/{name}"), 201)
        hub.start_server(name)
    calls = hub.quota_calls()[before:]
    home, uid = hub.home_root / user, user_uid(hub, user)
    other_home, other_uid = hub.home_root / other, user_uid(hub, other)
    export = str(hub.export)
    assert calls == [
        ["-x", "-c", f"project -s -p {home} {uid}", export],
        ["-x", "-c", f"limit -p bhard=42g {uid}", export],
        ["-x", "-c", f"project -s -p {other_home} {other_uid}", export],
        ["-x", "-c", f"limit -p bhard=5g {other_uid}", export],
    ]
    for name in (user, other):
        hub.stop_server(name)


def test_hub_service_is_the_production_spec_with_proxy_and_idle_culler(swarm_hub: LocalSwarmHub) -> None:
    hub = swarm_hub
    production = hub.production.service["taskSpec"]
    service = hub.service_inspect(hub.service_name)
    assert service is not None
    spec = service["Spec"]
    task = spec["TaskTemplate"]
    assert (
        task["Placement"]["Constraints"] == production["placement"]["constraints"] == ["node.role==manager"]
    )
    assert task["RestartPolicy"]["Condition"] == production["restartPolicy"]["condition"] == "any"
    assert task["RestartPolicy"]["Delay"] == 5_000_000_000
    # The Docker socket bind, and every other mount, as the production spec has them (the
    # state folder's host path is the scratch folder's).
    mounts = [(m["Type"], m["Source"], m["Target"]) for m in task["ContainerSpec"]["Mounts"]]
    expected = [
        (m["type"], hub.overrides.bind_sources.get(m["source"], m["source"]), m["target"])
        for m in production["containerSpec"]["mounts"]
    ]
    assert mounts == expected
    assert ("bind", "/var/run/docker.sock", "/var/run/docker.sock") in mounts
    targets = {c["File"]["Name"] for c in task["ContainerSpec"]["Configs"]}
    assert targets == {c["fileName"] for c in production["containerSpec"]["configs"]}
    assert targets == {
        "/etc/jupyterhub/jupyterhub_config.py",
        "/etc/jupyterhub/jupyterhub_settings.json",
        "/etc/jupyterhub/jshub_settings.py",
        "/etc/jupyterhub/jshub_swarm.py",
        "/etc/jupyterhub/jshub_usage.py",
    }
    secrets = {
        (s["SecretName"], s["File"]["Name"], s["File"]["Mode"]) for s in task["ContainerSpec"]["Secrets"]
    }
    assert secrets == {
        (s["secretName"], s["fileName"], int(s["fileMode"])) for s in production["containerSpec"]["secrets"]
    }
    assert {name for _, name, _ in secrets} == {"oauth_client_secret", "jshub_admin_token"}
    assert [n["Target"] for n in task["Networks"]] == [
        json.loads(docker("network", "inspect", hub.network_name, "--format", "{{json .Id}}"))
    ]
    assert spec["Mode"] == {"Replicated": {"Replicas": 1}}
    container = hub.hub_container()
    assert container
    processes = docker("top", container, "-ww", "-eo", "pid,args")
    assert "configurable-http-proxy" in processes, processes
    assert "jupyterhub_idle_culler" in processes, processes


def test_the_translation_refuses_a_production_field_it_does_not_know(swarm_hub: LocalSwarmHub) -> None:
    hub = swarm_hub
    service = json.loads(json.dumps(hub.production.service))
    service["taskSpec"]["containerSpec"]["capAdds"] = ["NET_ADMIN"]
    with pytest.raises(UnsupportedSpecError, match=r"Service.taskSpec.containerSpec: \['capAdds'\]"):
        production_service_args(
            service,
            networks={hub.production.network_id: hub.network_name},
            configs=dict.fromkeys(hub.production.config_ids.values(), "c"),
            secrets=hub.production.secret_ids,
            overrides=hub.overrides,
        )


def test_an_image_outside_allowed_images_is_refused(swarm_hub: LocalSwarmHub) -> None:
    hub = swarm_hub
    user = random_user()
    hub.expect(hub.api("POST", f"/users/{user}"), 201)
    response = hub.api("POST", f"/users/{user}/server", json={"image": "example.org/not-allowed:1"})
    assert response.status_code >= 400, response.text
    assert hub.service_inspect(f"jupyter-{user}") is None


def test_smoke_test_passes_against_the_swarm_hub(swarm_hub: LocalSwarmHub) -> None:
    """`python -m jshub.smoke`, as an operator runs it after a deploy, against the swarm hub:
    the notebook is a swarm service, the file lands in the user's home on the export and
    outlives the service, and nothing of the throw-away user is left running."""
    hub = swarm_hub
    user = random_user()
    done = run_jshub("smoke", hub.public_url, hub.admin_token, "--timeout", "180", "--user", user)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{hub.diagnose()}"
    rows = smoke_rows(done.stdout)
    for step in SMOKE_STEPS:
        assert "ok" in rows[step], done.stdout
    # The kernel ran in the notebook container, whose home is the user's folder on the export.
    assert "wrote /home/jovyan/jshub-smoke.txt" in rows["run a cell"], done.stdout
    assert (hub.home_root / user / "jshub-smoke.txt").is_file()
    assert hub.api("GET", f"/users/{user}").status_code == 404
    assert hub.service_inspect(f"jupyter-{user}") is None
