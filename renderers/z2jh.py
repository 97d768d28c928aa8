"""Values for the Zero to JupyterHub chart, built from the stack configuration (never
hand-written YAML). The tests deep-merge them over the chart's values.yaml and validate the
result against its values.schema.yaml, as Helm does."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from renderers.hub_config import HubConfigSpec
from renderers.rook import BLOCK_CLASS
from stackconfig import StackConfig, sizing
from stackconfig.model import K8sConfig, ProfileConfig

CHART = "jupyterhub"
CHART_VERSION = "4.4.0"
CHART_REPO = "https://hub.jupyter.org/helm-chart/"
NAMESPACE = "jupyterhub"
OAUTH_SECRET = "hub-oauth"
OAUTH_SECRET_KEY = "client-secret"
SHARED_DATA_CLAIM = "shared-data"
SHARED_DATA_MOUNT = "/home/jovyan/shared"
# Attaching a new Ceph volume and pulling a large image can take minutes on a fresh node.
START_TIMEOUT_S = 900

_ADMIN_WRITES_SHARED = f"""\
# Admins may write the shared folder; everyone else mounts it read-only.
def _shared_data_writable_for_admins(spawner):
    if spawner.user.admin:
        spawner.volume_mounts = [
            {{**mount, "readOnly": False}} if mount.get("name") == {SHARED_DATA_CLAIM!r} else mount
            for mount in spawner.volume_mounts
        ]


c.KubeSpawner.pre_spawn_hook = _shared_data_writable_for_admins
"""


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
        )


def _auth_config(spec: Z2JHSpec) -> dict[str, Any]:
    auth = spec.hub.auth
    callback = f"https://{spec.fqdn}/hub/oauth_callback"
    common: dict[str, Any] = {"admin_users": sorted(auth.admins), "allow_all": auth.allow_all}
    if auth.allowed_users:
        common["allowed_users"] = sorted(auth.allowed_users)
    if auth.type == "github":
        github: dict[str, Any] = {"client_id": auth.client_id, "oauth_callback_url": callback}
        if auth.allowed_organizations:
            github["allowed_organizations"] = sorted(auth.allowed_organizations)
            github["scope"] = ["read:org"]
        return {
            "JupyterHub": {"authenticator_class": "github"},
            "Authenticator": common,
            "GitHubOAuthenticator": github,
        }
    return {
        "JupyterHub": {"authenticator_class": "cilogon"},
        "Authenticator": common,
        "CILogonOAuthenticator": {
            "client_id": auth.client_id,
            "oauth_callback_url": callback,
            "allowed_idps": spec.hub.cilogon_idps,
        },
    }


def _profile(profile: ProfileConfig) -> dict[str, Any]:
    override: dict[str, Any] = {}
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
    }
    if k8s.profiles:
        singleuser["profileList"] = [_profile(p) for p in k8s.profiles]
    return {
        "hub": {
            "config": _auth_config(spec),
            # The client secret stays in a Secret the stack owns, out of the Helm values.
            "extraEnv": {
                "OAUTH_CLIENT_SECRET": {
                    "valueFrom": {"secretKeyRef": {"name": OAUTH_SECRET, "key": OAUTH_SECRET_KEY}}
                }
            },
            "extraConfig": {"10-shared-data": _ADMIN_WRITES_SHARED},
            "db": {
                "type": "sqlite-pvc",
                # A chart bump that brings a JupyterHub with a new database schema upgrades the
                # database on start (JupyterHub backs up the SQLite file first) instead of
                # refusing to start.
                "upgrade": True,
                "pvc": {"storageClassName": BLOCK_CLASS, "storage": "1Gi", "accessModes": ["ReadWriteOnce"]},
            },
            "networkPolicy": {"enabled": True},
            "concurrentSpawnLimit": max(64, spec.concurrent_users // 4),
        },
        "proxy": {
            "service": service,
            "https": {
                "enabled": True,
                "type": "letsencrypt",
                "hosts": [spec.fqdn],
                "letsencrypt": {"contactEmail": spec.lets_encrypt_email},
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
            "users": False,
            "timeout": spec.hub.idle_timeout_s,
            "every": spec.hub.cull_every_s,
        },
        "prePuller": {"hook": {"enabled": True}, "continuous": {"enabled": True}},
    }
