"""Jetstream2 facts the program relies on, in one place, each with its source."""

from catalog.jetstream2 import (
    AUTO_ALLOCATED_NETWORK,
    AUTO_ALLOCATED_SUBNET,
    DEFAULT_QUOTAS,
    DNS_ZONE_SUFFIX,
    EXTERNAL_NETWORK,
    FEATURED_IMAGES,
    FLAVORS,
    Flavor,
    Quotas,
    allocation_zone,
)

__all__ = [
    "AUTO_ALLOCATED_NETWORK",
    "AUTO_ALLOCATED_SUBNET",
    "DEFAULT_QUOTAS",
    "DNS_ZONE_SUFFIX",
    "EXTERNAL_NETWORK",
    "FEATURED_IMAGES",
    "FLAVORS",
    "Flavor",
    "Quotas",
    "allocation_zone",
]
