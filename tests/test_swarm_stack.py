"""The swarm scenario's resource graph under Pulumi mocks, and the plan of persistent-swarm."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from planner.__main__ import main as plan_main
from planner.harness import Recording
from planner.mocks import SECRET, UNKNOWN, placeholder_id, placeholder_image_id
from tests.conftest import BASE_CONFIG, by_type, make_config, one, run_mocked

ROOT = Path(__file__).resolve().parent.parent
INSTANCE = "openstack:compute/instance:Instance"
VOLUME = "openstack:blockstorage/volume:Volume"
COMMAND = "command:remote:Command"
RULE = "openstack:networking/secGroupRule:SecGroupRule"
SERVICE = "docker:index/service:Service"
CLUSTER_PORTS = {2377, 7946, 4789, 2049}
WORLD = ("0.0.0.0/0", "::/0")


def swarm_stack(workers: int, **overrides: Any) -> Recording:
    from stacks.swarm import build

    changes = {"scenario": "swarm", "swarm": {"workerCount": workers}, **overrides}
    cfg = make_config(**changes)
    return run_mocked(lambda: build(cfg), config={**BASE_CONFIG, **changes})


def named(rec: Recording, name: str) -> Any:
    found = [r for r in rec.registrations if r.name == name]
    assert len(found) == 1, f"expected one resource named {name}"
    return found[0]


def test_user_data_and_scripts_are_rendered_with_deploy_time_values() -> None:
    rec = swarm_stack(2)
    manager = named(rec, "swarm-manager-server")
    assert manager.inputs["userData"] not in (UNKNOWN, SECRET), "the manager's cloud-init apply must run"
    volume = named(rec, "swarm-manager-homes")
    cloud = yaml.safe_load(manager.inputs["userData"])
    setup = next(f for f in cloud["write_files"] if f["path"] == "/usr/local/sbin/jshub-setup-data-volume")
    assert f"volume_id={placeholder_id(VOLUME, volume.name)}" in setup["content"]
    assert "mkfs.xfs" in setup["content"] and "prjquota" in setup["content"]

    worker = named(rec, "swarm-worker-0-server")
    worker_cloud = yaml.safe_load(worker.inputs["userData"])
    nfs_source = worker_cloud["mounts"][0][0]
    assert nfs_source.startswith("10.0.0.") and nfs_source.endswith(":/export/home")
    manager_addr = nfs_source.split(":")[0]

    join = named(rec, "swarm-worker-0-join")
    assert f"manager_addr={manager_addr}" in join.inputs["create"]
    init = named(rec, "swarm-swarm-init")
    assert f"advertise_addr={manager_addr}" in init.inputs["create"]
    exports = named(rec, "swarm-nfs-exports")
    assert exports.inputs["create"] not in (UNKNOWN, SECRET)
    assert exports.inputs["create"].count("(rw,sync,no_subtree_check,root_squash)") == 2


def test_join_token_travels_secret_on_stdin_and_joins_wait_for_init() -> None:
    rec = swarm_stack(2)
    init = named(rec, "swarm-swarm-init")
    assert "stdout" in init.additional_secret_outputs
    # Init needs the manager's server and address; the homes volume attaches alongside.
    assert named(rec, "swarm-manager-server").urn in init.dependency_urns
    assert named(rec, "swarm-manager-homes-attach").urn not in init.dependency_urns
    for index in range(2):
        join = named(rec, f"swarm-worker-{index}-join")
        assert join.inputs["stdin"] == SECRET
        assert {"stdin", "stdout"} <= set(join.additional_secret_outputs)
        assert init.urn in join.dependency_urns
        assert named(rec, f"swarm-worker-{index}-server").urn in join.dependency_urns
        # Workers have no public address: the connection goes through the manager.
        assert join.inputs["connection"] == SECRET
        node = named(rec, f"swarm-worker-{index}-node")
        assert join.urn in node.dependency_urns
        assert "delete" not in node.inputs, "a re-imaged worker's replaced label step must not drain it"
        removal = named(rec, f"swarm-worker-{index}-removal")
        assert named(rec, f"swarm-worker-{index}-server").urn in removal.dependency_urns
        assert "--availability drain" in removal.inputs["delete"]
    assert not by_type(rec, "openstack:networking/floatingIp:FloatingIp")[1:], "only the manager is public"


def test_cluster_ports_are_open_only_between_members() -> None:
    rec = swarm_stack(2)
    rules = by_type(rec, RULE)
    cluster = [r for r in rules if r.inputs.get("portRangeMin") in CLUSTER_PORTS]
    assert {(r.inputs["protocol"], r.inputs["portRangeMin"]) for r in cluster} == {
        ("tcp", 2377),
        ("tcp", 7946),
        ("udp", 7946),
        ("udp", 4789),
        ("tcp", 2049),
    }
    for rule in cluster:
        assert "remoteIpPrefix" not in rule.inputs
        assert named(rec, "test-swarm-group").urn in rule.dependency_urns
    world = [r for r in rules if r.inputs.get("remoteIpPrefix") in WORLD]
    assert sorted({r.inputs["portRangeMin"] for r in world}) == [80, 443]


def test_homes_volume_is_protected_and_the_hub_is_a_swarm_service_on_the_manager() -> None:
    rec = swarm_stack(2)
    volume = one(rec, VOLUME)
    assert volume.protect and volume.retain_on_delete and volume.inputs["size"] == 500
    service = one(rec, SERVICE)
    spec = service.inputs["taskSpec"]
    assert spec["placement"]["constraints"] == ["node.role==manager"]
    # The static config, its loader, the swarm hook's module and the settings, in the config folder.
    assert [c["fileName"] for c in spec["containerSpec"]["configs"]] == [
        "/etc/jupyterhub/jshub_settings.py",
        "/etc/jupyterhub/jshub_swarm.py",
        "/etc/jupyterhub/jshub_usage.py",
        "/etc/jupyterhub/jupyterhub_settings.json",
        "/etc/jupyterhub/jupyterhub_config.py",
    ]
    assert {s["fileName"] for s in spec["containerSpec"]["secrets"]} == {
        "oauth_client_secret",
        "jshub_admin_token",
        # monitoring is on by default for swarm: Prometheus's read-only token
        "jshub_metrics_token",
    }
    assert service.inputs["endpointSpec"]["mode"] == "vip"
    for secret in by_type(rec, "docker:index/secret:Secret"):
        assert secret.inputs["data"] == SECRET
    image = one(rec, "docker:index/image:Image")
    assert image.inputs["build"]["context"] == "hub/swarm" and image.inputs["skipPush"] is True
    assert spec["containerSpec"]["image"] == image.inputs["imageName"]
    network = one(rec, "docker:index/network:Network")
    assert network.inputs["driver"] == "overlay" and network.inputs["attachable"] is True
    assert network.inputs["options"] == {"com.docker.network.driver.mtu": "1450"}
    mtu = one(swarm_stack(2, swarm={"workerCount": 2, "overlayMtu": 1500}), "docker:index/network:Network")
    assert mtu.inputs["options"] == {"com.docker.network.driver.mtu": "1500"}
    provider = one(rec, "pulumi:providers:docker")
    assert provider.inputs["host"].startswith("ssh://ubuntu@203.0.113.")
    assert rec.outputs["admin_token"] == SECRET
    assert BASE_CONFIG["oauthClientSecret"] not in json.dumps([r.inputs for r in rec.registrations])


def _by_name(rec: Recording) -> dict[str, Any]:
    return {r.name: r for r in rec.registrations}


def test_scaling_up_adds_only_the_new_workers_resources() -> None:
    two, three = _by_name(swarm_stack(2)), _by_name(swarm_stack(3))
    added = set(three) - set(two)
    assert set(two) <= set(three), f"scaling up removed {set(two) - set(three)}"
    assert added == {
        "swarm-worker-2",
        "swarm-worker-2-port",
        "swarm-worker-2-server",
        "swarm-worker-2-join",
        "swarm-worker-2-node",
        "swarm-worker-2-removal",
        "monitoring-node-exporter-2",  # monitoring is on by default for swarm
    }
    changed = {name for name in two if two[name].inputs != three[name].inputs}
    # Only the export table and Prometheus's targets learn the new worker's address; manager,
    # volume, hub untouched.
    assert changed == {"swarm-nfs-exports", "monitoring-install"}, changed


def test_scaling_down_removes_only_the_last_workers() -> None:
    three, two = _by_name(swarm_stack(3)), _by_name(swarm_stack(2))
    assert set(three) - set(two) == {
        "swarm-worker-2",
        "swarm-worker-2-port",
        "swarm-worker-2-server",
        "swarm-worker-2-join",
        "swarm-worker-2-node",
        "swarm-worker-2-removal",
        "monitoring-node-exporter-2",
    }
    assert "docker node rm" in three["swarm-worker-2-removal"].inputs["delete"]


def test_plan_of_persistent_swarm_meets_the_bars(tmp_path: Path) -> None:
    out = tmp_path / "plan.json"
    assert (
        plan_main(["--stack", "persistent-swarm", "--json", str(out), "--out", str(tmp_path / "files")]) == 0
    )
    plan = json.loads(out.read_text())
    types = [r["type"] for r in plan["resources"]]
    assert types.count(SERVICE) == 1
    commands = {r["name"] for r in plan["resources"] if r["type"] == COMMAND}
    assert "swarm-swarm-init" in commands
    assert {f"swarm-worker-{i}-join" for i in range(3)} <= commands
    volumes = [r for r in plan["resources"] if r["type"] == VOLUME]
    assert [v["protect"] for v in volumes] == [True]
    for rule in plan["resources"]:
        if rule["type"] != RULE:
            continue
        low, high = rule["inputs"].get("portRangeMin"), rule["inputs"].get("portRangeMax")
        if low is not None and any(low <= p <= high for p in CLUSTER_PORTS):
            assert rule["inputs"].get("remoteIpPrefix") not in WORLD, rule["name"]
    assert plan["cost"]["su_per_hour"] == 2 + 3 * 8


def test_an_email_or_name_change_rewrites_caddy_and_replaces_no_manager() -> None:
    before = swarm_stack(1)
    after = swarm_stack(1, letsEncryptEmail="new-contact@example.org")
    manager = named(after, "swarm-manager-server")
    # The manager's user data serves its first boot only: a change there leaves it in place.
    assert manager.ignore_changes == ["userData"]
    caddy = named(after, "swarm-caddy")
    assert "email new-contact@example.org" in caddy.inputs["create"]
    assert caddy.inputs["create"] != named(before, "swarm-caddy").inputs["create"]
    # A re-imaged manager (image) needs Caddy, its host key, the swarm and the exports again.
    manager_id = placeholder_id(INSTANCE, "swarm-manager-server")
    for step in ("swarm-caddy", "swarm-install-host-key", "swarm-swarm-init", "swarm-nfs-exports"):
        assert named(after, step).inputs["triggers"] == [
            manager_id,
            placeholder_image_id("Featured-Ubuntu24"),
        ], step


def test_workers_rejoin_a_new_swarm_and_the_hub_is_made_again_there() -> None:
    rec = swarm_stack(2)
    init = named(rec, "swarm-swarm-init")
    swarm_id = named(rec, "swarm-swarm-id")
    assert init.urn in swarm_id.dependency_urns
    for i in range(2):
        join = named(rec, f"swarm-worker-{i}-join")
        # No `swarm leave` on delete: it would run after a replacement's new join.
        assert "delete" not in join.inputs
        assert join.inputs["triggers"][1:] == [
            placeholder_image_id("Featured-Ubuntu24"),
            placeholder_id(COMMAND, "swarm-swarm-init"),
        ]
        assert "read -r manager_id" in join.inputs["create"]
        node = named(rec, f"swarm-worker-{i}-node")
        assert node.inputs["triggers"][-1] == placeholder_id(COMMAND, "swarm-swarm-init")
    docker_objects = [r for r in rec.registrations if r.type.startswith("docker:index/") and r.custom]
    labelled = [r for r in docker_objects if r.type != "docker:index/image:Image"]
    # network, five configs (static config, three modules, settings), three secrets (one the
    # metrics token), service
    assert len(labelled) == 10
    for r in labelled:
        assert r.inputs["labels"][0]["label"] == "org.jupyterhub-jetstream.swarm", r.name
        assert swarm_id.urn in r.property_dependency_urns["labels"], r.name
        assert r.delete_before_replace, r.name
    image = one(rec, "docker:index/image:Image")
    assert swarm_id.urn in image.property_dependency_urns["build"]


def test_docker_provider_pins_the_managers_host_key() -> None:
    rec = swarm_stack(1)
    provider = one(rec, "pulumi:providers:docker")
    # Provider inputs reach the engine JSON-encoded.
    opts = json.loads(provider.inputs["sshOpts"])
    assert isinstance(opts, list), "the ssh options apply must have run"
    known = next(o for o in opts if o.startswith("KnownHostsCommand="))
    fip = named(rec, "swarm-manager-fip")
    host_key = named(rec, "swarm-manager-host-key")
    assert known.startswith("KnownHostsCommand=/bin/echo 203.0.113.")
    assert known.endswith("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5placeholderswarm-manager-host-key")
    assert "StrictHostKeyChecking=yes" in opts and "StrictHostKeyChecking=accept-new" not in opts
    assert {fip.urn, host_key.urn} <= set(provider.dependency_urns)
    install = named(rec, "swarm-install-host-key")
    assert install.inputs["stdin"] == SECRET and install.inputs["logging"] == "none"
    assert "/etc/ssh/ssh_host_ed25519_key" in install.inputs["create"]
    assert install.urn in provider.dependency_urns
