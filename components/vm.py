"""JetstreamVM: a port with the role's security groups, an instance booted with cloud-init,
and optionally protected data volumes, a floating IP and a DNS record."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_command as command
import pulumi_openstack as openstack

from catalog import EXTERNAL_NETWORK

VolumeIds = Mapping[str, pulumi.Output[str]]
UserData = pulumi.Input[str] | Callable[[VolumeIds], pulumi.Input[str]]

# A JetstreamVM named `n` holds its server as the Instance `n-server`: how a stack recognises,
# in its deployed state, which VMs exist already (stacks/deployed.py).
INSTANCE_TYPE = "openstack:compute/instance:Instance"
SERVER_SUFFIX = "-server"


@dataclass(frozen=True)
class DataVolume:
    """A Cinder volume holding user data. It is protected and retained on delete: replacing the
    VM, or even `pulumi destroy`, leaves it (and the files on it) in the allocation."""

    name: str
    size_gb: int
    description: str


@dataclass(frozen=True)
class DnsRecord:
    zone: str
    hostname: str

    @property
    def fqdn(self) -> str:
        return f"{self.hostname}.{self.zone.rstrip('.')}"


def a_record(
    name: str, zone: str, fqdn: str, address: pulumi.Input[str], parent: pulumi.Resource
) -> openstack.dns.RecordSet:
    """The `A` record of `fqdn` in the allocation's Designate zone, pointing at `address`."""
    found = openstack.dns.get_dns_zone_output(name=zone, opts=pulumi.InvokeOutputOptions(parent=parent))
    return openstack.dns.RecordSet(
        name,
        zone_id=found.id,
        name=f"{fqdn}.",
        type="A",
        ttl=300,
        records=[address],
        opts=pulumi.ResourceOptions(parent=parent),
    )


@dataclass(frozen=True)
class JetstreamVMArgs:
    role: str
    flavor: str
    image: str
    key_pair: str
    network_id: pulumi.Input[str]
    subnet_id: pulumi.Input[str]
    security_group_ids: Sequence[pulumi.Input[str]]
    # cloud-init text, or a function of the data volumes' IDs that returns it.
    user_data: UserData
    floating_ip: bool = False
    # The floating IP is the hub's address: sites allow-list it (an HPC login node's `from=`
    # key restriction, firewalls) and DNS names it. Protected and retained on delete, so
    # neither a change nor `pulumi destroy` gives it back to the pool (README: how to release it).
    keep_floating_ip: bool = False
    data_volumes: Sequence[DataVolume] = field(default_factory=tuple)
    dns: DnsRecord | None = None
    # False: user data serves the first boot only, and a later change to it leaves the server
    # alone instead of replacing it (cluster nodes, whose replacement all at once would lose
    # the cluster's state).
    replace_on_user_data_change: bool = True
    # Resources the server itself waits for (the volumes and port do not): on every step of a
    # change too, which is how cluster nodes are rebuilt or resized one after the other.
    instance_depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)
    # A Glance image ID (a build of `image`) to boot instead of the name. The provider's read
    # then has no name to find changed, so a refresh of the featured image never rebuilds
    # the server; only a change of this ID does.
    image_id: str | None = None
    # Shelved (shelved_offloaded): off its hypervisor, charged no SUs; its ID, port, floating
    # IP and volumes stay, so nothing that follows the server changes.
    shelved: bool = False


class JetstreamVM(pulumi.ComponentResource):
    instance_id: pulumi.Output[str]
    # The ID of the image the server booted, as the provider reads it back from Nova: not the
    # image name in the config, which stays the same while the image behind it moves.
    image_id: pulumi.Output[str]
    # What identifies the server's root disk: its ID (a replacement) and the image it booted
    # (a rebuild keeps the ID and re-images the disk). A remote step that puts state on the
    # root disk triggers on these, so it runs again whenever that state is gone, also after a
    # rebuild no config change asked for (the provider's read after `pulumi refresh` recorded
    # another image for the same name, and the next `pulumi up` rebuilds to the current one).
    root_disk: list[pulumi.Input[str]]
    private_ip: pulumi.Output[str]
    public_ip: pulumi.Output[str] | None
    volume_ids: dict[str, pulumi.Output[str]]
    fqdn: str | None

    def __init__(self, name: str, args: JetstreamVMArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("jshub:index:JetstreamVM", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        port = openstack.networking.Port(
            f"{name}-port",
            name=name,
            network_id=args.network_id,
            fixed_ips=[openstack.networking.PortFixedIpArgs(subnet_id=args.subnet_id)],
            security_group_ids=list(args.security_group_ids),
            admin_state_up=True,
            opts=child,
        )

        volumes = {
            vol.name: openstack.blockstorage.Volume(
                f"{name}-{vol.name}",
                name=f"{name}-{vol.name}",
                size=vol.size_gb,
                description=vol.description,
                enable_online_resize=True,
                opts=pulumi.ResourceOptions(parent=self, protect=True, retain_on_delete=True),
            )
            for vol in args.data_volumes
        }
        self.volume_ids = {vol_name: vol.id for vol_name, vol in volumes.items()}
        user_data = args.user_data(self.volume_ids) if callable(args.user_data) else args.user_data

        # A Cinder volume attaches to one server at a time, so a replacement server must not
        # come up (and try to attach) before the old one is gone.
        instance = openstack.compute.Instance(
            f"{name}{SERVER_SUFFIX}",
            name=name,
            flavor_name=args.flavor,
            image_id=args.image_id,
            image_name=None if args.image_id else args.image,
            key_pair=args.key_pair,
            networks=[openstack.compute.InstanceNetworkArgs(port=port.id)],
            user_data=user_data,
            metadata={"role": args.role, "managed-by": "jupyterhub-jetstream"},
            # The SDK's power_state takes active, shutoff, paused and shelved_offloaded, and its
            # docstring names no new server for a change of it: Nova shelves or unshelves the
            # same server (planner/change_model.json: update in place).
            power_state="shelved_offloaded" if args.shelved else "active",
            opts=pulumi.ResourceOptions(
                parent=self,
                delete_before_replace=True,
                ignore_changes=None if args.replace_on_user_data_change else ["userData"],
                depends_on=list(args.instance_depends_on),
            ),
        )
        for vol_name, vol in volumes.items():
            openstack.compute.VolumeAttach(
                f"{name}-{vol_name}-attach",
                instance_id=instance.id,
                volume_id=vol.id,
                opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
            )

        self.instance_id = instance.id
        self.image_id = instance.image_id
        self.root_disk = [instance.id, instance.image_id]
        self.private_ip = port.all_fixed_ips.apply(lambda ips: ips[0] if ips else "")
        self.public_ip = None
        self.fqdn = None
        if args.floating_ip:
            fip = openstack.networking.FloatingIp(
                f"{name}-fip",
                pool=EXTERNAL_NETWORK,
                port_id=port.id,
                description=f"{name} ({args.role})",
                opts=pulumi.ResourceOptions(
                    parent=self, protect=args.keep_floating_ip, retain_on_delete=args.keep_floating_ip
                ),
            )
            self.public_ip = fip.address
            if args.dns is not None:
                a_record(f"{name}-dns", args.dns.zone, args.dns.fqdn, fip.address, parent=self)
                self.fqdn = args.dns.fqdn
        elif args.dns is not None:
            raise ValueError(f"{name}: a DNS record needs a floating IP")

        self.register_outputs(
            {
                "instance_id": self.instance_id,
                "private_ip": self.private_ip,
                "public_ip": self.public_ip,
                "volume_ids": self.volume_ids,
            }
        )


def removal_step(
    vm: JetstreamVM,
    node: str,
    connection: command.remote.ConnectionArgs,
    delete: pulumi.Input[str],
    parent: pulumi.Resource,
) -> command.remote.Command:
    """`<node>-removal`: a remote step whose delete command (a drain) runs before `vm`'s server
    is deleted (a smaller cluster, or a destroy): it depends on the VM, and Pulumi deletes
    dependents first. Nothing else: no triggers and an update command, so it is never replaced,
    whose old delete would run after the new create and drain a live node."""
    note = f"echo {node} is drained here before its server is deleted"
    return command.remote.Command(
        f"{node}-removal",
        connection=connection,
        create=note,
        update=note,
        delete=delete,
        logging=command.remote.Logging.STDOUT_AND_STDERR,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[vm]),
    )
