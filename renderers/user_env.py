"""The users' environment of a single hub: the course's packages (userEnvironment) in a Python
virtual environment apart from the hub's, offered to every new server as its default kernel.

Each list of packages is built into a folder of its own (envs/<id>, the id a digest of the
list), and only then does the kernel's spec point at it: a server started later gets the new
packages, a kernel already running keeps the environment it started from (kept until the next
change after that). The environment is on the root disk, next to the hub's own: it is built from
the image's Python, which a new image may change, so a rebuilt or replaced server builds it again
(README, Course environments, has the costs measured both ways)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from renderers import render

# The kernel every server offers first; the browser tests and the docs name it.
KERNEL_NAME = "course"
KERNEL_DISPLAY_NAME = "Python 3 (course)"
# What every users' environment gets before the course's packages: the kernel itself.
BASE_REQUIREMENTS = Path(__file__).parent.parent / "hub" / "users-requirements.txt"
# A line of a downloaded requirements file must be one pinned requirement (or a comment).
PINNED_LINE = r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9._, -]+\])?[ ]*===?[ ]*[A-Za-z0-9.!+_-]+[ ]*(;.*)?$"


@dataclass(frozen=True)
class UsersEnvSpec:
    """Where the users' environment lives, what goes into it, and who may add to it."""

    root: str
    packages: tuple[str, ...]
    requirements_url: str | None = None
    python: str = "/usr/bin/python3"
    # Members of this group (the hub's admins) may install into it; participants may not.
    admin_group: str | None = None
    # False: built on an HPC system as the gateway's account (no sudo, no boot to wait for),
    # after its environment setup lines.
    on_hub_vm: bool = True
    setup: tuple[str, ...] = ()

    @property
    def base_requirements(self) -> tuple[str, ...]:
        lines = BASE_REQUIREMENTS.read_text().splitlines()
        return tuple(line for line in lines if line.strip() and not line.startswith("#"))

    @property
    def requirements(self) -> str:
        """The requirements file pip installs: the kernel, then the course's packages."""
        return "".join(f"{line}\n" for line in (*self.base_requirements, *self.packages))

    @property
    def env_id(self) -> str:
        digest = hashlib.sha256(self.requirements.encode())
        # What it is built from, too: another Python (a new setup line on an HPC system) builds anew.
        digest.update(f"\0{self.requirements_url or ''}\0{self.python}\0{chr(10).join(self.setup)}".encode())
        return digest.hexdigest()[:16]

    @property
    def jupyter_path(self) -> str:
        """Where servers find the kernel's spec (their JUPYTER_PATH)."""
        return f"{self.root}/share/jupyter"

    @property
    def kernel_dir(self) -> str:
        return f"{self.jupyter_path}/kernels/{KERNEL_NAME}"

    @property
    def current(self) -> str:
        """A link to the newest environment, for terminals' PATH and an admin's pip."""
        return f"{self.root}/current"

    def env_dir(self) -> str:
        return f"{self.root}/envs/{self.env_id}"

    def kernel_spec(self) -> str:
        spec = {
            "argv": [f"{self.env_dir()}/bin/python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": KERNEL_DISPLAY_NAME,
            "language": "python",
            "metadata": {"debugger": True},
        }
        return json.dumps(spec, indent=1) + "\n"


def render_users_env_script(spec: UsersEnvSpec, heredoc_end: str = "JSHUB_END_OF_FILE") -> str:
    for text in (spec.requirements, spec.kernel_spec()):
        if heredoc_end in text.splitlines():
            raise ValueError(f"a file of the users' environment holds the line {heredoc_end}")
    url, sha256 = None, None
    if spec.requirements_url:
        url, _, fragment = spec.requirements_url.partition("#")
        sha256 = fragment.removeprefix("sha256=")
    return render(
        "users-env.sh.j2",
        spec=spec,
        url=url,
        sha256=sha256,
        eof=heredoc_end,
        pinned_line=PINNED_LINE,
        kernel_name=KERNEL_NAME,
        sudo="sudo " if spec.on_hub_vm else "",
    )


# Ends the build script's here-document inside the hub's SSH command; the script never holds it.
SCRIPT_END = "JSHUB_END_OF_SCRIPT"


@dataclass(frozen=True)
class HpcLogin:
    """How the hub VM reaches the HPC login node as the gateway's account (BatchBridge's key)."""

    host: str
    port: int
    account: str
    key_file: str
    known_hosts_file: str


def render_hpc_users_env_script(spec: UsersEnvSpec, login: HpcLogin) -> str:
    """Run on the hub VM: send the build script to the HPC login node over the hub's SSH key,
    to run there as the gateway's account."""
    inner = render_users_env_script(spec)
    if SCRIPT_END in inner.splitlines():
        raise ValueError(f"the build script holds the line {SCRIPT_END}")
    return render("hpc-users-env.sh.j2", login=login, script=inner, eof=SCRIPT_END)
