"""The course's packages (userEnvironment) on the single hub, for real: the users' environment
built by the rendered users-env script (the image's Python, pip from PyPI), then a participant's
server, run by a real JupyterHub from the production-rendered config, offers the course kernel as
its default and a kernel started there imports the package, which the hub's own environment does
not have. A package change runs the script again and nothing else: the hub's files are the same,
the hub keeps running, a running kernel keeps working, a new kernel gets the new package.
An admin adds a package from their server (pip on its PATH, as in a terminal); a participant
cannot.

Needs root, adduser, configurable-http-proxy (`make system-deps`) and PyPI.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import stackconfig
from renderers.hub_config import hub_vm_files
from renderers.user_env import KERNEL_NAME
from tests.e2e.conftest import ADMIN, STACK, random_username
from tests.e2e.course_env import build_course_env, course_env_spec
from tests.notebook_env import notebook_env

if TYPE_CHECKING:
    from tests.e2e.conftest import Hub

pytestmark = pytest.mark.e2e

# Small pure-Python packages from PyPI that the hub's own environment does not hold.
FIRST = "tabulate==0.9.0"
ADDED = "toolz==1.0.0"
BY_ADMIN = "pyfiglet==1.0.2"

HUB_STACK = {**STACK, "userEnvironment": {"packages": [FIRST]}}
CHANGED_STACK = {**STACK, "userEnvironment": {"packages": [FIRST, ADDED]}}

VERSION = "import importlib.metadata as m, sys; print(m.version({name!r}), sys.prefix)"


@pytest.fixture(scope="module")
def participant(hub: Hub) -> str:
    build_course_env(hub, course_env_spec(hub, HUB_STACK))
    name = random_username()
    hub.expect(hub.api("POST", f"/users/{name}"), 201)
    return name


def test_a_participants_default_kernel_is_the_course_env_and_imports_its_package(
    hub: Hub, participant: str
) -> None:
    spec = course_env_spec(hub, HUB_STACK)
    hub.start_server(participant)
    specs = hub.expect(hub.user_api(participant, "GET", "/kernelspecs"), 200).json()
    assert specs["default"] == KERNEL_NAME, specs["default"]
    assert specs["kernelspecs"][KERNEL_NAME]["spec"]["display_name"] == "Python 3 (course)"
    # A kernel started without a name (as the launcher's default card starts it) is the course's.
    out = hub.run_code(participant, VERSION.format(name="tabulate")).split()
    assert out == ["0.9.0", spec.env_dir()], out
    # The hub's own environment is untouched: it has no course package.
    hub_python = notebook_env() / "bin" / "python"
    missing = subprocess.run([str(hub_python), "-c", "import tabulate"], capture_output=True, check=False)
    assert missing.returncode != 0


def test_a_package_change_is_only_the_users_env_step_and_running_kernels_keep_working(
    hub: Hub, participant: str
) -> None:
    before, after = course_env_spec(hub, HUB_STACK), course_env_spec(hub, CHANGED_STACK)
    cfg = stackconfig.parse(HUB_STACK, secret_keys=list(HUB_STACK))
    # The hub's files (hub-config's whole input) do not change with the packages.
    assert hub_vm_files(hub.spec(HUB_STACK), cfg.hub_fqdn, cfg.lets_encrypt_email) == hub_vm_files(
        hub.spec(CHANGED_STACK), cfg.hub_fqdn, cfg.lets_encrypt_email
    )
    if not hub.server(participant):
        hub.start_server(participant)
    running = hub.start_kernel(participant)
    assert hub.process is not None
    hub_pid = hub.process.pid

    build_course_env(hub, after)

    assert hub.process.pid == hub_pid and hub.process.poll() is None
    # The kernel started before the change still runs in the environment it started from.
    out = hub.run_in_kernel(participant, running["id"], VERSION.format(name="tabulate")).split()
    assert out == ["0.9.0", before.env_dir()], out
    # A kernel started now, in the same running server, gets the new list.
    out = hub.run_code(participant, VERSION.format(name="toolz")).split()
    assert out == ["1.0.0", after.env_dir()], out
    hub.user_api(participant, "DELETE", f"/kernels/{running['id']}")


PIP = """
import subprocess
r = subprocess.run(["pip", "install", "--no-cache-dir", "--quiet", "--disable-pip-version-check", {req!r}],
                   capture_output=True, text=True)
print("exit", r.returncode, "denied" if "Permission denied" in r.stderr else "")
"""


def test_an_admin_adds_a_package_for_everyone_and_a_participant_cannot(hub: Hub, participant: str) -> None:
    spec = course_env_spec(hub, CHANGED_STACK)
    hub.start_server(ADMIN)
    if hub.server(participant):
        hub.stop_server(participant)
    hub.start_server(participant)
    out = hub.run_code(participant, PIP.format(req=BY_ADMIN), timeout=180).split()
    assert out == ["exit", "1", "denied"], out
    assert not list(Path(spec.env_dir()).glob("lib/python3*/site-packages/pyfiglet"))

    out = hub.run_code(ADMIN, PIP.format(req=BY_ADMIN), timeout=180).split()
    assert out == ["exit", "0"], out
    out = hub.run_code(participant, VERSION.format(name="pyfiglet")).split()
    assert out == ["1.0.2", spec.env_dir()], out
