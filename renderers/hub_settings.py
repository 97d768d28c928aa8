"""JupyterHub's settings of a hub, as data: `{Class: {trait: value}}`, JSON-serialisable. The
VM and swarm hubs load them with the static hub/jupyterhub_config.py from a JSON file beside it;
the k8s release puts the login's part into the chart's `hub.config`. Secrets are never in
them: a value `{"$env": NAME}` names the environment variable the hub reads (hub/jshub_settings.py
resolves these markers, and the others: `$import`, `$call`, `$sys`, `$if_env`)."""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from typing import Any

from renderers.hub_spec import (
    HubConfigSpec,
    HubPaths,
    LocalSpawnerSpec,
    ServerOptions,
    SlurmSpawnerSpec,
    SwarmSpawnerSpec,
)
from renderers.user_env import KERNEL_NAME, UsersEnvSpec
from stackconfig import AuthConfig, hub_traits
from stackconfig.extras import deep_merge
from stackconfig.model import OAUTH_TYPES, WORKSHOP_USERNAME

Settings = dict[str, dict[str, Any]]

ACCESS_IDP = "https://access-ci.org/idp"

# The file beside jupyterhub_config.py that holds the settings.
SETTINGS_FILE = "jupyterhub_settings.json"

# Native sign-up: the passwords participants may choose, and how many wrong ones lock a name.
MINIMUM_PASSWORD_LENGTH = 8
ALLOWED_FAILED_LOGINS = 10

# The authenticator of each login type: without and with Unix accounts for users.
AUTHENTICATORS: dict[str, tuple[str, str]] = {
    "github": (
        "oauthenticator.github.GitHubOAuthenticator",
        "oauthenticator.github.LocalGitHubOAuthenticator",
    ),
    "cilogon": (
        "oauthenticator.cilogon.CILogonOAuthenticator",
        "oauthenticator.cilogon.LocalCILogonOAuthenticator",
    ),
    "shared-password": ("shared-password", "jshub_accounts.LocalSharedPasswordAuthenticator"),
    "native": ("native", "jshub_accounts.LocalNativeAuthenticator"),
}


def env(name: str, **default: Any) -> dict[str, Any]:
    """The marker of a value the hub reads from its environment (`default=`: when unset)."""
    return {"$env": name, **default}


def call(factory: str, **kwargs: Any) -> dict[str, Any]:
    """The marker of what a hub module's factory returns for these arguments."""
    return {"$call": factory, "kwargs": kwargs}


def if_env(name: str, value: Any) -> dict[str, Any]:
    """The marker of a list item the hub keeps only when its environment has `name`."""
    return {"$if_env": name, "value": value}


def cilogon_idps(auth: AuthConfig) -> dict[str, Any]:
    idps: dict[str, Any] = {}
    for entity in auth.allowed_idps:
        if entity == ACCESS_IDP:
            derivation = {"username_claim": "eppn", "action": "strip_idp_domain", "domain": "access-ci.org"}
        else:
            derivation = {"username_claim": "eppn"}
        idps[entity] = {"username_derivation": derivation, "allow_all": auth.allow_all}
    return idps


def login_announcement_html(text: str) -> str:
    """The announcement as the login page shows it: JupyterHub's templates insert
    `announcement_login` unescaped, so the plain text is escaped here, its line breaks kept."""
    return "<br>".join(html.escape(line) for line in text.splitlines())


def auth_settings(auth: AuthConfig, public_url: str, accounts: HubPaths | None = None) -> Settings:
    """Who may log in, and how. `accounts`: each user is a Unix account on the hub VM, made by
    its add-user command, with a home under its home root."""
    settings: Settings = {
        "JupyterHub": {"authenticator_class": AUTHENTICATORS[auth.type][accounts is not None]},
        "Authenticator": {
            "admin_users": sorted(auth.admins),
            "allowed_users": sorted(auth.allowed_users),
            # Approval is the gate for native sign-up: the authenticator refuses whoever an
            # admin has not approved; allowAll there means sign-up without approval.
            "allow_all": True if auth.type == "native" else auth.allow_all,
            # Users an admin adds (in the admin page, or through the jshub-admin API for a
            # workshop's roster: python -m jshub.users) may log in too.
            "allow_existing_users": True,
        },
    }
    if auth.login_announcement:
        # What participants read above the login form (login.html's announcement_login block).
        settings["JupyterHub"]["template_vars"] = {
            "announcement_login": login_announcement_html(auth.login_announcement)
        }
    callback = f"{public_url}/hub/oauth_callback"
    if auth.type == "github":
        github: dict[str, Any] = {"client_id": auth.client_id, "oauth_callback_url": callback}
        if auth.allowed_organizations:
            github["allowed_organizations"] = sorted(auth.allowed_organizations)
            github["scope"] = ["read:org"]
        settings["GitHubOAuthenticator"] = github
    elif auth.type == "cilogon":
        settings["CILogonOAuthenticator"] = {
            "client_id": auth.client_id,
            "oauth_callback_url": callback,
            "idps": cilogon_idps(auth),
        }
    elif auth.type == "shared-password":
        settings["SharedPasswordAuthenticator"] = {
            "user_password": env("WORKSHOP_PASSWORD"),
            "admin_password": env("WORKSHOP_ADMIN_PASSWORD", default=None),
        }
    else:
        # Participants sign up at /hub/signup; an admin approves them at /hub/authorize (admins
        # and allowed users are approved as they sign up).
        settings["NativeAuthenticator"] = {
            "open_signup": auth.allow_all,
            "minimum_password_length": MINIMUM_PASSWORD_LENGTH,
            "check_common_password": True,
            "allowed_failed_logins": ALLOWED_FAILED_LOGINS,
        }
    if auth.type in OAUTH_TYPES:
        settings["OAuthenticator"] = {"client_secret": env("OAUTH_CLIENT_SECRET")}
    else:
        # Participants choose their names: names that make valid Unix accounts, nothing else.
        settings["Authenticator"]["username_pattern"] = WORKSHOP_USERNAME
    if accounts is not None:
        # Each user is a Unix account with a private home on the data volume; the add-user
        # helper keeps a returning user's UID so files stay theirs after the VM is rebuilt.
        settings["LocalAuthenticator"] = {
            "create_system_users": True,
            "add_user_cmd": [accounts.add_user_command],
        }
        settings["Authenticator"]["post_auth_hook"] = call(
            "jshub_accounts.refuse_system_accounts", home_root=accounts.home_root
        )
    return settings


def _merge(into: Settings, more: Settings) -> Settings:
    for cls, traits in more.items():
        into.setdefault(cls, {}).update(traits)
    return into


def _services(spec: HubConfigSpec) -> Settings:
    metrics = "jshub-metrics"
    return {
        "JupyterHub": {
            "services": [
                {
                    "name": "idle-culler",
                    "command": [
                        {"$sys": "executable"},
                        "-m",
                        "jupyterhub_idle_culler",
                        f"--timeout={spec.idle_timeout_s}",
                        f"--cull-every={spec.cull_every_s}",
                        *spec.options.culler_flags,
                    ],
                },
                # For operators' scripts (python -m jshub.users, jshub.smoke); its token is a
                # stack output marked secret. admin: a roster may name admins, and JupyterHub
                # lets only admin callers grant that (no scope does); the tokens scope below is
                # as strong already.
                {"name": "jshub-admin", "api_token": env("JSHUB_ADMIN_TOKEN"), "admin": True},
                # Who ran a server when: samples of the running servers on the data volume,
                # which `python -m jshub.usage` sums into server-hours and SUs.
                {
                    "name": "usage-record",
                    "command": [
                        {"$sys": "executable"},
                        "-m",
                        "jshub_usage",
                        f"--record={spec.paths.usage_record}",
                        f"--every={spec.usage_sample_s}",
                    ],
                    "cwd": spec.paths.config_dir,
                },
                # With monitoring: Prometheus scrapes /hub/metrics with this service's token,
                # which can read nothing else.
                if_env("JSHUB_METRICS_TOKEN", {"name": metrics, "api_token": env("JSHUB_METRICS_TOKEN")}),
            ],
            "load_roles": [
                {"name": "idle-culler", "scopes": spec.options.culler_scopes, "services": ["idle-culler"]},
                {
                    "name": "usage-record",
                    "scopes": ["list:users", "read:servers"],
                    "services": ["usage-record"],
                },
                {
                    "name": "jshub-admin",
                    "scopes": ["admin:users", "admin:servers", "tokens", "access:servers"],
                    "services": ["jshub-admin"],
                },
                if_env(
                    "JSHUB_METRICS_TOKEN",
                    {"name": metrics, "scopes": ["read:metrics"], "services": [metrics]},
                ),
                *_user_role(spec.options),
            ],
        }
    }


# A single hub on a GPU flavor: every user's server sees the VM's one GPU (a vGPU slice or a
# whole A100; the driver's /dev/nvidia* devices are open to all, and SystemdSpawner hides no
# device). The GPU runs their kernels in turn, and its memory goes to whoever allocates it
# first, with no per-user share. PyTorch and CuPy allocate as they go; TensorFlow maps nearly
# all of the GPU's memory at its first use and JAX 75 % of it, which would lock every other
# user out: these make them allocate as they go too.
GPU_SHARING_ENV = {"TF_FORCE_GPU_ALLOW_GROWTH": "true", "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}


def _user_role(options: ServerOptions) -> list[dict[str, Any]]:
    """JupyterHub's default user role, with sharing what JupyterHub 5's sharing needs."""
    if not options.sharing:
        return []
    return [{"name": "user", "scopes": options.sharing_scopes}]


def server_settings(options: ServerOptions) -> Settings:
    """Named servers: what JupyterHub itself needs (the culler's part is in its flags)."""
    if not options.named_servers_per_user:
        return {}
    return {
        "JupyterHub": {
            "allow_named_servers": True,
            "named_server_limit_per_user": options.named_servers_per_user,
        }
    }


def apply_extra_settings(settings: Settings, extra: Mapping[str, Mapping[str, Any]]) -> Settings:
    """The stack file's hubExtraConfig over the stack's settings: a map merges into the stack's
    map (its keys win), anything else replaces the stack's value. A value for a class also goes
    to each more specific class where the stack set that trait, which JupyterHub would otherwise
    prefer (`Spawner.environment` reaches `SwarmSpawner.environment`)."""
    for cls, traits in extra.items():
        for trait, value in traits.items():
            for target in (cls, *hub_traits.SUBCLASSES.get(cls, ())):
                if target == cls or trait in settings.get(target, {}):
                    section = settings.setdefault(target, {})
                    section[trait] = deep_merge(section.get(trait), value)
    return settings


def _local_spawner(spec: HubConfigSpec, s: LocalSpawnerSpec) -> Settings:
    settings: Settings = {}
    if s.systemd_units:
        # Each user's server runs in a transient systemd unit of its own
        # (jupyter-<name>-singleuser), as the user's Unix account: MemoryMax and CPUQuota are
        # the limits, so a notebook that allocates past its memory is killed by the kernel inside
        # that unit while the hub and other users' servers go on. The units outlive hub restarts.
        settings["JupyterHub"] = {"spawner_class": "systemdspawner.SystemdSpawner"}
        settings["SystemdSpawner"] = {
            "unit_extra_properties": s.unit_properties,
            "isolate_tmp": True,
            "default_shell": "/bin/bash",
        }
    else:
        # No systemd here: plain processes, whose memory and CPU limits nothing enforces.
        settings["JupyterHub"] = {"spawner_class": "jupyterhub.spawner.LocalProcessSpawner"}
    spawner: dict[str, Any] = {
        "cmd": [f"{spec.paths.venv}/bin/jupyterhub-singleuser"],
        "default_url": "/lab",
        "notebook_dir": "~",
        "mem_limit": spec.mem_limit,
        "cpu_limit": spec.cpu_limit,
        "start_timeout": s.start_timeout_s,
        "http_timeout": s.http_timeout_s,
        # JupyterLab's defaults for every user from the hub's config folder (overrides.json,
        # renderers/hub_config.py): the news prompt is off. This replaces the settings folder
        # inside the servers' environment (share/jupyter/lab/settings), which nothing the hub
        # installs fills.
        "args": [f"--LabApp.app_settings_dir={spec.paths.lab_settings_dir}"],
    }
    if s.gpu:
        spawner["environment"] = dict(GPU_SHARING_ENV)
    users_env = spec.users_env
    if users_env is not None:
        # The course's packages: servers find the course kernel's spec under JUPYTER_PATH and
        # start it unless a notebook names another; terminals' python and pip are the users'
        # environment's. Only paths here, never the packages: a change of packages is the
        # users-env step's alone and leaves the hub's settings (and the hub) as they are.
        spawner["environment"] = {
            **spawner.get("environment", {}),
            "JUPYTER_PATH": users_env.jupyter_path,
            "PATH": f"{users_env.current}/bin:{spec.paths.service_path}",
        }
        spawner["args"] = [*spawner["args"], f"--MultiKernelManager.default_kernel_name={KERNEL_NAME}"]
    steps: dict[str, Any] = {}
    if s.home_quota_gb:
        steps |= {"home_quota_command": spec.paths.home_quota_command, "home_quota_gb": s.home_quota_gb}
    if spec.shared_folder:
        steps["shared_access_command"] = spec.paths.shared_access_command
    if steps:
        spawner["pre_spawn_hook"] = call("jshub_accounts.prepare_home", **steps)
    settings["Spawner"] = spawner
    return settings


def _slurm_spawner(s: SlurmSpawnerSpec, users_env: UsersEnvSpec | None = None) -> Settings:
    hpc = s.hpc
    return {
        # Notebooks run as single-node SLURM jobs on the login node's cluster: the hub runs
        # sbatch, squeue, scontrol and scancel there over SSH, with its host key pinned.
        "JupyterHub": {
            "spawner_class": "jshub_slurm.JetstreamSlurmSpawner",
            # A job may wait in the queue: send users to the progress page at once.
            "tornado_settings": {"slow_spawn_timeout": 0},
        },
        "JetstreamSlurmSpawner": {
            "login_host": s.login_host,
            "login_port": s.login_port,
            "ssh_key_file": s.key_file,
            "known_hosts_file": s.known_hosts_file,
            "control_dir": s.control_dir,
            "account_mode": hpc.account_mode,
            "username_pattern": hpc.username_pattern,
            "community_account": hpc.community_account or "",
            "slurm_account": hpc.slurm_account or "",
            # What users may ask for; the options form offers these and start() refuses more.
            "partitions": s.partitions,
            "default_cores": hpc.default_cores,
            "default_memory_gb": hpc.default_memory_gb,
            "default_wall_hours": hpc.default_wall_hours,
            "environment_setup": list(hpc.environment_setup),
            "sbatch_options": list(hpc.sbatch_options),
            "connectivity": hpc.connectivity,
            "job_hub_url": s.job_hub_url,
            "queue_timeout": hpc.queue_timeout_minutes * 60,
            "start_timeout": hpc.queue_timeout_minutes * 60 + 180,
            "http_timeout": 120,
            "startup_poll_interval": 1.0,
            # How soon the hub notices a job that ended (cancelled, failed, out of wall time):
            # one squeue per running server this often, over the shared SSH connection.
            "poll_interval": 15,
        },
        "Spawner": {"cmd": [hpc.singleuser_command], "default_url": "/lab", **_course_kernel(users_env)},
    }


def _course_kernel(users_env: UsersEnvSpec | None) -> dict[str, Any]:
    """A notebook job finds the course kernel's spec in the folder on the HPC system and starts
    it by default. Only JUPYTER_PATH travels into the job: its PATH is the site's setup's."""
    if users_env is None:
        return {}
    return {
        "environment": {"JUPYTER_PATH": users_env.jupyter_path},
        "args": [f"--MultiKernelManager.default_kernel_name={KERNEL_NAME}"],
    }


def _swarm_spawner(spec: HubConfigSpec, s: SwarmSpawnerSpec) -> Settings:
    volumes: dict[str, Any] = {f"{s.node_home_root}/{{raw_username}}": s.notebook_home}
    shared: dict[str, Any] | None = None
    if spec.shared_folder:
        # Course material: read-only in every notebook; admins' notebooks get it read-write
        # (the pre-spawn hook, at each start).
        volumes[s.shared_node_path] = {"bind": s.shared_mount, "mode": "ro"}
        shared = {
            "admin_gid": s.shared_admin_gid,
            "export_path": s.shared_export_path,
            "node_path": s.shared_node_path,
            "mount": s.shared_mount,
        }
    swarm: dict[str, Any] = {
        "network_name": s.network,
        "use_internal_ip": True,
        "port": s.notebook_port,
        "image": s.images[0],
        "allowed_images": list(s.images),
        "cmd": ["jupyterhub-singleuser"],
        "notebook_dir": s.notebook_home,
        "volumes": volumes,
        # The user (a UID of the user's own) is added before each spawn, from the home script.
        "extra_container_spec": {"labels": s.labels},
        "extra_placement_spec": {"constraints": [s.notebook_constraint]},
        # A UID without a passwd entry in the image would get / as its home.
        "environment": {"HOME": s.notebook_home},
    }
    profiles = [p.settings() for p in s.profiles]
    if profiles:
        # The spawn page lists the profiles; the pre-spawn hook gives the chosen one's image
        # (checked against allowed_images by the spawner) and its limits to the service.
        swarm["options_form"] = call("jshub_swarm.profile_form", profiles=profiles)
        swarm["options_from_form"] = call("jshub_swarm.profile_options", profiles=profiles)
    if s.endpoint_mode:
        swarm["extra_endpoint_spec"] = {"mode": s.endpoint_mode}
    if s.notebook_hub_url:
        # Notebooks may open connections to the hub's proxy port only: they reach the API there.
        swarm["hub_connect_url"] = s.notebook_hub_url
    return {
        # Each user's server is a swarm service on a worker; the hub finds them after a restart.
        "JupyterHub": {"spawner_class": "dockerspawner.SwarmSpawner"},
        "SwarmSpawner": swarm,
        "Spawner": {
            "default_url": "/lab",
            "mem_limit": spec.mem_limit,
            "mem_guarantee": s.mem_reservation,
            "cpu_limit": spec.cpu_limit,
            "cpu_guarantee": float(s.cpu_reservation),
            # Pulling an image onto a worker can take minutes on first use.
            "start_timeout": 600,
            "http_timeout": 120,
            "pre_spawn_hook": call(
                "jshub_swarm.prepare_home",
                hub_image=s.hub_image,
                home_command=s.home_command,
                export_root=s.export_root,
                home_quota_gb=s.home_quota_gb,
                quota_overrides=s.quota_overrides,
                enforce_quota=s.enforce_quota,
                notebook_gid=s.notebook_gid,
                notebook_min_uid=s.notebook_min_uid,
                home_stand_ins=dict(s.home_stand_ins),
                shared=shared,
                **({"profiles": profiles} if profiles else {}),
            ),
        },
    }


def hub_settings(spec: HubConfigSpec) -> Settings:
    """Everything JupyterHub is told on a VM or swarm hub."""
    hub: dict[str, Any] = {
        # The reverse proxy terminates TLS for the public URL and forwards to the proxy here.
        "bind_url": spec.bind_url,
        "hub_bind_url": spec.hub_bind_url,
        # Hub state lives on the protected data volume, so it survives a rebuilt VM.
        "db_url": f"sqlite:///{spec.paths.state_dir}/jupyterhub.sqlite",
        "cookie_secret_file": f"{spec.paths.state_dir}/jupyterhub_cookie_secret",
        # A newer JupyterHub upgrades the database schema on start; for sqlite it first copies
        # the database to jupyterhub.sqlite.<timestamp> beside it.
        "upgrade_db": True,
        # The hub keeps running servers when it restarts, and finds them again on start.
        "cleanup_servers": False,
        # Sized for this many concurrent users: more would overcommit the VM.
        "active_server_limit": spec.concurrent_users,
    }
    if spec.hub_connect_url:
        hub["hub_connect_url"] = spec.hub_connect_url
    proxy = spec.proxy
    if proxy is not None:
        # configurable-http-proxy runs as its own service: a hub restart (a config change)
        # leaves it and its routes to running servers in place. Its token is
        # CONFIGPROXY_AUTH_TOKEN from the environment.
        chp: dict[str, Any] = {"should_start": False, "api_url": proxy.api_url}
    else:
        chp = {"pid_file": spec.proxy_pid_file, "command": [spec.paths.proxy_command]}
    settings: Settings = {"JupyterHub": hub, "ConfigurableHTTPProxy": chp}
    accounts = spec.paths if spec.spawner.local_accounts else None
    _merge(settings, auth_settings(spec.auth, spec.public_url, accounts))
    _merge(settings, _services(spec))
    if isinstance(spec.spawner, LocalSpawnerSpec):
        _merge(settings, _local_spawner(spec, spec.spawner))
    elif isinstance(spec.spawner, SlurmSpawnerSpec):
        _merge(settings, _slurm_spawner(spec.spawner, spec.users_env))
    else:
        _merge(settings, _swarm_spawner(spec, spec.spawner))
    _merge(settings, server_settings(spec.options))
    # Last: the stack file's own settings (stackconfig refuses the traits the stack owns).
    return apply_extra_settings(settings, spec.options.extra_settings)


def settings_json(settings: Settings) -> str:
    """The settings file: one value a line, so that a change of the stack's config reads as a
    change of a few lines. Keys keep their order, which can mean something (the swarm's
    volumes are mounted in it)."""
    return json.dumps(settings, indent=2) + "\n"
