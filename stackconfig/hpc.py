"""The `hpc` section: how the hub reaches an HPC login node and what users may ask SLURM for."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from stackconfig.base import ConfigModel

_HOST = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
_SLURM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_UNIX_NAME = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")
HOST_KEY_TYPES = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
)
# A sample hub username the pattern is tried with, so a pattern that cannot make a Unix name
# is refused at plan time rather than at a user's first spawn.
SAMPLE_USER = "jdoe"


def _host(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    if not _HOST.match(value):
        raise ValueError("not a host name or IP address, e.g. login.expanse.sdsc.edu")
    return value.lower()


def _slurm_name(value: str) -> str:
    if not _SLURM_NAME.match(value):
        raise ValueError("not a SLURM name: letters, digits, '_', '.', '-', at most 64 characters")
    return value


def unix_name(value: str) -> str:
    if not _UNIX_NAME.match(value):
        raise ValueError("not a Unix account name: lowercase letters, digits, '_', '.', '-', at most 32")
    return value


def _host_key(value: str) -> str:
    """`<type> <base64>` as in a host's /etc/ssh/ssh_host_*_key.pub or `ssh-keyscan` output
    (a leading host name and a trailing comment are dropped)."""
    parts = value.split()
    if parts and parts[0] not in HOST_KEY_TYPES and len(parts) >= 3:
        parts = parts[1:]  # `ssh-keyscan` prints the host name first
    if len(parts) < 2 or parts[0] not in HOST_KEY_TYPES:
        raise ValueError(
            f"not an SSH host public key: write '<type> <base64>' with a type of {', '.join(HOST_KEY_TYPES)} "
            "(on the login node: cat /etc/ssh/ssh_host_ed25519_key.pub)"
        )
    kind, blob = parts[0], parts[1]
    try:
        raw = base64.b64decode(blob, validate=True)
    except binascii.Error:
        raise ValueError("the key's second field is not base64") from None
    length = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else -1
    if raw[4 : 4 + length].decode(errors="replace") != kind:
        raise ValueError(f"the key data does not hold a {kind} key (copied from another line?)")
    return f"{kind} {blob}"


def _sbatch_option(value: str) -> str:
    if not value.startswith("--") or any(c in value for c in "\n\r`$;|&<>\\'\""):
        raise ValueError("an sbatch option such as --qos=normal: starts with --, no shell characters")
    return value


def _setup_line(value: str) -> str:
    if "\n" in value or "\r" in value:
        raise ValueError("one shell command per list entry")
    return value


Host = Annotated[str, AfterValidator(_host)]
SlurmName = Annotated[str, AfterValidator(_slurm_name)]
UnixName = Annotated[str, AfterValidator(unix_name)]
HostKey = Annotated[str, AfterValidator(_host_key)]
SbatchOption = Annotated[str, AfterValidator(_sbatch_option)]
SetupLine = Annotated[str, AfterValidator(_setup_line)]


class PartitionLimits(ConfigModel):
    """A SLURM partition users may choose, with the most a notebook job may ask of it."""

    name: SlurmName = Field(description="SLURM partition name, e.g. shared.")
    max_cores: int = Field(ge=1, le=1024, description="Most CPU cores one notebook job may request.")
    max_memory_gb: float = Field(gt=0, le=8192, description="Most memory one notebook job may request (GB).")
    max_gpus: int = Field(default=0, ge=0, le=16, description="Most GPUs one notebook job may request.")
    max_wall_hours: float = Field(
        gt=0, le=168, description="Longest wall time one notebook job may request (hours)."
    )
    gpu_gres: str = Field(
        default="gpu",
        pattern=r"^[a-z0-9_]+(:[A-Za-z0-9_.-]+)?$",
        description="GRES name GPUs are requested as.",
    )


class HpcConfig(ConfigModel):
    """Where notebooks run: single-node SLURM jobs submitted over SSH to an HPC login node."""

    login_host: Host = Field(
        description="HPC login node the hub submits jobs through, e.g. login.expanse.sdsc.edu."
    )
    login_port: int = Field(default=22, ge=1, le=65535, description="SSH port of the login node.")
    host_key: HostKey = Field(
        description="The login node's SSH host public key, pinned ('ssh-ed25519 AAAA...'); never trusted on first use."
    )
    account_mode: Literal["per-user", "community"] = Field(
        default="per-user",
        description="per-user: each hub user runs jobs as their own HPC account; community: all as one gateway account.",
    )
    username_pattern: str = Field(
        default="{username}",
        description="per-user: the HPC account of hub user {username}, e.g. '{username}' or 'gw_{username}'.",
    )
    community_account: UnixName | None = Field(
        default=None, description="community: the gateway's HPC account every job runs as."
    )
    slurm_account: SlurmName | None = Field(
        default=None, description="SLURM account (allocation) charged for the jobs (sbatch --account)."
    )
    partitions: list[PartitionLimits] = Field(
        min_length=1,
        description="Partitions users may choose, each with its limits; the first is the default.",
    )
    default_cores: int = Field(
        default=1, ge=1, description="Cores a job requests unless the user asks otherwise."
    )
    default_memory_gb: float = Field(default=2.0, gt=0, description="Memory a job requests by default (GB).")
    default_wall_hours: float = Field(
        default=1.0, gt=0, description="Wall time a job requests by default (hours)."
    )
    environment_setup: list[SetupLine] = Field(
        default_factory=list,
        description="Shell lines the batch script runs before the notebook, e.g. 'module load anaconda3'.",
    )
    singleuser_command: str = Field(
        default="jupyterhub-singleuser",
        pattern=r"^[A-Za-z0-9_./-]+$",
        description="The notebook server command in that environment (needs batchspawner installed beside it).",
    )
    sbatch_options: list[SbatchOption] = Field(
        default_factory=list, description="Extra sbatch options for every job, e.g. '--qos=normal'."
    )
    connectivity: Literal["direct", "ssh-tunnel"] = Field(
        default="ssh-tunnel",
        description="direct: hub and compute nodes reach each other; ssh-tunnel: the hub reaches notebooks through the login node.",
    )
    compute_cidrs: list[str] = Field(
        default_factory=list,
        description="direct: networks the compute nodes' traffic comes from, admitted to the hub API port.",
    )
    queue_timeout_minutes: int = Field(
        default=10,
        ge=1,
        le=1440,
        description="Give up (and cancel the job) if it has not started after this long.",
    )

    def login_user_for(self, username: str) -> str:
        if self.account_mode == "community":
            assert self.community_account
            return self.community_account
        return self.username_pattern.replace("{username}", username)
