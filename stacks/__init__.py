"""One module per scenario; each exposes `build(cfg)` that wires the components."""

from __future__ import annotations

import importlib
from collections.abc import Callable

import pulumi

from stackconfig import StackConfig, sizing

IMPLEMENTED = ("single", "hpc", "swarm", "k8s")


class ScenarioNotImplementedError(ValueError):
    pass


def builder(scenario: str) -> Callable[[StackConfig], None]:
    if scenario not in IMPLEMENTED:
        raise ScenarioNotImplementedError(
            f"scenario = {scenario!r}: not implemented yet; implemented: {', '.join(IMPLEMENTED)}"
        )
    module = importlib.import_module(f"stacks.{scenario}")
    build: Callable[[StackConfig], None] = module.build

    def build_and_export(cfg: StackConfig) -> None:
        build(cfg)
        export_usage_basis(cfg)
        burn = sizing.burn(cfg)
        if burn is not None:
            # For `make smoke`'s warning when the allocation is running out.
            pulumi.export("allocation_burn", burn.output())

    return build_and_export


def export_usage_basis(cfg: StackConfig) -> None:
    """What one user's server takes of its VM, for `python -m jshub.usage` (none on hpc: its
    servers are batch jobs, accounted by SLURM)."""
    share = sizing.server_share(cfg)
    if share is not None:
        basis: dict[str, object] = {"flavor": share.flavor, "cpu": share.cpu, "basis": share.basis}
        record = usage_record(cfg)
        if record is not None:
            basis["record"] = record
        pulumi.export("usage_basis", basis)


def usage_record(cfg: StackConfig) -> str | None:
    """Where the hub keeps its usage record (hub/jshub_usage.py) on the VM an operator reaches
    over SSH; None on k8s, whose hub keeps none."""
    if cfg.scenario == "k8s":
        return None
    from renderers.hub_spec import HubPaths
    from renderers.swarm import IMAGE_PATHS

    return (IMAGE_PATHS if cfg.scenario == "swarm" else HubPaths()).usage_record
