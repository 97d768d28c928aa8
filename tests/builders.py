"""Stack configs the tests build from, shared across test modules: a config that must be
refused (its problems), the hpc and k8s scenarios' configs, a workshop-k8s stack file on
Magnum, and the k8s stack's resources under Pulumi mocks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from components.k8s_cluster import K8sCluster, K8sClusterArgs
from planner.harness import Recording
from planner.plan import PROJECT_DIR
from stackconfig import ConfigError, StackConfig, parse
from tests.conftest import BASE_CONFIG, SECRET_KEYS, as_pulumi_config, make_config, run_mocked


def problems(**overrides: Any) -> list[str]:
    """What the config model says about BASE_CONFIG with these keys (None drops one); it must refuse."""
    values = {**BASE_CONFIG, **overrides}
    values = {k: v for k, v in values.items() if v is not None}
    with pytest.raises(ConfigError) as exc:
        parse(as_pulumi_config(values), secret_keys=SECRET_KEYS)
    return [str(p) for p in exc.value.problems]


# --- hpc ----------------------------------------------------------------------------------------

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK8zuTV6/Nqlmto7O1I85mEYCGYIRn5Tqo45s4zqVuzQ"
HPC: dict[str, Any] = {
    "loginHost": "login.hpc.example.edu",
    "hostKey": HOST_KEY,
    "partitions": [
        {"name": "shared", "maxCores": 16, "maxMemoryGb": 32, "maxWallHours": 8},
        {
            "name": "gpu",
            "maxCores": 10,
            "maxMemoryGb": 92,
            "maxGpus": 2,
            "maxWallHours": 4,
            "gpuGres": "gpu:v100",
        },
    ],
    "environmentSetup": ["module load anaconda3", "conda activate jupyterhub"],
    "slurmAccount": "abc123",
}


def hpc_config(**hpc: Any) -> Any:
    return make_config(scenario="hpc", hpc={**HPC, **hpc})


# --- k8s ----------------------------------------------------------------------------------------


def workshop(**section: Any) -> StackConfig:
    """A 100-user workshop on k8s (the renderers' and monitoring's tests)."""
    return make_config(
        scenario="k8s",
        concurrentUsers=100,
        userMemoryGb=4,
        userCpu=2,
        idleTimeoutMinutes=30,
        k8s={"cephVolumeGb": 1000, "userMemoryGuaranteeGb": 2, **section},
    )


def k8s_config(**section: Any) -> dict[str, Any]:
    """A 20-user k8s stack's raw config (the resource graph's tests)."""
    return {
        **BASE_CONFIG,
        "scenario": "k8s",
        "concurrentUsers": 20,
        "userMemoryGb": 4,
        "userCpu": 2,
        "k8s": {"userMemoryGuaranteeGb": 2, "cephVolumeGb": 300, "workerFlavor": "m3.medium", **section},
    }


def build(config: dict[str, Any], deployed: Any = ()) -> Recording:
    """`deployed`: what the stack already holds (default: nothing; None: the read fails)."""
    from stacks.k8s import build as build_k8s

    cfg = make_config(**config)
    return run_mocked(lambda: build_k8s(cfg), config, deployed=deployed)


def kubeconfig_server(subnet_cidr: str | None, **config: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """The rewritten kubeconfig's cluster entry, and the addresses it could point at."""
    seen: list[str] = []
    addresses: dict[str, str] = {}

    def program() -> None:
        cluster = K8sCluster(
            "k8s",
            K8sClusterArgs(
                config=make_config(**{**k8s_config(), **config}),
                network_id="n",
                subnet_id="s",
                subnet_cidr=subnet_cidr,
            ),
        )
        cluster.kubeconfig.apply(seen.append)
        cluster.ingress_ip.apply(lambda ip: addresses.update(balancer=ip))
        assert cluster.admin_ip is not None
        cluster.admin_ip.apply(lambda ip: addresses.update(first_node=ip))

    run_mocked(program, {**k8s_config(), **config})
    assert len(seen) == 1 and len(addresses) == 2, "the applies must have run under mocks"
    return yaml.safe_load(seen[0])["clusters"][0]["cluster"], addresses


def magnum_copy(tmp_path: Path) -> Path:
    """workshop-k8s with engine magnum (k3sVersion applies to k3s only)."""
    text = (PROJECT_DIR / "Pulumi.workshop-k8s.yaml").read_text()
    assert "engine: k3s" in text and "k3sVersion:" in text
    lines = [
        line
        for line in text.replace("engine: k3s", "engine: magnum").splitlines()
        if "k3sVersion:" not in line
    ]
    path = tmp_path / "Pulumi.workshop-magnum.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path
