"""Typed Pulumi ComponentResources, one module each; type tokens are `jshub:index:<Name>`."""

from components.batch_bridge import BatchBridge, BatchBridgeArgs
from components.firewall import Ingress, RoleSecurityGroup, RoleSecurityGroupArgs
from components.hub import HubVM, HubVMArgs
from components.network import JetstreamNetwork, JetstreamNetworkArgs
from components.vm import DataVolume, DnsRecord, JetstreamVM, JetstreamVMArgs

__all__ = [
    "BatchBridge",
    "BatchBridgeArgs",
    "DataVolume",
    "DnsRecord",
    "HubVM",
    "HubVMArgs",
    "Ingress",
    "JetstreamNetwork",
    "JetstreamNetworkArgs",
    "JetstreamVM",
    "JetstreamVMArgs",
    "RoleSecurityGroup",
    "RoleSecurityGroupArgs",
]
