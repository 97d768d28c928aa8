"""Jetstream2 (OpenStack at Indiana University) catalog.

Sources:
- Flavors and SU rates: https://docs.jetstream-cloud.org/general/instance-flavors/
  ("1 SU is equivalent to 1 vCPU for 1 hour"; Large Memory r3.* cost 2 SU per vCPU-hour;
  GPU g3.* cost 2 SU per vCPU-hour on the current page, after an earlier rate of 4).
- GPU flavors (same page, "Jetstream2 GPU"): g3.small/medium/large are vGPU slices of one
  NVIDIA A100 40GB (5, 10 and 20 GB of GPU memory: 1/8, 1/4 and 1/2 of the card); g3.xl has a
  whole A100 by PCI passthrough, and 120 GB of RAM since Jetstream2 lowered it from 125 for
  whole-card flavors (gitlab.com/jetstream-cloud/jetstream2/docs issue 97). Each g3 instance
  sees exactly one GPU device.
- Resources: Jetstream2 (CPU), Jetstream2 GPU and Jetstream2 Large Memory are separate ACCESS
  resources, each with its own SU balance; access to one does not give access to the others
  (same page: "Having access to one does NOT yield access to all").
- Featured images: https://docs.jetstream-cloud.org/general/featured/
- Networking (`public` external network, `auto_allocated_network`, one router per
  allocation): https://docs.jetstream-cloud.org/ui/cli/network/ and
  https://docs.jetstream-cloud.org/general/network/
- DNS (Designate zone per allocation):
  https://docs.jetstream-cloud.org/general/dns/
- Default quotas: https://docs.jetstream-cloud.org/alloc/storage/ and
  https://docs.jetstream-cloud.org/general/quotas/
- Object storage: https://docs.jetstream-cloud.org/general/s3/ ("The Jetstream2 object store
  hosts an S3-compatible API at the endpoint https://js2.jetstream-cloud.org:8001"; EC2
  credentials from `openstack ec2 credentials create`; region RegionOne; bucket names are
  global). Storage is its own ACCESS resource in GB, not SUs:
  https://docs.jetstream-cloud.org/general/storage/ (every allocation gets 1 TB of "Jetstream2
  Storage"; more is exchanged at 1 ACCESS credit = 1 GB).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class Flavor:
    name: str
    vcpus: int
    ram_gb: float
    root_disk_gb: int
    su_per_vcpu_hour: float
    gpu_fraction: float = 0.0
    # The GPU memory an instance sees (GB): its slice of an A100 40GB.
    gpu_memory_gb: float = 0.0

    @property
    def su_per_hour(self) -> float:
        return self.vcpus * self.su_per_vcpu_hour

    @property
    def gpu(self) -> bool:
        return self.gpu_fraction > 0

    @property
    def resource(self) -> str:
        """The ACCESS resource whose SUs this flavor spends."""
        if self.gpu:
            return GPU_RESOURCE
        return LARGE_MEMORY_RESOURCE if self.name.startswith("r3.") else CPU_RESOURCE


CPU_RESOURCE = "Jetstream2"
GPU_RESOURCE = "Jetstream2 GPU"
LARGE_MEMORY_RESOURCE = "Jetstream2 Large Memory"
# Every g3 flavor gives its instance one GPU device (a vGPU slice or a whole card).
GPUS_PER_GPU_INSTANCE = 1


def _flavors(*flavors: Flavor) -> Mapping[str, Flavor]:
    return MappingProxyType({f.name: f for f in flavors})


FLAVORS: Mapping[str, Flavor] = _flavors(
    Flavor("m3.tiny", 1, 3, 20, 1),
    Flavor("m3.small", 2, 6, 20, 1),
    Flavor("m3.quad", 4, 15, 20, 1),
    Flavor("m3.medium", 8, 30, 60, 1),
    Flavor("m3.large", 16, 60, 60, 1),
    Flavor("m3.xl", 32, 125, 60, 1),
    Flavor("m3.2xl", 64, 250, 60, 1),
    Flavor("r3.large", 64, 500, 60, 2),
    Flavor("r3.xl", 128, 1000, 60, 2),
    Flavor("g3.small", 4, 15, 60, 2, gpu_fraction=0.125, gpu_memory_gb=5),
    Flavor("g3.medium", 8, 30, 60, 2, gpu_fraction=0.25, gpu_memory_gb=10),
    Flavor("g3.large", 16, 60, 60, 2, gpu_fraction=0.5, gpu_memory_gb=20),
    Flavor("g3.xl", 32, 120, 60, 2, gpu_fraction=1.0, gpu_memory_gb=40),
)

FEATURED_IMAGES: tuple[str, ...] = ("Featured-Ubuntu24", "Featured-Ubuntu22")
# Jetstream2's featured Ubuntu images come with NVIDIA's driver for its vGPU slices and cards
# installed (docs.jetstream-cloud.org/general/featured/ and /faq/gpu/: the driver is on the
# featured images, and a CUDA toolkit is in the software collection), so a g3 instance needs no
# driver from the stack. What the images do not carry is NVIDIA's container toolkit, which a
# Kubernetes node needs to hand the GPU to a container. The stack checks the driver at boot
# (`nvidia-smi`) instead of trusting this.
FEATURED_IMAGES_CARRY_NVIDIA_DRIVER = True

EXTERNAL_NETWORK = "public"
AUTO_ALLOCATED_NETWORK = "auto_allocated_network"
AUTO_ALLOCATED_SUBNET = "auto_allocated_subnet_v4"
DNS_ZONE_SUFFIX = "projects.jetstream-cloud.org"

# Let's Encrypt refuses a certificate whose common name is longer than 64 characters.
LETSENCRYPT_MAX_CN = 64

# The account the featured Ubuntu images create for the key pair.
DEFAULT_LOGIN_USER = "ubuntu"


@dataclass(frozen=True)
class Quotas:
    volumes: int
    volume_gb: int
    floating_ips: int
    routers: int


# A new research allocation's defaults (10 volumes / 1 TB of block storage, 10 floating IPs,
# one router); operators raise them by ticket to Jetstream2 support.
DEFAULT_QUOTAS = Quotas(volumes=10, volume_gb=1000, floating_ips=10, routers=1)


def allocation_zone(allocation: str) -> str:
    """The Designate zone Jetstream2 creates for an allocation, with its trailing dot."""
    return f"{allocation.lower()}.{DNS_ZONE_SUFFIX}."


# Jetstream2's object store (Ceph RGW behind Swift and S3): restic talks S3 to it.
OBJECT_STORE_S3_ENDPOINT = "https://js2.jetstream-cloud.org:8001"
OBJECT_STORE_REGION = "RegionOne"
# Every allocation's default Jetstream2 Storage allocation, in GB (volumes, shares and object
# store draw on the allocation's storage; none of it is charged in SUs).
DEFAULT_STORAGE_GB = 1000
