"""`make plan`: the real __main__.py under mocks, its JSON contract, files and failures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import stacks
from planner.__main__ import PROJECT_DIR, main
from planner.stackfile import SECRET_PLACEHOLDER
from tests.conftest import require_tool

RULE = "openstack:networking/secGroupRule:SecGroupRule"
WORLD = ("0.0.0.0/0", "::/0")


def plan(tmp_path: Path, stack: str = "dev", stack_file: Path | None = None) -> tuple[int, dict[str, Any]]:
    out = tmp_path / "out"
    argv = ["--stack", stack, "--json", str(tmp_path / "plan.json"), "--out", str(out)]
    if stack_file:
        argv += ["--stack-file", str(stack_file)]
    code = main(argv)
    data = json.loads((tmp_path / "plan.json").read_text()) if code == 0 else {}
    return code, data


@pytest.fixture(scope="module")
def dev_plan(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("dev")
    code, data = plan(tmp)
    assert code == 0
    return tmp / "out", data


def test_plan_json_follows_the_contract(dev_plan: tuple[Path, dict[str, Any]]) -> None:
    _, data = dev_plan
    assert {"stack", "scenario", "resources", "outputs", "cost"} <= set(data)
    assert data["stack"] == "dev" and data["scenario"] == "single"
    for r in data["resources"]:
        assert {"type", "name", "parent", "inputs", "protect", "retain_on_delete", "depends_on"} <= set(r)
    types = [r["type"] for r in data["resources"]]
    assert types.count("openstack:compute/instance:Instance") == 1
    volumes = [r for r in data["resources"] if r["type"] == "openstack:blockstorage/volume:Volume"]
    assert volumes and all(v["protect"] or v["retain_on_delete"] for v in volumes)
    assert data["cost"]["su_per_hour"] == 2  # one m3.small
    assert "placeholders" in data["note"]


def test_no_rule_opens_ssh_or_hub_ports_to_the_world(dev_plan: tuple[Path, dict[str, Any]]) -> None:
    _, data = dev_plan
    rules = [r["inputs"] for r in data["resources"] if r["type"] == RULE]
    assert rules
    for rule in rules:
        if rule.get("remoteIpPrefix") in WORLD:
            assert (rule["portRangeMin"], rule["portRangeMax"]) in ((80, 80), (443, 443)), rule
    for port in (22, 8000, 8081):
        assert not [
            r
            for r in rules
            if r.get("remoteIpPrefix") in WORLD and r["portRangeMin"] <= port <= r["portRangeMax"]
        ]


def test_secrets_appear_only_as_placeholders(dev_plan: tuple[Path, dict[str, Any]]) -> None:
    out, data = dev_plan
    assert data["outputs"]["admin_token"] == "[secret]"
    everything = json.dumps(data) + "".join(p.read_text() for p in out.rglob("*") if p.is_file())
    assert SECRET_PLACEHOLDER not in everything
    secrets = next(r for r in data["resources"] if r["name"] == "hub-secrets")
    assert secrets["inputs"]["stdin"] == "[secret]"


def test_every_rendered_file_is_written(dev_plan: tuple[Path, dict[str, Any]]) -> None:
    out, _ = dev_plan
    vm = out / "hub-vm-server"
    cloud = yaml.safe_load((vm / "cloud-init.yaml").read_text())
    for item in cloud["write_files"]:
        written = vm / "files" / item["path"].lstrip("/")
        assert written.read_text() == item["content"]
        assert oct(written.stat().st_mode & 0o777) == oct(int(item["permissions"], 8))
    assert (out / "hub-secrets" / "create.sh").exists()
    assert (out / "plan.json").exists()


def test_rendered_cloud_init_passes_cloud_init_schema(dev_plan: tuple[Path, dict[str, Any]]) -> None:
    cloud_init = require_tool("cloud-init", "validates rendered user data")
    out, _ = dev_plan
    for path in out.rglob("cloud-init.yaml"):
        result = subprocess.run(
            [cloud_init, "schema", "--config-file", str(path)], capture_output=True, text=True
        )
        assert result.returncode == 0, result.stdout + result.stderr


def _bad_stack(tmp_path: Path, **changes: Any) -> Path:
    data = yaml.safe_load((PROJECT_DIR / "Pulumi.dev.yaml").read_text())
    for key, value in changes.items():
        data["config"][f"jupyterhub-jetstream:{key}"] = value
    path = tmp_path / "Pulumi.bad.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"hubFlavor": "m3.enormous"}, "hubFlavor = 'm3.enormous'"),
        ({"scenario": "mainframe"}, "scenario = 'mainframe'"),
        ({"adminCidrs": ["300.1.2.3/32"]}, "adminCidrs.0 = '300.1.2.3/32'"),
        ({"concurrentUsers": -1}, "concurrentUsers = '-1'"),
    ],
)
def test_invalid_stack_file_fails_before_any_resource(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], changes: dict[str, Any], key: str
) -> None:
    code, _ = plan(tmp_path, "bad", _bad_stack(tmp_path, **changes))
    assert code == 2
    err = capsys.readouterr().err
    assert key in err, err
    assert not (tmp_path / "out").exists(), "nothing may be planned for an invalid stack"


def test_unimplemented_scenario_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stacks, "IMPLEMENTED", ("single",))
    with pytest.raises(stacks.ScenarioNotImplementedError, match="scenario = 'k8s': not implemented yet"):
        stacks.builder("k8s")


def test_make_plan_runs_from_the_command_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "planner", "--stack", "dev", "--out", str(tmp_path / "o")],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "openstack:compute/instance:Instance  hub-vm-server" in result.stdout
    assert "Cost: 2 SU/hour" in result.stdout
    assert "placeholders" in result.stdout


def test_pulumi_yaml_documents_every_key_of_the_model() -> None:
    from stackconfig.document import config_block

    declared = yaml.safe_load((PROJECT_DIR / "Pulumi.yaml").read_text())
    assert declared["config"] == config_block(), "run: python -m stackconfig.document --write"
    assert {"hpc", "swarm", "k8s", "quotas"} <= declared["config"].keys()
    assert declared["runtime"]["options"]["virtualenv"] == ".venv"


def test_plan_fails_on_a_mandatory_policy_violation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import stacks.common
    from components import Ingress

    real = stacks.common.web_ingress
    monkeypatch.setattr(
        stacks.common,
        "web_ingress",
        lambda: [*real(), Ingress("hub api", "tcp", 8081, 8081, cidr="0.0.0.0/0")],
    )
    code = main(["--stack", "dev", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 1
    assert "mandatory: security-group-ingress: dev-hub-tcp-8081-anywhere-ipv4" in err and "8081" in err


def test_clean_plan_reports_no_policy_violation(dev_plan: tuple[Path, dict[str, Any]]) -> None:
    _, data = dev_plan
    assert data["policy_violations"] == []


def test_a_stack_file_opening_the_hub_api_to_the_world_fails_make_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = yaml.safe_load((PROJECT_DIR / "Pulumi.gateway-hpc.yaml").read_text())
    hpc = data["config"]["jupyterhub-jetstream:hpc"]
    hpc.update({"connectivity": "direct", "computeCidrs": ["0.0.0.0/0"]})  # 8081 from anywhere
    path = tmp_path / "Pulumi.open.yaml"
    path.write_text(yaml.safe_dump(data))
    code, _ = plan(tmp_path, "open", path)
    assert code != 0
    assert "hpc.computeCidrs[0] = '0.0.0.0/0'" in capsys.readouterr().err


def test_plan_lists_the_example_values_still_to_replace(
    dev_plan: tuple[Path, dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Pulumi.dev.yaml marks what every operator must set; the plan names those keys, nested
    # ones and list items by their path, a secret by its key.
    _, data = dev_plan
    assert data["placeholders"] == [
        "allocation",
        "letsEncryptEmail",
        "adminCidrs[0]",
        "keyPair",
        "auth.clientId",
        "auth.admins[0]",
        "oauthClientSecret",
    ]
    (tmp_path / "dev").mkdir()
    assert plan(tmp_path / "dev")[0] == 0
    printed = capsys.readouterr().out
    assert "Before `pulumi up`: the stack file still holds example values marked REPLACE_ME" in printed
    assert "auth.admins[0], oauthClientSecret." in printed
    # An operator's own stack file, every value set: nothing to report.
    text = (PROJECT_DIR / "Pulumi.dev.yaml").read_text()
    mine = (
        text.replace("cis000000", "cis230042")
        .replace("clientId: REPLACE_ME", "clientId: Iv1.0123456789abcdef")
        .replace("secure: v1:REPLACE_ME", "secure: v1:AAAABBBBCCCC")
    )
    mine = "\n".join(line.split("# REPLACE_ME")[0].rstrip() for line in mine.splitlines()) + "\n"
    path = tmp_path / "Pulumi.mine.yaml"
    path.write_text(mine)
    code, own = plan(tmp_path, "mine", path)
    assert code == 0 and own["placeholders"] == []
    assert "Before `pulumi up`" not in capsys.readouterr().out


def test_placeholders_set_by_overrides_are_no_longer_listed() -> None:
    from planner.plan import plan_stack

    data = plan_stack("dev", overrides={"auth.clientId": "Iv1.abc", "adminCidrs": ["198.51.100.9/32"]})
    assert "auth.clientId" not in data["placeholders"] and "adminCidrs[0]" not in data["placeholders"]
    assert "auth.admins[0]" in data["placeholders"] and "allocation" in data["placeholders"]


# --- day 1 in parallel, day 2 in turn (stacks/deployed.py) -------------------------------------

READ = "pulumi:pulumi:readStackResourceOutputs"
K8S_NODES = ["k8s-cp-0", "k8s-cp-1", "k8s-cp-2", "k8s-worker-0", "k8s-worker-1", "k8s-worker-2"]


def _node_waits(plan: dict[str, Any]) -> dict[str, list[str]]:
    by_name = {r["name"]: r for r in plan["resources"]}
    return {n: [d for d in by_name[f"{n}-server"]["depends_on"] if d.endswith("-ready")] for n in K8S_NODES}


def test_a_first_plan_of_the_workshop_creates_every_node_at_once() -> None:
    """A fresh `make plan` is a stack never deployed: the program asked the engine what the
    stack holds (the mocks answered: nothing), no node's server waits for another node, and the
    time to a working hub counts one first boot of a node, not six in turn."""
    from planner import estimate
    from planner.plan import plan_stack

    plan = plan_stack("workshop-k8s")
    reads = [i for i in plan["invokes"] if i["token"] == READ]
    assert reads == [{"token": READ, "args": {"stackName": "organization/jupyterhub-jetstream/workshop-k8s"}}]
    assert plan["deployed_resources"] == 0 and plan["warnings"] == []
    assert _node_waits(plan) == {n: [] for n in K8S_NODES}
    e = plan["estimate"]
    path = e["critical_path"]
    assert sum(1 for step in path if step.endswith("-server")) == 1, path
    # The cluster's Kubernetes resources wait for the kubeconfig through their provider.
    assert path[path.index("k8s-kubeconfig") + 1 : path.index("k8s-kubeconfig") + 3] == [
        "k8s-provider",
        "ceph-operator",
    ]
    server = estimate.LATENCY["openstack:compute/instance:Instance"].seconds
    assert (
        server
        < e["critical_path_s"]
        < 2 * server + 4 * estimate.LATENCY["kubernetes:helm.sh/v3:Release"].seconds
    )


def test_a_large_cluster_takes_no_longer_to_create_than_a_small_one() -> None:
    from planner.plan import plan_stack

    small = plan_stack("workshop-k8s")["estimate"]["critical_path_s"]
    large = plan_stack(
        "workshop-k8s",
        overrides={"k8s.workerCount": 30, "quotas.cores": 2000, "quotas.ramGb": 5000, "quotas.instances": 40},
        check_quotas=False,
    )["estimate"]["critical_path_s"]
    assert large == small


def test_the_deployed_stack_chains_its_nodes_and_the_plan_says_what_it_holds() -> None:
    from planner.plan import deployed_plan, deployed_resources, plan_stack

    fresh = plan_stack("workshop-k8s")
    deployed = deployed_plan("workshop-k8s")
    assert deployed["deployed_resources"] == len(deployed_resources(fresh)) > 0
    order = ["k8s-cp-0", "k8s-cp-1", "k8s-cp-2", "k8s-worker-0", "k8s-worker-1", "k8s-worker-2"]
    expected = {n: ([f"{order[i - 1]}-ready"] if i else []) for i, n in enumerate(order)}
    assert _node_waits(deployed) == expected
    # Read from the engine's answer, not guessed: every resource of the first plan came back.
    assert deployed_resources(deployed) == deployed_resources(fresh)


def test_a_failed_read_of_the_stack_chains_every_node_and_warns(capsys: pytest.CaptureFixture[str]) -> None:
    from planner.plan import plan_stack

    plan = plan_stack("workshop-k8s", deployed=None)
    assert plan["deployed_resources"] is None
    (warning,) = plan["warnings"]
    assert "could not read which resources stack organization/jupyterhub-jetstream/workshop-k8s" in warning
    assert "the plan models a backend that cannot be read" in warning
    order = ["k8s-cp-0", "k8s-cp-1", "k8s-cp-2", "k8s-worker-0", "k8s-worker-1", "k8s-worker-2"]
    assert _node_waits(plan) == {n: ([f"{order[i - 1]}-ready"] if i else []) for i, n in enumerate(order)}


def test_the_engines_answer_is_read_by_urn_and_type() -> None:
    from planner.mocks import stack_resource_outputs
    from stacks.deployed import existing_vms, parse_resources

    answer = stack_resource_outputs(
        "organization/p/s",
        [("openstack:compute/instance:Instance", "k8s-cp-0-server"), ("jshub:index:JetstreamVM", "k8s-cp-0")],
    )
    resources = parse_resources(answer)
    assert resources == {
        ("openstack:compute/instance:Instance", "k8s-cp-0-server"),
        ("jshub:index:JetstreamVM", "k8s-cp-0"),
    }
    assert existing_vms(resources) == {"k8s-cp-0"}
    # A URN with parent types, as the engine writes it: the name is after the last `::`.
    urn = "urn:pulumi:s::p::jshub:index:K8sCluster$jshub:index:JetstreamVM$openstack:compute/instance:Instance::k8s-cp-1-server"
    engine = {
        "name": "organization/p/s",
        "outputs": {urn: {"type": "openstack:compute/instance:Instance", "outputs": {}}},
    }
    assert existing_vms(parse_resources(engine)) == {"k8s-cp-1"}
    assert parse_resources({"name": "x"}) is None and existing_vms(None) is None
