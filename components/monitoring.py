"""HubMonitoring: Prometheus and node exporter on the VM that runs the hub, installed by a
remote command with the hub's read-only metrics token and the password of Prometheus's web UI
(behind Caddy, for admins) on standard input."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_command as command
import pulumi_random as random

from renderers.monitoring import MonitoringSpec, files_digest, install_stdin, render_install_script


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
    # Prometheus's web UI (user admin, HTTP basic auth through Caddy): secret.
    web_password: pulumi.Output[str]

    def __init__(
        self, name: str, args: HubMonitoringArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("jshub:index:HubMonitoring", name, None, opts)
        self.config_digest = files_digest(args.spec)
        # Letters and digits only: one line on standard input, no quoting anywhere.
        password = random.RandomPassword(
            f"{name}-web-password", length=32, special=False, opts=pulumi.ResourceOptions(parent=self)
        )
        stdin = pulumi.Output.all(args.metrics_token, password.result).apply(
            lambda values: install_stdin(values[0], values[1])
        )
        command.remote.Command(
            f"{name}-install",
            connection=args.host_connection,
            create=render_install_script(args.spec),
            stdin=pulumi.Output.secret(stdin),  # type: ignore[arg-type]
            logging=command.remote.Logging.NONE,
            # A new or re-imaged root disk needs everything again; a new config, only the files.
            # The script waits for cloud-init itself.
            triggers=[*args.host_root_disk, self.config_digest],
            opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["stdin", "stdout", "stderr"]),
        )
        self.web_password = pulumi.Output.secret(password.result)
        self.register_outputs({"config_digest": self.config_digest, "web_password": self.web_password})
