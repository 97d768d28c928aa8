"""The course's packages (userEnvironment) on hpc, for real: the hub-side step sends the build
script over the hub's SSH key to the loopback login node, where it builds the users' environment
as the gateway's account in the folder the stack names (pip from PyPI); a notebook that runs as a
SLURM job offers the course kernel as its default, and a kernel in the job imports the package.
A package change builds the new list there and nothing on the hub changes.

Needs root, slurm-wlm, munge, openssh-server, configurable-http-proxy and PyPI."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import stackconfig
from renderers.hub_config import HubConfigSpec, hub_vm_files
from renderers.user_env import KERNEL_NAME, HpcLogin, UsersEnvSpec, render_hpc_users_env_script
from tests.e2e_hpc.conftest import Hub, LoginNode, squeue, stack, start_hub

pytestmark = pytest.mark.e2e

FIRST = "tabulate==0.9.0"
ADDED = "toolz==1.0.0"
VERSION = "import importlib.metadata as m, sys; print(m.version({name!r}), sys.prefix)"


def community(login: LoginNode) -> dict[str, Any]:
    return {"accountMode": "community", "communityAccount": login.account}


def user_environment(login: LoginNode, *packages: str) -> dict[str, Any]:
    return {"userEnvironment": {"packages": list(packages), "hpcFolder": f"{login.home}/jshub-users"}}


def users_env(hub: Hub, login: LoginNode, *packages: str) -> UsersEnvSpec:
    raw = stack("direct", login.port, login.host_key, community(login), user_environment(login, *packages))
    spec = HubConfigSpec.from_config(stackconfig.parse(raw, secret_keys=["oauthClientSecret"]), hub.paths)
    assert spec.users_env is not None and not spec.users_env.on_hub_vm
    return spec.users_env


def build(hub: Hub, login: LoginNode, spec: UsersEnvSpec) -> None:
    """The hpc-user-env step as the stack runs it on the hub VM (sudo and cloud-init stood in)."""
    script = render_hpc_users_env_script(
        spec,
        HpcLogin(
            host="127.0.0.1",
            port=login.port,
            account=login.account,
            key_file=f"{hub.paths.hpc_dir}/id_hpc",
            known_hosts_file=f"{hub.paths.hpc_dir}/known_hosts",
        ),
    )
    bin_dir = hub.root / "user-env-bin"
    bin_dir.mkdir(exist_ok=True)
    for name, body in {"sudo": 'exec "$@"', "cloud-init": "exit 0"}.items():
        (bin_dir / name).write_text(f"#!/bin/bash\n{body}\n")
        (bin_dir / name).chmod(0o755)
    started = time.monotonic()
    result = subprocess.run(
        ["bash", "-c", script],
        env={"PATH": f"{bin_dir}:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(hub.root)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"hpc-user-env failed:\n{result.stdout}{result.stderr}"
    print(f"[hpc-user-env] {spec.packages}: {time.monotonic() - started:.1f} s\n{result.stdout}")


@pytest.fixture(scope="module")
def hub(login_node: LoginNode, scratch: Path) -> Iterator[Hub]:
    hub = start_hub(
        scratch / "hub-user-env",
        login_node,
        "direct",
        community(login_node),
        user_environment(login_node, FIRST),
    )
    yield hub
    hub.stop()


def test_a_job_offers_the_course_kernel_built_on_the_hpc_side_and_imports_its_package(
    hub: Hub, login_node: LoginNode
) -> None:
    spec = users_env(hub, login_node, FIRST)
    build(hub, login_node, spec)
    env_dir = Path(spec.env_dir())
    # Built as the gateway's account, in the folder the stack names.
    assert env_dir.parent.parent == login_node.home / "jshub-users"
    assert env_dir.stat().st_uid == login_node.uid
    name = "carol"
    hub.expect(hub.api("POST", f"/users/{name}"), 201)
    hub.start_server(name)
    specs = hub.expect(hub.user_api(name, "GET", "/kernelspecs"), 200).json()
    assert specs["default"] == KERNEL_NAME, specs
    out = hub.run_code(name, VERSION.format(name="tabulate")).split()
    assert out == ["0.9.0", str(env_dir)], out

    # A package change: the hub's files are the same; the new list is built there, and a new
    # kernel in the running job gets it.
    before = stack("direct", login_node.port, login_node.host_key, community(login_node), {})
    cfg = stackconfig.parse(before, secret_keys=["oauthClientSecret"])

    def files(*packages: str) -> object:
        raw = {**before, **user_environment(login_node, *packages)}
        spec = HubConfigSpec.from_config(stackconfig.parse(raw, secret_keys=["oauthClientSecret"]), hub.paths)
        return hub_vm_files(spec, cfg.hub_fqdn, cfg.lets_encrypt_email)

    assert files(FIRST) == files(FIRST, ADDED)
    changed = users_env(hub, login_node, FIRST, ADDED)
    build(hub, login_node, changed)
    out = hub.run_code(name, VERSION.format(name="toolz")).split()
    assert out == ["1.0.0", changed.env_dir()], out
    hub.stop_server(name)
    hub.wait_for(lambda: not squeue(login_node.account), "the job to leave the queue")
