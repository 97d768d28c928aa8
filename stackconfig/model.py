"""The stack configuration model.

Every key a stack file may set is a field here, with its type, default, range and the
description that `Pulumi.yaml` shows (tests keep the two in step). Cross-field rules live in
`model_validator`s so that a stack that cannot work is refused before any resource exists.
"""

from __future__ import annotations

import ipaddress
import re
import ssl
import uuid
from datetime import date
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    Field,
    SecretStr,
    model_validator,
)

from catalog import (
    AUTO_ALLOCATED_NETWORK,
    AUTO_ALLOCATED_SUBNET,
    FEATURED_IMAGES,
    FLAVORS,
    allocation_zone,
)
from stackconfig.backup import BackupConfig
from stackconfig.base import ConfigModel
from stackconfig.hpc import HpcConfig
from stackconfig.monitoring import MonitoringConfig
from stackconfig.scenarios import SCENARIOS as SCENARIOS
from stackconfig.scenarios import is_scoped, only
from stackconfig.userenv import UserEnvironmentConfig

# The same names as SCENARIOS (tests/test_config.py holds them together).
Scenario = Literal["single", "hpc", "swarm", "k8s"]

# Memory the OS, JupyterHub, the proxy and the reverse proxy need on a hub VM.
HUB_OVERHEAD_GB = 1.0

_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$", re.IGNORECASE)
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_IMAGE_REF = re.compile(r"^[a-z0-9][a-z0-9._/:-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[0-9a-f]{64})$")
# Jupyter's docker-stacks image, pinned by tag; its jovyan user (UID 1000, GID 100) owns homes.
# scipy-notebook, not minimal-notebook: a course's notebooks find numpy, pandas and matplotlib.
DEFAULT_NOTEBOOK_IMAGE = "quay.io/jupyter/scipy-notebook:2025-06-02"
_GITHUB_LOGIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")


def _acme_directory(url: str) -> str:
    parsed = urlsplit(url)
    if parsed.scheme != "https" or not parsed.hostname or parsed.query or parsed.fragment:
        raise ValueError(
            "must be the https:// URL of an ACME directory, "
            "e.g. https://acme-staging-v02.api.letsencrypt.org/directory"
        )
    return url


def _pem_certificate(text: str) -> str:
    blocks = re.findall(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", text, re.DOTALL)
    if len(blocks) != 1 or text.strip() != blocks[0]:
        raise ValueError(
            "must be exactly one PEM certificate (-----BEGIN CERTIFICATE----- ... -----END CERTIFICATE-----)"
        )
    try:
        ssl.PEM_cert_to_DER_cert(blocks[0])
    except ValueError as exc:
        raise ValueError(f"is not a readable PEM certificate: {exc}") from None
    return blocks[0] + "\n"


def _flavor(name: str) -> str:
    if name not in FLAVORS:
        raise ValueError(f"not a Jetstream2 flavor; allowed: {', '.join(FLAVORS)}")
    return name


def _image(name: str) -> str:
    if name not in FEATURED_IMAGES:
        raise ValueError(f"not a Jetstream2 featured image; allowed: {', '.join(FEATURED_IMAGES)}")
    return name


def _image_id(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ValueError(
            "not a Glance image ID: write the UUID of the image the servers run, e.g. from "
            "`openstack server show <server> -c image`"
        ) from None


def _cidr(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=True))
    except ValueError as exc:
        raise ValueError(
            f"not a CIDR ({exc}); write a network address and prefix, e.g. 203.0.113.0/24"
        ) from None


def _dns_label(value: str) -> str:
    if not _LABEL.match(value):
        raise ValueError(
            "not a DNS label: use 1-63 lowercase letters, digits and hyphens, "
            "starting and ending with a letter or digit"
        )
    return value


def _dns_zone(value: str) -> str:
    zone = value if value.endswith(".") else value + "."
    labels = zone[:-1].split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise ValueError(
            "not a DNS zone: use dot-separated lowercase labels, e.g. abc123.projects.jetstream-cloud.org."
        )
    return zone


# The login page's announcement: a few lines of plain text (the hub escapes it as HTML).
LOGIN_ANNOUNCEMENT_MAX = 500


def _login_announcement(value: str) -> str:
    text = value.strip()
    if not text:
        raise ValueError("is empty: write what participants should do, or leave the key unset")
    if len(text) > LOGIN_ANNOUNCEMENT_MAX:
        raise ValueError(f"is {len(text)} characters long; at most {LOGIN_ANNOUNCEMENT_MAX} are allowed")
    if any(ord(ch) < 32 and ch != "\n" for ch in text):
        raise ValueError("has control characters; plain text and line breaks only")
    return text


def _email(value: str) -> str:
    if not _EMAIL.match(value):
        raise ValueError("not an email address (Let's Encrypt sends expiry notices to it)")
    return value


Flavor = Annotated[str, AfterValidator(_flavor)]
Image = Annotated[str, AfterValidator(_image)]
ImageId = Annotated[str, AfterValidator(_image_id)]
Cidr = Annotated[str, AfterValidator(_cidr)]
DnsLabel = Annotated[str, AfterValidator(_dns_label)]
DnsZone = Annotated[str, AfterValidator(_dns_zone)]
Email = Annotated[str, AfterValidator(_email)]
AcmeDirectory = Annotated[str, AfterValidator(_acme_directory)]
PemCertificate = Annotated[str, AfterValidator(_pem_certificate)]
LoginAnnouncement = Annotated[str, AfterValidator(_login_announcement)]


AuthType = Literal["github", "cilogon", "shared-password", "native"]
OAUTH_TYPES: tuple[str, ...] = ("github", "cilogon")
# Workshop logins let participants choose their own names: names that are Unix accounts,
# Kubernetes labels and swarm service names alike (adduser's default NAME_REGEX, 32 at most).
WORKSHOP_USERNAME = r"^[a-z][a-z0-9_-]{0,31}$"
_WORKSHOP_USERNAME = re.compile(WORKSHOP_USERNAME)


class AuthConfig(ConfigModel):
    """Who may log in, through which identity provider (or, for a workshop, a shared password
    or sign-up with an admin's approval)."""

    type: AuthType = Field(
        description="How users log in: github (GitHub OAuth app), cilogon (CILogon, e.g. ACCESS IdP), "
        "shared-password (participants pick a name; the password is the secret workshopPassword) or "
        "native (participants sign up with their own password; an admin approves them)."
    )
    client_id: str | None = Field(
        default=None,
        min_length=1,
        description="github and cilogon: OAuth client ID of the app registered for this hub.",
    )
    admins: list[str] = Field(default_factory=list, description="Usernames with JupyterHub admin rights.")
    allowed_users: list[str] = Field(
        default_factory=list,
        description="Usernames allowed to log in (native: approved as soon as they sign up).",
    )
    allowed_organizations: list[str] = Field(
        default_factory=list, description="GitHub organizations (or org:team) whose members may log in."
    )
    allowed_idps: list[str] = Field(
        default_factory=lambda: ["https://access-ci.org/idp"],
        description="CILogon identity providers (entity IDs) allowed; default: the ACCESS IdP.",
    )
    allow_all: bool = Field(
        default=False,
        description="Let anyone the identity provider authenticates log in (shared-password: anyone with "
        "the password, under any free name; native: sign-up without approval).",
    )
    login_announcement: LoginAnnouncement | None = Field(
        default=None,
        description="Plain text shown above the login form (at most 500 characters; line breaks kept), "
        "e.g. 'Pick any name; the password is on the board.' Every scenario's hub shows it.",
    )

    @model_validator(mode="after")
    def _someone_can_log_in(self) -> AuthConfig:
        # clientId (required or unused by the type) is a rule: its message names auth.clientId.
        if self.type not in OAUTH_TYPES:
            if "allowed_idps" in self.model_fields_set:
                raise ValueError(f"allowedIdps only applies to cilogon, not {self.type}")
            bad = [u for u in self.admins + self.allowed_users if not _WORKSHOP_USERNAME.match(u)]
            if bad:
                raise ValueError(
                    f"not usernames a participant can log in with: {bad}; use 1-32 lowercase letters, "
                    "digits, '-' and '_', starting with a letter"
                )
        if self.type == "github":
            bad = [u for u in self.admins + self.allowed_users if not _GITHUB_LOGIN.match(u)]
            if bad:
                raise ValueError(f"not GitHub logins: {bad}")
        if self.type == "cilogon" and not self.allowed_idps:
            raise ValueError("cilogon needs at least one entry in allowedIdps")
        if self.type != "github" and self.allowed_organizations:
            raise ValueError("allowedOrganizations works only with type github")
        if self.type == "native" and not self.admins:
            raise ValueError(
                "native sign-up needs an admin to approve participants: list at least one in admins "
                "(that admin signs up first, under that name)"
            )
        if not (self.allow_all or self.allowed_users or self.admins or self.allowed_organizations):
            raise ValueError(
                "nobody could log in: set allowedUsers, admins or allowedOrganizations, or allowAll: true"
            )
        return self


class QuotaConfig(ConfigModel):
    """The allocation's quotas. Defaults: a Jetstream2 startup/research CPU allocation
    (docs.jetstream-cloud.org/general/quotas: 150 cores, 585 GB RAM, 10 floating IPs; 10 volumes
    and 1 TB of block storage; one router, held by auto_allocated_network) and OpenStack
    Neutron's defaults for security groups (10) and rules (100). Education allocations get
    200 cores, 780 GB and 25 floating IPs."""

    instances: int | None = Field(default=None, ge=0, description="Instances (unchecked when unset).")
    gpu_instances: int | None = Field(
        default=None,
        ge=0,
        description="Instances of GPU flavors (g3): 0 for an allocation without the Jetstream2 GPU resource "
        "(unchecked when unset).",
    )
    cores: int = Field(default=150, ge=0, description="vCPUs.")
    ram_gb: int = Field(default=585, ge=0, description="RAM in GB.")
    floating_ips: int = Field(default=10, ge=0, description="Floating IPs.")
    volumes: int = Field(default=10, ge=0, description="Block-storage volumes.")
    volume_gb: int = Field(default=1000, ge=0, description="Block storage in GB.")
    routers: int = Field(default=1, ge=0, description="Routers (auto_allocated_network already holds one).")
    security_groups: int = Field(default=10, ge=0, description="Security groups (the default group counts).")
    security_group_rules: int = Field(default=100, ge=0, description="Security group rules, all groups.")
    load_balancers: int | None = Field(
        default=None,
        ge=0,
        description="Octavia load balancers (scenario k8s: the hub's, and on Magnum the API's and the "
        "proxy's); unchecked when unset.",
    )


def _container_image(value: str) -> str:
    if not _IMAGE_REF.match(value) or value.endswith(":latest"):
        raise ValueError(
            "not a pinned container image: write <registry>/<name>:<tag> with a fixed tag (never :latest) "
            "or @sha256:<digest>, e.g. quay.io/jupyter/scipy-notebook:2025-03-17"
        )
    return value


ContainerImage = Annotated[str, AfterValidator(_container_image)]
_K3S_VERSION = re.compile(r"^v[0-9]+\.[0-9]+\.[0-9]+\+k3s[0-9]+$")


def _k3s_version(value: str) -> str:
    if not _K3S_VERSION.match(value):
        raise ValueError(
            "not a k3s release tag: write it as on github.com/k3s-io/k3s/releases, e.g. v1.33.5+k3s1"
        )
    return value


K3sVersion = Annotated[str, AfterValidator(_k3s_version)]


class ProfileConfig(ConfigModel):
    """One entry of the spawn page's profile list; unset values fall back to the k8s defaults."""

    display_name: str = Field(min_length=1, description="Name shown on the spawn page.")
    description: str = Field(default="", description="One line under the name.")
    default: bool = Field(default=False, description="Preselect this profile.")
    image: ContainerImage | None = Field(default=None, description="Image of this profile's servers.")
    cpu_guarantee: float | None = Field(default=None, gt=0, le=64, description="CPU cores reserved.")
    cpu_limit: float | None = Field(default=None, gt=0, le=64, description="CPU cores allowed.")
    memory_guarantee_gb: float | None = Field(default=None, gt=0, le=250, description="Memory reserved (GB).")
    memory_limit_gb: float | None = Field(default=None, gt=0, le=250, description="Memory allowed (GB).")
    gpus: int = Field(
        default=0,
        ge=0,
        le=8,
        description="GPUs each server of this profile gets (nvidia.com/gpu); it runs on the GPU workers "
        "(k8s.gpuWorkerCount), which only such servers reach. 0: no GPU.",
    )


class K8sConfig(ConfigModel):
    """The Kubernetes cluster, its Ceph storage and the Zero to JupyterHub release (scenario k8s).

    Per-user limits are the top-level userCpu and userMemoryGb; the guarantees here are what
    the scheduler reserves, and what sizing counts."""

    engine: Literal["k3s", "magnum"] = Field(
        default="k3s",
        description="k3s: VMs this stack builds and installs (any OpenStack); magnum: Jetstream2's Cluster API Magnum.",
    )
    k3s_version: K3sVersion = Field(
        default="v1.33.5+k3s1",
        alias="k3sVersion",
        description="k3s release installed on every node (engine k3s), e.g. v1.33.5+k3s1.",
    )
    control_plane_count: Literal[1, 3] = Field(
        default=3, description="Control-plane nodes: 3 (etcd quorum, Ceph on three hosts) or 1 (dev only)."
    )
    control_plane_flavor: Flavor = Field(
        default="m3.medium",
        description="Flavor of control-plane nodes; with k3s they also run Ceph, the hub and the proxy.",
    )
    worker_flavor: Flavor = Field(default="m3.xl", description="Flavor of the nodes running user servers.")
    worker_count: int | None = Field(
        default=None,
        ge=1,
        le=500,
        description="Worker nodes; unset: derived from concurrentUsers and the guarantees.",
    )
    gpu_worker_count: int = Field(
        default=0,
        ge=0,
        le=100,
        description="GPU worker nodes, for profiles with gpus; tainted so that only GPU servers run there. "
        "Each holds one GPU (a g3 slice or card), so this many GPU servers run at once. 0: none.",
    )
    gpu_worker_flavor: Flavor = Field(
        default="g3.medium",
        description="Flavor of the GPU workers: a g3 flavor, spending the allocation's Jetstream2 GPU SUs.",
    )
    max_worker_count: int | None = Field(
        default=None, ge=1, le=500, description="magnum: autoscaler upper bound (default: workerCount)."
    )
    magnum_template: str = Field(
        default="kubernetes-1-33-jammy",
        min_length=1,
        description="magnum: cluster template name (openstack coe cluster template list).",
    )
    osd_storage_class: str = Field(
        default="default",
        min_length=1,
        description="magnum: Cinder StorageClass for the PVCs that back Ceph OSDs and mons.",
    )
    ceph_volume_gb: int = Field(
        default=200,
        ge=20,
        le=10000,
        description="Size of each Ceph OSD volume (GB); one per storage node (3 with magnum).",
    )
    user_storage_gb: int = Field(
        default=5, ge=1, le=1000, description="Home directory size of each user (GB)."
    )
    shared_data_gb: int = Field(
        default=50,
        ge=1,
        le=10000,
        description="Shared folder, read-only for users and writable for admins (GB).",
    )
    user_cpu_guarantee: float = Field(
        default=0.5, gt=0, le=64, description="CPU cores reserved for each user."
    )
    user_memory_guarantee_gb: float = Field(
        default=1.0, gt=0, le=250, description="Memory reserved for each user (GB); sizing counts this."
    )
    user_image: ContainerImage = Field(
        default="quay.io/jupyter/scipy-notebook:2025-03-17",
        description="Single-user server image, pinned: <registry>/<name>:<tag>.",
    )
    profiles: list[ProfileConfig] = Field(
        default_factory=list,
        description="Optional spawn-page choices: [{displayName, image, cpuLimit, ...}].",
    )
    placeholder_fraction: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description="Placeholder pods kept as spare room, as a fraction of concurrentUsers.",
    )
    helm_values: dict[str, Any] = Field(
        default_factory=dict,
        description="Zero to JupyterHub chart values merged over the ones the stack renders (maps merge, "
        "anything else replaces, as Helm merges), then checked against the chart's values schema: an unknown "
        "key or a wrong type is refused by its path, e.g. {singleuser: {startTimeout: 600}}. What the stack "
        "owns (hub.config: use hubExtraConfig; hub.extraConfig; its services, roles, secrets and culling) is "
        "refused by key.",
    )


class SwarmProfileConfig(ConfigModel):
    """One choice of the swarm hub's spawn page: an image with its own limits; unset values fall
    back to the swarm's defaults (the first allowed image, userCpu, userMemoryGb, the reservations)."""

    display_name: str = Field(min_length=1, max_length=80, description="Name shown on the spawn page.")
    description: str = Field(default="", max_length=300, description="One line under the name.")
    default: bool = Field(default=False, description="Preselect this profile (else the first is).")
    image: ContainerImage | None = Field(
        default=None, description="Image of this profile's notebooks, pinned."
    )
    cpu_limit: float | None = Field(default=None, gt=0, le=64, description="CPU cores allowed.")
    memory_limit_gb: float | None = Field(default=None, gt=0, le=250, description="Memory allowed (GB).")
    cpu_reservation: float | None = Field(
        default=None, ge=0, le=64, description="CPU cores reserved; the scheduler packs workers by it."
    )
    memory_reservation_gb: float | None = Field(
        default=None, ge=0, le=250, description="Memory reserved (GB)."
    )


class SwarmConfig(ConfigModel):
    """Docker Swarm across Jetstream2 VMs: one manager (hub, NFS server) and N workers."""

    worker_count: int = Field(
        default=2, ge=1, le=500, description="Worker VMs that run users' notebook containers."
    )
    worker_flavor: Flavor = Field(default="m3.medium", description="Flavor of each worker VM.")
    manager_flavor: Flavor = Field(
        default="m3.small", description="Flavor of the manager VM (hub, proxy, NFS server; no notebooks)."
    )
    nfs_volume_gb: int = Field(
        default=500,
        ge=10,
        le=10000,
        description="Size of the protected XFS volume the manager exports over NFS: homes and hub state (GB).",
    )
    home_quota_gb: int = Field(
        default=10, ge=1, le=10000, description="Hard quota of each user's home on the NFS volume (GB)."
    )
    home_quota_overrides: dict[str, int] = Field(
        default_factory=dict,
        description="Per-user home quotas in GB that replace homeQuotaGb, e.g. {alice: 50}.",
    )
    allowed_images: list[ContainerImage] = Field(
        default_factory=lambda: [DEFAULT_NOTEBOOK_IMAGE],
        min_length=1,
        description="Notebook images users may choose from; the first is the default. With profiles, "
        "leave it unset: the profiles' images are the ones allowed.",
    )
    profiles: list[SwarmProfileConfig] = Field(
        default_factory=list,
        description="Optional spawn-page choices, each an image with its own limits: [{displayName, "
        "description, image, cpuLimit, memoryLimitGb, cpuReservation, memoryReservationGb, default}].",
    )
    user_cpu_reservation: float = Field(
        default=0.5,
        ge=0,
        le=64,
        description="CPU cores reserved for each notebook (the limit is userCpu); the scheduler packs workers by it.",
    )
    user_memory_reservation_gb: float = Field(
        default=0.5,
        ge=0,
        le=250,
        description="Memory reserved for each notebook in GB (the limit is userMemoryGb).",
    )
    overlay_mtu: int = Field(
        default=1450,
        ge=1330,
        le=9000,
        description="MTU of the swarm's overlay network as Docker takes it: the MTU of the instances' network under it "
        "(`ip link` on an instance); containers' interfaces get 50 bytes less for the VXLAN header. 1450 fits "
        "OpenStack's VXLAN tenant networks and stays safe on 1500.",
    )

    @model_validator(mode="after")
    def _quota_overrides_are_sane(self) -> SwarmConfig:
        bad = {
            user: gb for user, gb in self.home_quota_overrides.items() if gb < 1 or not _USERNAME.match(user)
        }
        if bad:
            raise ValueError(
                f"homeQuotaOverrides must map usernames to whole GB of at least 1; not allowed: {bad}"
            )
        return self


# The single hub's per-user home quota when homeQuotaGb is unset (GB), as the swarm's default.
SINGLE_HOME_QUOTA_GB = 10

# The subnet networkMode create makes. k3s gives pods and services addresses from its own
# networks (its defaults, which the stack keeps); a node whose subnet lies in one of them has two
# routes to the same addresses, so the k3s nodes' subnet lies outside both.
DEFAULT_SUBNET_CIDR = "10.42.0.0/24"
K3S_DEFAULT_SUBNET_CIDR = "10.44.0.0/24"
K3S_NETWORKS: tuple[tuple[str, str], ...] = (
    ("k3s's pod network", "10.42.0.0/16"),
    ("k3s's service network", "10.43.0.0/16"),
)


def overlapping(subnet: str, networks: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
    """The (what, CIDR) of `networks` that share addresses with `subnet`."""
    mine = ipaddress.ip_network(subnet)
    return [(what, cidr) for what, cidr in networks if mine.overlaps(ipaddress.ip_network(cidr))]


# Scenarios that offer the shared course folder: notebooks run where the folder is.
SHARED_FOLDER_SCENARIOS: tuple[str, ...] = ("single", "swarm", "k8s")


class StackConfig(ConfigModel):
    """Everything a stack file sets under the project's namespace."""

    scenario: Scenario = Field(
        description="Architecture to deploy: single (one hub VM), hpc (SLURM batch jobs), swarm (Docker Swarm) or k8s (Kubernetes + Rook/Ceph + Z2JH)."
    )
    allocation: str = Field(
        pattern=r"^[a-z][a-z0-9]{2,31}$",
        description="Jetstream2 allocation (project) name in lowercase, e.g. cis230000; it names the DNS zone.",
    )
    dns_zone: DnsZone | None = Field(
        default=None,
        description="Designate zone for the hub's record; empty means <allocation>.projects.jetstream-cloud.org.",
    )
    hub_hostname: DnsLabel = Field(default="hub", description="DNS label of the hub inside the zone.")
    lets_encrypt_email: Email = Field(description="Contact address for the Let's Encrypt certificate.")
    acme_directory: AcmeDirectory | None = Field(
        default=None,
        description=(
            "ACME directory the hub's certificate comes from; empty means Let's Encrypt. For a trial "
            "that must not spend Let's Encrypt's rate limits: "
            "https://acme-staging-v02.api.letsencrypt.org/directory (browsers do not trust its certificates)."
        ),
    )
    acme_root_certificate: PemCertificate | None = Field(
        default=None,
        json_schema_extra=only(
            "single",
            "hpc",
            swarm="the manager's ACME client takes only a directory: use an ACME server with a publicly "
            "trusted certificate",
            k8s="the proxy's ACME client takes only a directory: use an ACME server with a publicly "
            "trusted certificate",
        ),
        description=(
            "PEM root certificate of a private ACME server named by acmeDirectory, which the hub "
            "trusts for that server's HTTPS."
        ),
    )
    admin_cidrs: list[Cidr] = Field(
        min_length=1,
        description=(
            'Networks allowed to SSH to the VMs, e.g. ["203.0.113.7/32"]; with k3s also the only '
            "networks that reach the Kubernetes API, so at least one IPv4 network other than 0.0.0.0/0."
        ),
    )
    allow_ssh_from_anywhere: bool = Field(
        default=False,
        description="Permit 0.0.0.0/0 or ::/0 in adminCidrs (off: SSH stays closed to the world).",
    )
    key_pair: str = Field(
        min_length=1, description="Name of an existing OpenStack key pair for the ubuntu user."
    )
    network_mode: Literal["existing", "create"] = Field(
        default="existing",
        description="existing: use the allocation's network (an allocation may own only one router); create: a new network, subnet and router.",
    )
    network_name: str = Field(
        default=AUTO_ALLOCATED_NETWORK,
        min_length=1,
        description="Network to use (existing) or to create (create).",
    )
    subnet_name: str = Field(
        default=AUTO_ALLOCATED_SUBNET,
        min_length=1,
        description="Subnet to use (existing) or to create (create).",
    )
    subnet_cidr: Cidr | None = Field(
        default=None,
        description=(
            f"CIDR of the subnet when networkMode is create (default {DEFAULT_SUBNET_CIDR}; "
            f"{K3S_DEFAULT_SUBNET_CIDR} for scenario k8s with engine k3s, clear of k3s's pod and service networks)."
        ),
    )
    image: Image = Field(
        default="Featured-Ubuntu24",
        description="Featured image for every VM; Featured-Ubuntu22 lacks Caddy and a recent Node.js, so only scenario k8s accepts it.",
    )
    image_id: ImageId | None = Field(
        default=None,
        description=(
            "Pins the image: the Glance ID (UUID) of a build of `image` that every VM boots, so a refresh of the "
            "featured image on Jetstream2 never rebuilds a server; change it to follow a newer build (every server "
            "is rebuilt: `make diff SET=imageId=<id>` shows how). Empty: servers boot `image` by name."
        ),
    )
    hub_flavor: Flavor = Field(
        default="m3.small",
        json_schema_extra=only(
            "single",
            "hpc",
            swarm="its hub runs on the manager: set swarm.managerFlavor",
            k8s="its hub runs in the cluster: set k8s.controlPlaneFlavor (k3s) or k8s.workerFlavor (magnum)",
        ),
        description="Flavor of the hub VM.",
    )
    hub_data_volume_gb: int = Field(
        default=100,
        ge=10,
        le=1000,
        json_schema_extra=only(
            "single",
            "hpc",
            swarm="homes and hub state are on the manager's NFS volume: set swarm.nfsVolumeGb",
            k8s="each home is a volume of its own: set k8s.userStorageGb (and k8s.cephVolumeGb)",
        ),
        description="Size of the protected volume holding homes and hub state (GB).",
    )
    concurrent_users: int = Field(
        default=5,
        ge=1,
        le=5000,
        description="Users expected to run servers at the same time (sizing and server limit).",
    )
    user_memory_gb: float = Field(
        default=1.0,
        gt=0,
        le=250,
        json_schema_extra=only(
            "single",
            "swarm",
            "k8s",
            hpc="a notebook job asks SLURM for hpc.defaultMemoryGb, up to its partition's maxMemoryGb",
        ),
        description="Memory each user's server may use (GB).",
    )
    user_cpu: float = Field(
        default=1.0,
        gt=0,
        le=64,
        json_schema_extra=only(
            "single",
            "swarm",
            "k8s",
            hpc="a notebook job asks SLURM for hpc.defaultCores, up to its partition's maxCores",
        ),
        description="CPU cores each user's server may use.",
    )
    # Enforced on the hub VM's data volume (ext4 project quotas).
    home_quota_gb: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        json_schema_extra=only(
            "single",
            hpc="homes are on the HPC system, whose own quotas apply",
            swarm="set swarm.homeQuotaGb instead",
            k8s="set k8s.userStorageGb instead",
        ),
        description="Hard quota of each user's home on the hub's data volume (GB); unset: "
        f"{SINGLE_HOME_QUOTA_GB} (swarm sets swarm.homeQuotaGb; hpc homes are the HPC system's).",
    )
    allocation_sus: float | None = Field(
        default=None,
        gt=0,
        allow_inf_nan=False,
        description="The allocation's SU balance today (its remaining SUs, as the ACCESS allocations page "
        "shows them): `make plan` says how many days it lasts at the stack's SU/hour running 24/7, the date "
        "it runs out and whether a workshop fits it. GPU flavors' SUs are not paid from it (allocationGpuSus). "
        "Empty: not checked.",
    )
    allocation_gpu_sus: float | None = Field(
        default=None,
        gt=0,
        allow_inf_nan=False,
        description="The allocation's Jetstream2 GPU balance today (a separate ACCESS resource): `make plan` "
        "says how long it lasts at the stack's GPU SUs/hour (g3 flavors), which allocationSus does not pay. "
        "Empty: not checked.",
    )
    allocation_sus_date: date | None = Field(
        default=None,
        description="The day (YYYY-MM-DD, UTC) allocationSus was read. With it the deployed stack counts the "
        "balance down at its SU/hour from that day: an alert (AllocationRunningOut, where monitoring is on) and "
        "`make smoke` warn when fewer than allocationWarnDays remain, and `make plan` counts from it. Empty: "
        "`make plan` takes allocationSus as today's balance and the deployed stack does not count down.",
    )
    allocation_warn_days: int = Field(
        default=14,
        ge=1,
        le=3650,
        description="`make plan` warns when allocationSus lasts fewer days than this with the stack running "
        "24/7.",
    )
    shelved: bool = Field(
        default=False,
        description="Shelve every server of the stack (power state shelved_offloaded: no SUs on Jetstream2; "
        "volumes, ports and floating IPs stay); false brings them back (active). An in-place update of "
        "each server: `make diff SET=shelved=true` shows it. Not with k8s.engine magnum.",
    )
    idle_timeout_minutes: int = Field(
        default=60, ge=5, le=10080, description="Stop servers idle this long (minutes)."
    )
    max_server_age_hours: int | None = Field(
        default=None,
        ge=1,
        le=8760,
        description="Stop every server this many hours after it started, idle or not (the idle culler's "
        "--max-age; k8s: cull.maxAge). Unset: servers run as long as they are used.",
    )
    cull_idle_users: bool = Field(
        default=False,
        description="Also delete users from the hub once their servers are stopped and they have been idle "
        "idleTimeoutMinutes (the idle culler's --cull-users; admins are kept), for a workshop whose "
        "participants come once. Their homes stay; a returning participant logs in again as a new user.",
    )
    named_servers_per_user: int | None = Field(
        default=None,
        ge=1,
        le=20,
        description="Let each user run up to this many named servers besides the default one "
        "(JupyterHub.allow_named_servers and named_server_limit_per_user); the culler deletes a culled "
        "named server (--remove-named-servers). Unset: one server per user.",
    )
    sharing: bool = Field(
        default=False,
        description="JupyterHub 5 sharing: users may grant other users or groups access to their servers "
        "(the user role gets the shares!user scope and may look up names, as JupyterHub's sharing docs "
        "describe). Off: only a server's owner and admins reach it.",
    )
    hub_extra_config: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="JupyterHub settings the stack does not model, as data: {Class: {trait: value}}, e.g. "
        "{Spawner: {environment: {COURSE: bio101}}}. A map merges into the stack's map (its keys win), anything "
        "else replaces the stack's value (VM and swarm hubs: applied with the rest of the settings; k8s: merged "
        "into the chart's hub.config, Spawner traits as KubeSpawner's). Classes "
        "and traits are checked against the hub's pinned JupyterHub and its login and spawner packages; "
        "traits the stack owns (secrets, the proxy token, its services and roles, what its own keys set) are "
        "refused by key.",
    )
    server_start_timeout_seconds: int | None = Field(
        default=None,
        ge=30,
        le=3600,
        json_schema_extra=only(
            "single",
            hpc="a SLURM server has hpc.queueTimeoutMinutes plus 3 minutes",
            swarm="a swarm server has 600 s to start (an image pull included)",
            k8s="a k8s server has 900 s to start (a volume attach and an image pull included)",
        ),
        description=(
            "Seconds a user's server may take to start and answer before the hub gives up on it; "
            "unset: 120 to start, 60 to answer (raise it for a heavy environment on a small VM)."
        ),
    )
    # Course material (README, Course material).
    shared_folder: bool | None = Field(
        default=None,
        description="A shared folder every user reads and only admins write (~/shared); unset: on where "
        "notebooks run beside the data (single, swarm, k8s), off for hpc, where they run on the HPC system.",
    )
    user_environment: UserEnvironmentConfig | None = Field(
        default=None,
        json_schema_extra=only(
            "single",
            "hpc",
            swarm="notebooks run in the images of swarm.allowedImages (or swarm.profiles): build the packages into a course "
            "image and pin it there",
            k8s="notebooks run in k8s.userImage (or a profile's image): build the packages into a course "
            "image and pin it there",
        ),
        description="The course's packages in users' notebooks: {packages: [name==version, ...], requirementsUrl: "
        "https://...#sha256=<hex>, hpcFolder}; installed into a users' environment apart from the hub's (hpc: "
        "on the HPC system, in hpcFolder), offered as the default kernel (README, Course environments).",
    )
    quotas: QuotaConfig = Field(
        default_factory=QuotaConfig,
        description="The allocation's quotas, checked by the planner before anything is created: {cores, ramGb, floatingIps, volumes, volumeGb, routers, securityGroups, securityGroupRules, instances, gpuInstances, loadBalancers}.",
    )
    k8s: K8sConfig | None = Field(
        default=None,
        alias="k8s",
        json_schema_extra=only(
            "k8s",
            needed="scenario k8s needs a k8s section with at least one key (an empty one reads as unset), "
            "e.g. k8s: {engine: k3s, workerFlavor: m3.xl}; see Pulumi.workshop-k8s.yaml",
        ),
        description="The Kubernetes cluster, its Ceph storage and the Zero to JupyterHub release: {engine, controlPlaneCount, workerFlavor, workerCount, cephVolumeGb, "
        "userStorageGb, sharedDataGb, userCpuGuarantee, userMemoryGuaranteeGb, userImage, profiles (each with gpus), "
        "gpuWorkerCount, gpuWorkerFlavor, helmValues, ...}.",
    )
    auth: AuthConfig = Field(
        description="Authentication: {type: github|cilogon|shared-password|native, clientId, admins, allowedUsers, allowAll, loginAnnouncement (text above the login form), ...}."
    )
    swarm: SwarmConfig | None = Field(
        default=None,
        json_schema_extra=only(
            "swarm",
            needed="scenario swarm needs a swarm section with at least workerCount, e.g. swarm: {workerCount: 2, "
            "workerFlavor: m3.medium, homeQuotaGb: 10} (the other keys have defaults)",
        ),
        description="The Docker Swarm: {workerCount, workerFlavor, managerFlavor, nfsVolumeGb, homeQuotaGb, homeQuotaOverrides, allowedImages, profiles, userCpuReservation, userMemoryReservationGb, overlayMtu}; userCpu and userMemoryGb are each notebook container's limits (a profile sets its own).",
    )
    oauth_client_secret: SecretStr | None = Field(
        default=None,
        json_schema_extra={"secret": True},
        description="auth.type github or cilogon: OAuth client secret of the app "
        "(pulumi config set --secret oauthClientSecret ...).",
    )
    workshop_password: SecretStr | None = Field(
        default=None,
        json_schema_extra={"secret": True},
        description="auth.type shared-password: the password every participant logs in with, 8 characters "
        "or more (pulumi config set --secret workshopPassword ...).",
    )
    workshop_admin_password: SecretStr | None = Field(
        default=None,
        json_schema_extra={"secret": True},
        description="auth.type shared-password: the password auth.admins log in with, 32 characters or more "
        "and not workshopPassword; without it admins cannot log in.",
    )
    alert_smtp_password: SecretStr | None = Field(
        default=None,
        json_schema_extra={"secret": True},
        description="monitoring.alertEmail: the SMTP password of monitoring.smtpUsername (set it with --secret).",
    )
    alert_webhook_url: SecretStr | None = Field(
        default=None,
        json_schema_extra={"secret": True},
        description="Alertmanager posts firing alerts to this http(s) URL (a chat or paging hook; it usually "
        "holds a token, so set it with --secret).",
    )
    hpc: HpcConfig | None = Field(
        default=None,
        json_schema_extra=only(
            "hpc",
            needed="scenario hpc needs the hpc section: at least loginHost, hostKey and partitions "
            "(see Pulumi.gateway-hpc.yaml and docs/hpc.md)",
        ),
        description="The HPC system whose SLURM runs the notebooks: {loginHost, loginPort, hostKey, accountMode, usernamePattern, communityAccount, "
        "slurmAccount, partitions: [{name, maxCores, maxMemoryGb, maxGpus, maxWallHours}], environmentSetup, "
        "connectivity: direct|ssh-tunnel, computeCidrs, ...}; see docs/hpc.md.",
    )
    backup: BackupConfig = Field(
        default_factory=BackupConfig,
        description="Backups of homes and the hub database to Jetstream2 object storage (restic): {enabled, "
        "schedule (systemd OnCalendar, default '*-*-* 03:15:00'), retention: {keepDaily: 7, keepWeekly: 4, "
        "keepMonthly: 6}, maxAgeHours: 30, container}; unset enabled: on in every scenario (k8s: a CronJob, "
        "the schedule as cron). See README, Backups and restore, and docs/k8s.md.",
    )
    monitoring: MonitoringConfig = Field(
        default_factory=MonitoringConfig,
        description="Prometheus and node exporter on the hub's VM with alert rules (k8s: kube-prometheus-stack "
        "with Grafana for admins): {enabled, retentionDays: 15, volumeFullPercent: 85, spawnFailuresPerHour: 3}; "
        "unset enabled: on for swarm and k8s, off for single and hpc. See README, Monitoring, and docs/k8s.md.",
    )
    hpc_ssh_private_key: SecretStr | None = Field(
        default=None,
        json_schema_extra={"secret": True, **only("hpc")},
        description="An OpenSSH private key the hub uses on the login node; empty: the stack makes one "
        "(output hpc_public_key).",
    )

    @property
    def shared_folder_on(self) -> bool:
        """Whether users get the shared folder: the explicit setting, or the scenario's default."""
        if self.shared_folder is not None:
            return self.shared_folder
        return self.scenario in SHARED_FOLDER_SCENARIOS

    @property
    def single_home_quota_gb(self) -> int | None:
        """The single hub's per-user home quota (GB); None on the other scenarios."""
        if self.scenario != "single":
            return None
        return self.home_quota_gb or SINGLE_HOME_QUOTA_GB

    @property
    def zone(self) -> str:
        """The DNS zone with its trailing dot."""
        return self.dns_zone or allocation_zone(self.allocation)

    @property
    def hub_fqdn(self) -> str:
        return f"{self.hub_hostname}.{self.zone.rstrip('.')}"

    @property
    def hub_url(self) -> str:
        return f"https://{self.hub_fqdn}"

    @property
    def created_subnet_cidr(self) -> str:
        """The subnet networkMode create makes: subnetCidr, or the scenario's default."""
        if self.subnet_cidr is not None:
            return self.subnet_cidr
        return K3S_DEFAULT_SUBNET_CIDR if self.cluster_networks else DEFAULT_SUBNET_CIDR

    @property
    def cluster_networks(self) -> tuple[tuple[str, str], ...]:
        """Networks the cluster software gives its containers, which the VMs' subnet must not overlap."""
        if self.scenario == "k8s" and self.k8s is not None and self.k8s.engine == "k3s":
            return K3S_NETWORKS
        return ()

    @model_validator(mode="before")
    @classmethod
    def _empty_means_unset(cls, data: object) -> object:
        # Pulumi.yaml must give every optional key a default; "" or {} there means "unset". A key
        # of some scenarios only is unset there too, so that its scenarios get the model's default.
        if not isinstance(data, dict):
            return data
        optional = {f.alias or n for n, f in cls.model_fields.items() if f.default is None or is_scoped(f)}
        return {k: v for k, v in data.items() if not (k in optional and v in ("", {}))}
