"""HubMonitoring: Prometheus and node exporter on the VM that runs the hub, installed by a
remote command with the hub's read-only metrics token on standard input."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_command as command

from renderers.monitoring import MonitoringSpec, files_digest, render_install_script


@dataclass(frozen=True)
class HubMonitoringArgs:
    # What the VM runs (targets, thresholds, retention), in plain values.
    spec: MonitoringSpec
    # The token of the hub's jshub-metrics service (read:metrics only).
    metrics_token: pulumi.Input[str]
    # The VM, as the stack's remote commands reach it, and what identifies its root disk (the
    # instance ID and the image: a replaced or rebuilt server has lost the packages and files).
    host_connection: command.remote.ConnectionArgs
    host_root_disk: Sequence[pulumi.Input[str]]


class HubMonitoring(pulumi.ComponentResource):
    # What the install wrote, as a digest: a change of threshold or retention changes it.
    config_digest: str

    def __init__(
        self, name: str, args: HubMonitoringArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("jshub:index:HubMonitoring", name, None, opts)
        self.config_digest = files_digest(args.spec)
        command.remote.Command(
            f"{name}-install",
            connection=args.host_connection,
            create=render_install_script(args.spec),
            stdin=pulumi.Output.secret(args.metrics_token),  # type: ignore[arg-type]
            logging=command.remote.Logging.NONE,
            # A new or re-imaged root disk needs everything again; a new config, only the files.
            # The script waits for cloud-init itself.
            triggers=[*args.host_root_disk, self.config_digest],
            opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["stdin", "stdout", "stderr"]),
        )
        self.register_outputs({"config_digest": self.config_digest})
