"""HubVM: a JetstreamVM that runs JupyterHub behind Caddy (automatic Let's Encrypt HTTPS),
with homes and hub state on a protected data volume and its secrets delivered over SSH."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_command as command
import pulumi_random as random
import pulumi_tls as tls

from catalog.jetstream2 import DEFAULT_LOGIN_USER
from components.vm import DataVolume, DnsRecord, JetstreamVM, JetstreamVMArgs, VolumeIds
from renderers.cloud_init import HUB_ENV_FILE, HubBootSpec, render_hub_cloud_init
from renderers.hub_config import HubConfigSpec
from renderers.scripts import render_install_secrets_script
from stackconfig import StackConfig


@dataclass(frozen=True)
class HubVMArgs:
    config: StackConfig
    network_id: pulumi.Input[str]
    subnet_id: pulumi.Input[str]
    security_group_ids: Sequence[pulumi.Input[str]]


def hub_env_file(oauth_client_secret: str, admin_token: str, workshop: dict[str, str] | None = None) -> str:
    # workshop: WORKSHOP_PASSWORD (and WORKSHOP_ADMIN_PASSWORD) of a shared-password login.
    extra = "".join(f"{key}={value}\n" for key, value in (workshop or {}).items())
    return f"OAUTH_CLIENT_SECRET={oauth_client_secret}\nJSHUB_ADMIN_TOKEN={admin_token}\n{extra}"


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
    deploy_public_key: pulumi.Output[str]
    data_volume_id: pulumi.Output[str]
    instance_id: pulumi.Output[str]
    # How the stack's remote commands reach this VM (holds the deploy key: secret).
    connection: command.remote.ConnectionArgs

    def __init__(self, name: str, args: HubVMArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("jshub:index:HubVM", name, None, opts)
        cfg = args.config
        child = pulumi.ResourceOptions(parent=self)

        # The stack's own SSH key, for its remote commands; the operator's key pair stays theirs.
        deploy_key = tls.PrivateKey(f"{name}-deploy-key", algorithm="ED25519", opts=child)
        admin_token = random.RandomPassword(f"{name}-admin-token", length=48, special=False, opts=child)
        hub_spec = HubConfigSpec.from_config(cfg)

        def user_data(volumes: VolumeIds) -> pulumi.Output[str]:
            return pulumi.Output.all(volumes["data"], deploy_key.public_key_openssh).apply(
                lambda values: render_hub_cloud_init(
                    HubBootSpec(
                        hub=hub_spec,
                        fqdn=cfg.hub_fqdn,
                        lets_encrypt_email=cfg.lets_encrypt_email,
                        data_volume_id=values[0],
                        deploy_public_key=values[1],
                    )
                )
            )

        vm = JetstreamVM(
            f"{name}-vm",
            JetstreamVMArgs(
                role="hub",
                flavor=cfg.hub_flavor,
                image=cfg.image,
                key_pair=cfg.key_pair,
                network_id=args.network_id,
                subnet_id=args.subnet_id,
                security_group_ids=args.security_group_ids,
                user_data=user_data,
                floating_ip=True,
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
            pulumi.Output.secret(workshop_secrets(cfg)),
        ).apply(lambda values: hub_env_file(values[0], values[1], values[2]))
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
            create=render_install_secrets_script(HUB_ENV_FILE, "jupyterhub.service"),
            stdin=pulumi.Output.secret(env_file),  # type: ignore[arg-type]
            logging=command.remote.Logging.NONE,
            # A new server (new instance ID) needs its secrets again. No depends_on on the
            # whole VM: the script itself waits for cloud-init, which waits for the volume.
            triggers=[vm.instance_id],
            opts=pulumi.ResourceOptions(
                parent=self,
                additional_secret_outputs=["stdin", "stdout", "stderr"],
            ),
        )

        self.url = cfg.hub_url
        self.public_ip = vm.public_ip
        self.admin_token = pulumi.Output.secret(admin_token.result)
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
