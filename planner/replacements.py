"""Which input changes make the cloud replace a resource rather than update it in place.

pulumi-openstack, -tls, -random are bridged from the Terraform providers, whose schemas mark
these attributes ForceNew (terraform-provider-openstack docs, "Changing this creates a new
..." on each attribute; registry.terraform.io/providers/terraform-provider-openstack);
pulumi-command replaces a Command when `triggers` change (pulumi.com/registry/packages/command).
"*" means every input."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

ALL = frozenset({"*"})

REPLACE_ON_CHANGES: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "openstack:compute/instance:Instance": frozenset(
            {
                "userData",
                "imageName",
                "imageId",
                "keyPair",
                "availabilityZone",
                "configDrive",
                "personalities",
                "networks",
                "blockDevices",
                "schedulerHints",
                "region",
            }
        ),
        "openstack:blockstorage/volume:Volume": frozenset(
            {
                "availabilityZone",
                "imageId",
                "snapshotId",
                "sourceVolId",
                "sourceReplica",
                "consistencyGroupId",
                "region",
            }
        ),
        "openstack:compute/volumeAttach:VolumeAttach": frozenset(
            {"instanceId", "volumeId", "device", "multiattach", "region"}
        ),
        "openstack:networking/port:Port": frozenset({"networkId", "tenantId", "region"}),
        "openstack:networking/floatingIp:FloatingIp": frozenset(
            {"pool", "address", "subnetId", "tenantId", "region"}
        ),
        "openstack:networking/secGroup:SecGroup": frozenset({"tenantId", "region"}),
        "openstack:networking/secGroupRule:SecGroupRule": ALL,
        "openstack:networking/network:Network": frozenset({"tenantId", "region", "valueSpecs"}),
        "openstack:networking/subnet:Subnet": frozenset(
            {"networkId", "cidr", "ipVersion", "tenantId", "prefixLength", "subnetpoolId", "region"}
        ),
        "openstack:networking/router:Router": frozenset(
            {"tenantId", "region", "distributed", "availabilityZoneHints"}
        ),
        "openstack:networking/routerInterface:RouterInterface": ALL,
        "openstack:dns/recordSet:RecordSet": frozenset({"zoneId", "name", "type", "projectId", "region"}),
        "tls:index/privateKey:PrivateKey": ALL,
        "random:index/randomPassword:RandomPassword": ALL,
        "command:remote:Command": frozenset({"triggers"}),
    }
)


def replaces(resource_type: str, changed_inputs: set[str]) -> set[str]:
    """The changed inputs that force a replacement of a resource of this type."""
    force = REPLACE_ON_CHANGES.get(resource_type, frozenset())
    return set(changed_inputs) if force == ALL else changed_inputs & force
