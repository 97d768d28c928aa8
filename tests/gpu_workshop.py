"""The GPU workshop: the workshop-k8s stack with two GPU workers and a GPU profile, as
overrides of its plan (shared by tests/test_gpu.py and tests/test_charts.py)."""

from __future__ import annotations

from typing import Any

GPU_PROFILE: dict[str, Any] = {
    "displayName": "GPU (PyTorch)",
    "image": "quay.io/jupyter/pytorch-notebook:cuda12-2025-03-17",
    "gpus": 1,
    "cpuGuarantee": 2,
    "cpuLimit": 4,
    "memoryGuaranteeGb": 8,
    "memoryLimitGb": 16,
}
WORKSHOP_PROFILES: list[dict[str, Any]] = [
    {"displayName": "Python (SciPy)", "description": "The workshop environment", "default": True},
    {"displayName": "R", "image": "quay.io/jupyter/r-notebook:2025-03-17"},
]
GPU_WORKSHOP: dict[str, Any] = {
    "k8s.gpuWorkerCount": 2,
    "k8s.gpuWorkerFlavor": "g3.medium",
    "k8s.profiles": [*WORKSHOP_PROFILES, GPU_PROFILE],
}
