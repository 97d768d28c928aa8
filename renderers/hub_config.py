"""jupyterhub_config.py for a hub VM."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from renderers import render
from stackconfig import AuthConfig, StackConfig
from stackconfig.hpc import HpcConfig
from stackconfig.model import WORKSHOP_USERNAME

ACCESS_IDP = "https://access-ci.org/idp"
# The hub's REST API port; in hpc direct mode compute nodes reach it (and only they may).
HUB_API_PORT = 8081


@dataclass(frozen=True)
class HubPaths:
    """Where things live on the hub VM. Tests point these at a scratch folder."""

    data_root: str = "/data"
    venv: str = "/opt/jupyterhub"
    config_dir: str = "/etc/jupyterhub"
    proxy_command: str = "/usr/local/bin/configurable-http-proxy"
    add_user_command: str = "/usr/local/sbin/jshub-add-user"
    run_dir: str = "/run/jupyterhub"

    @property
    def state_dir(self) -> str:
        return f"{self.data_root}/hub"

    @property
    def home_root(self) -> str:
        return f"{self.data_root}/home"

    @property
    def hpc_dir(self) -> str:
        """The hub's SSH key for the HPC login node and the pinned known_hosts (root only)."""
        return f"{self.config_dir}/hpc"


@dataclass(frozen=True)
class LocalSpawnerSpec:
    """Servers run on the hub VM as the users' own Unix accounts."""

    template: str = "spawners/local.py.j2"
    local_accounts: bool = True
    authenticator_prefix: str = "Local"


@dataclass(frozen=True)
class SlurmSpawnerSpec:
    """Servers run as SLURM jobs on an HPC system, submitted over SSH (hub/jshub_slurm.py)."""

    hpc: HpcConfig
    login_host: str
    login_port: int
    key_file: str
    known_hosts_file: str
    control_dir: str
    # The hub as compute nodes reach it: its API port (direct) or its public HTTPS URL.
    job_hub_url: str
    template: str = "spawners/slurm.py.j2"
    local_accounts: bool = False
    authenticator_prefix: str = ""

    @classmethod
    def from_config(cls, hpc: HpcConfig, hub_fqdn: str, paths: HubPaths) -> SlurmSpawnerSpec:
        if hpc.connectivity == "direct":
            job_hub_url = f"http://{hub_fqdn}:{HUB_API_PORT}/hub/"
        else:
            job_hub_url = f"https://{hub_fqdn}/hub/"
        return cls(
            hpc=hpc,
            login_host=hpc.login_host,
            login_port=hpc.login_port,
            key_file=f"{paths.hpc_dir}/id_hpc",
            known_hosts_file=f"{paths.hpc_dir}/known_hosts",
            control_dir=f"{paths.run_dir}/ssh",
            job_hub_url=job_hub_url,
        )

    @property
    def partitions(self) -> list[dict[str, Any]]:
        return [p.model_dump(mode="json") for p in self.hpc.partitions]

    @property
    def known_hosts(self) -> str:
        """The one host key the hub trusts for the login node."""
        host = self.login_host if self.login_port == 22 else f"[{self.login_host}]:{self.login_port}"
        return f"{host} {self.hpc.host_key}\n"


@dataclass(frozen=True)
class SwarmSpawnerSpec:
    """How the hub of the swarm scenario starts notebooks: one swarm service per user, on the
    workers, with the user's home from the NFS export bind-mounted. Paths are host paths on
    the swarm's nodes (the Docker daemon resolves them), not paths inside the hub container."""

    network: str
    images: tuple[str, ...]
    hub_image: str
    home_quota_gb: int
    cpu_reservation: float
    mem_reservation_gb: float
    home_quota_overrides: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    # Where every node sees the homes: the NFS mount on workers, a bind mount on the manager.
    node_home_root: str = "/srv/jshub/home"
    # The XFS volume on the manager and the script that makes a home with its quota there.
    export_root: str = "/export"
    home_command: str = "/usr/local/sbin/jshub-user-home"
    notebook_home: str = "/home/jovyan"
    notebook_user: str = "1000:100"
    notebook_constraint: str = "node.labels.jshub.notebooks==true"
    # Setting XFS project quotas needs the volume's block device: a privileged container.
    # Local-only off: kernels without disk quotas (DESIGN.md §4).
    enforce_quota: bool = True
    # Local-only: no IPVS in some kernels, so services resolve by DNS round robin there.
    endpoint_mode: str | None = None
    template: str = "spawners/swarm.py.j2"
    # Without Unix accounts on swarm: users exist only inside their containers.
    local_accounts: bool = False
    authenticator_prefix: str = ""

    @property
    def quota_overrides(self) -> dict[str, int]:
        return dict(sorted(self.home_quota_overrides.items()))

    @property
    def mem_reservation(self) -> str:
        return f"{int(self.mem_reservation_gb * 1024)}M"


SpawnerSpec = LocalSpawnerSpec | SlurmSpawnerSpec | SwarmSpawnerSpec


@dataclass(frozen=True)
class HubConfigSpec:
    public_url: str
    auth: AuthConfig
    concurrent_users: int
    user_memory_gb: float
    user_cpu: float
    idle_timeout_s: int
    paths: HubPaths = field(default_factory=HubPaths)
    bind_url: str = "http://127.0.0.1:8000"
    hub_bind_url: str = "http://127.0.0.1:8081"
    hub_connect_url: str | None = None
    spawner: SpawnerSpec = field(default_factory=LocalSpawnerSpec)

    @classmethod
    def from_config(cls, cfg: StackConfig, paths: HubPaths | None = None) -> HubConfigSpec:
        if cfg.scenario == "swarm":
            from renderers.swarm import swarm_hub_config_spec

            return swarm_hub_config_spec(cfg, paths)
        paths = paths or HubPaths()
        spawner: SpawnerSpec = LocalSpawnerSpec()
        hub_bind_url, hub_connect_url = "http://127.0.0.1:8081", None
        if cfg.scenario == "hpc" and cfg.hpc is not None:
            spawner = SlurmSpawnerSpec.from_config(cfg.hpc, cfg.hub_fqdn, paths)
            if cfg.hpc.connectivity == "direct":
                # Compute nodes call the API port directly (the security group admits only
                # them); the proxy keeps reaching the hub on loopback.
                hub_bind_url = f"http://0.0.0.0:{HUB_API_PORT}"
                hub_connect_url = f"http://127.0.0.1:{HUB_API_PORT}"
        return cls(
            spawner=spawner,
            hub_bind_url=hub_bind_url,
            hub_connect_url=hub_connect_url,
            public_url=cfg.hub_url,
            auth=cfg.auth,
            concurrent_users=cfg.concurrent_users,
            user_memory_gb=cfg.user_memory_gb,
            user_cpu=cfg.user_cpu,
            idle_timeout_s=cfg.idle_timeout_minutes * 60,
            paths=paths,
        )

    @property
    def mem_limit(self) -> str:
        return f"{int(self.user_memory_gb * 1024)}M"

    @property
    def cpu_limit(self) -> float:
        return float(self.user_cpu)

    @property
    def proxy_pid_file(self) -> str:
        # In a container the PID file must not outlive the container: a restarted hub would
        # take a stale PID for a running proxy.
        if isinstance(self.spawner, SwarmSpawnerSpec):
            return "/tmp/jupyterhub-proxy.pid"
        return f"{self.paths.state_dir}/jupyterhub-proxy.pid"

    @property
    def cull_every_s(self) -> int:
        return max(60, min(600, self.idle_timeout_s // 5))

    @property
    def cilogon_idps(self) -> dict[str, Any]:
        idps: dict[str, Any] = {}
        for entity in self.auth.allowed_idps:
            if entity == ACCESS_IDP:
                derivation = {
                    "username_claim": "eppn",
                    "action": "strip_idp_domain",
                    "domain": "access-ci.org",
                }
            else:
                derivation = {"username_claim": "eppn"}
            idps[entity] = {"username_derivation": derivation, "allow_all": self.auth.allow_all}
        return idps


def render_jupyterhub_config(spec: HubConfigSpec) -> str:
    return render("jupyterhub_config.py.j2", spec=spec, workshop_username=WORKSHOP_USERNAME)
