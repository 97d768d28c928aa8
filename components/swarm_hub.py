"""SwarmHub: JupyterHub as a swarm service on the manager, through pulumi-docker.

The Docker provider talks to the manager's daemon over SSH. The hub image is built there
(the hub is pinned to the manager, so no registry is needed); its config is a docker config
and its secrets are docker secrets, both named by content so that a change rolls the service.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_docker as docker

from catalog.jetstream2 import DEFAULT_LOGIN_USER
from components.hub import workshop_secrets
from renderers.hub_config import HubConfigSpec, SwarmSpawnerSpec, hub_config_files
from renderers.swarm import (
    HUB_IMAGE_CONTEXT,
    HubServiceSpec,
    hub_secret_names,
    hub_service_spec,
    overlay_network_options,
)
from renderers.swarm_manager import docker_ssh_opts
from stackconfig import StackConfig

PROJECT_DIR = Path(__file__).resolve().parent.parent
SWARM_LABEL = "org.jupyterhub-jetstream.swarm"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def config_part(file_name: str) -> str:
    """The part of a hub config file's resource name: `config` for jupyterhub_config.py (as
    before the hub's settings were data), else the file's stem (`jshub-settings`)."""
    if file_name == "jupyterhub_config.py":
        return "config"
    if file_name.endswith(".json"):
        return "settings"
    return file_name.removesuffix(".py").replace("_", "-")


def _content_name(prefix: str, text: str) -> str:
    # Docker configs and secrets are immutable: a new content needs a new name.
    return f"{prefix}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


@dataclass(frozen=True)
class SwarmHubArgs:
    config: StackConfig
    manager_public_ip: pulumi.Input[str]
    admin_token: pulumi.Input[str]
    # What the swarm must have finished before the hub is created (SwarmCluster.ready).
    depends_on: Sequence[pulumi.Resource] = ()
    # The manager's SSH host key (OpenSSH public key): the provider trusts it and nothing else.
    # Without it, the first key the manager shows is accepted.
    manager_host_key: pulumi.Input[str] | None = None
    # The swarm's cluster ID: when it changes (a new swarm on a replaced or re-imaged manager),
    # every Docker object of the hub is made again there.
    swarm_id: pulumi.Input[str] | None = None
    # The token of the hub's read-only jshub-metrics service (monitoring on), a docker secret.
    metrics_token: pulumi.Input[str] | None = None


class SwarmHub(pulumi.ComponentResource):
    url: str
    service_name: str
    image: str

    def __init__(self, name: str, args: SwarmHubArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("jshub:index:SwarmHub", name, None, opts)
        cfg = args.config
        hub_spec = HubConfigSpec.from_config(cfg)
        assert isinstance(hub_spec.spawner, SwarmSpawnerSpec)
        service: HubServiceSpec = hub_service_spec(
            hub_spec.spawner.hub_image,
            secrets=hub_secret_names(cfg.auth.type, cfg.workshop_admin_password is not None)
            + (("jshub_metrics_token",) if args.metrics_token is not None else ()),
        )

        # `ssh-add` of the operator's key pair lets the provider log in as ubuntu (cloud-init adds
        # ubuntu to the docker group on the manager).
        if args.manager_host_key is not None:
            ssh_opts: pulumi.Input[list[str]] = pulumi.Output.all(
                args.manager_public_ip, args.manager_host_key
            ).apply(lambda v: docker_ssh_opts(v[0], v[1]))
        else:
            ssh_opts = ["-o", "StrictHostKeyChecking=accept-new", "-o", "ServerAliveInterval=30"]
        provider = docker.Provider(
            f"{name}-manager-docker",
            host=pulumi.Output.concat(f"ssh://{DEFAULT_LOGIN_USER}@", args.manager_public_ip),
            ssh_opts=ssh_opts,
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)),
        )
        # Docker's objects live in the swarm: the swarm's ID on each, and a new ID replaces them
        # (the old ones went with the old swarm).
        swarm = pulumi.Output.from_input(args.swarm_id or "")
        on_manager = pulumi.ResourceOptions(
            parent=self, provider=provider, replace_on_changes=["labels"], delete_before_replace=True
        )

        image = docker.Image(
            f"{name}-image",
            image_name=service.image,
            # Relative to the project folder, where `pulumi up` runs the program.
            build=docker.DockerBuildArgs(
                context=str(HUB_IMAGE_CONTEXT.relative_to(PROJECT_DIR)),
                dockerfile=str((HUB_IMAGE_CONTEXT / "Dockerfile").relative_to(PROJECT_DIR)),
                platform="linux/amd64",
                # A new swarm's manager has none of the old one's images: build it there.
                args={"JSHUB_SWARM": swarm},
            ),
            skip_push=True,
            opts=pulumi.ResourceOptions(parent=self, provider=provider),
        )
        network = docker.Network(
            f"{name}-network",
            name=service.network,
            driver="overlay",
            # Notebook services join it when the spawner creates them.
            attachable=True,
            labels=[docker.NetworkLabelArgs(label=SWARM_LABEL, value=swarm)],
            # VXLAN inside the instances' network: Docker's default assumes 1500 under it;
            # on a smaller network, full-size packets between the hub and a notebook on
            # another VM are dropped and connections stall.
            options=overlay_network_options(cfg.swarm.overlay_mtu) if cfg.swarm else None,
            opts=on_manager,
        )
        # The hub's static config, its modules and its settings, each a docker config in the
        # folder the image's command reads.
        hub_configs = []
        for file_name, text in hub_config_files(hub_spec).items():
            part = config_part(file_name)
            hub_configs.append(
                (
                    f"{service.config_dir}/{file_name}",
                    docker.ServiceConfig(
                        f"{name}-{part}",
                        name=_content_name(f"jshub-hub-{part}", text),
                        data=_b64(text),
                        labels=[docker.ServiceConfigLabelArgs(label=SWARM_LABEL, value=swarm)],
                        opts=on_manager,
                    ),
                )
            )
        plain = {key.lower(): value for key, value in workshop_secrets(cfg).items()}
        if cfg.oauth_client_secret is not None:
            plain["oauth_client_secret"] = cfg.oauth_client_secret.get_secret_value()
        values: dict[str, pulumi.Output[str]] = {
            **{key: pulumi.Output.secret(value) for key, value in plain.items()},
            "jshub_admin_token": pulumi.Output.secret(pulumi.Output.from_input(args.admin_token)),
        }
        if args.metrics_token is not None:
            values["jshub_metrics_token"] = pulumi.Output.secret(pulumi.Output.from_input(args.metrics_token))
        secrets = []
        for secret_name in service.secrets:
            value = values[secret_name]
            # A 12-digit hash of a high-entropy secret reveals nothing of it, and keeps the
            # service spec reviewable in the plan. A workshop password is short and guessable:
            # its name hashes it keyed with the admin token, so the name cannot be searched.
            content = value
            if secret_name.startswith("workshop_"):
                content = pulumi.Output.all(values["jshub_admin_token"], value).apply(
                    lambda keyed: hmac.new(keyed[0].encode(), keyed[1].encode(), "sha256").hexdigest()
                )
            secret = docker.Secret(
                f"{name}-{secret_name.replace('_', '-')}",
                name=pulumi.Output.unsecret(content.apply(functools.partial(_content_name, secret_name))),
                data=value.apply(_b64),
                labels=[docker.SecretLabelArgs(label=SWARM_LABEL, value=swarm)],
                opts=pulumi.ResourceOptions.merge(
                    on_manager, pulumi.ResourceOptions(additional_secret_outputs=["data"])
                ),
            )
            secrets.append(
                docker.ServiceTaskSpecContainerSpecSecretArgs(
                    secret_id=secret.id, secret_name=secret.name, file_name=secret_name, file_mode=0o400
                )
            )

        docker.Service(
            f"{name}-service",
            name=service.name,
            task_spec=docker.ServiceTaskSpecArgs(
                container_spec=docker.ServiceTaskSpecContainerSpecArgs(
                    image=image.image_name,
                    configs=[
                        docker.ServiceTaskSpecContainerSpecConfigArgs(
                            config_id=config.id, config_name=config.name, file_name=target, file_mode=0o444
                        )
                        for target, config in hub_configs
                    ],
                    secrets=secrets,
                    mounts=[
                        docker.ServiceTaskSpecContainerSpecMountArgs(type="bind", source=src, target=dst)
                        for src, dst in service.binds
                    ],
                ),
                placement=docker.ServiceTaskSpecPlacementArgs(constraints=list(service.constraints)),
                networks_advanceds=[docker.ServiceTaskSpecNetworksAdvancedArgs(id=network.id)],
                restart_policy=docker.ServiceTaskSpecRestartPolicyArgs(
                    condition=service.restart_condition, delay="5s"
                ),
            ),
            mode=docker.ServiceModeArgs(replicated=docker.ServiceModeReplicatedArgs(replicas=1)),
            endpoint_spec=docker.ServiceEndpointSpecArgs(
                mode=service.endpoint_mode,
                ports=[
                    docker.ServiceEndpointSpecPortArgs(
                        target_port=service.target_port,
                        published_port=service.published_port,
                        publish_mode=service.publish_mode,
                        protocol="tcp",
                    )
                ],
            ),
            labels=[docker.ServiceLabelArgs(label=SWARM_LABEL, value=swarm)],
            opts=pulumi.ResourceOptions.merge(on_manager, pulumi.ResourceOptions(depends_on=[image])),
        )

        self.url = cfg.hub_url
        self.service_name = service.name
        self.image = service.image
        self.register_outputs({"url": self.url, "service_name": self.service_name, "image": self.image})
