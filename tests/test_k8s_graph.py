"""The k8s scenario's resource graph under Pulumi mocks, for both engines, and the
workshop-k8s plan checked by the same upstream validators as the renderers."""

from __future__ import annotations

import itertools
import json
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from components.k8s_cluster import K8sCluster, K8sClusterArgs
from planner.harness import Recording
from planner.mocks import SECRET, UNKNOWN, Registration, placeholder_id, placeholder_image_id
from renderers.boot import boot_commands
from tests.builders import build, k8s_config, kubeconfig_server
from tests.conftest import BASE_CONFIG, by_type, deployed_by, make_config, one, require_tool, run_mocked
from tests.upstream_schemas import (
    deep_merge,
    prometheus_operator_errors,
    rook_cluster_defaults,
    rook_errors,
    z2jh_errors,
)

RELEASE = "kubernetes:helm.sh/v3:Release"
PROVIDER = "pulumi:providers:kubernetes"
COMMAND = "command:remote:Command"
VOLUME = "openstack:blockstorage/volume:Volume"
INSTANCE = "openstack:compute/instance:Instance"
RULE = "openstack:networking/secGroupRule:SecGroupRule"
MAGNUM = "openstack:containerinfra/cluster:Cluster"
NODE_GROUP = "openstack:containerinfra/nodeGroup:NodeGroup"
IN_CLUSTER_TYPES = (
    "kubernetes:core/v1:Namespace",
    "kubernetes:core/v1:Secret",
    "kubernetes:batch/v1:Job",
    RELEASE,
)
CLUSTER_ONLY_PORTS = {6443, 10250, 2379, 2380, 3300, 6789, 6800, 7300, 8472}
WORLD = ("0.0.0.0/0", "::/0")


@pytest.fixture(scope="module")
def k3s_rec() -> Recording:
    return build(k8s_config())


@pytest.fixture(scope="module")
def k3s_deployed(k3s_rec: Recording) -> Recording:
    """The same cluster once deployed: its next `pulumi up` finds every node existing."""
    return build(k8s_config(), deployed=deployed_by(k3s_rec))


@pytest.fixture(scope="module")
def magnum_rec() -> Recording:
    return build(k8s_config(engine="magnum", maxWorkerCount=6))


def release(rec: Recording, chart: str) -> Registration:
    (found,) = [r for r in by_type(rec, RELEASE) if r.inputs["chart"] == f"./charts/{chart}"]
    return found


def named(rec: Recording, name: str) -> Registration:
    (found,) = [r for r in rec.registrations if r.name == name]
    return found


def _ints(value: Any) -> Any:
    """Numbers cross the mock monitor as floats; Kubernetes wants integers where they are."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_ints(v) for v in value]
    return value


# --- both engines ---------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ["k3s", "magnum"])
def test_hub_release_is_pinned_waits_for_rook_and_validates(
    engine: str, request: pytest.FixtureRequest
) -> None:
    rec: Recording = request.getfixturevalue(f"{engine}_rec")
    hub = release(rec, "jupyterhub")
    assert hub.inputs["version"] == "4.4.0"
    # The vendored chart (charts/jupyterhub): no chart repository at deploy time.
    assert "repositoryOpts" not in hub.inputs
    values = hub.inputs["values"]
    assert isinstance(values, dict), f"the values apply must have run, got {values!r}"
    assert z2jh_errors(values) == []
    rook_cluster = release(rec, "rook-ceph-cluster")
    storage_check = one(rec, "kubernetes:batch/v1:Job")
    assert {rook_cluster.urn, storage_check.urn} <= set(hub.dependency_urns)
    assert rook_cluster.urn in storage_check.dependency_urns
    operator = release(rec, "rook-ceph")
    assert operator.urn in rook_cluster.dependency_urns
    assert {r.inputs["version"] for r in (operator, rook_cluster)} == {"v1.20.6"}


@pytest.mark.parametrize("engine", ["k3s", "magnum"])
def test_rook_values_in_the_graph_validate_against_the_crds(
    engine: str, request: pytest.FixtureRequest
) -> None:
    rec: Recording = request.getfixturevalue(f"{engine}_rec")
    values = _ints(release(rec, "rook-ceph-cluster").inputs["values"])
    assert isinstance(values, dict), f"the values apply must have run, got {values!r}"
    cluster = deep_merge(rook_cluster_defaults()["cephClusterSpec"], values["cephClusterSpec"])
    assert rook_errors("CephCluster", cluster) == []
    assert cluster["mon"]["count"] == 3
    (pool,) = values["cephBlockPools"]
    assert rook_errors("CephBlockPool", pool["spec"]) == []
    assert pool["spec"]["replicated"]["size"] >= 2 and pool["storageClass"]["isDefault"] is True
    (fs,) = values["cephFileSystems"]
    assert rook_errors("CephFilesystem", fs["spec"]) == []


@pytest.mark.parametrize("engine", ["k3s", "magnum"])
def test_plain_objects_in_the_graph_validate_strictly(engine: str, request: pytest.FixtureRequest) -> None:
    rec: Recording = request.getfixturevalue(f"{engine}_rec")
    checked = custom = 0
    for r in rec.registrations:
        if r.type.startswith("kubernetes:") and r.custom and r.type != RELEASE:
            group_version, kind = r.type.removeprefix("kubernetes:").rsplit(":", 1)
            group, version = group_version.split("/")
            obj = {
                "apiVersion": version if group == "core" else f"{group}/{version}",
                "kind": kind,
                **_ints({k: v for k, v in r.inputs.items() if k not in ("apiVersion", "kind")}),
            }
            if obj.get("stringData") == SECRET:
                # Pulumi keeps the whole map secret; its one key is checked in the next test.
                obj["stringData"] = {"redacted": "redacted"}
            if group == "monitoring.coreos.com":
                # prometheus-operator's kinds: against its CRDs (tests/test_k8s_monitoring.py).
                assert prometheus_operator_errors(obj) == [], r.name
                custom += 1
                continue
            kubernetes_validate.validate(obj, "1.33.0", strict=True)
            checked += 1
    # Namespace, the OAuth and the hub Secrets, the shared claim, the storage check Job; the
    # backup's Secret, ConfigMap, ServiceAccount, Role, RoleBinding and CronJob; the monitoring
    # tokens' Secret, the monitoring namespace, Grafana's OAuth Secret, the metrics token's Secret
    # and two dashboards. The ServiceMonitors and rules are in the chart's values.
    assert checked == 5 + 6 + 6
    assert custom == 0


@pytest.mark.parametrize("engine", ["k3s", "magnum"])
def test_in_cluster_objects_go_with_the_cluster_and_shared_data_is_protected(
    engine: str, request: pytest.FixtureRequest
) -> None:
    rec: Recording = request.getfixturevalue(f"{engine}_rec")
    lifeline = named(rec, "k8s-cp-0") if engine == "k3s" else one(rec, MAGNUM)
    for r in rec.registrations:
        if r.type in IN_CLUSTER_TYPES:
            assert r.deleted_with_urn == lifeline.urn, r.name
    shared = one(rec, "kubernetes:core/v1:PersistentVolumeClaim")
    assert shared.protect and shared.retain_on_delete and not shared.deleted_with_urn
    assert shared.inputs["spec"]["accessModes"] == ["ReadWriteMany"]


@pytest.mark.parametrize("engine", ["k3s", "magnum"])
def test_oauth_secret_stays_out_of_values_and_state(engine: str, request: pytest.FixtureRequest) -> None:
    rec: Recording = request.getfixturevalue(f"{engine}_rec")
    secrets = by_type(rec, "kubernetes:core/v1:Secret")
    assert {s.inputs["metadata"]["name"] for s in secrets} == {
        "hub-oauth",
        "hub-jshub",
        "hub-jshub-monitoring",
        "home-backup-restic",
        "grafana-jupyterhub-oauth",
        "hub-metrics-token",
    }
    for secret in secrets:
        assert secret.inputs["stringData"] == SECRET and "stringData" in secret.secret_inputs
        assert {"stringData", "data"} <= set(secret.additional_secret_outputs)
    text = json.dumps([r.inputs for r in rec.registrations])
    assert BASE_CONFIG["oauthClientSecret"] not in text


# --- k3s --------------------------------------------------------------------------------------


def test_k3s_provider_uses_the_fetched_kubeconfig(k3s_rec: Recording) -> None:
    provider = one(k3s_rec, PROVIDER)
    fetch = named(k3s_rec, "k8s-kubeconfig")
    assert fetch.urn in provider.dependency_urns
    assert provider.inputs["kubeconfig"] == SECRET
    assert provider.inputs["clusterIdentifier"] == "jupyterhub-jetstream-test-k8s"
    assert fetch.inputs["logging"] == "none"
    assert {"stdout", "stderr"} <= set(fetch.additional_secret_outputs)
    tokens = [named(k3s_rec, f"k8s-cp-{i}-join-token") for i in range(3)]
    assert {t.urn for t in tokens} <= set(fetch.dependency_urns)
    # The provider is handed the load balancer's address only once the API's members are in
    # place, and they only once the nodes let the load balancer in: a cluster that gains the
    # listener on a later `pulumi up` keeps the old address until then.
    api_members = named(k3s_rec, "k8s-lb-6443-members")
    assert api_members.urn in provider.property_dependency_urns["kubeconfig"]
    (from_subnet,) = [
        r
        for r in by_type(k3s_rec, RULE)
        if r.inputs.get("portRangeMin") == 6443 and r.inputs.get("remoteIpPrefix") == "10.0.0.0/24"
    ]
    assert from_subnet.urn in api_members.dependency_urns
    assert from_subnet.urn not in named(k3s_rec, "k8s-lb-443-members").dependency_urns


def test_hub_waits_for_the_workers(k3s_rec: Recording, magnum_rec: Recording) -> None:
    ready = named(k3s_rec, "k8s-workers-ready")
    worker_tokens = {named(k3s_rec, f"k8s-worker-{i}-join-token").urn for i in range(2)}
    assert worker_tokens <= set(ready.dependency_urns)
    assert "--selector hub.jupyter.org/node-purpose=user" in ready.inputs["create"]
    assert "want=2" in ready.inputs["create"]
    assert ready.urn in release(k3s_rec, "jupyterhub").dependency_urns
    assert one(magnum_rec, NODE_GROUP).urn in release(magnum_rec, "jupyterhub").dependency_urns


def test_k3s_kubeconfig_reaches_the_api_through_the_load_balancer() -> None:
    cluster, addresses = kubeconfig_server("10.0.0.0/24")
    assert addresses["balancer"] != addresses["first_node"]
    # The API answers while any control-plane node does, on the hub's floating IP, and the
    # certificate is checked against a name every k3s server's certificate carries (not the
    # hub's name, which a day-2 hubHostname changes while the certificate stays).
    assert cluster["server"] == f"https://{addresses['balancer']}:6443"
    assert cluster["tls-server-name"] == "kubernetes.default.svc"


def test_k3s_kubeconfig_uses_the_first_node_without_a_listener() -> None:
    # Subnet not known: the nodes could not let the load balancer in.
    cluster, addresses = kubeconfig_server(None)
    assert cluster["server"] == f"https://{addresses['first_node']}:6443"


def test_k3s_api_open_to_the_world_only_is_refused_by_key() -> None:
    # No admin network but the whole internet: the API would have no listener and no rule
    # (never 0.0.0.0/0), and the kubeconfig would point at a port nothing opens.
    from stackconfig.errors import ConfigError

    world = {**k8s_config(), "adminCidrs": ["0.0.0.0/0"], "allowSshFromAnywhere": True}
    with pytest.raises(ConfigError) as error:
        make_config(**world)
    assert [p.key for p in error.value.problems] == ["adminCidrs"]
    # Magnum's API load balancer takes adminCidrs as they are (its own allowed-CIDRs label).
    make_config(**{**world, "k8s": {**world["k8s"], "engine": "magnum"}})


def test_k3s_ceph_volumes_are_protected_and_named_in_the_rook_values(k3s_rec: Recording) -> None:
    volumes = [v for v in by_type(k3s_rec, VOLUME) if v.name.endswith("-ceph")]
    assert sorted(v.name for v in volumes) == ["k8s-cp-0-ceph", "k8s-cp-1-ceph", "k8s-cp-2-ceph"]
    assert all(v.protect and v.retain_on_delete and v.inputs["size"] == 300 for v in volumes)
    nodes = release(k3s_rec, "rook-ceph-cluster").inputs["values"]["cephClusterSpec"]["storage"]["nodes"]
    for node in nodes:
        volume_id = placeholder_id(VOLUME, f"{node['name']}-ceph")
        assert node["devicePathFilter"] == f"^/dev/disk/by-id/.*{volume_id[:20]}"
    assert [n["name"] for n in nodes] == ["k8s-cp-0", "k8s-cp-1", "k8s-cp-2"]


def test_k3s_control_plane_state_lives_on_a_protected_volume_mounted_before_k3s(k3s_rec: Recording) -> None:
    from renderers import k3s

    states = [v for v in by_type(k3s_rec, VOLUME) if v.name.endswith("-state")]
    assert sorted(v.name for v in states) == ["k8s-cp-0-state", "k8s-cp-1-state", "k8s-cp-2-state"]
    assert all(v.protect and v.retain_on_delete and v.inputs["size"] == 20 for v in states)
    for server in by_type(k3s_rec, INSTANCE):
        node = server.name.removesuffix("-server")
        user_data = yaml.safe_load(server.inputs["userData"])
        files = {f["path"]: f["content"] for f in user_data["write_files"]}
        if "worker" in node:
            assert k3s.STATE_VOLUME_SCRIPT not in files and boot_commands(user_data["runcmd"]) == [
                [k3s.INSTALL_SCRIPT]
            ]
            continue
        volume_id = placeholder_id(VOLUME, f"{node}-state")
        assert f"volume_id={volume_id}" in files[k3s.STATE_VOLUME_SCRIPT], node
        assert "mount_point=/var/lib/jshub-node" in files[k3s.STATE_VOLUME_SCRIPT]
        binds = files[k3s.STATE_BIND_SCRIPT]
        assert "/var/lib/jshub-node/k3s-server /var/lib/rancher/k3s/server none bind" in binds
        assert "/var/lib/jshub-node/rook /var/lib/rook none bind" in binds
        # Mounted first, then bound, then k3s installed.
        assert boot_commands(user_data["runcmd"]) == [
            [k3s.STATE_VOLUME_SCRIPT],
            [k3s.STATE_BIND_SCRIPT],
            [k3s.INSTALL_SCRIPT],
        ]
        attach = named(k3s_rec, f"{node}-state-attach")
        assert attach.inputs["volumeId"] == volume_id
    # Rook keeps its mons' stores in the folder the volume backs.
    values = release(k3s_rec, "rook-ceph-cluster").inputs["values"]
    assert values["cephClusterSpec"]["dataDirHostPath"] == "/var/lib/rook"


NODES = ["k8s-cp-0", "k8s-cp-1", "k8s-cp-2", "k8s-worker-0", "k8s-worker-1"]


def _waits_for_readiness(rec: Recording, name: str) -> list[str]:
    return sorted(
        r.name
        for r in rec.registrations
        if r.urn in named(rec, name).dependency_urns and r.name.endswith("-ready")
    )


def test_the_stack_reads_which_nodes_it_already_holds(k3s_rec: Recording) -> None:
    reads = [i for i in k3s_rec.invokes if i["token"] == "pulumi:pulumi:readStackResourceOutputs"]
    assert reads == [
        {
            "token": "pulumi:pulumi:readStackResourceOutputs",
            "args": {"stackName": "organization/jupyterhub-jetstream/test"},
        }
    ]
    assert k3s_rec.warnings == []


def test_a_new_k3s_cluster_creates_every_node_at_once(k3s_rec: Recording) -> None:
    """Day 1: no server waits for another node; every joining node's readiness waits for the
    first server's (it joins that one), and the kubeconfig and the workers' count still wait
    for every node, so a working hub still means a whole cluster."""
    for node in NODES:
        assert _waits_for_readiness(k3s_rec, f"{node}-server") == [], node
        ready = _waits_for_readiness(k3s_rec, f"{node}-ready")
        assert ready == ([] if node == "k8s-cp-0" else ["k8s-cp-0-ready"]), node
    fetch = named(k3s_rec, "k8s-kubeconfig")
    assert {named(k3s_rec, f"k8s-cp-{i}-ready").urn for i in range(3)} <= set(fetch.dependency_urns)
    workers = named(k3s_rec, "k8s-workers-ready")
    assert {named(k3s_rec, f"k8s-worker-{i}-ready").urn for i in range(2)} <= set(workers.dependency_urns)
    # Joining nodes wait for the first server themselves, and start k3s without waiting for it.
    for node in NODES[1:]:
        user_data = yaml.safe_load(named(k3s_rec, f"{node}-server").inputs["userData"])
        install = next(
            f["content"] for f in user_data["write_files"] if f["path"] == "/usr/local/sbin/jshub-k3s-install"
        )
        assert '"$server_url/ping"' in install and "INSTALL_K3S_SKIP_START=true" in install, node


def test_a_stack_whose_state_cannot_be_read_chains_every_node() -> None:
    """The fallback: every node is treated as existing, so nothing is changed two at a time."""
    rec = build(k8s_config(), deployed=None)
    assert any("could not read which resources stack" in w for w in rec.warnings), rec.warnings
    for before, after in itertools.pairwise(NODES):
        assert _waits_for_readiness(rec, f"{after}-server") == [f"{before}-ready"], after


def test_new_workers_of_an_existing_cluster_are_created_at_once(k3s_rec: Recording) -> None:
    """workerCount up on a deployed cluster: the existing nodes keep their chain, the new
    workers wait for no other node."""
    rec = build(k8s_config(workerCount=4, cephVolumeGb=600), deployed=deployed_by(k3s_rec))
    for before, after in itertools.pairwise(NODES):
        assert _waits_for_readiness(rec, f"{after}-server") == [f"{before}-ready"], after
    for node in ("k8s-worker-2", "k8s-worker-3"):
        assert _waits_for_readiness(rec, f"{node}-server") == [], node
        assert _waits_for_readiness(rec, f"{node}-ready") == ["k8s-cp-0-ready"], node


def test_k3s_nodes_roll_one_at_a_time_control_plane_first(k3s_deployed: Recording) -> None:
    k3s_rec = k3s_deployed
    for before, after in itertools.pairwise(NODES):
        ready = named(k3s_rec, f"{before}-ready")
        server = named(k3s_rec, f"{after}-server")
        # The next server waits for the previous node's readiness, and that readiness is run
        # again by every change that rebuilds, resizes or upgrades the previous node.
        assert ready.urn in server.dependency_urns, after
        instance_id = placeholder_id(INSTANCE, f"{before}-server")
        flavor = "m3.medium"
        booted = placeholder_image_id("Featured-Ubuntu24")  # the server's own image output
        assert ready.inputs["triggers"] == [instance_id, booted, flavor, "v1.33.5+k3s1"], before
        # Readiness after the node's own steps: token, then k3s at the stack's version.
        version = named(k3s_rec, f"{before}-k3s")
        token = named(k3s_rec, f"{before}-join-token")
        assert version.urn in ready.dependency_urns and token.urn in version.dependency_urns
    first_server = named(k3s_rec, "k8s-cp-0-server")
    assert not any(r.endswith("-ready") for r in first_server.dependency_urns)
    # The whole chain must be done before the kubeconfig is read and the hub is installed.
    fetch = named(k3s_rec, "k8s-kubeconfig")
    assert {named(k3s_rec, f"k8s-cp-{i}-ready").urn for i in range(3)} <= set(fetch.dependency_urns)
    workers = named(k3s_rec, "k8s-workers-ready")
    assert named(k3s_rec, "k8s-worker-1-ready").urn in workers.dependency_urns


def test_k3s_workers_of_a_large_cluster_roll_a_tenth_at_a_time() -> None:
    from components.k8s_cluster import worker_lanes

    assert [worker_lanes(n) for n in (1, 2, 10, 11, 30, 300)] == [1, 1, 1, 2, 3, 30]
    config = k8s_config(workerCount=22, cephVolumeGb=2000)
    rec = build(config, deployed=deployed_by(build(config)))
    workers = sorted(
        (r for r in by_type(rec, INSTANCE) if "worker" in r.name),
        key=lambda r: int(r.name.split("-")[2]),
    )
    assert len(workers) == 22
    last_server = named(rec, "k8s-cp-2-ready").urn
    for i, worker in enumerate(workers):
        waits = [u for u in worker.dependency_urns if u.endswith("-ready")]
        expected = last_server if i < 3 else named(rec, f"k8s-worker-{i - 3}-ready").urn
        assert waits == [expected], worker.name


def test_k3s_version_reaches_existing_nodes_and_readiness_checks_it(k3s_rec: Recording) -> None:
    for node in NODES:
        version = named(k3s_rec, f"{node}-k3s")
        script = version.inputs["create"]
        assert isinstance(script, str), "the upgrade script's apply must have run"
        assert "version=v1.33.5+k3s1" in script and "k3s --version" in script
        booted = placeholder_image_id("Featured-Ubuntu24")
        assert version.inputs["triggers"][1:] == [booted, "v1.33.5+k3s1"], node
        if "worker" in node:
            assert "K3S_URL=https://10.0.0." in script and "INSTALL_K3S_EXEC=server" not in script
        else:
            assert "INSTALL_K3S_EXEC=server" in script
        ready = named(k3s_rec, f"{node}-ready").inputs["create"]
        assert f"node={node}" in ready and "kubeletVersion" in ready
        # Ceph's health is waited for after a storage node only.
        assert ("HEALTH_OK" in ready) == ("cp" in node), node
        token = named(k3s_rec, f"{node}-join-token")
        # A re-imaged root disk has lost the token and the node password: the booted image re-runs it.
        assert token.inputs["triggers"] == [placeholder_id(INSTANCE, f"{node}-server"), booted]
    # A version bump changes the upgrade and readiness commands' triggers, nothing else of theirs.
    bumped = build(k8s_config(k3sVersion="v1.34.1+k3s1"))
    for node in NODES:
        assert named(bumped, f"{node}-k3s").inputs["triggers"][-1] == "v1.34.1+k3s1"
        assert named(bumped, f"{node}-ready").inputs["triggers"][-1] == "v1.34.1+k3s1"
        assert named(bumped, f"{node}-join-token").inputs == named(k3s_rec, f"{node}-join-token").inputs


def test_k3s_join_token_travels_on_stdin_through_the_first_node(k3s_rec: Recording) -> None:
    tokens = [r for r in by_type(k3s_rec, COMMAND) if r.name.endswith("-join-token")]
    servers = by_type(k3s_rec, INSTANCE)
    assert len(tokens) == len(servers) == 3 + 2  # three control-plane nodes, two workers
    fip = named(k3s_rec, "k8s-cp-0-fip")
    passwords = [
        r for r in by_type(k3s_rec, "random:index/randomPassword:RandomPassword") if "node-password" in r.name
    ]
    assert len(passwords) == 5
    for t in tokens:
        node = t.name.removesuffix("-join-token")
        assert named(k3s_rec, f"{node}-node-password").urn in t.property_dependency_urns["stdin"]
        assert t.inputs["stdin"] == SECRET and t.inputs["logging"] == "none"
        assert {"stdin", "stdout", "stderr"} <= set(t.additional_secret_outputs)
        assert t.inputs["connection"] == SECRET  # it carries the deploy private key
        # Every node is reached through the first node's floating IP (directly, or as the
        # jump host for a node's private address).
        assert fip.urn in t.dependency_urns, t.name
        node = t.name.removesuffix("-join-token")
        assert named(k3s_rec, f"{node}-server").urn in t.dependency_urns, t.name
        if node != "k8s-cp-0":
            assert named(k3s_rec, f"{node}-port").urn in t.dependency_urns
        # Nothing in the token's path waits for the Ceph disk to attach.
        if node.startswith("k8s-cp-"):
            assert named(k3s_rec, f"{node}-ceph-attach").urn not in t.dependency_urns, t.name
            assert named(k3s_rec, f"{node}-state-attach").urn not in t.dependency_urns, t.name
    for server in servers:
        user_data = server.inputs["userData"]
        assert user_data not in (UNKNOWN, SECRET), "the cloud-init apply must have run"
        assert "placeholder" + "0" * 37 not in user_data, "the join token must not be in user data"


def test_k3s_nodes_join_the_first_server_by_its_private_address(k3s_rec: Recording) -> None:
    first_port = named(k3s_rec, "k8s-cp-0-port")
    for server in by_type(k3s_rec, INSTANCE):
        config = yaml.safe_load(
            next(
                f
                for f in yaml.safe_load(server.inputs["userData"])["write_files"]
                if f["path"].endswith("config.yaml")
            )["content"]
        )
        if server.name == "k8s-cp-0-server":
            assert config["cluster-init"] is True and "server" not in config
        else:
            assert config["server"].startswith("https://10.0.0.") and config["server"].endswith(":6443")
            assert first_port.urn in server.dependency_urns
        if "worker" in server.name:
            assert config["node-label"] == ["hub.jupyter.org/node-purpose=user"]
        else:
            # ServiceLB answers for the hub on the control plane only: the load balancer's members.
            assert config["node-label"] == [
                "hub.jupyter.org/node-purpose=core",
                "svccontroller.k3s.cattle.io/enablelb=true",
            ]


def test_k3s_nodes_are_not_replaced_when_their_user_data_changes(k3s_rec: Recording) -> None:
    servers = by_type(k3s_rec, INSTANCE)
    assert servers and all(s.ignore_changes == ["userData"] for s in servers)
    # The default stays: a hub VM's new user data still gives a new server.
    from stacks.single import build as build_single

    hub = one(run_mocked(lambda: build_single(make_config())), INSTANCE)
    assert hub.ignore_changes == []


LB = "openstack:loadbalancer/"


def test_k3s_hub_entry_is_a_load_balancer_over_the_control_plane(k3s_rec: Recording) -> None:
    balancer = one(k3s_rec, LB + "loadBalancer:LoadBalancer")
    subnet = named(k3s_rec, "k8s-cp-0-port").inputs["fixedIps"][0]["subnetId"]
    assert balancer.inputs["vipSubnetId"] == subnet
    web = named(k3s_rec, "test-k8s-web-group")
    assert balancer.inputs["securityGroupIds"] == [
        placeholder_id("openstack:networking/secGroup:SecGroup", web.name)
    ]
    web_rules = [r for r in by_type(k3s_rec, RULE) if r.parent_urn == named(k3s_rec, "test-k8s-web").urn]
    # The hub's ports from anywhere; the Kubernetes API from the admin network only.
    assert sorted({(int(r.inputs["portRangeMin"]), r.inputs["remoteIpPrefix"]) for r in web_rules}) == [
        (80, "0.0.0.0/0"),
        (80, "::/0"),
        (443, "0.0.0.0/0"),
        (443, "::/0"),
        (6443, "203.0.113.7/32"),
    ]
    listeners = by_type(k3s_rec, LB + "listener:Listener")
    assert sorted(
        (r.inputs["protocol"], int(r.inputs["protocolPort"]), tuple(r.inputs.get("allowedCidrs", ())))
        for r in listeners
    ) == [("TCP", 80, ()), ("TCP", 443, ()), ("TCP", 6443, ("203.0.113.7/32",))]
    for port in (80, 443, 6443):
        pool = named(k3s_rec, f"k8s-lb-{port}-pool")
        assert pool.inputs["listenerId"] == placeholder_id(LB + "listener:Listener", f"k8s-lb-{port}")
        monitor = named(k3s_rec, f"k8s-lb-{port}-monitor")
        assert monitor.inputs["poolId"] == placeholder_id(LB + "pool:Pool", f"k8s-lb-{port}-pool")
        assert monitor.inputs["type"] == "TCP" and monitor.inputs["maxRetries"] == 3
        assert monitor.inputs["timeout"] < monitor.inputs["delay"]
        members = named(k3s_rec, f"k8s-lb-{port}-members").inputs["members"]
        assert [m["name"] for m in members] == ["k8s-cp-0", "k8s-cp-1", "k8s-cp-2"]
        assert all(m["protocolPort"] == port and m["address"].startswith("10.0.0.") for m in members)
        deps = named(k3s_rec, f"k8s-lb-{port}-members").dependency_urns
        assert {named(k3s_rec, f"k8s-cp-{i}-port").urn for i in range(3)} <= set(deps)
    # The floating IP and the DNS name are on the load balancer, not on a node.
    fip = named(k3s_rec, "k8s-hub-ip")
    # (The mocks compute no VIP port ID, so the input is empty here; the dependency is there.)
    assert balancer.urn in fip.dependency_urns and not fip.inputs.get("address")
    record = named(k3s_rec, "k8s-dns")
    assert record.inputs["name"] == "hub.cis230000.projects.jetstream-cloud.org."
    assert fip.urn in record.property_dependency_urns["records"]
    assert k3s_rec.outputs["hub_ip"] == record.inputs["records"][0]
    assert not [
        r for r in by_type(k3s_rec, "openstack:dns/recordSet:RecordSet") if r.name.startswith("k8s-cp-")
    ]
    # The first node keeps a floating IP for the stack's SSH and the API, in the nodes' group only.
    assert k3s_rec.outputs["admin_ip"] == named(k3s_rec, "k8s-cp-0-fip").inputs.get(
        "address", k3s_rec.outputs["admin_ip"]
    )
    first_port = named(k3s_rec, "k8s-cp-0-port")
    assert first_port.inputs["securityGroupIds"] == [
        placeholder_id("openstack:networking/secGroup:SecGroup", "test-k8s-nodes-group")
    ]


def test_k3s_api_stays_closed_to_the_world_even_when_ssh_is_open() -> None:
    config = {**k8s_config(), "adminCidrs": ["0.0.0.0/0", "203.0.113.7/32"], "allowSshFromAnywhere": True}
    rec = build(config)
    api = [r.inputs.get("remoteIpPrefix") for r in by_type(rec, RULE) if r.inputs.get("portRangeMin") == 6443]
    # The admin network, on the nodes and on the load balancer; the load balancer's subnet (the
    # plan's placeholder) on the nodes.
    assert sorted(a for a in api if a) == ["10.0.0.0/24", "203.0.113.7/32", "203.0.113.7/32"]
    (listener,) = [r for r in by_type(rec, LB + "listener:Listener") if r.inputs["protocolPort"] == 6443]
    assert listener.inputs["allowedCidrs"] == ["203.0.113.7/32"]
    ssh = [r.inputs.get("remoteIpPrefix") for r in by_type(rec, RULE) if r.inputs.get("portRangeMin") == 22]
    assert "0.0.0.0/0" in ssh


def test_k3s_worker_count_follows_sizing(k3s_rec: Recording) -> None:
    # m3.medium: (30 - 2) / 2 = 14 users per worker; 20 users -> 2 workers.
    workers = [r for r in by_type(k3s_rec, INSTANCE) if "worker" in r.name]
    assert [w.inputs["flavorName"] for w in workers] == ["m3.medium"] * 2
    assert k3s_rec.outputs["workers"] == 2


# --- magnum -----------------------------------------------------------------------------------


def test_magnum_cluster_from_the_template_feeds_the_provider(magnum_rec: Recording) -> None:
    cluster = one(magnum_rec, MAGNUM)
    lookup = [
        i
        for i in magnum_rec.invokes
        if i["token"] == "openstack:containerinfra/getClusterTemplate:getClusterTemplate"
    ]
    assert lookup[0]["args"]["name"] == "kubernetes-1-33-jammy"
    assert cluster.inputs["clusterTemplateId"] == placeholder_id(lookup[0]["token"], "kubernetes-1-33-jammy")
    # The cluster keeps a one-node default group; the workers are a node group.
    assert cluster.inputs["nodeCount"] == 1 and cluster.inputs["flavor"] == "m3.medium"
    labels = cluster.inputs["labels"]
    assert labels["auto_scaling_enabled"] == "true"
    assert not {"min_node_count", "max_node_count"} & set(labels)
    group = one(magnum_rec, NODE_GROUP)
    assert group.inputs["clusterId"] == placeholder_id(MAGNUM, "k8s-cluster")
    # (20 users + 20 slots for Ceph and the hub pods) / 14 per m3.medium = 3 workers
    assert (group.inputs["nodeCount"], group.inputs["minNodeCount"], group.inputs["maxNodeCount"]) == (
        3,
        3,
        6,
    )
    assert group.inputs["flavorId"] == "m3.medium" and group.inputs["name"] == "workers-m3-medium"
    assert cluster.inputs["masterCount"] == 3 and cluster.inputs["masterLbEnabled"] is True
    provider = one(magnum_rec, PROVIDER)
    assert cluster.urn in provider.dependency_urns and provider.inputs["kubeconfig"] == SECRET
    assert not by_type(magnum_rec, INSTANCE) and not by_type(magnum_rec, VOLUME)


def _force_new(doc: str) -> set[str]:
    """Arguments whose documentation in the pinned SDK says a change creates a new resource."""
    import re

    found = set()
    for param in doc.split(":param ")[1:]:
        head, _, text = param.partition(": ")
        if re.search(r"Changing\s+this\s+creates\s+a\s+new", text):
            found.add(head.split()[-1])
    return found


def test_magnum_autoscaler_bounds_change_in_place(magnum_rec: Recording) -> None:
    import pulumi_openstack as openstack

    cluster_new = _force_new(openstack.containerinfra.ClusterArgs.__init__.__doc__ or "")
    group_new = _force_new(openstack.containerinfra.NodeGroupArgs.__init__.__doc__ or "")
    # What the provider documents, so that the design below holds for the pinned SDK.
    assert {"labels", "flavor", "master_flavor", "merge_labels"} <= cluster_new
    assert "node_count" not in cluster_new
    assert not {"min_node_count", "max_node_count", "node_count"} & group_new and "flavor_id" in group_new
    wider = build(k8s_config(engine="magnum", maxWorkerCount=9))
    assert one(wider, MAGNUM).inputs == one(magnum_rec, MAGNUM).inputs
    before, after = one(magnum_rec, NODE_GROUP).inputs, one(wider, NODE_GROUP).inputs
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    assert changed == {"maxNodeCount"} and after["maxNodeCount"] == 9
    # A new worker flavor is a new node group (created before the old one goes), not a new cluster.
    bigger = build(k8s_config(engine="magnum", workerFlavor="m3.xl"))
    assert one(bigger, MAGNUM).inputs == one(magnum_rec, MAGNUM).inputs
    assert one(bigger, NODE_GROUP).inputs["name"] == "workers-m3-xl"
    assert not one(bigger, NODE_GROUP).delete_before_replace
    # The hub waits for the workers' node group.
    assert one(magnum_rec, NODE_GROUP).urn in release(magnum_rec, "jupyterhub").dependency_urns


def test_magnum_kubeconfig_is_the_clusters_own() -> None:
    from planner.mocks import PLACEHOLDER_KUBECONFIG

    seen: list[str] = []
    config = k8s_config(engine="magnum")

    def program() -> None:
        cluster = K8sCluster(
            "k8s", K8sClusterArgs(config=make_config(**config), network_id="n", subnet_id="s")
        )
        cluster.kubeconfig.apply(seen.append)

    run_mocked(program, config)
    assert seen == [PLACEHOLDER_KUBECONFIG], "the kubeconfig apply must have run under mocks"


def test_magnum_osds_on_pvcs_and_the_proxy_on_the_reserved_address(magnum_rec: Recording) -> None:
    values = release(magnum_rec, "rook-ceph-cluster").inputs["values"]
    (device_set,) = values["cephClusterSpec"]["storage"]["storageClassDeviceSets"]
    assert device_set["count"] == 3
    fip = one(magnum_rec, "openstack:networking/floatingIp:FloatingIp")
    record = one(magnum_rec, "openstack:dns/recordSet:RecordSet")
    hub_values = release(magnum_rec, "jupyterhub").inputs["values"]
    assert hub_values["proxy"]["service"]["loadBalancerIP"] == record.inputs["records"][0]
    assert fip.urn in release(magnum_rec, "jupyterhub").dependency_urns


# --- the workshop-k8s plan ------------------------------------------------------------------


@pytest.fixture(scope="module")
def workshop_plan(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from planner.__main__ import main

    out = tmp_path_factory.mktemp("plan")
    assert (
        main(["--stack", "workshop-k8s", "--json", str(out / "plan.json"), "--out", str(out / "files")]) == 0
    )
    return json.loads((out / "plan.json").read_text())


def test_workshop_plan_opens_no_cluster_port_to_the_world(workshop_plan: dict[str, Any]) -> None:
    rules = [r for r in workshop_plan["resources"] if r["type"] == RULE]
    assert rules
    for rule in rules:
        inputs = rule["inputs"]
        low, high = inputs.get("portRangeMin"), inputs.get("portRangeMax")
        if low is None:
            continue
        exposed = {p for p in CLUSTER_ONLY_PORTS if low <= p <= high}
        if inputs.get("remoteIpPrefix") in WORLD:
            assert not exposed, f"{rule['name']} opens {sorted(exposed)} to the world"
            assert {low, high} <= {80, 443}, rule["name"]
        if exposed - {6443}:
            assert "remoteIpPrefix" not in inputs and inputs.get("remoteGroupId"), rule["name"]
    api = [
        r["inputs"]["remoteIpPrefix"]
        for r in rules
        if r["inputs"].get("portRangeMin") == 6443 and r["inputs"].get("remoteIpPrefix")
    ]
    # The admin network (on the nodes and the load balancer) and the nodes' subnet, for the load
    # balancer's own address in it (the plan's placeholder subnet).
    assert sorted(api) == ["10.0.0.0/24", "203.0.113.7/32", "203.0.113.7/32"]


def test_ceph_volumes_above_the_volume_quota_stop_the_plan() -> None:
    from planner.plan import PlanError, plan_stack

    with pytest.raises(
        PlanError,
        match=r"quotas.volumeGb: the stack needs 1560 GB of block storage, the allocation's quota is 1000",
    ):
        plan_stack("workshop-k8s", overrides={"quotas": {}})
    fits = plan_stack("workshop-k8s", overrides={"quotas": {"volumeGb": 1560}})
    needed = {q["key"]: q["needed"] for q in fits["quotas"]}
    # Three 500 GB Ceph volumes and three 20 GB state volumes: 6 of the default 10 volumes.
    assert (needed["volumeGb"], needed["volumes"]) == (1560, 6)


def test_the_load_balancer_quota_counts_the_hubs_and_magnums_own() -> None:
    """Octavia has a quota of its own: the k3s stack takes one load balancer (the hub's); a
    Magnum cluster takes the API's (several control-plane nodes) and the proxy's, which the cloud
    controller makes, though the stack registers neither."""
    from planner.plan import PlanError, plan_stack
    from planner.quota import needs

    quotas = {"volumeGb": 1560}
    with pytest.raises(
        PlanError,
        match=r"quotas.loadBalancers: the stack needs 1 Octavia load balancers, the allocation's quota is 0",
    ):
        plan_stack("workshop-k8s", overrides={"quotas": {**quotas, "loadBalancers": 0}})
    fits = plan_stack("workshop-k8s", overrides={"quotas": {**quotas, "loadBalancers": 1}})
    assert {q["key"]: q["needed"] for q in fits["quotas"]}["loadBalancers"] == 1

    def cluster(master_lb: bool) -> dict[str, Any]:
        return {
            "type": "openstack:containerinfra/cluster:Cluster",
            "custom": True,
            "name": "k8s",
            "inputs": {"masterLbEnabled": master_lb, "nodeCount": 0},
        }

    assert needs([cluster(True)])["loadBalancers"] == 2
    assert needs([cluster(False)])["loadBalancers"] == 1


def test_workshop_plan_meets_the_bars(workshop_plan: dict[str, Any]) -> None:
    releases = {
        Path(r["inputs"]["chart"]).name: r for r in workshop_plan["resources"] if r["type"] == RELEASE
    }
    hub = releases["jupyterhub"]["inputs"]
    assert hub["version"] == "4.4.0"
    values = hub["values"]
    assert z2jh_errors(values) == []
    merged = values
    assert merged["cull"]["enabled"] is True
    assert merged["singleuser"]["networkPolicy"]["enabled"] is True
    assert merged["singleuser"]["cloudMetadata"]["blockWithIptables"] is True
    assert merged["scheduling"]["userPlaceholder"]["replicas"] == 10
    rook_values = releases["rook-ceph-cluster"]["inputs"]["values"]
    assert rook_values["cephClusterSpec"]["mon"]["count"] == 3
    assert rook_values["cephBlockPools"][0]["spec"]["replicated"]["size"] >= 2
    assert workshop_plan["outputs"]["kubeconfig"] == SECRET


def test_workshop_plan_cloud_init_passes_cloud_init_schema(
    workshop_plan: dict[str, Any], tmp_path: Path
) -> None:
    tool = require_tool("cloud-init", "validates rendered user data")
    servers = [r for r in workshop_plan["resources"] if r["type"] == INSTANCE]
    # One of each kind: the first server, a joining server, a worker.
    picked = {
        name: r
        for r in servers
        for name in ("k8s-cp-0-server", "k8s-cp-1-server", "k8s-worker-0-server")
        if r["name"] == name
    }
    assert len(picked) == 3
    for name, server in picked.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(server["inputs"]["userData"])
        result = subprocess.run([tool, "schema", "--config-file", str(path)], capture_output=True, text=True)
        assert result.returncode == 0, f"{name}: {result.stdout}{result.stderr}"


def test_one_node_dev_cluster_keeps_one_mon_and_one_copy(caplog: pytest.LogCaptureFixture) -> None:
    rec = build(k8s_config(controlPlaneCount=1, cephVolumeGb=200))
    assert any("a dev cluster that loses its data with one disk" in m for m in caplog.messages)
    values = release(rec, "rook-ceph-cluster").inputs["values"]
    assert values["cephClusterSpec"]["mon"]["count"] == 1
    assert values["cephBlockPools"][0]["spec"]["replicated"] == {"size": 1, "requireSafeReplicaSize": False}
    assert sorted(v.name for v in by_type(rec, VOLUME)) == ["k8s-cp-0-ceph", "k8s-cp-0-state"]
