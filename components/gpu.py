"""NvidiaDevicePlugin: NVIDIA's device plugin on a cluster's GPU workers, which advertises each
node's GPU as `nvidia.com/gpu` for the GPU profiles' servers to request. NVIDIA's own chart,
vendored in charts/nvidia-device-plugin (charts/README.md), installed as a Helm release."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import pulumi
import pulumi_kubernetes as kubernetes

from renderers import nvidia

# The release waits for the plugin's roll-out on every GPU node (Helm's --wait).
RELEASE_TIMEOUT_S = 1800


@dataclass(frozen=True)
class NvidiaDevicePluginArgs:
    engine: Literal["k3s", "magnum"]
    # The GPU workers' flavor (magnum finds its GPU nodes by it).
    gpu_flavor: str
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)
    # The cluster itself (see K8sCluster.lifeline).
    deleted_with: pulumi.Resource | None = None


class NvidiaDevicePlugin(pulumi.ComponentResource):
    release: kubernetes.helm.v3.Release

    def __init__(
        self, name: str, args: NvidiaDevicePluginArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("jshub:index:NvidiaDevicePlugin", name, None, opts)
        self.release = kubernetes.helm.v3.Release(
            f"{name}-release",
            name=nvidia.DEVICE_PLUGIN_NAME,
            chart=nvidia.DEVICE_PLUGIN_CHART_PATH,
            version=nvidia.DEVICE_PLUGIN_VERSION,
            namespace=nvidia.DEVICE_PLUGIN_NAMESPACE,
            values=nvidia.device_plugin_values(args.engine, args.gpu_flavor),
            timeout=RELEASE_TIMEOUT_S,
            opts=pulumi.ResourceOptions(
                parent=self,
                # Created once the GPU workers are Ready: its roll-out, which the release awaits,
                # is then the proof that each GPU node's driver and runtime work.
                depends_on=list(args.depends_on),
                deleted_with=args.deleted_with,
            ),
        )
        self.register_outputs({"status": self.release.status})
