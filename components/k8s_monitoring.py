"""K8sMonitoring: the kube-prometheus-stack release in its own namespace, Grafana's OAuth
client secret at the hub, the hub's metrics token for Prometheus, Alertmanager's configuration
(with the stack's alert targets: it holds their secrets), and the JupyterHub dashboards;
the ServiceMonitors for the hub and Ceph and the project's alert rules go in the release's
values (renderers.k8s_monitoring)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as kubernetes

from renderers import k8s_monitoring as km
from renderers.k8s_objects import namespace

# Image pulls and the operator's CRDs on a new cluster take a while.
RELEASE_TIMEOUT_S = 1200


@dataclass(frozen=True)
class K8sMonitoringArgs:
    spec: km.K8sMonitoringSpec
    # The hub's grafana service token: Grafana's client secret at the hub's OAuth (secret).
    grafana_client_secret: pulumi.Input[str]
    # The hub's jshub-metrics token (read:metrics only): Prometheus's bearer token (secret).
    metrics_token: pulumi.Input[str]
    # With spec.alerts: the SMTP password and the webhook URL, "" when not used (secrets).
    smtp_password: pulumi.Input[str] = ""
    webhook_url: pulumi.Input[str] = ""
    # Ceph (the Prometheus volume) and the hub release (its metrics Secret) come first.
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)
    deleted_with: pulumi.Resource | None = None


class K8sMonitoring(pulumi.ComponentResource):
    release: kubernetes.helm.v3.Release
    grafana_url: str

    def __init__(
        self, name: str, args: K8sMonitoringArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("jshub:index:K8sMonitoring", name, None, opts)
        spec = args.spec
        ns_obj = namespace(km.NAMESPACE)
        ns = kubernetes.core.v1.Namespace(
            f"{name}-namespace",
            metadata=ns_obj["metadata"],
            opts=pulumi.ResourceOptions(parent=self, deleted_with=args.deleted_with),
        )
        gone_with = args.deleted_with or ns
        in_ns = pulumi.ResourceOptions(parent=self, depends_on=[ns], deleted_with=gone_with)
        secret_opts = pulumi.ResourceOptions.merge(
            in_ns, pulumi.ResourceOptions(additional_secret_outputs=["stringData", "data"])
        )
        oauth_obj = km.secret(km.GRAFANA_OAUTH_SECRET, {})
        oauth_data = pulumi.Output.from_input(args.grafana_client_secret).apply(
            lambda s: {"client-secret": s}
        )
        oauth = kubernetes.core.v1.Secret(
            f"{name}-grafana-oauth",
            metadata=oauth_obj["metadata"],
            type=oauth_obj["type"],
            string_data=pulumi.Output.secret(oauth_data),  # type: ignore[arg-type]
            opts=secret_opts,
        )
        metrics_obj = km.secret(km.METRICS_SECRET, {})
        metrics_data = pulumi.Output.from_input(args.metrics_token).apply(lambda t: {"token": t})
        metrics = kubernetes.core.v1.Secret(
            f"{name}-hub-metrics-token",
            metadata=metrics_obj["metadata"],
            type=metrics_obj["type"],
            string_data=pulumi.Output.secret(metrics_data),  # type: ignore[arg-type]
            opts=secret_opts,
        )
        config_secrets: list[pulumi.Resource] = []
        if spec.alerts is not None:
            alerts = spec.alerts
            am_obj = km.secret(km.ALERTMANAGER_SECRET, {})
            am_data = pulumi.Output.all(args.smtp_password, args.webhook_url).apply(
                lambda s: km.alertmanager_secret(alerts, s[0], s[1])["stringData"]
            )
            config_secrets.append(
                kubernetes.core.v1.Secret(
                    f"{name}-alertmanager-config",
                    metadata=am_obj["metadata"],
                    type=am_obj["type"],
                    string_data=pulumi.Output.secret(am_data),  # type: ignore[arg-type]
                    opts=secret_opts,
                )
            )
        self.release = kubernetes.helm.v3.Release(
            f"{name}-release",
            name=km.RELEASE,
            chart=km.CHART_PATH,
            version=km.CHART_VERSION,
            namespace=km.NAMESPACE,
            values=km.chart_values(spec),
            timeout=RELEASE_TIMEOUT_S,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[ns, oauth, metrics, *config_secrets, *args.depends_on],
                deleted_with=gone_with,
            ),
        )
        for file_name, board in km.dashboards().items():
            obj = km.dashboard_configmap(file_name, board)
            kubernetes.core.v1.ConfigMap(
                f"{name}-{obj['metadata']['name']}", metadata=obj["metadata"], data=obj["data"], opts=in_ns
            )
        self.grafana_url = spec.grafana_url
        self.register_outputs({"grafana_url": self.grafana_url})
