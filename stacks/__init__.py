"""One module per scenario; each exposes `build(cfg)` that wires the components."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from stackconfig import StackConfig

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
    return build
