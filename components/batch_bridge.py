"""BatchBridge: the hub's way onto an HPC system. Owns the hub→login-node SSH key, delivers
it and the login node's pinned host key to the hub VM, and says how the hub's spawner drives
SLURM there (renderers.hub_config.SlurmSpawnerSpec, which the HubVM's config includes)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_command as command
import pulumi_tls as tls

from components.firewall import Ingress
from renderers.hub_config import HUB_API_PORT, HubPaths, SlurmSpawnerSpec
from renderers.scripts import render_install_hpc_key_script
from renderers.user_env import HpcLogin, UsersEnvSpec, render_hpc_users_env_script
from stackconfig import StackConfig


def hub_api_ingress(cfg: StackConfig) -> list[Ingress]:
    """direct mode: only the compute nodes' networks may call the hub API; ssh-tunnel: none."""
    if cfg.hpc is None or cfg.hpc.connectivity != "direct":
        return []
    return [
        Ingress(f"hub API from compute nodes {cidr}", "tcp", HUB_API_PORT, HUB_API_PORT, cidr=cidr)
        for cidr in cfg.hpc.compute_cidrs
    ]


def spawner_spec(cfg: StackConfig, paths: HubPaths | None = None) -> SlurmSpawnerSpec:
    if cfg.hpc is None:
        raise ValueError("BatchBridge needs the stack's hpc section")
    return SlurmSpawnerSpec.from_config(cfg.hpc, cfg.hub_fqdn, paths or HubPaths())


@dataclass(frozen=True)
class BatchBridgeArgs:
    config: StackConfig
    # The hub VM, as its remote commands reach it, and what identifies its root disk (HubVM's
    # root_disk: a new or rebuilt server needs the key again).
    hub_connection: command.remote.ConnectionArgs
    hub_root_disk: Sequence[pulumi.Input[str]]
    # The course's packages, built on the HPC system (userEnvironment); None: none.
    users_env: UsersEnvSpec | None = None


class BatchBridge(pulumi.ComponentResource):
    spawner: SlurmSpawnerSpec
    public_key: pulumi.Output[str]
    known_hosts: str

    def __init__(self, name: str, args: BatchBridgeArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("jshub:index:BatchBridge", name, None, opts)
        cfg = args.config
        self.spawner = spawner_spec(cfg)
        self.known_hosts = self.spawner.known_hosts

        given = cfg.hpc_ssh_private_key
        key: tls.PrivateKey | None = None
        if given is None:
            key = tls.PrivateKey(f"{name}-key", algorithm="ED25519", opts=pulumi.ResourceOptions(parent=self))
            private_key = key.private_key_openssh
        else:
            private_key = pulumi.Output.secret(given.get_secret_value().strip() + "\n")

        install = command.remote.Command(
            f"{name}-install-key",
            connection=args.hub_connection,
            create=render_install_hpc_key_script(
                self.spawner.key_file, self.spawner.known_hosts_file, self.known_hosts
            ),
            stdin=pulumi.Output.secret(private_key),  # type: ignore[arg-type]
            logging=command.remote.Logging.NONE,
            # The key lives on the hub's root disk: a new or rebuilt server needs it again. No
            # depends_on on the hub: the script waits for cloud-init itself, so it runs
            # alongside the hub's secrets, not after them.
            triggers=list(args.hub_root_disk),
            opts=pulumi.ResourceOptions(
                parent=self,
                # stdout is the public key only; stdin holds the private key.
                additional_secret_outputs=["stdin", "stderr"],
            ),
        )
        # The course's packages (userEnvironment): built on the HPC system over this key, as the
        # gateway's account, in the folder the stack names; a step of its own, so that a change
        # of packages runs it alone. It lives there, not on the hub's disk: a rebuilt hub keeps it.
        if args.users_env is not None:
            hpc = cfg.hpc
            assert hpc is not None and hpc.community_account is not None
            command.remote.Command(
                f"{name}-user-env",
                connection=args.hub_connection,
                create=render_hpc_users_env_script(
                    args.users_env,
                    HpcLogin(
                        host=self.spawner.login_host,
                        port=self.spawner.login_port,
                        account=hpc.community_account,
                        key_file=self.spawner.key_file,
                        known_hosts_file=self.spawner.known_hosts_file,
                    ),
                ),
                triggers=[args.users_env.env_id],
                opts=pulumi.ResourceOptions(parent=self, depends_on=[install]),
            )
        if key is not None:
            self.public_key = key.public_key_openssh.apply(str.strip)
        else:
            self.public_key = install.stdout.apply(lambda out: out.strip())
        self.register_outputs({"public_key": self.public_key, "known_hosts": self.known_hosts})
