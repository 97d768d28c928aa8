"""SwarmCluster: a Docker Swarm of one manager VM and N worker VMs on Jetstream2.

The manager holds the protected XFS volume with every home and the hub's state, exports the
homes over NFS to the workers only, and runs the hub (see SwarmHub). Workers are named by
index, so changing the worker count adds or drains and removes only the workers at the end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_command as command
import pulumi_tls as tls

from catalog.jetstream2 import DEFAULT_LOGIN_USER
from components.firewall import Ingress, RoleSecurityGroup, RoleSecurityGroupArgs
from components.vm import DataVolume, DnsRecord, JetstreamVM, JetstreamVMArgs, VolumeIds, removal_step
from renderers.swarm import (
    ManagerBootSpec,
    WorkerBootSpec,
    render_manager_cloud_init,
    render_nfs_exports_script,
    render_node_ready_script,
    render_node_remove_script,
    render_swarm_init_script,
    render_swarm_join_script,
    render_worker_cloud_init,
)
from renderers.swarm_manager import render_caddy_config_script, render_host_key_script
from stackconfig import StackConfig


def cluster_ingress(node_exporter: bool = False) -> list[Ingress]:
    """Swarm and NFS ports, open only between members of the cluster's own group; with
    monitoring, node exporter's port, which the manager's Prometheus scrapes on each worker."""
    monitoring = [Ingress("node exporter (monitoring)", "tcp", 9100, 9100, from_self=True)]
    return (monitoring if node_exporter else []) + [
        Ingress("swarm cluster management", "tcp", 2377, 2377, from_self=True),
        Ingress("swarm node gossip", "tcp", 7946, 7946, from_self=True),
        Ingress("swarm node gossip", "udp", 7946, 7946, from_self=True),
        Ingress("swarm overlay network (VXLAN)", "udp", 4789, 4789, from_self=True),
        Ingress("NFS homes", "tcp", 2049, 2049, from_self=True),
        # The stack reaches workers through the manager (they have no public address).
        Ingress("ssh between members", "tcp", 22, 22, from_self=True),
    ]


@dataclass(frozen=True)
class WorkerHost:
    """A worker as the stack's remote commands reach it (through the manager)."""

    connection: command.remote.ConnectionArgs
    # Its server's ID and image: what a step that installs on its root disk triggers on.
    root_disk: list[pulumi.Input[str]]
    private_ip: pulumi.Output[str]


@dataclass(frozen=True)
class SwarmClusterArgs:
    config: StackConfig
    network_id: pulumi.Input[str]
    subnet_id: pulumi.Input[str]
    # The manager's public role (web from anywhere, SSH from the admin networks).
    manager_security_group_ids: Sequence[pulumi.Input[str]]


class SwarmCluster(pulumi.ComponentResource):
    manager_public_ip: pulumi.Output[str]
    manager_private_ip: pulumi.Output[str]
    worker_names: list[str]
    homes_volume_id: pulumi.Output[str]
    deploy_public_key: pulumi.Output[str]
    # The manager's SSH host key (public, OpenSSH format), installed by the stack: the Docker
    # provider pins it.
    manager_host_key: pulumi.Output[str]
    # The swarm's cluster ID: a new one (a replaced or re-imaged manager) means the hub's Docker
    # objects must be made again there.
    swarm_id: pulumi.Output[str]
    # How the stack's remote commands reach the manager (holds the deploy key: secret).
    manager_connection: command.remote.ConnectionArgs
    # The manager's root disk (components/vm.py): what its backup and monitoring installs follow.
    manager_root_disk: list[pulumi.Input[str]]
    # What the hub must depend on: the swarm itself (init, its ID), the manager's host key and
    # the homes' export table. Not the workers: the hub is built and started on the manager
    # while they join, and the plan's time to a working hub still counts them (workers_ready).
    ready: list[pulumi.Resource]
    # Each worker joined and labelled for notebooks.
    workers_ready: list[pulumi.Resource]
    # Each worker's removal step, whose delete command drains it before its server goes.
    worker_removals: list[pulumi.Resource]
    workers: list[WorkerHost]

    def __init__(self, name: str, args: SwarmClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("jshub:index:SwarmCluster", name, None, opts)
        cfg = args.config
        swarm = cfg.swarm
        if swarm is None:
            raise ValueError(f"{name}: scenario swarm needs the swarm section of the config")
        child = pulumi.ResourceOptions(parent=self)

        # The stack's own SSH key, for its remote commands; the operator's key pair stays theirs.
        deploy_key = tls.PrivateKey(f"{name}-deploy-key", algorithm="ED25519", opts=child)
        host_key = tls.PrivateKey(f"{name}-manager-host-key", algorithm="ED25519", opts=child)
        members = RoleSecurityGroup(
            f"{pulumi.get_stack()}-swarm",
            RoleSecurityGroupArgs(role="swarm", ingress=cluster_ingress(cfg.monitoring.on_for(cfg.scenario))),
            opts=child,
        )

        def manager_user_data(volumes: VolumeIds) -> pulumi.Output[str]:
            return pulumi.Output.all(volumes["homes"], deploy_key.public_key_openssh).apply(
                lambda values: render_manager_cloud_init(
                    ManagerBootSpec(
                        fqdn=cfg.hub_fqdn,
                        lets_encrypt_email=cfg.lets_encrypt_email,
                        acme_directory=cfg.acme_directory,
                        data_volume_id=values[0],
                        deploy_public_key=values[1],
                    )
                )
            )

        manager = JetstreamVM(
            f"{name}-manager",
            JetstreamVMArgs(
                role="swarm-manager",
                flavor=swarm.manager_flavor,
                image=cfg.image,
                image_id=cfg.image_id,
                shelved=cfg.shelved,
                key_pair=cfg.key_pair,
                network_id=args.network_id,
                subnet_id=args.subnet_id,
                security_group_ids=[*args.manager_security_group_ids, members.group_id],
                user_data=manager_user_data,
                floating_ip=True,
                keep_floating_ip=True,
                data_volumes=[
                    DataVolume(
                        "homes", swarm.nfs_volume_gb, "JupyterHub homes (XFS, per-user quotas) and hub state"
                    )
                ],
                dns=DnsRecord(zone=cfg.zone, hostname=cfg.hub_hostname),
                # Its user data serves the first boot only: what changes on day 2 (Caddy's name
                # and e-mail) is written over SSH below, so such a change does not replace the
                # manager, its swarm, and every running notebook.
                replace_on_user_data_change=False,
            ),
            opts=child,
        )
        assert manager.public_ip is not None
        to_manager = command.remote.ConnectionArgs(
            host=manager.public_ip,
            user=DEFAULT_LOGIN_USER,
            private_key=deploy_key.private_key_openssh,
            # The VM is still booting when this starts: keep dialling for ~10 minutes.
            dial_error_limit=60,
            per_dial_timeout=10,
        )

        # A re-imaged root disk (image) has lost what these put there.
        on_manager = manager.root_disk
        command.remote.Command(
            f"{name}-caddy",
            connection=to_manager,
            create=render_caddy_config_script(
                cfg.hub_fqdn, cfg.lets_encrypt_email, acme_directory=cfg.acme_directory
            ),
            logging=command.remote.Logging.STDERR,
            # A new name or e-mail changes the script, which runs again.
            triggers=on_manager,
            opts=child,
        )
        install_host_key = command.remote.Command(
            f"{name}-install-host-key",
            connection=to_manager,
            create=render_host_key_script(),
            stdin=pulumi.Output.secret(host_key.private_key_openssh),  # type: ignore[arg-type]
            logging=command.remote.Logging.NONE,
            triggers=on_manager,
            opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["stdin", "stderr"]),
        )
        init = command.remote.Command(
            f"{name}-swarm-init",
            connection=to_manager,
            create=manager.private_ip.apply(render_swarm_init_script),
            logging=command.remote.Logging.STDERR,
            # A new or re-imaged manager server is a new swarm. No depends_on on the whole VM:
            # the script waits for cloud-init itself, and the swarm does not need the homes volume.
            triggers=on_manager,
            opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["stdout"]),
        )
        # The join token, then the manager's node ID (see swarm-init.sh.j2).
        token: pulumi.Output[str] = init.stdout.apply(lambda out: out.strip() + "\n")
        join_token: pulumi.Output[str] = pulumi.Output.secret(token)  # type: ignore[arg-type]
        swarm_id = command.remote.Command(
            f"{name}-swarm-id",
            connection=to_manager,
            create="sudo docker info --format '{{.Swarm.Cluster.ID}}'",
            logging=command.remote.Logging.STDERR,
            triggers=[init.id],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[init]),
        )

        self.worker_names = []
        self.worker_removals = []
        self.workers = []
        worker_ips: list[pulumi.Output[str]] = []
        node_commands: list[pulumi.Resource] = []
        worker_user_data = pulumi.Output.all(manager.private_ip, deploy_key.public_key_openssh).apply(
            lambda values: render_worker_cloud_init(
                WorkerBootSpec(manager_addr=values[0], deploy_public_key=values[1])
            )
        )
        for index in range(swarm.worker_count):
            worker_name = f"{name}-worker-{index}"
            worker = JetstreamVM(
                worker_name,
                JetstreamVMArgs(
                    role="swarm-worker",
                    flavor=swarm.worker_flavor,
                    image=cfg.image,
                    image_id=cfg.image_id,
                    shelved=cfg.shelved,
                    key_pair=cfg.key_pair,
                    network_id=args.network_id,
                    subnet_id=args.subnet_id,
                    security_group_ids=[members.group_id],
                    user_data=worker_user_data,
                ),
                opts=child,
            )
            to_worker = command.remote.ConnectionArgs(
                host=worker.private_ip,
                user=DEFAULT_LOGIN_USER,
                private_key=deploy_key.private_key_openssh,
                dial_error_limit=60,
                per_dial_timeout=10,
                # Workers have no public address: the stack reaches them through the manager.
                proxy=command.remote.ProxyConnectionArgs(
                    host=manager.public_ip,
                    user=DEFAULT_LOGIN_USER,
                    private_key=deploy_key.private_key_openssh,
                    dial_error_limit=60,
                    per_dial_timeout=10,
                ),
            )
            join = command.remote.Command(
                f"{worker_name}-join",
                connection=to_worker,
                create=manager.private_ip.apply(render_swarm_join_script),
                # No `swarm leave` on delete: a join is replaced when the swarm is new, and the
                # old one's delete would run after the new join and take the worker out again.
                # The script leaves a dead swarm itself; a deleted worker is removed from the
                # swarm by the manager (the node command below).
                stdin=join_token,
                logging=command.remote.Logging.STDERR,
                triggers=[*worker.root_disk, init.id],
                opts=pulumi.ResourceOptions(
                    parent=self,
                    depends_on=[worker, init],
                    additional_secret_outputs=["stdin", "stdout"],
                ),
            )
            # Runs on the manager: label the node for notebooks once it is ready.
            node = command.remote.Command(
                f"{worker_name}-node",
                connection=to_manager,
                create=render_node_ready_script(worker_name),
                # Again on a new swarm (labels are the swarm's) or a re-imaged worker. No delete
                # command here: a replaced step's old delete runs after the new one's create,
                # and would take a re-imaged worker out of the swarm again.
                triggers=[*worker.root_disk, init.id],
                opts=pulumi.ResourceOptions(parent=self, depends_on=[join]),
            )
            # On the manager before the worker's server is deleted: drain the node, remove it
            # from the swarm.
            removal = removal_step(
                worker, worker_name, to_manager, render_node_remove_script(worker_name), self
            )
            self.worker_names.append(worker_name)
            self.workers.append(WorkerHost(to_worker, worker.root_disk, worker.private_ip))
            worker_ips.append(worker.private_ip)
            node_commands.append(node)
            self.worker_removals.append(removal)

        # The homes are exported to the workers' addresses and nobody else; a changed worker
        # set rewrites the export table without touching the manager or the volume.
        exports = command.remote.Command(
            f"{name}-nfs-exports",
            connection=to_manager,
            create=pulumi.Output.all(*worker_ips).apply(lambda ips: render_nfs_exports_script(list(ips))),
            # A new or re-imaged manager server needs its export table again.
            triggers=on_manager,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[init]),
        )

        self.manager_public_ip = manager.public_ip
        self.manager_private_ip = manager.private_ip
        self.homes_volume_id = manager.volume_ids["homes"]
        self.deploy_public_key = deploy_key.public_key_openssh.apply(str.strip)
        self.manager_host_key = host_key.public_key_openssh.apply(str.strip)
        self.swarm_id = swarm_id.stdout.apply(str.strip)
        self.manager_connection = to_manager
        self.manager_root_disk = manager.root_disk
        self.ready = [init, exports, install_host_key, swarm_id]
        self.workers_ready = node_commands
        self.register_outputs(
            {
                "manager_public_ip": self.manager_public_ip,
                "manager_private_ip": self.manager_private_ip,
                "worker_names": self.worker_names,
                "homes_volume_id": self.homes_volume_id,
            }
        )
