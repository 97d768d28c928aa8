"""NvidiaDevicePlugin: NVIDIA's device plugin on a cluster's GPU workers, which advertises each
node's GPU as `nvidia.com/gpu` for the GPU profiles' servers to request."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import pulumi
import pulumi_kubernetes as kubernetes

from renderers import nvidia


@dataclass(frozen=True)
class NvidiaDevicePluginArgs:
    engine: Literal["k3s", "magnum"]
    # The GPU workers' flavor (magnum finds its GPU nodes by it).
    gpu_flavor: str
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)
    # The cluster itself (see K8sCluster.lifeline).
    deleted_with: pulumi.Resource | None = None


class NvidiaDevicePlugin(pulumi.ComponentResource):
    daemon_set: kubernetes.apps.v1.DaemonSet

    def __init__(
        self, name: str, args: NvidiaDevicePluginArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("jshub:index:NvidiaDevicePlugin", name, None, opts)
        obj = nvidia.device_plugin_daemonset(args.engine, args.gpu_flavor)
        self.daemon_set = kubernetes.apps.v1.DaemonSet(
            f"{name}-daemonset",
            metadata=obj["metadata"],
            spec=obj["spec"],
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=list(args.depends_on),
                deleted_with=args.deleted_with,
                # Created once the GPU workers are Ready: its roll-out, which Pulumi awaits, is
                # then the proof that each GPU node's driver and runtime work.
                custom_timeouts=pulumi.CustomTimeouts(create="30m", update="30m"),
            ),
        )
        self.register_outputs({})
