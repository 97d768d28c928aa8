"""Z2JH: JupyterHub from the Zero to JupyterHub chart, on storage that has been shown to work:
a Job mounts both Ceph storage classes before the release is installed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as kubernetes
import pulumi_random as random

from renderers import k8s_objects, z2jh
from stackconfig import StackConfig
from stackconfig.model import OAUTH_TYPES

# Image pulls by the pre-puller hook and certificate issuance can take a while on a new cluster.
RELEASE_TIMEOUT_S = 1800


@dataclass(frozen=True)
class Z2JHArgs:
    config: StackConfig
    # Ceph must be in place before anything claims a volume.
    storage: Sequence[pulumi.Resource]
    # magnum: the floating IP the proxy's load balancer takes.
    load_balancer_ip: pulumi.Input[str] | None = None
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)
    # The cluster itself (see K8sCluster.lifeline).
    deleted_with: pulumi.Resource | None = None


class Z2JH(pulumi.ComponentResource):
    release: kubernetes.helm.v3.Release
    url: str
    # The jshub-admin service's API token, as on the VM hubs (secret).
    admin_token: pulumi.Output[str]
    # With monitoring: the grafana service's token, which is also Grafana's OAuth client secret
    # (secret); None without.
    grafana_token: pulumi.Output[str] | None = None
    # With monitoring: the jshub-metrics service's token (read:metrics only; secret).
    metrics_token: pulumi.Output[str] | None = None

    def __init__(self, name: str, args: Z2JHArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("jshub:index:Z2JH", name, None, opts)
        cfg = args.config
        if cfg.k8s is None:
            raise ValueError("Z2JH needs the k8s section of the stack configuration")
        ns_name = z2jh.NAMESPACE

        def manifest(obj: dict) -> dict:
            return {"metadata": obj["metadata"], **({"spec": obj["spec"]} if "spec" in obj else {})}

        ns_obj = k8s_objects.namespace(ns_name)
        namespace = kubernetes.core.v1.Namespace(
            f"{name}-namespace",
            metadata=ns_obj["metadata"],
            opts=pulumi.ResourceOptions(parent=self, deleted_with=args.deleted_with),
        )
        # Deleting the namespace deletes what is in it; and all of it goes with the cluster.
        gone_with = args.deleted_with or namespace
        in_ns = pulumi.ResourceOptions(parent=self, depends_on=[namespace], deleted_with=gone_with)

        secrets: list[pulumi.Resource] = []
        if cfg.auth.type in OAUTH_TYPES and cfg.oauth_client_secret is not None:
            secret_obj = k8s_objects.oauth_secret(ns_name, "")
            secrets.append(
                kubernetes.core.v1.Secret(
                    f"{name}-oauth",
                    metadata=secret_obj["metadata"],
                    type=secret_obj["type"],
                    string_data={
                        z2jh.OAUTH_SECRET_KEY: pulumi.Output.secret(
                            cfg.oauth_client_secret.get_secret_value()
                        )
                    },
                    opts=in_ns,
                )
            )
        admin_token = random.RandomPassword(
            f"{name}-admin-token", length=48, special=False, opts=pulumi.ResourceOptions(parent=self)
        )
        hub_secret_data: pulumi.Output[dict[str, str]] = admin_token.result.apply(
            lambda token: z2jh.hub_secret_data(cfg, token)
        )
        hub_secret_obj = k8s_objects.hub_secret(ns_name, {})
        secrets.append(
            kubernetes.core.v1.Secret(
                f"{name}-secrets",
                metadata=hub_secret_obj["metadata"],
                type=hub_secret_obj["type"],
                string_data=pulumi.Output.secret(hub_secret_data),  # type: ignore[arg-type]
                opts=pulumi.ResourceOptions.merge(
                    in_ns, pulumi.ResourceOptions(additional_secret_outputs=["stringData", "data"])
                ),
            )
        )
        if cfg.monitoring.on_for(cfg.scenario):
            tokens = {
                key: random.RandomPassword(
                    f"{name}-{key}", length=48, special=False, opts=pulumi.ResourceOptions(parent=self)
                ).result
                for key in (z2jh.METRICS_TOKEN_KEY, z2jh.GRAFANA_TOKEN_KEY)
            }
            monitoring_obj = k8s_objects.monitoring_tokens_secret(ns_name, {})
            secrets.append(
                kubernetes.core.v1.Secret(
                    f"{name}-monitoring-tokens",
                    metadata=monitoring_obj["metadata"],
                    type=monitoring_obj["type"],
                    string_data=pulumi.Output.secret(tokens),  # type: ignore[arg-type]
                    opts=pulumi.ResourceOptions.merge(
                        in_ns, pulumi.ResourceOptions(additional_secret_outputs=["stringData", "data"])
                    ),
                )
            )
            self.grafana_token = pulumi.Output.secret(tokens[z2jh.GRAFANA_TOKEN_KEY])
            self.metrics_token = pulumi.Output.secret(tokens[z2jh.METRICS_TOKEN_KEY])
        # Shared data: its volume is reclaimed with Retain, and the claim is protected too, so
        # `pulumi destroy` stops here until an operator unprotects it.
        shared = kubernetes.core.v1.PersistentVolumeClaim(
            f"{name}-shared-data",
            **manifest(k8s_objects.shared_data_claim(ns_name, cfg.k8s.shared_data_gb)),
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[namespace, *args.storage], protect=True, retain_on_delete=True
            ),
        )
        ready = kubernetes.batch.v1.Job(
            f"{name}-storage-ready",
            **manifest(k8s_objects.storage_ready_job(ns_name)),
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[shared, *args.storage],
                deleted_with=gone_with,
                custom_timeouts=pulumi.CustomTimeouts(create="60m"),
            ),
        )

        def values(ip: str | None) -> dict:
            return z2jh.z2jh_values(z2jh.Z2JHSpec.from_config(cfg, load_balancer_ip=ip or None))

        self.release = kubernetes.helm.v3.Release(
            f"{name}-release",
            name="jupyterhub",
            chart=z2jh.CHART_PATH,
            version=z2jh.CHART_VERSION,
            namespace=ns_name,
            values=pulumi.Output.from_input(args.load_balancer_ip).apply(values),
            timeout=RELEASE_TIMEOUT_S,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[*secrets, shared, ready, *args.storage, *args.depends_on],
                deleted_with=gone_with,
            ),
        )
        self.url = cfg.hub_url
        self.admin_token = pulumi.Output.secret(admin_token.result)
        self.register_outputs(
            {"url": self.url, "status": self.release.status, "admin_token": self.admin_token}
        )
