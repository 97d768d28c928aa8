"""GPUs: a single hub on a g3 flavor, GPU workers and GPU profiles on k8s, and GPU SUs apart
from CPU SUs. Rendered objects are checked by their upstream validators (the Z2JH chart schema,
cloud-init, shellcheck; NVIDIA's device-plugin chart is rendered by a real Helm and its objects
validated strictly in tests/test_charts.py); the node's toolkit script runs for real against
stand-in commands; the bars run the real program under the planner's mocks."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from catalog import FLAVORS
from planner.cost import GpuDemand, gpu_floor_su_per_hour
from planner.plan import PlanError, plan_stack
from renderers import k3s, nvidia, z2jh
from renderers.boot import boot_commands
from renderers.hub_settings import GPU_SHARING_ENV
from renderers.z2jh import Z2JHSpec, z2jh_values
from stackconfig import ConfigError
from tests.conftest import make_config, require_tool
from tests.gpu_workshop import GPU_PROFILE, GPU_WORKSHOP, WORKSHOP_PROFILES
from tests.stubs import stub
from tests.upstream_schemas import z2jh_errors

ROOT = Path(__file__).resolve().parent.parent


def k8s_config(**section: Any) -> Any:
    return make_config(
        scenario="k8s",
        concurrentUsers=100,
        userMemoryGb=4,
        userCpu=2,
        k8s={"cephVolumeGb": 1000, "userMemoryGuaranteeGb": 2, **section},
    )


def problems(**overrides: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        make_config(**overrides)
    return [str(p) for p in info.value.problems]


# --- the bars: the real program under the planner's mocks -----------------------------------


@pytest.fixture(scope="module")
def gpu_workshop() -> dict[str, Any]:
    return plan_stack("workshop-k8s", overrides=GPU_WORKSHOP)


@pytest.fixture(scope="module")
def gpu_dev() -> dict[str, Any]:
    return plan_stack("dev", overrides={"hubFlavor": "g3.medium"})


def _resource(plan: dict[str, Any], kind: str, name: str) -> dict[str, Any]:
    return next(r for r in plan["resources"] if r["type"].endswith(kind) and r["name"] == name)


def test_workshop_with_gpu_workers_counts_gpu_sus_apart(gpu_workshop: dict[str, Any]) -> None:
    c = gpu_workshop["cost"]
    gpu_rate = FLAVORS["g3.medium"].su_per_hour
    assert c["gpu_su_per_hour"] == 2 * gpu_rate == 32
    assert c["cpu_su_per_hour"] == c["su_per_hour"] - c["gpu_su_per_hour"] == 3 * 8 + 3 * 32
    assert c["gpu_su_per_day"] == 24 * 32 and c["gpu_su_for_workshop"] == 8 * 32
    assert c["by_resource"]["Jetstream2 GPU"]["su_per_hour"] == 32
    assert c["by_resource"]["Jetstream2"]["su_per_hour"] == c["cpu_su_per_hour"]
    gpu_nodes = [i for i in c["instances"] if i["gpu"]]
    assert [i["name"] for i in gpu_nodes] == ["k8s-gpu-0-server", "k8s-gpu-1-server"]
    assert {i["resource"] for i in gpu_nodes} == {"Jetstream2 GPU"}
    # Two GPU servers of (2 vCPU, 8 GB) plus a node's reserve fit the smallest slice each.
    assert c["floor_gpu_flavors"] == {"g3.small": 2}
    assert c["floor_gpu_su_per_hour"] == 2 * FLAVORS["g3.small"].su_per_hour
    quotas = {q["key"]: q["needed"] for q in gpu_workshop["quotas"]}
    assert quotas["gpuInstances"] == 2 and quotas["instances"] == 8


def test_workshop_gpu_profile_requests_gpus_in_the_planned_values(gpu_workshop: dict[str, Any]) -> None:
    release = _resource(gpu_workshop, "Release", "hub-release")
    values = release["inputs"]["values"]
    # The values are an apply's result: they are known only when its callback ran.
    assert isinstance(values, dict), values
    gpu = values["singleuser"]["profileList"][2]["kubespawner_override"]
    assert gpu["extra_resource_limits"] == {"nvidia.com/gpu": "1"}
    assert gpu["extra_resource_guarantees"] == {"nvidia.com/gpu": "1"}
    assert gpu["extra_pod_config"] == {"runtimeClassName": "nvidia"}
    assert nvidia.gpu_toleration() in gpu["tolerations"]
    for cpu_profile in values["singleuser"]["profileList"][:2]:
        assert "tolerations" not in cpu_profile.get("kubespawner_override", {})
    assert z2jh_errors(values) == []
    # NVIDIA's chart, vendored, installed by a release of its own (rendered in test_charts.py).
    plugin = _resource(gpu_workshop, "Release", "gpu-release")["inputs"]
    assert plugin["chart"] == "./charts/nvidia-device-plugin" and "repositoryOpts" not in plugin
    assert plugin["namespace"] == "kube-system"
    assert plugin["values"] == nvidia.device_plugin_values("k3s", "g3.medium")
    assert plugin["values"]["runtimeClassName"] == "nvidia"
    # Each GPU node installs the toolkit before k3s and carries the taint.
    for i in range(2):
        user_data = yaml.safe_load(
            _resource(gpu_workshop, "Instance", f"k8s-gpu-{i}-server")["inputs"]["userData"]
        )
        assert boot_commands(user_data["runcmd"]) == [[nvidia.TOOLKIT_SCRIPT], [k3s.INSTALL_SCRIPT]]
        config = next(f for f in user_data["write_files"] if f["path"] == k3s.CONFIG_FILE)
        assert yaml.safe_load(config["content"])["node-taint"] == ["nvidia.com/gpu=present:NoSchedule"]
    # The hub waits for every user node, GPU workers included.
    ready = _resource(gpu_workshop, "Command", "k8s-workers-ready")["inputs"]["create"]
    assert "\nwant=5\n" in ready


def test_gpu_profile_on_the_unchanged_workshop_is_refused_by_key() -> None:
    with pytest.raises(PlanError) as info:
        plan_stack("workshop-k8s", overrides={"k8s.profiles": [*WORKSHOP_PROFILES, GPU_PROFILE]})
    message = str(info.value)
    assert "k8s.profiles[2].gpus = 1" in message
    assert "no GPU workers" in message and "k8s.gpuWorkerCount" in message


def test_dev_on_a_gpu_flavor_counts_its_sus_against_the_gpu_resource(gpu_dev: dict[str, Any]) -> None:
    c = gpu_dev["cost"]
    assert c["su_per_hour"] == c["gpu_su_per_hour"] == FLAVORS["g3.medium"].su_per_hour == 16
    assert c["cpu_su_per_hour"] == 0 and c["cpu_su_per_day"] == 0
    assert c["by_resource"] == {
        "Jetstream2 GPU": {"su_per_hour": 16, "su_per_day": 384, "su_for_workshop": 128}
    }
    # Five users sharing one GPU at 1 GB of its memory each fit the smallest slice (5 GB).
    assert c["floor_gpu_flavors"] == {"g3.small": 1} and c["floor_cpu_su_per_hour"] == 0
    hub_config = _resource(gpu_dev, "Command", "hub-config")["inputs"]["create"]
    assert "nvidia-smi -L" in hub_config
    # The step stages each file under a number, then installs it at its path.
    staged = re.search(
        r'install_if_changed "\$staging/(\d+)" \'?/etc/jupyterhub/jupyterhub_settings.json', hub_config
    )
    assert staged is not None, "hub-config installs no hub settings"
    settings = json.loads(
        hub_config.split(f"cat >\"$staging/{staged[1]}\" <<'JSHUB_END_OF_FILE'\n")[1].split("JSHUB_END")[0]
    )
    # Beside the course environment's paths (the dev stack has userEnvironment).
    environment = settings["Spawner"]["environment"]
    assert {k: environment.get(k) for k in GPU_SHARING_ENV} == GPU_SHARING_ENV
    assert "JUPYTER_PATH" in environment


def test_a_cpu_hub_has_no_gpu_check_and_no_gpu_sus() -> None:
    plan = plan_stack("dev")
    assert plan["cost"]["gpu_su_per_hour"] == 0 and plan["cost"]["cpu_su_per_hour"] == 2
    assert "nvidia-smi" not in _resource(plan, "Command", "hub-config")["inputs"]["create"]


def test_make_plan_prints_gpu_sus_apart_and_exits_0(tmp_path: Path) -> None:
    text = (ROOT / "Pulumi.dev.yaml").read_text().replace("hubFlavor: m3.small", "hubFlavor: g3.medium")
    assert "hubFlavor: g3.medium" in text
    stack_file = tmp_path / "Pulumi.dev.yaml"
    stack_file.write_text(text)
    out = tmp_path / "plan.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "planner",
            "--stack",
            "dev",
            "--stack-file",
            str(stack_file),
            "--json",
            str(out),
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "GPU SUs: 16/hour, 384/day, 128 for the workshop" in result.stdout
    assert "CPU SUs: 0/hour" in result.stdout
    assert json.loads(out.read_text())["cost"]["gpu_su_per_hour"] == 16


def test_quota_check_names_the_gpu_resource_an_allocation_lacks() -> None:
    with pytest.raises(PlanError) as info:
        plan_stack("dev", overrides={"hubFlavor": "g3.medium", "quotas.gpuInstances": 0})
    message = str(info.value)
    assert "quotas.gpuInstances: the stack needs 1 instances of GPU flavors" in message
    assert "Jetstream2 GPU resource" in message


# --- config ----------------------------------------------------------------------------------


def test_gpu_keys_are_refused_by_key_with_what_is_allowed() -> None:
    base = {"scenario": "k8s", "concurrentUsers": 100, "userMemoryGb": 4, "userCpu": 2}
    section = {"cephVolumeGb": 1000, "userMemoryGuaranteeGb": 2}
    text = problems(
        **base, k8s={**section, "gpuWorkerCount": 1, "gpuWorkerFlavor": "m3.xl", "profiles": [GPU_PROFILE]}
    )
    assert any(
        p.startswith("k8s.gpuWorkerFlavor = 'm3.xl': is not a GPU flavor; allowed: g3.small") for p in text
    )
    text = problems(**base, k8s={**section, "gpuWorkerCount": 1, "profiles": [{**GPU_PROFILE, "gpus": 2}]})
    assert any(p.startswith("k8s.profiles[0].gpus = 2: more than the 1 GPU") for p in text)
    text = problems(**base, k8s={**section, "gpuWorkerCount": 1})
    assert any(p.startswith("k8s.gpuWorkerCount = 1: no profile in k8s.profiles has gpus") for p in text)
    text = problems(
        **base,
        k8s={
            **section,
            "gpuWorkerCount": 1,
            "gpuWorkerFlavor": "g3.small",
            "profiles": [{**GPU_PROFILE, "memoryGuaranteeGb": 14, "memoryLimitGb": 14}],
        },
    )
    assert any(p.startswith("k8s.profiles[0].memoryGuaranteeGb = 14") and "g3.small" in p for p in text)
    # A GPU profile's limits are a GPU worker's business, not the CPU workers'.
    cfg = k8s_config(
        workerFlavor="m3.medium",
        gpuWorkerCount=1,
        gpuWorkerFlavor="g3.large",
        profiles=[{**GPU_PROFILE, "memoryLimitGb": 40, "memoryGuaranteeGb": 8}],
    )
    assert cfg.k8s is not None and cfg.k8s.gpu_worker_count == 1


def test_single_hub_gpu_memory_is_counted_per_user() -> None:
    text = problems(scenario="single", hubFlavor="g3.small", concurrentUsers=8, userMemoryGb=1)
    assert any(
        p.startswith("hubFlavor = 'g3.small': g3.small's GPU has 5 GB, shared by concurrentUsers 8")
        and "choose g3.medium" in p
        for p in text
    )
    assert make_config(scenario="single", hubFlavor="g3.medium", concurrentUsers=8).hub_flavor == "g3.medium"


def test_gpu_floor_packs_shared_and_whole_gpu_users() -> None:
    shared = GpuDemand(users=12, cpu=0, mem_gb=1, gpu_memory_gb=1, users_per_gpu=12, basis="")
    # Three small slices (5 GB each) cost less than one large (20 GB).
    assert gpu_floor_su_per_hour(shared) == (3 * FLAVORS["g3.small"].su_per_hour, {"g3.small": 3})
    two_per_gpu = GpuDemand(users=4, cpu=0, mem_gb=1, gpu_memory_gb=1, users_per_gpu=2, basis="")
    assert gpu_floor_su_per_hour(two_per_gpu)[1] == {"g3.small": 2}
    whole = GpuDemand(users=3, cpu=6, mem_gb=20, gpu_memory_gb=0, users_per_gpu=1, basis="")
    assert gpu_floor_su_per_hour(whole) == (3 * FLAVORS["g3.medium"].su_per_hour, {"g3.medium": 3})


# --- rendered objects, checked by their upstream tools ---------------------------------------


def test_the_device_plugin_exists_only_with_gpu_workers() -> None:
    plain = plan_stack("workshop-k8s")
    assert not [r for r in plain["resources"] if r["type"].startswith("jshub:index:NvidiaDevicePlugin")]
    charts = [r["inputs"]["chart"] for r in plain["resources"] if r["type"].endswith("Release")]
    assert nvidia.DEVICE_PLUGIN_CHART_PATH not in charts


@pytest.mark.parametrize("engine", ["k3s", "magnum"])
def test_device_plugin_values_select_only_the_gpu_nodes(engine: str) -> None:
    """What the chart's DaemonSet gets (tests/test_charts.py renders it and checks the objects)."""
    values = nvidia.device_plugin_values(engine, "g3.medium")  # type: ignore[arg-type]
    assert values["image"] == {"repository": "nvcr.io/nvidia/k8s-device-plugin", "tag": "v0.17.3"}
    assert values["failOnInitError"] is True
    assert values["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    # One term: Helm replaces the chart's default list (node feature discovery's labels).
    terms = values["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    if engine == "k3s":
        expected = {"key": "nvidia.com/gpu.present", "operator": "In", "values": ["true"]}
        assert values["runtimeClassName"] == "nvidia"
    else:
        expected = {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["g3.medium"]}
        assert "runtimeClassName" not in values
    assert terms == {"nodeSelectorTerms": [{"matchExpressions": [expected]}]}


@pytest.mark.parametrize("engine", ["k3s", "magnum"])
def test_z2jh_values_with_a_gpu_profile_pass_the_chart_schema(engine: str) -> None:
    cfg = k8s_config(engine=engine, gpuWorkerCount=2, profiles=[*WORKSHOP_PROFILES, GPU_PROFILE])
    values = z2jh_values(
        Z2JHSpec.from_config(cfg, load_balancer_ip="203.0.113.9" if engine == "magnum" else None)
    )
    assert z2jh_errors(values) == []
    gpu = values["singleuser"]["profileList"][2]["kubespawner_override"]
    assert gpu["extra_resource_limits"] == {"nvidia.com/gpu": "1"}
    if engine == "magnum":
        # No taint on magnum's nodes: everyone else is kept off them by their flavor.
        not_in = {"key": "node.kubernetes.io/instance-type", "operator": "NotIn", "values": ["g3.medium"]}
        assert values["singleuser"]["extraNodeAffinity"]["required"] == [{"matchExpressions": [not_in]}]
        assert gpu["node_affinity_required"][0]["matchExpressions"][0]["operator"] == "In"
    else:
        assert "extraNodeAffinity" not in values["singleuser"]
        assert gpu["node_selector"] == {"nvidia.com/gpu.present": "true"}
        # The image pullers reach the tainted GPU nodes too: a CUDA image is there before a spawn.
        assert values["prePuller"]["extraTolerations"] == [nvidia.gpu_toleration()]


def _gpu_node() -> k3s.K3sNodeSpec:
    return k3s.K3sNodeSpec(
        "k8s-gpu-0",
        "worker",
        "v1.33.5+k3s1",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGdpdW5vZGVrZXk deploy",
        server_url="https://10.0.0.5:6443",
        labels={k3s.NODE_PURPOSE: "user", "nvidia.com/gpu.present": "true"},
        gpu=True,
    )


def test_gpu_node_user_data_passes_cloud_init_schema(tmp_path: Path) -> None:
    tool = require_tool("cloud-init", "validates rendered user data")
    path = tmp_path / "user-data.yaml"
    path.write_text(k3s.render_k3s_cloud_init(_gpu_node()))
    result = subprocess.run([tool, "schema", "--config-file", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    config = k3s.k3s_config(_gpu_node())
    assert config["node-taint"] == ["nvidia.com/gpu=present:NoSchedule"]
    assert "node-taint" not in k3s.k3s_config(
        k3s.K3sNodeSpec("w", "worker", "v1.33.5+k3s1", "k", server_url="https://10.0.0.5:6443")
    )
    with pytest.raises(ValueError, match="only workers are GPU nodes"):
        k3s.render_k3s_cloud_init(k3s.K3sNodeSpec("cp", "server", "v1.33.5+k3s1", "k", gpu=True))


def test_toolkit_script_passes_shellcheck(tmp_path: Path) -> None:
    tool = require_tool("shellcheck", "lints the rendered shell scripts")
    path = tmp_path / "toolkit.sh"
    path.write_text(nvidia.render_toolkit_script())
    result = subprocess.run([tool, "--severity=style", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def _run_toolkit(tmp_path: Path, fingerprint: str, driver: bool = True) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    stub(
        bin_dir,
        "nvidia-smi",
        f'echo "nvidia-smi $*" >>{log}\n' + ("echo 'GPU 0: GRID A100X-10C'" if driver else "exit 9"),
    )
    stub(
        bin_dir,
        "curl",
        f'echo "curl $*" >>{log}\nwhile [[ $# -gt 0 ]]; do [[ $1 == -o ]] && echo KEY >"$2"; shift; done',
    )
    stub(
        bin_dir,
        "gpg",
        f'echo "gpg $*" >>{log}\n'
        f'if [[ " $* " == *" --show-keys "* ]]; then echo "pub:-:4096:1:DDCAE044F796ECB0:"; echo "fpr:::::::::{fingerprint}:"; exit 0; fi\n'
        'while [[ $# -gt 0 ]]; do [[ $1 == --output ]] && echo DEARMORED >"$2"; shift; done',
    )
    stub(bin_dir, "apt-get", f'echo "apt-get $*" >>{log}')
    stub(bin_dir, "nvidia-container-runtime", "exit 0")
    script = tmp_path / "toolkit.sh"
    script.write_text(
        nvidia.render_toolkit_script(
            keyring=str(tmp_path / "keyring.gpg"), sources=str(tmp_path / "nvidia.list")
        )
    )
    return subprocess.run(
        ["bash", str(script)],
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_toolkit_script_installs_the_pinned_toolkit_from_the_checked_repository(tmp_path: Path) -> None:
    result = _run_toolkit(tmp_path, nvidia.TOOLKIT_KEY_FINGERPRINT)
    assert result.returncode == 0, result.stdout + result.stderr
    calls = (tmp_path / "calls.log").read_text().splitlines()
    assert calls[0] == "nvidia-smi -L"
    install = next(c for c in calls if c.startswith("apt-get") and " install " in c)
    for package in (
        "nvidia-container-toolkit",
        "nvidia-container-toolkit-base",
        "libnvidia-container-tools",
        "libnvidia-container1",
    ):
        assert f"{package}={nvidia.TOOLKIT_VERSION}" in install.split()
    assert (tmp_path / "keyring.gpg").read_text() == "DEARMORED\n"
    assert (tmp_path / "nvidia.list").read_text() == (
        f"deb [signed-by={tmp_path / 'keyring.gpg'}] {nvidia.TOOLKIT_REPOSITORY}/stable/deb/$(ARCH) /\n"
    )


def test_toolkit_script_refuses_another_key_and_a_node_without_driver(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    result = _run_toolkit(tmp_path / "a", "0" * 40)
    assert result.returncode == 1 and "not the pinned" in result.stderr
    assert not (tmp_path / "a" / "nvidia.list").exists()
    assert not any(c.startswith("apt-get") for c in (tmp_path / "a" / "calls.log").read_text().splitlines())
    (tmp_path / "b").mkdir()
    result = _run_toolkit(tmp_path / "b", nvidia.TOOLKIT_KEY_FINGERPRINT, driver=False)
    assert result.returncode == 1 and "no working NVIDIA driver" in result.stderr
    assert (tmp_path / "b" / "calls.log").read_text().splitlines() == ["nvidia-smi -L"]


def test_magnum_gpu_node_group_follows_the_workers_and_the_plugin_follows_both() -> None:
    from stacks.k8s import build as build_k8s
    from tests.conftest import BASE_CONFIG, run_mocked

    config = {
        **BASE_CONFIG,
        "scenario": "k8s",
        "concurrentUsers": 20,
        "userMemoryGb": 4,
        "userCpu": 2,
        "k8s": {
            "engine": "magnum",
            "userMemoryGuaranteeGb": 2,
            "cephVolumeGb": 300,
            "workerFlavor": "m3.medium",
            "gpuWorkerCount": 2,
            "gpuWorkerFlavor": "g3.large",
            "profiles": [GPU_PROFILE],
        },
    }
    cfg = make_config(**config)
    rec = run_mocked(lambda: build_k8s(cfg), config)
    groups = {
        r.name: r for r in rec.registrations if r.type == "openstack:containerinfra/nodeGroup:NodeGroup"
    }
    gpu, workers = groups["k8s-gpu-workers"], groups["k8s-workers"]
    assert gpu.inputs["flavorId"] == "g3.large" and gpu.inputs["nodeCount"] == 2
    assert gpu.inputs["name"] == "gpu-g3-large"
    # Jetstream2 refuses node groups created in parallel.
    assert workers.urn in gpu.dependency_urns
    (plugin,) = [
        r
        for r in rec.registrations
        if r.type == "kubernetes:helm.sh/v3:Release" and r.inputs["chart"] == nvidia.DEVICE_PLUGIN_CHART_PATH
    ]
    assert {gpu.urn, workers.urn} <= set(plugin.dependency_urns)
    assert plugin.inputs["values"] == nvidia.device_plugin_values("magnum", "g3.large")
    (release,) = [
        r
        for r in rec.registrations
        if r.type == "kubernetes:helm.sh/v3:Release" and r.inputs["chart"] == z2jh.CHART_PATH
    ]
    assert gpu.urn in release.dependency_urns


def test_the_real_systemdspawner_leaves_the_gpu_to_every_users_server(tmp_path: Path) -> None:
    """The single hub on g3.medium, its rendered config loaded by JupyterHub's own loader: the
    real SystemdSpawner's unit for a user hides no device (the driver's /dev/nvidia* stay
    reachable), and the spawner's environment carries the sharing settings."""
    from renderers.hub_config import HubConfigSpec
    from tests.hub_config_local import hub_config_text
    from tests.spawner_units import load_config, properties, systemd_run_argv

    spec = HubConfigSpec.from_config(make_config(hubFlavor="g3.medium"))
    env = {"OAUTH_CLIENT_SECRET": "test-secret", "JSHUB_ADMIN_TOKEN": "test-token"}
    config = load_config(hub_config_text(spec, tmp_path), tmp_path, env)
    assert dict(config.Spawner.environment) == GPU_SHARING_ENV
    argv = systemd_run_argv(config, "nobody", tmp_path)
    props = properties(argv)
    assert not {"PrivateDevices", "DevicePolicy", "DeviceAllow"} & set(props), props
    cpu = load_config(hub_config_text(HubConfigSpec.from_config(make_config()), tmp_path), tmp_path, env)
    assert "environment" not in cpu.Spawner


def test_gpu_sus_are_paid_from_the_gpu_balance_only() -> None:
    from datetime import date

    plan = plan_stack(
        "workshop-k8s",
        overrides={**GPU_WORKSHOP, "allocationSus": "12000", "allocationGpuSus": "1000"},
        today=date(2026, 1, 5),
    )
    cpu, gpu = plan["cost"]["allocation"], plan["cost"]["allocation_gpu"]
    # 120 CPU SU/hour from 12000: 100 hours; 32 GPU SU/hour from 1000: 31.25 hours.
    assert cpu["days_left"] == round(100 / 24, 1) and gpu["days_left"] == round(1000 / 32 / 24, 1)
    assert gpu["runs_out_on"] == "2026-01-06"
    assert any(w.startswith("allocationGpuSus 1000 SU lasts 1.3 days at 32 SU/hour") for w in gpu["warnings"])
    assert not any("allocationGpuSus" in w for w in cpu["warnings"])
