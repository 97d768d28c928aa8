"""The course's users' environment (userEnvironment) on the local single hub, built as the stack's
`hub-user-env` step builds it: the rendered script run with sudo and cloud-init stood in (root
already; nothing boots), the image's python3 (here the interpreter the tests' environments are
built from) and pip from PyPI."""

from __future__ import annotations

import dataclasses
import subprocess
import time
from typing import TYPE_CHECKING, Any

from renderers.user_env import UsersEnvSpec, render_users_env_script
from tests.notebook_env import base_interpreter

if TYPE_CHECKING:
    from tests.e2e.conftest import Hub


def course_env_spec(hub: Hub, stack: dict[str, Any]) -> UsersEnvSpec:
    """The users' environment `stack` gives `hub`."""
    spec = hub.spec(stack).users_env
    assert spec is not None, "the stack has no userEnvironment"
    return dataclasses.replace(spec, python=str(base_interpreter()))


def build_course_env(hub: Hub, spec: UsersEnvSpec) -> float:
    """Run the users-env step; its time in seconds."""
    started = time.monotonic()
    result = subprocess.run(
        ["bash", "-c", render_users_env_script(spec)],
        env={"PATH": f"{hub.writer.bin_dir}:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(hub.root)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"users-env failed:\n{result.stdout}{result.stderr}"
    took = time.monotonic() - started
    print(f"[users-env] {spec.packages}: {took:.1f} s\n{result.stdout}")
    return took
