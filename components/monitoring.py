"""HubMonitoring: Prometheus and node exporter on the VM that runs the hub, installed by a
remote command with the hub's read-only metrics token and the password of Prometheus's web UI
(behind Caddy, for admins) on standard input."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_command as command
import pulumi_random as random

from renderers.monitoring import (
    NODE_EXPORTER_PORT,
    MonitoringSpec,
    files_digest,
    install_stdin,
    render_install_script,
    render_worker_install_script,
)


@dataclass(frozen=True)
class MonitoredHost:
    """Another VM whose node exporter Prometheus scrapes (a swarm worker)."""

    connection: command.remote.ConnectionArgs
    # Its server's ID and image: a new or re-imaged root disk needs node exporter again.
    root_disk: Sequence[pulumi.Input[str]]
    private_ip: pulumi.Output[str]


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
    # The swarm's workers: node exporter on each, scraped at its private address.
    workers: Sequence[MonitoredHost] = ()
    # With spec.alerts: the SMTP password and the webhook URL (secrets; "" when not used).
    smtp_password: pulumi.Input[str] = ""
    webhook_url: pulumi.Input[str] = ""


class HubMonitoring(pulumi.ComponentResource):
    # What the install wrote, as a digest: a change of threshold or retention changes it.
    config_digest: pulumi.Output[str]
    # Prometheus's web UI (user admin, HTTP basic auth through Caddy): secret.
    web_password: pulumi.Output[str]

    def __init__(
        self, name: str, args: HubMonitoringArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("jshub:index:HubMonitoring", name, None, opts)
        for index, worker in enumerate(args.workers):
            command.remote.Command(
                f"{name}-node-exporter-{index}",
                connection=worker.connection,
                create=worker.private_ip.apply(render_worker_install_script),
                logging=command.remote.Logging.STDERR,
                triggers=list(worker.root_disk),
                opts=pulumi.ResourceOptions(parent=self),
            )
        # Prometheus's targets include the workers' addresses, known at deploy time.
        spec: pulumi.Output[MonitoringSpec] = pulumi.Output.all(*[w.private_ip for w in args.workers]).apply(
            lambda ips: dataclasses.replace(
                args.spec, worker_targets=tuple(f"{ip}:{NODE_EXPORTER_PORT}" for ip in ips)
            )
        )
        self.config_digest = spec.apply(files_digest)
        # Letters and digits only: one line on standard input, no quoting anywhere.
        password = random.RandomPassword(
            f"{name}-web-password", length=32, special=False, opts=pulumi.ResourceOptions(parent=self)
        )
        stdin = pulumi.Output.all(
            args.metrics_token, password.result, args.smtp_password, args.webhook_url
        ).apply(lambda values: install_stdin(values[0], values[1], values[2], values[3]))
        command.remote.Command(
            f"{name}-install",
            connection=args.host_connection,
            create=spec.apply(render_install_script),
            stdin=pulumi.Output.secret(stdin),  # type: ignore[arg-type]
            logging=command.remote.Logging.NONE,
            # A new or re-imaged root disk needs everything again; a new config, only the files.
            # The script waits for cloud-init itself.
            triggers=[*args.host_root_disk, self.config_digest],
            opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["stdin", "stdout", "stderr"]),
        )
        self.web_password = pulumi.Output.secret(password.result)
        self.register_outputs({"config_digest": self.config_digest, "web_password": self.web_password})
