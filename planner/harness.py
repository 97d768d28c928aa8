"""Run a Pulumi program (the real `__main__.py`, or any function) under the planner's mocks."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import runpy
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import settings, stack

from planner.mocks import PlanMocks, RecordingMonitor, Registration, Stored, scrub
from stacks.deployed import DeployedResource

# What `pulumi.get_organization()` gives a stack on a DIY backend, which has no organizations.
ORGANIZATION = "organization"


@dataclass
class Recording:
    registrations: list[Registration]
    invokes: list[dict[str, Any]]
    outputs: dict[str, Any] = field(default_factory=dict)
    # What the program logged as warnings (pulumi.log.warn).
    warnings: list[str] = field(default_factory=list)


class _Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Each full collection walks every resource object made so far, so its cost grows with
    the stack: planning 500 swarm workers took 19-21 s with the collector on and 15-19 s with
    it paused (bench/swarm_plan.py). A plan is short-lived: leave cycles to the collection
    after it."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextmanager
def mocked_runtime(
    project: str,
    stack_name: str,
    config: dict[str, str],
    secret_keys: list[str],
    image_ids: Mapping[str, str] | None = None,
    deployed: Iterable[DeployedResource] | None = (),
    warnings: list[str] | None = None,
    stored: Mapping[tuple[str, str], Stored] | None = None,
) -> Iterator[RecordingMonitor]:
    """A fresh event loop, mocks and config; everything is reset on the way out, because
    `set_mocks` is process-global. `image_ids`: what the mocked cloud resolves image names to,
    where not the placeholder; `deployed`: what the stack already holds, None for a failed read
    (planner.mocks.PlanMocks); `stored`: the IDs and outputs of a
    deployed state (PlanMocks). The program's warnings are appended to `warnings`."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    mock = PlanMocks(image_ids, deployed, stored)
    monitor = RecordingMonitor(mock)
    logger = logging.getLogger(f"{__name__}.program")
    handler = _Warnings()
    logger.addHandler(handler)
    pulumi.runtime.set_all_config(config, secret_keys)
    pulumi.runtime.set_mocks(
        mock,
        project=project,
        stack=stack_name,
        preview=False,
        monitor=monitor,
        logger=logger,
        organization=ORGANIZATION,
    )
    try:
        with _no_cyclic_gc():
            yield monitor
    finally:
        logger.removeHandler(handler)
        if warnings is not None:
            warnings.extend(handler.messages)
        settings.reset_options()
        pulumi.runtime.set_all_config({}, [])
        loop.close()
        asyncio.set_event_loop(None)


def run_pulumi(func: Callable[[], None]) -> None:
    """Run a program inside an active `mocked_runtime` and wait for every registration."""
    asyncio.get_event_loop().run_until_complete(stack.run_pulumi_func(func))


def _resolve_outputs() -> dict[str, Any]:
    root = settings.get_root_resource()
    exported = dict(getattr(root, "outputs", {}) or {})

    async def resolve() -> dict[str, Any]:
        result = {}
        for key, value in exported.items():
            output = pulumi.Output.from_input(value)
            resolved = await output.future(with_unknowns=True)
            result[key] = "[secret]" if await output.is_secret() else scrub(resolved)
        return result

    return asyncio.get_event_loop().run_until_complete(resolve())


def run_program(
    program: Callable[[], None],
    project: str,
    stack_name: str,
    config: dict[str, str],
    secret_keys: list[str],
    image_ids: Mapping[str, str] | None = None,
    deployed: Iterable[DeployedResource] | None = (),
    stored: Mapping[tuple[str, str], Stored] | None = None,
) -> Recording:
    """`deployed`: what the stack already holds (empty: a first `pulumi up`; None: its state
    cannot be read); `stored`: its IDs and outputs, when read from an export."""
    warnings: list[str] = []
    with mocked_runtime(
        project, stack_name, config, secret_keys, image_ids, deployed, warnings, stored
    ) as monitor:
        run_pulumi(program)
        outputs = _resolve_outputs()
        recording = Recording(monitor.registrations, monitor.invokes, outputs)
    recording.warnings = warnings
    return recording


def main_program(project_dir: Path) -> Callable[[], None]:
    """The project's `__main__.py`, run as `pulumi up` runs it (from the project folder)."""

    def program() -> None:
        previous = Path.cwd()
        os.chdir(project_dir)
        sys.path.insert(0, str(project_dir))
        try:
            runpy.run_path(str(project_dir / "__main__.py"), run_name="__main__")
        finally:
            sys.path.remove(str(project_dir))
            os.chdir(previous)

    return program
