"""Values for the Zero to JupyterHub chart, built from the stack configuration (never
hand-written YAML). The tests deep-merge them over the chart's values.yaml and validate the
result against its values.schema.yaml, as Helm does."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from renderers import nvidia
from renderers.hub_config import HUB_DIR, HubConfigSpec, jupyterlab_overrides_json
from renderers.hub_settings import apply_extra_settings, auth_settings, call
from renderers.hub_spec import ServerOptions
from renderers.rook import BLOCK_CLASS
from stackconfig import StackConfig, sizing
from stackconfig.extras import deep_merge
from stackconfig.model import OAUTH_TYPES, K8sConfig, ProfileConfig

CHART = "jupyterhub"
CHART_VERSION = "4.4.0"
# The chart vendored in charts/ (charts/README.md): installed from the project folder, no chart
# repository at deploy time; its Chart.yaml version is CHART_VERSION (tests/test_charts.py).
CHART_PATH = f"./charts/{CHART}"
NAMESPACE = "jupyterhub"
OAUTH_SECRET = "hub-oauth"
OAUTH_SECRET_KEY = "client-secret"
# The stack's own hub secrets (the admin service's token, a workshop's passwords), read by
# the hub from its environment as on the VM hubs, never written into the Helm values.
HUB_SECRETS = "hub-jshub"
ADMIN_TOKEN_KEY = "admin-token"
WORKSHOP_PASSWORD_KEY = "workshop-password"
WORKSHOP_ADMIN_PASSWORD_KEY = "workshop-admin-password"
ADMIN_SERVICE = "jshub-admin"
# As on the VM hubs: what operators' scripts (python -m jshub.users, jshub.smoke) need.
ADMIN_SCOPES = ("admin:users", "admin:servers", "tokens", "access:servers")
# With monitoring (k8s): the read-only metrics service Prometheus scrapes with, and Grafana as a
# service the proxy routes to and an OAuth client of the hub; their tokens in their own Secret.
MONITORING_SECRET = "hub-jshub-monitoring"
METRICS_SERVICE = "jshub-metrics"
METRICS_TOKEN_KEY = "metrics-token"
GRAFANA_SERVICE = "grafana"
GRAFANA_TOKEN_KEY = "grafana-token"
MONITORING_NAMESPACE = "monitoring"
# The kube-prometheus-stack release `monitoring` names Grafana's Service so; its pods listen on 3000.
GRAFANA_URL = f"http://monitoring-grafana.{MONITORING_NAMESPACE}.svc:80"
GRAFANA_POD_PORT = 3000
SHARED_DATA_CLAIM = "shared-data"
SHARED_DATA_MOUNT = "/home/jovyan/shared"
# Attaching a new Ceph volume and pulling a large image can take minutes on a fresh node.
START_TIMEOUT_S = 900
# JupyterLab's application settings in the jupyter/docker-stacks images (their environment is
# /opt/conda): the users' defaults, the news prompt off (renderers/hub_config.py).
LAB_OVERRIDES_PATH = "/opt/conda/share/jupyter/lab/settings/overrides.json"


def _gb(value: float) -> str:
    """Kubernetes quantity for a size in GB, in mebibytes so fractions stay exact."""
    return f"{round(value * 1024)}Mi"


def _split_image(image: str) -> dict[str, str]:
    name, _, tag = image.rpartition(":")
    return {"name": name, "tag": tag}


@dataclass(frozen=True)
class Z2JHSpec:
    fqdn: str
    lets_encrypt_email: str
    hub: HubConfigSpec
    k8s: K8sConfig
    concurrent_users: int
    placeholders: int
    # k3s labels the workers `hub.jupyter.org/node-purpose=user` and keeps users there.
    user_nodes: Literal["require", "prefer"] = "require"
    # magnum: the floating IP the stack reserved for the proxy's load balancer.
    load_balancer_ip: str | None = None
    # The cluster's monitoring scrapes the hub and Grafana is one of its services.
    monitoring: bool = False
    # The ACME server of the proxy's certificate (None: the chart's default, Let's Encrypt).
    acme_directory: str | None = None

    @classmethod
    def from_config(cls, cfg: StackConfig, load_balancer_ip: str | None = None) -> Z2JHSpec:
        if cfg.k8s is None:
            raise ValueError("scenario k8s needs the k8s section")
        return cls(
            fqdn=cfg.hub_fqdn,
            lets_encrypt_email=cfg.lets_encrypt_email,
            hub=HubConfigSpec.from_config(cfg),
            k8s=cfg.k8s,
            concurrent_users=cfg.concurrent_users,
            placeholders=sizing.placeholder_replicas(cfg),
            user_nodes="require" if cfg.k8s.engine == "k3s" else "prefer",
            load_balancer_ip=load_balancer_ip,
            monitoring=cfg.monitoring.on_for(cfg.scenario),
            acme_directory=cfg.acme_directory,
        )


# The hub's modules, from hub/, mounted through hub.extraFiles where the settings find them.
HUB_MODULE_DIR = "/usr/local/etc/jupyterhub/jshub"
HUB_MODULES = ("jshub_settings", "jshub_kube")

# Resolves the markers in hub.config (hub/jshub_settings.py): the secrets from the hub's
# environment (the stack's Secrets), the hooks from the modules. The services are the chart's
# (hub.services); their tokens come from the environment too.
_SETTINGS_FROM_ENV = f"""\
import sys

sys.path.insert(0, {HUB_MODULE_DIR!r})
import jshub_settings

jshub_settings.resolve_config(c)
"""


def _hub_config(spec: Z2JHSpec) -> dict[str, Any]:
    """The hub's settings (renderers/hub_settings.py): the login, and admins' write access to
    the shared folder."""
    settings = auth_settings(spec.hub.auth, spec.hub.public_url)
    settings["KubeSpawner"] = {
        # Admins may write the shared folder; everyone else mounts it read-only.
        "pre_spawn_hook": call("jshub_kube.shared_data_writable_for_admins", claim=SHARED_DATA_CLAIM)
    }
    # The stack file's hubExtraConfig, as on the VM hubs. The chart sets KubeSpawner's traits
    # itself, which JupyterHub prefers to Spawner's: a stack file's Spawner traits go there.
    extra = spec.hub.options.extra_settings
    return apply_extra_settings(
        settings, {"KubeSpawner" if cls == "Spawner" else cls: traits for cls, traits in extra.items()}
    )


def _hub_files() -> dict[str, Any]:
    return {
        module.replace("_", "-"): {
            "mountPath": f"{HUB_MODULE_DIR}/{module}.py",
            "stringData": (HUB_DIR / f"{module}.py").read_text(),
        }
        for module in HUB_MODULES
    }


def _service_tokens(tokens: dict[str, str]) -> str:
    return f"jshub_settings.service_tokens_from_env(c, {tokens!r})\n"


def _monitoring(spec: Z2JHSpec) -> dict[str, Any]:
    """What the hub's values gain with monitoring: the two services, their tokens, the metrics
    role, and network policy holes for Prometheus and Grafana (namespace monitoring) to reach the
    hub's API and for the proxy to reach Grafana."""
    monitoring_ns = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": MONITORING_NAMESPACE}}
    }
    return {
        "services": {
            METRICS_SERVICE: {"name": METRICS_SERVICE},
            GRAFANA_SERVICE: {
                "name": GRAFANA_SERVICE,
                "url": GRAFANA_URL,
                "oauth_redirect_uri": f"https://{spec.fqdn}/services/{GRAFANA_SERVICE}/login/generic_oauth",
            },
        },
        "loadRoles": {METRICS_SERVICE: {"scopes": ["read:metrics"], "services": [METRICS_SERVICE]}},
        "extraEnv": _secret_env("JSHUB_METRICS_TOKEN", MONITORING_SECRET, METRICS_TOKEN_KEY)
        | _secret_env("JSHUB_GRAFANA_TOKEN", MONITORING_SECRET, GRAFANA_TOKEN_KEY),
        "hub_ingress": [{"from": [monitoring_ns], "ports": [{"port": 8081, "protocol": "TCP"}]}],
        "proxy_egress": [
            {
                "to": [
                    {**monitoring_ns, "podSelector": {"matchLabels": {"app.kubernetes.io/name": "grafana"}}}
                ],
                "ports": [{"port": GRAFANA_POD_PORT, "protocol": "TCP"}],
            }
        ],
    }


def _secret_env(name: str, secret: str, key: str, optional: bool = False) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": secret, "key": key}
    if optional:
        ref["optional"] = True
    return {name: {"valueFrom": {"secretKeyRef": ref}}}


def _auth_env(spec: Z2JHSpec) -> dict[str, Any]:
    """The hub's secret environment: the client secret stays in a Secret the stack owns, out
    of the Helm values, and so do the admin token and a workshop's passwords."""
    env = _secret_env("JSHUB_ADMIN_TOKEN", HUB_SECRETS, ADMIN_TOKEN_KEY)
    if spec.hub.auth.type in OAUTH_TYPES:
        env |= _secret_env("OAUTH_CLIENT_SECRET", OAUTH_SECRET, OAUTH_SECRET_KEY)
    if spec.hub.auth.type == "shared-password":
        env |= _secret_env("WORKSHOP_PASSWORD", HUB_SECRETS, WORKSHOP_PASSWORD_KEY)
        env |= _secret_env("WORKSHOP_ADMIN_PASSWORD", HUB_SECRETS, WORKSHOP_ADMIN_PASSWORD_KEY, optional=True)
    return env


def hub_secret_data(cfg: StackConfig, admin_token: str) -> dict[str, str]:
    """What the stack's hub Secret holds (plain values: the component marks them secret)."""
    data = {ADMIN_TOKEN_KEY: admin_token}
    if cfg.workshop_password is not None:
        data[WORKSHOP_PASSWORD_KEY] = cfg.workshop_password.get_secret_value()
    if cfg.workshop_admin_password is not None:
        data[WORKSHOP_ADMIN_PASSWORD_KEY] = cfg.workshop_admin_password.get_secret_value()
    return data


# Z2JH's own user-pod tolerations (scheduling.userPods.tolerations): a profile's `tolerations`
# replaces the list, so a GPU profile keeps them beside the GPU taint's.
_USER_TOLERATIONS = [
    {"key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "user", "effect": "NoSchedule"},
    {"key": "hub.jupyter.org_dedicated", "operator": "Equal", "value": "user", "effect": "NoSchedule"},
]


def _gpu_override(profile: ProfileConfig, k8s: K8sConfig) -> dict[str, Any]:
    """What a GPU profile's servers add: the GPUs requested (an extended resource's request is
    its limit), the GPU nodes' taint tolerated and those nodes chosen, and on k3s the nvidia
    runtime, which hands the device and the driver's libraries to the container."""
    gpus = {nvidia.GPU_RESOURCE: str(profile.gpus)}
    override: dict[str, Any] = {
        "extra_resource_guarantees": gpus,
        "extra_resource_limits": dict(gpus),
        "tolerations": [*_USER_TOLERATIONS, nvidia.gpu_toleration()],
        "node_selector": nvidia.gpu_node_selector(k8s.engine, k8s.gpu_worker_flavor),
    }
    if k8s.engine == "k3s":
        override["extra_pod_config"] = {"runtimeClassName": nvidia.RUNTIME_CLASS}
    else:
        # Replaces the hub-wide affinity that keeps everyone else off the GPU nodes.
        override["node_affinity_required"] = [_flavor_term("In", k8s.gpu_worker_flavor)]
    return override


def _flavor_term(operator: str, flavor: str) -> dict[str, Any]:
    return {
        "matchExpressions": [{"key": nvidia.INSTANCE_TYPE_LABEL, "operator": operator, "values": [flavor]}]
    }


def _profile(profile: ProfileConfig, k8s: K8sConfig) -> dict[str, Any]:
    override: dict[str, Any] = _gpu_override(profile, k8s) if profile.gpus else {}
    if profile.image:
        override["image"] = profile.image
    if profile.cpu_guarantee is not None:
        override["cpu_guarantee"] = profile.cpu_guarantee
    if profile.cpu_limit is not None:
        override["cpu_limit"] = profile.cpu_limit
    if profile.memory_guarantee_gb is not None:
        override["mem_guarantee"] = _gb(profile.memory_guarantee_gb)
    if profile.memory_limit_gb is not None:
        override["mem_limit"] = _gb(profile.memory_limit_gb)
    entry: dict[str, Any] = {"display_name": profile.display_name, "description": profile.description}
    if profile.default:
        entry["default"] = True
    if override:
        entry["kubespawner_override"] = override
    return entry


def _cull_options(options: ServerOptions) -> dict[str, Any]:
    """The chart's names for the culler's options beyond its timeout (ServerOptions.culler_flags);
    only those a stack sets, so that a stack without them renders the values it rendered before."""
    cull: dict[str, Any] = {}
    if options.max_age_s:
        cull["maxAge"] = options.max_age_s
    if options.cull_users:
        cull["adminUsers"] = False
    if options.named_servers_per_user:
        cull["removeNamedServers"] = True
    return cull


def z2jh_values(spec: Z2JHSpec) -> dict[str, Any]:
    k8s = spec.k8s
    service: dict[str, Any] = {"type": "LoadBalancer"}
    if spec.load_balancer_ip:
        service["loadBalancerIP"] = spec.load_balancer_ip
    singleuser: dict[str, Any] = {
        "image": _split_image(k8s.user_image),
        "cpu": {"guarantee": k8s.user_cpu_guarantee, "limit": spec.hub.user_cpu},
        "memory": {"guarantee": _gb(k8s.user_memory_guarantee_gb), "limit": _gb(spec.hub.user_memory_gb)},
        "storage": {
            "type": "dynamic",
            "capacity": f"{k8s.user_storage_gb}Gi",
            "dynamic": {"storageClass": BLOCK_CLASS},
            "extraVolumes": [
                {"name": SHARED_DATA_CLAIM, "persistentVolumeClaim": {"claimName": SHARED_DATA_CLAIM}}
            ],
            "extraVolumeMounts": [
                {"name": SHARED_DATA_CLAIM, "mountPath": SHARED_DATA_MOUNT, "readOnly": True}
            ],
        },
        "networkPolicy": {"enabled": True},
        "cloudMetadata": {"blockWithIptables": True},
        "startTimeout": START_TIMEOUT_S,
        "extraFiles": {
            "jupyterlab-overrides": {
                "mountPath": LAB_OVERRIDES_PATH,
                "stringData": jupyterlab_overrides_json(),
            }
        },
    }
    if k8s.profiles:
        singleuser["profileList"] = [_profile(p, k8s) for p in k8s.profiles]
    if k8s.gpu_worker_count and k8s.engine == "magnum":
        # Magnum's GPU nodes carry no taint (components/k8s_cluster.py): every server but a GPU
        # profile's (which replaces this) is kept off them by their flavor label.
        singleuser["extraNodeAffinity"] = {"required": [_flavor_term("NotIn", k8s.gpu_worker_flavor)]}
    pre_puller: dict[str, Any] = {"hook": {"enabled": True}, "continuous": {"enabled": True}}
    if k8s.gpu_worker_count and k8s.engine == "k3s":
        # The pullers tolerate the GPU taint, so a GPU profile's image (a CUDA image of several
        # GB) is on the GPU nodes before the first GPU server starts there.
        pre_puller["extraTolerations"] = [nvidia.gpu_toleration()]
    tokens = {ADMIN_SERVICE: "JSHUB_ADMIN_TOKEN"}
    # admin: a roster may name admins, which JupyterHub lets only admin callers grant.
    services: dict[str, Any] = {ADMIN_SERVICE: {"name": ADMIN_SERVICE, "admin": True}}
    roles: dict[str, Any] = {ADMIN_SERVICE: {"scopes": list(ADMIN_SCOPES), "services": [ADMIN_SERVICE]}}
    options = spec.hub.options
    if options.sharing:
        roles["user"] = {"scopes": options.sharing_scopes}
    named: dict[str, Any] = {}
    if options.named_servers_per_user:
        named = {"allowNamedServers": True, "namedServerLimitPerUser": options.named_servers_per_user}
    env = _auth_env(spec)
    hub_policy: dict[str, Any] = {"enabled": True}
    proxy: dict[str, Any] = {}
    if spec.monitoring:
        m = _monitoring(spec)
        services |= m["services"]
        roles |= m["loadRoles"]
        env |= m["extraEnv"]
        tokens |= {METRICS_SERVICE: "JSHUB_METRICS_TOKEN", GRAFANA_SERVICE: "JSHUB_GRAFANA_TOKEN"}
        hub_policy["ingress"] = m["hub_ingress"]
        proxy["chp"] = {"networkPolicy": {"egress": m["proxy_egress"]}}
    values: dict[str, Any] = {
        "hub": {
            "config": _hub_config(spec),
            "extraEnv": env,
            "extraFiles": _hub_files(),
            "extraConfig": {"05-jshub-settings": _SETTINGS_FROM_ENV + _service_tokens(tokens)},
            "services": services,
            "loadRoles": roles,
            "db": {
                "type": "sqlite-pvc",
                # A chart bump that brings a JupyterHub with a new database schema upgrades the
                # database on start (JupyterHub backs up the SQLite file first) instead of
                # refusing to start.
                "upgrade": True,
                "pvc": {"storageClassName": BLOCK_CLASS, "storage": "1Gi", "accessModes": ["ReadWriteOnce"]},
            },
            "networkPolicy": hub_policy,
            "concurrentSpawnLimit": max(64, spec.concurrent_users // 4),
            **named,
        },
        "proxy": {
            **proxy,
            "service": service,
            "https": {
                "enabled": True,
                "type": "letsencrypt",
                "hosts": [spec.fqdn],
                "letsencrypt": {
                    "contactEmail": spec.lets_encrypt_email,
                    **({"acmeServer": spec.acme_directory} if spec.acme_directory else {}),
                },
            },
        },
        "singleuser": singleuser,
        "scheduling": {
            "userScheduler": {"enabled": True},
            "podPriority": {"enabled": True},
            "userPlaceholder": {"enabled": spec.placeholders > 0, "replicas": spec.placeholders},
            "corePods": {"nodeAffinity": {"matchNodePurpose": "prefer"}},
            "userPods": {"nodeAffinity": {"matchNodePurpose": spec.user_nodes}},
        },
        "cull": {
            "enabled": True,
            "users": options.cull_users,
            "timeout": spec.hub.idle_timeout_s,
            "every": spec.hub.cull_every_s,
            **_cull_options(options),
        },
        "prePuller": pre_puller,
    }
    # Last: the stack file's k8s.helmValues, merged as Helm merges values (stackconfig/extras.py
    # has checked them against the chart's schema and refused what the stack owns).
    return deep_merge(values, k8s.helm_values)
