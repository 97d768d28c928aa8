"""HubVM: a JetstreamVM that runs JupyterHub behind Caddy (automatic Let's Encrypt HTTPS),
with homes and hub state on a protected data volume and its secrets delivered over SSH."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_command as command
import pulumi_random as random
import pulumi_tls as tls

from catalog import FLAVORS
from catalog.jetstream2 import DEFAULT_LOGIN_USER
from components.vm import DataVolume, DnsRecord, JetstreamVM, JetstreamVMArgs, VolumeIds
from renderers.cloud_init import (
    HUB_ENV_FILE,
    HUB_UNIT,
    PROXY_ENV_FILE,
    PROXY_UNIT,
    HubBootSpec,
    render_hub_cloud_init,
)
from renderers.hub_config import HubConfigSpec, files_digest, hub_vm_files
from renderers.scripts import render_hub_config_script, render_install_secrets_script
from renderers.user_env import render_users_env_script
from stackconfig import StackConfig


@dataclass(frozen=True)
class HubVMArgs:
    config: StackConfig
    network_id: pulumi.Input[str]
    subnet_id: pulumi.Input[str]
    security_group_ids: Sequence[pulumi.Input[str]]


def hub_env_file(
    oauth_client_secret: str,
    admin_token: str,
    proxy_token: str,
    workshop: dict[str, str] | None = None,
    metrics_token: str = "",
) -> str:
    # workshop: WORKSHOP_PASSWORD (and WORKSHOP_ADMIN_PASSWORD) of a shared-password login.
    extra = "".join(f"{key}={value}\n" for key, value in (workshop or {}).items())
    # The read-only token Prometheus scrapes /hub/metrics with (monitoring on).
    extra += f"JSHUB_METRICS_TOKEN={metrics_token}\n" if metrics_token else ""
    return (
        f"OAUTH_CLIENT_SECRET={oauth_client_secret}\n"
        f"JSHUB_ADMIN_TOKEN={admin_token}\n"
        f"CONFIGPROXY_AUTH_TOKEN={proxy_token}\n"
        f"{extra}"
    )


def workshop_secrets(cfg: StackConfig) -> dict[str, str]:
    """The shared-password login's secrets, as the hub's environment names them."""
    named = {
        "WORKSHOP_PASSWORD": cfg.workshop_password,
        "WORKSHOP_ADMIN_PASSWORD": cfg.workshop_admin_password,
    }
    return {key: value.get_secret_value() for key, value in named.items() if value is not None}


class HubVM(pulumi.ComponentResource):
    url: str
    public_ip: pulumi.Output[str]
    admin_token: pulumi.Output[str]
    # The jshub-metrics service's token (read:metrics only); empty with monitoring off. Secret.
    metrics_token: pulumi.Output[str]
    deploy_public_key: pulumi.Output[str]
    data_volume_id: pulumi.Output[str]
    instance_id: pulumi.Output[str]
    # How the stack's remote commands reach this VM (holds the deploy key: secret).
    connection: command.remote.ConnectionArgs
    # What identifies the server's root disk: the server (a replacement is a new one) and the
    # image (a rebuild keeps the server's ID but re-images its disk and runs user data again).
    # Every command that puts state on the root disk triggers on these, so it runs again after
    # either; a resize (flavor) keeps the disk and re-runs nothing.
    root_disk: list[pulumi.Input[str]]

    def __init__(self, name: str, args: HubVMArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("jshub:index:HubVM", name, None, opts)
        cfg = args.config
        child = pulumi.ResourceOptions(parent=self)

        # The stack's own SSH key, for its remote commands; the operator's key pair stays theirs.
        deploy_key = tls.PrivateKey(f"{name}-deploy-key", algorithm="ED25519", opts=child)
        admin_token = random.RandomPassword(f"{name}-admin-token", length=48, special=False, opts=child)
        proxy_token = random.RandomPassword(f"{name}-proxy-token", length=48, special=False, opts=child)
        metrics_token: pulumi.Output[str] = pulumi.Output.from_input("")
        if cfg.monitoring.on_for(cfg.scenario):
            metrics_token = random.RandomPassword(
                f"{name}-metrics-token", length=48, special=False, opts=child
            ).result
        hub_spec = HubConfigSpec.from_config(cfg)
        proxy = hub_spec.proxy
        assert proxy is not None, "a hub VM runs its proxy as a service of its own"

        # User data holds the first boot only; nothing in it follows the hub's config, which a
        # day-2 change must apply without a new server (hub-config below).
        def user_data(volumes: VolumeIds) -> pulumi.Output[str]:
            return pulumi.Output.all(volumes["data"], deploy_key.public_key_openssh).apply(
                lambda values: render_hub_cloud_init(
                    HubBootSpec(
                        paths=hub_spec.paths,
                        proxy=proxy,
                        data_volume_id=values[0],
                        deploy_public_key=values[1],
                        home_quotas=hub_spec.home_quotas,
                    )
                )
            )

        vm = JetstreamVM(
            f"{name}-vm",
            JetstreamVMArgs(
                role="hub",
                flavor=cfg.hub_flavor,
                image=cfg.image,
                image_id=cfg.image_id,
                shelved=cfg.shelved,
                key_pair=cfg.key_pair,
                network_id=args.network_id,
                subnet_id=args.subnet_id,
                security_group_ids=args.security_group_ids,
                user_data=user_data,
                floating_ip=True,
                keep_floating_ip=True,
                data_volumes=[DataVolume("data", cfg.hub_data_volume_gb, "JupyterHub homes and hub state")],
                dns=DnsRecord(zone=cfg.zone, hostname=cfg.hub_hostname),
            ),
            opts=child,
        )
        assert vm.public_ip is not None

        oauth_secret = cfg.oauth_client_secret.get_secret_value() if cfg.oauth_client_secret else ""
        env_file: pulumi.Output[str] = pulumi.Output.all(
            pulumi.Output.secret(oauth_secret),
            admin_token.result,
            proxy_token.result,
            pulumi.Output.secret(workshop_secrets(cfg)),
            metrics_token,
        ).apply(lambda values: hub_env_file(values[0], values[1], values[2], values[3], values[4]))
        self.root_disk = vm.root_disk
        self.connection = command.remote.ConnectionArgs(
            host=vm.public_ip,
            user=DEFAULT_LOGIN_USER,
            private_key=deploy_key.private_key_openssh,
            # The VM is still booting when this starts: keep dialling for ~10 minutes.
            dial_error_limit=60,
            per_dial_timeout=10,
        )
        command.remote.Command(
            f"{name}-secrets",
            connection=self.connection,
            # The proxy first: the restarted hub then adds its routes to the running proxy.
            create=render_install_secrets_script(
                HUB_ENV_FILE,
                [PROXY_UNIT, HUB_UNIT],
                derived=[(PROXY_ENV_FILE, ["CONFIGPROXY_AUTH_TOKEN"])],
            ),
            stdin=pulumi.Output.secret(env_file),  # type: ignore[arg-type]
            logging=command.remote.Logging.NONE,
            # The file lives on the root disk. No depends_on on the whole VM: the script itself
            # waits for cloud-init, which waits for the volume.
            triggers=self.root_disk,
            opts=pulumi.ResourceOptions(
                parent=self,
                additional_secret_outputs=["stdin", "stdout", "stderr"],
            ),
        )

        # The hub's config, Caddyfile and packages: written over SSH, so that a change of
        # admins, users, limits, culler, auth, host name or e-mail restarts the hub in place
        # (users' servers keep running) instead of replacing the server. The files hold no
        # secret (those come from the environment file above).
        files = hub_vm_files(
            hub_spec, cfg.hub_fqdn, cfg.lets_encrypt_email, cfg.acme_directory, cfg.acme_root_certificate
        )
        command.remote.Command(
            f"{name}-config",
            connection=self.connection,
            create=render_hub_config_script(files, hub_spec.paths, gpu=FLAVORS[cfg.hub_flavor].gpu),
            triggers=[*self.root_disk, files_digest(files)],
            opts=child,
        )

        # The course's packages (userEnvironment): their own step, so that a change of packages
        # builds the users' environment in place and touches neither the server nor the hub. On
        # the root disk, built from the image's Python: a rebuilt or replaced server builds it again.
        if hub_spec.users_env is not None and hub_spec.users_env.on_hub_vm:
            command.remote.Command(
                f"{name}-user-env",
                connection=self.connection,
                create=render_users_env_script(hub_spec.users_env),
                triggers=[*self.root_disk, hub_spec.users_env.env_id],
                opts=child,
            )

        self.url = cfg.hub_url
        self.public_ip = vm.public_ip
        self.admin_token = pulumi.Output.secret(admin_token.result)
        self.metrics_token = pulumi.Output.secret(metrics_token)
        self.deploy_public_key = deploy_key.public_key_openssh.apply(str.strip)
        self.data_volume_id = vm.volume_ids["data"]
        self.instance_id = vm.instance_id
        self.register_outputs(
            {
                "url": self.url,
                "public_ip": self.public_ip,
                "admin_token": self.admin_token,
                "data_volume_id": self.data_volume_id,
            }
        )
