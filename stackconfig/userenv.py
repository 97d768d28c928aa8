"""The `userEnvironment` section: the course's Python packages in the users' notebooks.

On the single hub they are installed into a users' environment of their own, apart from the
hub's (a change of packages must never touch the hub), and registered as the kernel every
new server offers first. Every requirement is pinned to one version, so that two deployments
of one stack file give the course the same packages, and a `make diff` of a package change
says exactly what changes."""

from __future__ import annotations

import re
from typing import Annotated

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from pydantic import AfterValidator, Field, field_validator

from stackconfig.base import ConfigModel

# A file of requirements on the web, pinned by its content: https://...#sha256=<64 hex digits>.
_PINNED_URL = re.compile(r"^https://[^\s#]+#sha256=[0-9a-f]{64}$")
_HPC_FOLDER = re.compile(r"^/[A-Za-z0-9_./-]+$")


def _pinned(value: str) -> str:
    """One requirement that installs exactly one version: `name==version` (extras and
    environment markers allowed), no URL, no range, no wildcard."""
    try:
        requirement = Requirement(value)
    except InvalidRequirement as exc:
        raise ValueError(
            f"not a pip requirement ({str(exc).splitlines()[0]}); write name==version, e.g. numpy==2.1.3"
        ) from None
    if requirement.url:
        raise ValueError(
            "a direct URL is not pinned to a version here; write name==version, e.g. numpy==2.1.3"
        )
    specs = list(requirement.specifier)
    if len(specs) != 1 or specs[0].operator not in ("==", "===") or specs[0].version.endswith(".*"):
        raise ValueError(
            f"not pinned to one version; write {requirement.name}==<version> (e.g. numpy==2.1.3): "
            "an unpinned package installs whatever is newest on the day the hub is built"
        )
    return value


def _pinned_url(value: str) -> str:
    if not _PINNED_URL.match(value):
        raise ValueError(
            "not an https URL pinned by its content: write https://...#sha256=<the file's 64 hex digits> "
            "(sha256sum of the file), so that a changed file is refused instead of installed"
        )
    return value


def _hpc_folder(value: str) -> str:
    if not _HPC_FOLDER.match(value) or "/../" in f"{value}/" or "/./" in f"{value}/":
        raise ValueError(
            "not an absolute folder on the HPC system (letters, digits, '_', '.', '-', '/'), e.g. "
            "/expanse/projects/gateway/jshub-users"
        )
    return value.rstrip("/")


PinnedRequirement = Annotated[str, AfterValidator(_pinned)]
PinnedUrl = Annotated[str, AfterValidator(_pinned_url)]
HpcFolder = Annotated[str, AfterValidator(_hpc_folder)]


class UserEnvironmentConfig(ConfigModel):
    """The course's packages, installed into the environment users' kernels run in."""

    packages: list[PinnedRequirement] = Field(
        default_factory=list,
        max_length=500,
        description='pip requirements, each pinned to one version (name==version), e.g. ["numpy==2.1.3", '
        '"pandas==2.2.3"]; installed from PyPI into the users\' environment.',
    )
    requirements_url: PinnedUrl | None = Field(
        default=None,
        description="A requirements file on the web installed after packages, pinned by its content: "
        "https://...#sha256=<hex>; the build refuses a file whose checksum differs or whose lines are "
        "not name==version.",
    )
    hpc_folder: HpcFolder | None = Field(
        default=None,
        description="hpc: the folder on the HPC system the environment is built in, over SSH as "
        "hpc.communityAccount (writable by it, readable by the notebook jobs), e.g. "
        "/expanse/projects/gateway/jshub-users.",
    )
    conda_packages: list[str] = Field(
        default_factory=list,
        description="Not built by this stack: leave it empty and list the packages' PyPI wheels in packages.",
    )

    @field_validator("packages")
    @classmethod
    def _one_version_each(cls, packages: list[str]) -> list[str]:
        seen: dict[str, str] = {}
        for value in packages:
            name = canonicalize_name(Requirement(value).name)
            if name in seen:
                raise ValueError(f"{value!r} and {seen[name]!r} name the same package; keep one")
            seen[name] = value
        return packages

    @field_validator("conda_packages")
    @classmethod
    def _no_conda(cls, packages: list[str]) -> list[str]:
        if packages:
            raise ValueError(
                "conda packages are not installed by this stack: the users' environment is a Python "
                "virtual environment built with pip (no conda on the hub VM); list the packages' PyPI "
                "wheels in userEnvironment.packages (name==version) instead"
            )
        return packages

    @property
    def requirements(self) -> tuple[str, ...]:
        """The pinned requirements, in the stack file's order."""
        return tuple(self.packages)
