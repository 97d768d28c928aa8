"""The planner as a decision tool: diff with replacement warnings, quotas, time, cost, diagram."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from catalog import FLAVORS
from planner import diagram, estimate
from planner.cost import floor_su_per_hour, users_per_vm
from planner.diff import dangerous, diff_plans
from planner.diff import main as diff_main
from planner.plan import PROJECT_DIR, PlanError, plan_stack
from planner.quota import check
from stackconfig.model import QuotaConfig
from tests.builders import magnum_copy


@pytest.fixture(scope="module")
def dev() -> dict[str, Any]:
    return plan_stack("dev")


def _actions(changes: list[Any]) -> dict[str, str]:
    return {c.name: c.action for c in changes}


def test_new_image_rebuilds_the_vms_and_keeps_their_volumes() -> None:
    # Scenario k8s is the one that allows a second image (stackconfig/images.py).
    before = plan_stack("workshop-k8s")
    changes = diff_plans(before, plan_stack("workshop-k8s", overrides={"image": "Featured-Ubuntu22"}))
    actions = _actions(changes)
    # pulumi_openstack: "Changing this rebuilds the existing server": same ID, so the volumes
    # stay attached and nothing that takes the instance ID changes.
    assert actions["k8s-cp-0-server"] == "rebuild"
    assert "k8s-cp-0-ceph-attach" not in actions and "k8s-cp-0-ceph" not in actions
    assert not dangerous(changes)
    server = next(c for c in changes if c.name == "k8s-cp-0-server")
    assert server.changed["imageName"] == ("Featured-Ubuntu24", "Featured-Ubuntu22")
    assert any(w.startswith("REBUILD") for w in server.warnings)


def test_make_diff_refuses_an_image_the_hub_cannot_boot(capsys: pytest.CaptureFixture[str]) -> None:
    assert diff_main(["--stack", "dev", "--set", "image=Featured-Ubuntu22"]) == 2
    captured = capsys.readouterr()
    assert "image = 'Featured-Ubuntu22': cannot boot scenario single" in captured.out + captured.err


def test_a_new_flavor_resizes_in_place(dev: dict[str, Any]) -> None:
    changes = diff_plans(dev, plan_stack("dev", overrides={"hubFlavor": "m3.quad"}))
    assert _actions(changes) == {"hub-vm-server": "resize"}
    (change,) = changes
    assert any(w.startswith("RESIZE") and "reboots" in w for w in change.warnings)


def test_growing_the_data_volume_is_an_update_flagged_as_touching_data(dev: dict[str, Any]) -> None:
    changes = diff_plans(dev, plan_stack("dev", overrides={"hubDataVolumeGb": 200}))
    (change,) = changes
    assert (change.name, change.action) == ("hub-vm-data", "update")
    assert change.changed["size"] == (100, 200)
    assert any("DATA VOLUME" in w for w in change.warnings)
    assert not dangerous(changes)


def test_losing_a_data_volume_is_dangerous(dev: dict[str, Any]) -> None:
    after = copy.deepcopy(dev)
    after["resources"] = [r for r in after["resources"] if r["name"] != "hub-vm-data"]
    changes = diff_plans(dev, after)
    assert [(c.name, c.action) for c in dangerous(changes)] == [("hub-vm-data", "delete")]


def test_diff_exits_3_when_data_would_be_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    import planner.diff as diff_module

    real = diff_module.plan_stack

    def without_volume(stack: str, **kw: Any) -> dict[str, Any]:
        plan = real(stack, **kw)
        if kw.get("overrides"):
            plan["resources"] = [r for r in plan["resources"] if r["name"] != "hub-vm-data"]
        return plan

    monkeypatch.setattr(diff_module, "plan_stack", without_volume)
    assert diff_main(["--stack", "dev", "--set", "hubHostname=jupyter"]) == 3


def test_make_diff_from_the_command_line() -> None:
    result = subprocess.run(
        ["make", "-s", "diff", "STACK=dev", "SET=hubDataVolumeGb=200 hubFlavor=m3.quad"],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "hub-vm-server" in result.stdout and "flavorName: m3.small => m3.quad" in result.stdout


def test_quota_overrun_fails_naming_the_quota() -> None:
    with pytest.raises(
        PlanError, match=r"quotas.floatingIps: the stack needs 1 floating IPs, the allocation's quota is 0"
    ):
        plan_stack("dev", overrides={"quotas": {"floatingIps": 0}})


def test_eleven_floating_ips_do_not_fit_a_quota_of_ten(dev: dict[str, Any]) -> None:
    fip = next(r for r in dev["resources"] if r["type"] == "openstack:networking/floatingIp:FloatingIp")
    resources = dev["resources"] + [dict(fip, name=f"extra-{i}") for i in range(10)]
    lines = {q.key: q for q in check(resources, QuotaConfig())}
    assert lines["floatingIps"].needed == 11 and not lines["floatingIps"].fits
    assert all(q.fits for k, q in lines.items() if k != "floatingIps")


def test_a_second_router_does_not_fit_the_default_allocation() -> None:
    with pytest.raises(PlanError, match=r"quotas.routers: the stack needs 2 routers"):
        plan_stack(
            "dev", overrides={"networkMode": "create", "networkName": "hub-net", "subnetName": "hub-subnet"}
        )
    plan = plan_stack(
        "dev",
        overrides={
            "networkMode": "create",
            "networkName": "hub-net",
            "subnetName": "hub",
            "quotas": {"routers": 2},
        },
    )
    assert {q["key"]: q["needed"] for q in plan["quotas"]}["routers"] == 2


def test_plan_json_carries_estimate_and_cost_fields(dev: dict[str, Any]) -> None:
    e, c = dev["estimate"], dev["cost"]
    assert 0 < e["critical_path_s"] <= e["serial_s"]
    # The hub's secrets, its config (with the pip install) and the backup install all wait for
    # the first boot.
    assert e["critical_path"][:2] == ["hub-vm-data", "hub-vm-server"]
    assert e["critical_path"][2:] in (["hub-secrets"], ["hub-config"], ["backup-install"])
    assert e["explicit_waits_on_critical_path"] == []
    assert c["su_per_hour"] == 2 and c["floor_su_per_hour"] == 2
    assert c["su_for_workshop"] == 16


def test_critical_path_follows_the_longest_chain_and_reports_explicit_waits() -> None:
    def res(
        name: str, type_: str, deps: list[str], data: dict[str, list[str]] | None = None
    ) -> dict[str, Any]:
        return {
            "name": name,
            "type": type_,
            "custom": True,
            "depends_on": deps,
            "data_dependencies": data or {},
        }

    vm, vol, cmd = (
        "openstack:compute/instance:Instance",
        "openstack:blockstorage/volume:Volume",
        "command:remote:Command",
    )
    resources = [
        res("vol", vol, []),
        res("vm", vm, ["vol"], {"userData": ["vol"]}),
        res("slow-dns", "openstack:dns/recordSet:RecordSet", ["vm"]),
        res("cmd", cmd, ["vm", "slow-dns"], {"triggers": ["vm"]}),
    ]
    result = estimate.estimate(resources)
    lat = estimate.LATENCY
    expected = (
        lat[vol].seconds
        + lat[vm].seconds
        + lat["openstack:dns/recordSet:RecordSet"].seconds
        + lat[cmd].seconds
    )
    assert result["critical_path"] == ["vol", "vm", "slow-dns", "cmd"]
    assert result["critical_path_s"] == round(expected + estimate.TLS_CERTIFICATE_S)
    assert (
        result["explicit_waits_on_critical_path"]
        == [
            {
                "from": "slow-dns",
                "to": "cmd",
                "extra_s": round(lat["openstack:dns/recordSet:RecordSet"].seconds),
            },
            {"from": "vm", "to": "slow-dns", "extra_s": round(lat[vol].seconds + lat[vm].seconds)},
        ][::-1]
    )


def test_the_hubs_measured_config_step_replaces_the_commands_guess() -> None:
    """hub-config (virtualenv, pip, npm) costs what make boot measured, not the 60 s guess for
    a remote command; another command keeps the guess."""
    cmd = "command:remote:Command"

    def step(name: str) -> dict[str, Any]:
        return {"name": name, "type": cmd, "custom": True, "depends_on": [], "data_dependencies": {}}

    config = estimate.estimate([step("hub-config")])["critical_path_s"]
    other = estimate.estimate([step("hub-secrets")])["critical_path_s"]
    tls = estimate.TLS_CERTIFICATE_S
    assert config == round(estimate.BARE_BOOT_S * estimate.HUB_CONFIG_RATIO + tls)
    assert other == round(estimate.LATENCY[cmd].seconds + tls)
    assert config > other


def test_cost_floor_packs_users_onto_the_cheapest_flavors() -> None:
    # 32 users of (1 vCPU, 3.5 GB): an m3.xl (32 vCPU, 125 GB) holds 32 by CPU, 35 by memory.
    assert users_per_vm(FLAVORS["m3.xl"], 1, 3.5) == 32
    total, mix = floor_su_per_hour(32, 1, 3.5)
    assert total == 32 and sum(FLAVORS[f].su_per_hour * n for f, n in mix.items()) == 32
    # Memory-bound: 10 users × 6 GB. One m3.small holds only 1 (6 GB), so 10 of them cost
    # 20 SU; 16 SU (one m3.large, or two m3.medium of 5 users each) is the floor.
    total, mix = floor_su_per_hour(10, 1, 6)
    assert total == 16 and sum(users_per_vm(FLAVORS[f], 1, 6) * n for f, n in mix.items()) >= 10
    with pytest.raises(ValueError, match="no Jetstream2 flavor"):
        floor_su_per_hour(1, 1, 2000)


def test_diagram_is_valid_svg_naming_url_role_flavor_and_volume(dev: dict[str, Any]) -> None:
    svg = diagram.render_svg(dev)
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg")
    texts = " ".join(t.text or "" for t in root.iter() if t.tag.endswith("text"))
    assert "https://hub.cis000000.projects.jetstream-cloud.org" in texts
    assert "m3.small, Featured-Ubuntu24" in texts and "floating IP" in texts
    assert "volume hub-vm-data, 100 GB" in texts and "protected" in texts


def test_readme_embeds_the_diagram_of_each_example_stack() -> None:
    readme = (PROJECT_DIR / "README.md").read_text()
    for stack_file in PROJECT_DIR.glob("Pulumi.*.yaml"):
        stack = stack_file.name[len("Pulumi.") : -len(".yaml")]
        svg = PROJECT_DIR / "docs" / f"{stack}-architecture.svg"
        assert f"docs/{stack}-architecture.svg" in readme
        assert svg.read_text() == diagram.render_svg(plan_stack(stack)), f"run: make diagrams ({stack})"


def test_planner_cli_writes_the_diagram(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "planner", "--stack", "dev", "--out", str(tmp_path)],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "architecture.svg").exists()
    assert "Time to a working hub" in result.stdout and "floor for the same users" in result.stdout
    # The dev stack sets no instance quota (Jetstream2 has none by default): the report says so.
    quotas = next(line for line in result.stdout.splitlines() if line.startswith("Quotas:"))
    assert "instances 1/unchecked" in quotas and "floatingIps 1/10" in quotas and "None" not in quotas


# Orderings the cloud cannot infer from data, each needed for the reason given. A component
# that adds any other wait to an example stack's critical path fails the test below: drop the
# depends_on, or add it here with its reason.
INTENDED_WAITS = {
    ("swarm-worker-0-join", "swarm-worker-0-node"): "a worker is labelled once it is in the swarm",
    ("k8s-cp-0-join-token", "k8s-kubeconfig"): "the kubeconfig is read once every server holds the token",
    ("k8s-kubeconfig", "k8s-workers-ready"): "workers are counted through the API the kubeconfig opens",
    ("k8s-workers-ready", "hub-release"): "the hub's pods need the user nodes to schedule on",
    ("ceph-operator", "ceph-cluster"): "the cluster chart's CephCluster needs the operator's CRDs",
    ("ceph-cluster", "hub-shared-data"): "a claim needs Ceph's storage class to be provisioned",
    ("hub-shared-data", "hub-storage-ready"): "the storage check mounts the shared claim",
    ("hub-storage-ready", "hub-release"): "the hub is installed on storage shown to work",
    ("hub-release", "home-backup-account"): "the backup's objects go in the hub's namespace, after the hub",
    (
        "home-backup-account",
        "home-backup-cronjob",
    ): "the CronJob runs as that account, with its Secret and scripts",
}
# k3s nodes are created at once and roll one at a time (docs/k8s.md): within a node, the
# version check waits for the token and readiness for the version; a joining node is Ready only
# once the first server is; an existing node's server waits for the previous readiness.
INTENDED_CHAIN = {
    r"k8s-(cp|worker)-\d+-join-token -> k8s-(cp|worker)-\d+-k3s": "k3s installs with the token",
    r"k8s-(cp|worker)-\d+-k3s -> k8s-(cp|worker)-\d+-ready": "readiness checks the version",
    r"k8s-cp-0-ready -> k8s-(cp|worker)-\d+-ready": "a node joins the first server",
    r"k8s-cp-\d+-ready -> k8s-kubeconfig": "the kubeconfig is read once the whole control plane is Ready",
    r"k8s-(cp|worker)-\d+-ready -> k8s-(cp|worker)-\d+-server": "an existing node rolls after the one before",
    r"k8s-worker-\d+-ready -> k8s-workers-ready": "the last worker's turn ends the roll-out",
}


def _intended(wait: dict[str, str]) -> bool:
    if (wait["from"], wait["to"]) in INTENDED_WAITS:
        return True
    return any(re.fullmatch(p, f"{wait['from']} -> {wait['to']}") for p in INTENDED_CHAIN)


@pytest.mark.parametrize("stack", ["dev", "gateway-hpc", "persistent-swarm", "workshop-k8s"])
def test_no_needless_wait_lengthens_the_critical_path(stack: str) -> None:
    waits = plan_stack(stack)["estimate"]["explicit_waits_on_critical_path"]
    needless = [w for w in waits if not _intended(w)]
    assert needless == [], needless


def test_a_magnum_copy_of_the_workshop_plans_and_costs_its_nodes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from planner.__main__ import main as plan_main

    stack_file = magnum_copy(tmp_path)
    out = tmp_path / "plan"
    assert plan_main(["--stack", "workshop-magnum", "--stack-file", str(stack_file), "--out", str(out)]) == 0
    assert (out / "architecture.svg").exists()
    plan = plan_stack("workshop-magnum", stack_file=stack_file)
    (cluster,) = [r for r in plan["resources"] if r["type"] == "openstack:containerinfra/cluster:Cluster"]
    groups = [
        r["inputs"] for r in plan["resources"] if r["type"] == "openstack:containerinfra/nodeGroup:NodeGroup"
    ]
    assert groups, "the workers are a node group, so the autoscaler's bounds change in place"
    i = cluster["inputs"]
    # (flavor, nodes now, nodes at the autoscaler's bound): the masters, the cluster's default
    # group, then each node group.
    pools = [
        (FLAVORS[i["masterFlavor"]], int(i["masterCount"]), int(i["masterCount"])),
        (FLAVORS[i["flavor"]], int(i["nodeCount"]), int(i["nodeCount"])),
        *[(FLAVORS[g["flavorId"]], int(g["nodeCount"]), int(g["maxNodeCount"])) for g in groups],
    ]
    expected = sum(flavor.su_per_hour * now for flavor, now, _ in pools)
    assert plan["cost"]["su_per_hour"] == expected > 0
    needed = {q["key"]: q["needed"] for q in plan["quotas"]}
    assert needed["cores"] == sum(flavor.vcpus * top for flavor, _, top in pools)
    assert needed["ramGb"] == sum(flavor.ram_gb * top for flavor, _, top in pools)
    # Rook's OSDs (3 × cephVolumeGb) and mons claim Cinder volumes through PVCs.
    assert needed["volumes"] >= 3 and needed["volumeGb"] >= 3 * 500
    text = capsys.readouterr().out
    assert f"k8s-workers: {int(groups[0]['nodeCount'])} × {groups[0]['flavorId']}" in text


def test_magnum_cost_follows_node_groups_and_reports_their_bound() -> None:
    from planner.cost import cost

    group = {
        "type": "openstack:containerinfra/nodeGroup:NodeGroup",
        "name": "gpu",
        "custom": True,
        "inputs": {"flavorId": "m3.large", "nodeCount": 2, "minNodeCount": 1, "maxNodeCount": 5},
    }
    c = cost([group], users=10, guarantee=None, hours=1)
    assert c["su_per_hour"] == 2 * FLAVORS["m3.large"].su_per_hour
    assert c["instances"] == [
        {
            "name": "gpu",
            "flavor": "m3.large",
            "count": 2,
            "max_count": 5,
            "su_per_hour": 32.0,
            "magnum": True,
            "resource": "Jetstream2",
            "gpu": False,
        }
    ]
    assert c["su_per_hour_at_max"] == 5 * FLAVORS["m3.large"].su_per_hour
    lines = {q.key: q.needed for q in check([group], QuotaConfig())}
    assert lines["cores"] == 5 * FLAVORS["m3.large"].vcpus and lines["instances"] == 5


def test_the_swarm_floor_packs_reservations_and_stays_under_the_stack() -> None:
    plan = plan_stack("persistent-swarm")
    c = plan["cost"]
    assert 0 < c["floor_su_per_hour"] <= c["su_per_hour"]
    text = (PROJECT_DIR / "Pulumi.persistent-swarm.yaml").read_text()
    # The basis names the reservations, not the per-container limits.
    from planner.stackfile import load
    from stackconfig import parse

    loaded = load(PROJECT_DIR, "persistent-swarm")
    cfg = parse(loaded.config, secret_keys=loaded.secret_keys, namespace=loaded.project)
    assert cfg.swarm is not None and "swarm" in text
    swarm = cfg.swarm
    assert (swarm.user_cpu_reservation, swarm.user_memory_reservation_gb) != (
        cfg.user_cpu,
        cfg.user_memory_gb,
    )
    assert (
        f"({swarm.user_cpu_reservation:g} vCPU, {swarm.user_memory_reservation_gb:g} GB guaranteed)"
        in c["floor_basis"]
    )
    floor, _ = floor_su_per_hour(
        cfg.concurrent_users, swarm.user_cpu_reservation, swarm.user_memory_reservation_gb
    )
    assert c["floor_su_per_hour"] == floor
