"""What a hub is made of, in the stack's terms: its paths on the VM, its spawner, its proxy, its
login. renderers/hub_settings.py makes JupyterHub's settings of it, renderers/hub_config.py the
files a hub VM gets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from catalog import FLAVORS
from renderers.user_env import UsersEnvSpec
from stackconfig import AuthConfig, StackConfig
from stackconfig.hpc import HpcConfig

# The hub's REST API port; in hpc direct mode compute nodes reach it (and only they may).
HUB_API_PORT = 8081
# configurable-http-proxy's REST API on a hub VM, where it runs as its own service.
PROXY_API_URL = "http://127.0.0.1:8001"


@dataclass(frozen=True)
class HubPaths:
    """Where things live on the hub VM. Tests point these at a scratch folder."""

    data_root: str = "/data"
    venv: str = "/opt/jupyterhub"
    config_dir: str = "/etc/jupyterhub"
    proxy_command: str = "/usr/local/bin/configurable-http-proxy"
    add_user_command: str = "/usr/local/sbin/jshub-add-user"
    # The shared course folder: its group (the hub's admins) and the script that keeps it.
    shared_access_command: str = "/usr/local/sbin/jshub-shared-access"
    shared_group: str = "jshub-admins"
    # Applies a user's home quota on the data volume before each server starts.
    home_quota_command: str = "/usr/local/sbin/jshub-home-quota"
    # Where the hub's own unit takes drop-ins from.
    systemd_dir: str = "/etc/systemd/system"
    run_dir: str = "/run/jupyterhub"
    caddyfile: str = "/etc/caddy/Caddyfile"
    # The users' environment (userEnvironment): on the root disk beside the hub's own venv.
    users_env_root: str = "/opt/jshub-users"

    @property
    def service_path(self) -> str:
        """The PATH of the hub's unit, and of users' servers after their own environment."""
        return f"{self.venv}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    @property
    def state_dir(self) -> str:
        return f"{self.data_root}/hub"

    @property
    def usage_record(self) -> str:
        """The hub's usage record (hub/jshub_usage.py), on the data volume beside its database."""
        return f"{self.state_dir}/usage.jsonl"

    @property
    def home_root(self) -> str:
        return f"{self.data_root}/home"

    @property
    def shared_root(self) -> str:
        """Course material: readable by every user, writable by the hub's admins. Beside the
        homes, so that backups and restores of the homes carry it (as on the swarm)."""
        return f"{self.home_root}/.shared"

    @property
    def caddy_dir(self) -> str:
        """Caddy's ACME account and certificates: on the data volume, so a rebuilt or
        replaced hub serves the certificate it already has instead of asking for a new one."""
        return f"{self.data_root}/caddy"

    @property
    def config_file(self) -> str:
        return f"{self.config_dir}/jupyterhub_config.py"

    @property
    def lab_settings_dir(self) -> str:
        """JupyterLab's application settings of the users' servers (overrides.json): part of
        the hub's config, so a change is written in place by hub-config."""
        return f"{self.config_dir}/jupyterlab"

    @property
    def hpc_dir(self) -> str:
        """The hub's SSH key for the HPC login node and the pinned known_hosts (root only)."""
        return f"{self.config_dir}/hpc"


@dataclass(frozen=True)
class LocalSpawnerSpec:
    """Servers run on the hub VM as the users' own Unix accounts, each in a systemd unit of its
    own (SystemdSpawner, as The Littlest JupyterHub runs them) whose MemoryMax and CPUQuota are
    the user's limits, with the home's quota applied before each start."""

    # GB of each home on the data volume; None: no quota (the home-quota script is not run).
    home_quota_gb: int | None = None
    # Local-only off: a machine without systemd as PID 1 runs servers as plain processes
    # (LocalProcessSpawner), where the memory and CPU limits are not enforced.
    systemd_units: bool = True
    # Seconds a server may take to start and to answer (JupyterHub's start_timeout, http_timeout).
    start_timeout_s: int = 120
    http_timeout_s: int = 60
    local_accounts: bool = True
    # The hub VM has a GPU (a g3 flavor), which every user's kernel shares (see GPU_SHARING_ENV).
    gpu: bool = False

    @property
    def unit_properties(self) -> dict[str, str]:
        """Properties each server's unit gets besides SystemdSpawner's own MemoryMax/CPUQuota."""
        # Swap would let a server run past MemoryMax instead of being stopped at it.
        return {"MemorySwapMax": "0"}


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
    local_accounts: bool = False

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
class SwarmProfileSpec:
    """One choice of the swarm hub's spawn page, the swarm's defaults filled in."""

    slug: str
    display_name: str
    description: str
    default: bool
    image: str
    cpu_limit: float
    memory_limit_gb: float
    cpu_reservation: float
    memory_reservation_gb: float

    def settings(self) -> dict[str, Any]:
        """What hub/jshub_swarm.py reads: JupyterHub's trait names, memory in its byte strings."""
        return {
            "slug": self.slug,
            "display_name": self.display_name,
            "description": self.description,
            "default": self.default,
            "image": self.image,
            "cpu_limit": self.cpu_limit,
            "mem_limit": f"{int(self.memory_limit_gb * 1024)}M",
            "cpu_guarantee": self.cpu_reservation,
            "mem_guarantee": f"{int(self.memory_reservation_gb * 1024)}M",
        }


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
    # The spawn page's profiles (swarm.profiles); empty: a choice of `images`, if more than one.
    profiles: tuple[SwarmProfileSpec, ...] = ()
    # Where every node sees the homes: the NFS mount on workers, a bind mount on the manager.
    node_home_root: str = "/srv/jshub/home"
    # The XFS volume on the manager and the script that makes a home with its quota there.
    export_root: str = "/export"
    home_command: str = "/usr/local/sbin/jshub-user-home"
    notebook_home: str = "/home/jovyan"
    # Notebooks run as the UID the home script gives each user, in this group.
    notebook_gid: int = 100
    # The lowest UID the home script hands out: anything below (root, the image's own users) is refused.
    notebook_min_uid: int = 10000
    notebook_port: int = 8888
    # Container labels of notebooks: the nodes' isolation agent recognises them by these.
    notebook_labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # How notebooks reach the hub's API: through the proxy (None: the hub's own connect URL).
    notebook_hub_url: str | None = None
    notebook_constraint: str = "node.labels.jshub.notebooks==true"
    # Setting XFS project quotas needs the volume's block device: a privileged container.
    # Local-only off: kernels without disk quotas (DESIGN.md §4).
    enforce_quota: bool = True
    # Local-only: files bind-mounted read-only into the home script's container (host path ->
    # container path), e.g. a recording stand-in for xfs_quota where the kernel has no quotas.
    home_stand_ins: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # Local-only: no IPVS in some kernels, so services resolve by DNS round robin there.
    endpoint_mode: str | None = None
    # The shared course folder: in the exported homes' tree (so every node has it through the
    # homes' NFS mount), mounted read-only into notebooks, read-write for admins, whose
    # notebooks also get this group (the folder's, mode 2775).
    shared_dir: str = ".shared"
    shared_mount: str = "/srv/shared"
    shared_admin_gid: int = 9999
    # Without Unix accounts on swarm: users exist only inside their containers.
    local_accounts: bool = False

    @property
    def quota_overrides(self) -> dict[str, int]:
        return dict(sorted(self.home_quota_overrides.items()))

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.notebook_labels)

    @property
    def shared_node_path(self) -> str:
        return f"{self.node_home_root}/{self.shared_dir}"

    @property
    def shared_export_path(self) -> str:
        return f"{self.export_root}/home/{self.shared_dir}"

    @property
    def mem_reservation(self) -> str:
        return f"{int(self.mem_reservation_gb * 1024)}M"


# Run by the swarm hub in a one-shot container on the manager (the volume bound at the same
# path) before each spawn: `sh -c SCRIPT sh ADMIN_GID SHARED HOME_LINK TARGET UID GID`. The
# folder is root's, the admins' group's, setgid; a user's home gets a `shared` link to where


SpawnerSpec = LocalSpawnerSpec | SlurmSpawnerSpec | SwarmSpawnerSpec


@dataclass(frozen=True)
class ProxySpec:
    """configurable-http-proxy as a service of its own, as Zero to JupyterHub runs it in its
    own pod: a hub restart leaves it, and its routes to running servers, in place. Its token
    comes from the environment (CONFIGPROXY_AUTH_TOKEN), in the proxy and in the hub."""

    command: str
    public_url: str
    api_url: str
    # Where the hub answers the proxy (its connect URL): the default route and error pages.
    hub_url: str

    def argv(self) -> list[str]:
        """The proxy's command line, as JupyterHub itself would start it (jupyterhub/proxy.py)."""
        public, api = urlsplit(self.public_url), urlsplit(self.api_url)
        return [
            self.command,
            "--ip",
            public.hostname or "",
            "--port",
            str(public.port),
            "--api-ip",
            api.hostname or "",
            "--api-port",
            str(api.port),
            "--default-target",
            self.hub_url,
            "--error-target",
            f"{self.hub_url}/hub/error",
        ]


def users_env_spec(cfg: StackConfig, paths: HubPaths) -> UsersEnvSpec | None:
    """The users' environment of a single or hpc hub with userEnvironment set."""
    env = cfg.user_environment
    if env is None:
        return None
    if cfg.scenario == "hpc" and cfg.hpc is not None and env.hpc_folder is not None:
        # Built on the HPC system as the gateway's account, from the Python its setup gives.
        return UsersEnvSpec(
            root=env.hpc_folder,
            packages=env.requirements,
            requirements_url=env.requirements_url,
            python="python3",
            on_hub_vm=False,
            setup=tuple(cfg.hpc.environment_setup),
        )
    if cfg.scenario != "single":
        return None
    return UsersEnvSpec(
        root=paths.users_env_root,
        packages=env.requirements,
        requirements_url=env.requirements_url,
        admin_group=paths.shared_group,
    )


@dataclass(frozen=True)
class ServerOptions:
    """How long servers live, how many a user may run, and who else may use them; and the
    JupyterHub settings a stack file adds (hubExtraConfig, checked in stackconfig/extras.py)."""

    # Seconds after its start the culler stops a server, idle or not (0: never).
    max_age_s: int = 0
    # The culler also deletes users that are idle and have no running server (never admins).
    cull_users: bool = False
    # Named servers a user may run besides the default one (0: none).
    named_servers_per_user: int = 0
    # JupyterHub 5 sharing: users may grant access to their servers.
    sharing: bool = False
    extra_settings: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def from_config(cls, cfg: StackConfig) -> ServerOptions:
        return cls(
            max_age_s=(cfg.max_server_age_hours or 0) * 3600,
            cull_users=cfg.cull_idle_users,
            named_servers_per_user=cfg.named_servers_per_user or 0,
            sharing=cfg.sharing,
            extra_settings=MappingProxyType({k: dict(v) for k, v in cfg.hub_extra_config.items()}),
        )

    @property
    def culler_flags(self) -> list[str]:
        """The idle culler's options beyond its timeout (jupyterhub-idle-culler's own names)."""
        flags = []
        if self.max_age_s:
            flags.append(f"--max-age={self.max_age_s}")
        if self.cull_users:
            flags += ["--cull-users=true", "--cull-admin-users=false"]
        if self.named_servers_per_user:
            # A culled named server is deleted, not kept stopped: it would count against the limit.
            flags.append("--remove-named-servers=true")
        return flags

    @property
    def culler_scopes(self) -> list[str]:
        scopes = ["list:users", "read:users:activity", "read:servers", "delete:servers"]
        # Deleting a user takes admin:users (jupyterhub-idle-culler's README).
        return [*scopes, "admin:users"] if self.cull_users else scopes

    @property
    def sharing_scopes(self) -> list[str]:
        """The user role with sharing, as JupyterHub's sharing docs give it: users manage the
        shares of their own servers and may look up the names they share with."""
        return ["self", "shares!user", "read:users:name", "read:groups:name"]


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
    # Set: the proxy runs as its own service with this REST API (hub VMs). None: the hub starts
    # the proxy itself (the swarm hub's container).
    proxy_api_url: str | None = None
    # The shared course folder (README, Course material).
    shared_folder: bool = False
    # How often the usage record samples the running servers (seconds).
    usage_sample_s: int = 300
    options: ServerOptions = field(default_factory=ServerOptions)
    # The course's packages (README, Course environments); None: kernels run in the hub's venv.
    users_env: UsersEnvSpec | None = None

    @classmethod
    def from_config(cls, cfg: StackConfig, paths: HubPaths | None = None) -> HubConfigSpec:
        if cfg.scenario == "swarm":
            from renderers.swarm import swarm_hub_config_spec

            return swarm_hub_config_spec(cfg, paths)
        paths = paths or HubPaths()
        timeout = cfg.server_start_timeout_seconds
        spawner: SpawnerSpec = LocalSpawnerSpec(
            gpu=cfg.scenario == "single" and FLAVORS[cfg.hub_flavor].gpu,
            home_quota_gb=cfg.single_home_quota_gb,
            start_timeout_s=timeout or LocalSpawnerSpec.start_timeout_s,
            http_timeout_s=timeout or LocalSpawnerSpec.http_timeout_s,
        )
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
            proxy_api_url=PROXY_API_URL,
            shared_folder=cfg.shared_folder_on,
            options=ServerOptions.from_config(cfg),
            users_env=users_env_spec(cfg, paths),
        )

    @property
    def proxy(self) -> ProxySpec | None:
        if self.proxy_api_url is None:
            return None
        return ProxySpec(
            command=self.paths.proxy_command,
            public_url=self.bind_url,
            api_url=self.proxy_api_url,
            hub_url=self.hub_connect_url or self.hub_bind_url,
        )

    @property
    def home_quotas(self) -> bool:
        """Whether users' homes on the hub's data volume have quotas (the single hub)."""
        return isinstance(self.spawner, LocalSpawnerSpec) and bool(self.spawner.home_quota_gb)

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
