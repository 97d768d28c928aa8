"""Renderers of the swarm scenario: the manager's and workers' cloud-init, the scripts the
stack runs over SSH, the per-user home script, and the hub's swarm service."""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from renderers import render
from renderers.cloud_init import CADDY_MOUNT_DROPIN, render_caddy_mount_dropin, to_user_data
from renderers.hub_config import HubConfigSpec, HubPaths, SwarmSpawnerSpec
from renderers.hub_spec import ServerOptions, SwarmProfileSpec
from renderers.scripts import render_data_volume_script
from stackconfig import StackConfig
from stackconfig.model import OAUTH_TYPES

HUB_IMAGE_CONTEXT = Path(__file__).resolve().parent.parent / "hub" / "swarm"
HUB_IMAGE_REPOSITORY = "jshub-swarm-hub"
HUB_SERVICE = "jshub-hub"
HUB_NETWORK = "jshub"
HUB_PORT = 8000
HUB_API_PORT = 8081
# Where each notebook server listens inside its container (SwarmSpawner's default, set explicitly
# because the isolation rules admit nothing else).
NOTEBOOK_PORT = 8888
# Docker's overlay driver option: the MTU of the network under the overlay. Docker gives the
# containers' overlay interfaces 50 bytes less (the VXLAN header); its default assumes 1500.
OVERLAY_MTU_OPTION = "com.docker.network.driver.mtu"
# The XFS volume on the manager: homes, hub state, quota bookkeeping.
EXPORT_ROOT = "/export"
NODE_HOME_ROOT = "/srv/jshub/home"
# Caddy's ACME account and certificates, on the homes volume (not exported): a rebuilt or
# replaced manager keeps them instead of asking Let's Encrypt again, whose limit is five
# certificates a week for one name.
CADDY_STORAGE = f"{EXPORT_ROOT}/caddy"
USER_HOME_COMMAND = "/usr/local/sbin/jshub-user-home"
EXPORTS_FILE = "/etc/exports.d/jshub.exports"
NOTEBOOK_LABEL = "jshub.notebooks=true"
# Container label of every notebook; the nodes' isolation agent acts on containers carrying it.
NOTEBOOK_CONTAINER_LABEL = ("jshub.role", "notebook")
# Each user's files belong to a UID of their own, handed out from here by the home script and
# kept on the volume; the group is `users`, as in Jupyter's docker-stacks images.
FIRST_USER_UID = 10000
NOTEBOOK_GID = 100
# Homes made before users had UIDs of their own belonged to the docker-stacks `jovyan` (1000);
# the home script gives such a home to its user's UID.
SHARED_LEGACY_UID = 1000
USERS_FILE = ".jshub-users"
# What the hub image contains (hub/swarm/Dockerfile).
IMAGE_PATHS = HubPaths(
    data_root=EXPORT_ROOT,
    venv="/opt/jupyterhub",
    config_dir="/etc/jupyterhub",
    proxy_command="/opt/chp/bin/configurable-http-proxy",
)
# NFS export options: clients write as the notebook user, root on a worker is not root here.
EXPORT_OPTIONS = "rw,sync,no_subtree_check,root_squash"
NFS_MOUNT_OPTIONS = "rw,hard,noatime,_netdev,nofail,x-systemd.automount"


def hub_image_tag(context: Path = HUB_IMAGE_CONTEXT) -> str:
    """`jshub-swarm-hub:<hash of the build context>`: a changed Dockerfile or pin is a new
    image (and a new hub service spec), an unchanged one is not rebuilt."""
    digest = hashlib.sha256()
    for path in sorted(p for p in context.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(context)).encode() + b"\0" + path.read_bytes())
    return f"{HUB_IMAGE_REPOSITORY}:{digest.hexdigest()[:12]}"


def swarm_hub_config_spec(cfg: StackConfig, paths: HubPaths | None = None) -> HubConfigSpec:
    swarm = cfg.swarm
    assert swarm is not None, "the config rules require a swarm section for scenario swarm"
    profiles = swarm_profiles(cfg)
    return HubConfigSpec(
        public_url=cfg.hub_url,
        auth=cfg.auth,
        concurrent_users=cfg.concurrent_users,
        user_memory_gb=cfg.user_memory_gb,
        user_cpu=cfg.user_cpu,
        idle_timeout_s=cfg.idle_timeout_minutes * 60,
        options=ServerOptions.from_config(cfg),
        paths=paths or IMAGE_PATHS,
        bind_url=f"http://0.0.0.0:{HUB_PORT}",
        # The proxy runs in the hub's container: the hub's own API port stays on loopback, and
        # notebooks reach the hub API through the proxy (the only port their rules allow).
        hub_bind_url=f"http://127.0.0.1:{HUB_API_PORT}",
        hub_connect_url=f"http://127.0.0.1:{HUB_API_PORT}",
        spawner=SwarmSpawnerSpec(
            network=HUB_NETWORK,
            images=profile_images(profiles) if profiles else tuple(swarm.allowed_images),
            profiles=profiles,
            hub_image=hub_image_tag(),
            home_quota_gb=swarm.home_quota_gb,
            home_quota_overrides=MappingProxyType(dict(swarm.home_quota_overrides)),
            cpu_reservation=swarm.user_cpu_reservation,
            mem_reservation_gb=swarm.user_memory_reservation_gb,
            node_home_root=NODE_HOME_ROOT,
            export_root=EXPORT_ROOT,
            home_command=USER_HOME_COMMAND,
            notebook_gid=NOTEBOOK_GID,
            notebook_min_uid=FIRST_USER_UID,
            notebook_port=NOTEBOOK_PORT,
            notebook_labels=MappingProxyType(dict([NOTEBOOK_CONTAINER_LABEL])),
            notebook_hub_url=f"http://{HUB_SERVICE}:{HUB_PORT}",
            notebook_constraint=f"node.labels.{NOTEBOOK_LABEL.replace('=', '==')}",
        ),
        shared_folder=cfg.shared_folder_on,
    )


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "profile"


def profile_images(profiles: Sequence[SwarmProfileSpec]) -> tuple[str, ...]:
    """The images the spawner allows, the preselected profile's first (the spawner's default)."""
    first = [p.image for p in profiles if p.default]
    return tuple(dict.fromkeys([*first, *(p.image for p in profiles)]))


def swarm_profiles(cfg: StackConfig) -> tuple[SwarmProfileSpec, ...]:
    """swarm.profiles with the swarm's defaults filled in, in their order, the first preselected
    unless one says default: a profile's unset image is the first allowed image, its unset
    limits userCpu and userMemoryGb, its unset reservations the swarm's."""
    swarm = cfg.swarm
    assert swarm is not None
    specs: list[SwarmProfileSpec] = []
    default_index = next((i for i, p in enumerate(swarm.profiles) if p.default), 0)
    for i, p in enumerate(swarm.profiles):
        slug = _slug(p.display_name)
        if any(s.slug == slug for s in specs):
            slug = f"{slug}-{i}"
        specs.append(
            SwarmProfileSpec(
                slug=slug,
                display_name=p.display_name,
                description=p.description,
                default=i == default_index,
                image=p.image or swarm.allowed_images[0],
                cpu_limit=float(p.cpu_limit or cfg.user_cpu),
                memory_limit_gb=float(p.memory_limit_gb or cfg.user_memory_gb),
                cpu_reservation=float(
                    swarm.user_cpu_reservation if p.cpu_reservation is None else p.cpu_reservation
                ),
                memory_reservation_gb=float(
                    swarm.user_memory_reservation_gb
                    if p.memory_reservation_gb is None
                    else p.memory_reservation_gb
                ),
            )
        )
    return tuple(specs)


# --- scripts ---------------------------------------------------------------------------------


def render_user_home_script(
    export_root: str = EXPORT_ROOT,
    *,
    enforce_quota: bool = True,
    first_uid: int = FIRST_USER_UID,
    gid: int = NOTEBOOK_GID,
) -> str:
    return render(
        "jshub-user-home.sh.j2",
        export_root=export_root,
        home_root=f"{export_root}/home",
        users_file=f"{export_root}/{USERS_FILE}",
        first_uid=first_uid,
        legacy_uid=SHARED_LEGACY_UID,
        gid=gid,
        enforce_quota=enforce_quota,
    )


def parse_user_home_output(stdout: str) -> dict[str, str]:
    """The home script's last line, `home=<path> uid=<n> gid=<n>`, as a dict. The hub's config
    carries the same few lines (it cannot import this module)."""
    fields = dict(part.split("=", 1) for part in stdout.strip().splitlines()[-1].split())
    if set(fields) != {"home", "uid", "gid"} or not (fields["uid"].isdigit() and fields["gid"].isdigit()):
        raise ValueError(f"unexpected output of the home script: {stdout!r}")
    return fields


def overlay_network_options(mtu: int) -> dict[str, str]:
    """Driver options of the hub's overlay network."""
    return {OVERLAY_MTU_OPTION: str(mtu)}


# Address ranges no notebook container may open a connection to: the cloud's metadata service,
# the project's private network (the NFS server, the other nodes' Docker and swarm ports) and
# every other private range. Name resolution (port 53) stays open: the instances' resolvers
# may sit in a private range.
CONTAINER_BLOCKED_V4: tuple[str, ...] = (
    "169.254.0.0/16",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
)
# Bridges through which containers reach the node: swarm tasks (docker_gwbridge) and plain
# containers (docker0).
CONTAINER_BRIDGES: tuple[str, ...] = ("docker_gwbridge", "docker0")


def render_node_firewall_script(
    blocked: Sequence[str] = CONTAINER_BLOCKED_V4, bridges: Sequence[str] = CONTAINER_BRIDGES
) -> str:
    for net in blocked:
        ipaddress.ip_network(net)
    return render("jshub-node-firewall.sh.j2", blocked=list(blocked), bridges=list(bridges))


def render_notebook_isolation_script(network: str = HUB_NETWORK) -> str:
    key, value = NOTEBOOK_CONTAINER_LABEL
    return render(
        "jshub-notebook-isolation.sh.j2",
        label=f"{key}={value}",
        network=network,
        proxy_port=HUB_PORT,
        notebook_port=NOTEBOOK_PORT,
    )


def render_swarm_init_script(advertise_addr: str) -> str:
    return render("swarm-init.sh.j2", advertise_addr=str(ipaddress.ip_address(advertise_addr)))


def render_swarm_join_script(manager_addr: str) -> str:
    return render("swarm-join.sh.j2", manager_addr=str(ipaddress.ip_address(manager_addr)))


def render_node_ready_script(node: str, wait_s: int = 600) -> str:
    return render("swarm-node-ready.sh.j2", node=node, label=NOTEBOOK_LABEL, wait_s=wait_s)


def render_node_remove_script(node: str, wait_s: int = 300) -> str:
    return render("swarm-node-remove.sh.j2", node=node, wait_s=wait_s)


def export_line(home_root: str, members: Sequence[str]) -> str:
    """One /etc/exports line: the homes, to each member address and nobody else."""
    clients = [f"{ipaddress.ip_address(m)}({EXPORT_OPTIONS})" for m in sorted(set(members))]
    if not clients:
        # An export with no client list would be open to every host.
        raise ValueError("an NFS export needs at least one member address")
    return f"{home_root} " + " ".join(clients)


def render_nfs_exports_script(members: Sequence[str], home_root: str = f"{EXPORT_ROOT}/home") -> str:
    return render("nfs-exports.sh.j2", exports_file=EXPORTS_FILE, export_line=export_line(home_root, members))


# --- cloud-init -------------------------------------------------------------------------------


def _file(path: str, content: str, mode: str = "0644") -> dict[str, str]:
    return {"path": path, "content": content, "owner": "root:root", "permissions": mode}


NODE_FIREWALL_COMMAND = "/usr/local/sbin/jshub-node-firewall"
NOTEBOOK_ISOLATION_COMMAND = "/usr/local/sbin/jshub-notebook-isolation"
_UNITS = "/etc/systemd/system"


def _node_files() -> list[dict[str, str]]:
    """What keeps notebooks apart on every node, manager and workers alike."""
    return [
        _file(NODE_FIREWALL_COMMAND, render_node_firewall_script(), "0755"),
        _file(
            f"{_UNITS}/jshub-node-firewall.service",
            render("jshub-node-firewall.service.j2", command=NODE_FIREWALL_COMMAND),
        ),
        _file(NOTEBOOK_ISOLATION_COMMAND, render_notebook_isolation_script(), "0755"),
        _file(
            f"{_UNITS}/jshub-notebook-isolation.service",
            render("jshub-notebook-isolation.service.j2", command=NOTEBOOK_ISOLATION_COMMAND),
        ),
    ]


_NODE_UNITS = ["jshub-node-firewall.service", "jshub-notebook-isolation.service"]


@dataclass(frozen=True)
class ManagerBootSpec:
    fqdn: str
    lets_encrypt_email: str
    data_volume_id: str
    deploy_public_key: str
    extra_packages: tuple[str, ...] = field(default=())
    acme_directory: str | None = None


def render_manager_cloud_init(spec: ManagerBootSpec) -> str:
    config = {
        "package_update": True,
        "packages": ["docker.io", "nfs-kernel-server", "xfsprogs", "caddy", "iptables", *spec.extra_packages],
        "ssh_authorized_keys": [spec.deploy_public_key.strip()],
        "write_files": [
            _file(
                "/usr/local/sbin/jshub-setup-data-volume",
                render_data_volume_script(
                    spec.data_volume_id,
                    EXPORT_ROOT,
                    label="jshub-homes",
                    folders=(("hub", "0700"), ("home", "0755")),
                    fs_type="xfs",
                    # Project quotas must be on from the first mount; a remount cannot add them.
                    mount_options="defaults,prjquota",
                ),
                "0755",
            ),
            _file(USER_HOME_COMMAND, render_user_home_script(), "0755"),
            *_node_files(),
            _file(
                "/etc/caddy/Caddyfile",
                render(
                    "Caddyfile.j2",
                    fqdn=spec.fqdn,
                    email=spec.lets_encrypt_email,
                    upstream=f"127.0.0.1:{HUB_PORT}",
                    storage=CADDY_STORAGE,
                    acme_directory=spec.acme_directory,
                ),
            ),
            _file(CADDY_MOUNT_DROPIN, render_caddy_mount_dropin(EXPORT_ROOT)),
        ],
        "runcmd": [
            ["/usr/local/sbin/jshub-setup-data-volume"],
            # The manager sees the homes where the workers mount them over NFS.
            ["install", "-d", "-m", "0755", NODE_HOME_ROOT],
            [
                "sh",
                "-c",
                f"grep -q ' {NODE_HOME_ROOT} ' /etc/fstab || "
                f"echo '{EXPORT_ROOT}/home {NODE_HOME_ROOT} none bind,nofail 0 0' >>/etc/fstab",
            ],
            ["mount", NODE_HOME_ROOT],
            # The docker provider connects as this user over SSH.
            ["usermod", "-aG", "docker", "ubuntu"],
            ["systemctl", "daemon-reload"],
            ["systemctl", "enable", "--now", "docker.service", "nfs-server.service"],
            ["systemctl", "enable", "--now", *_NODE_UNITS],
            ["install", "-d", "-m", "0700", "-o", "caddy", "-g", "caddy", CADDY_STORAGE],
            # A rebuild onto another image may give the caddy user another UID.
            ["chown", "-R", "caddy:caddy", CADDY_STORAGE],
            ["systemctl", "restart", "caddy.service"],
        ],
    }
    return to_user_data(config)


def automount_unit(path: str) -> str:
    """systemd's automount unit for mount point `path` (`systemd-escape --path --suffix=automount`):
    '/' between components becomes '-'; every byte of the UTF-8 text other than a letter, digit,
    ':', '_' or a '.' that does not lead becomes \\xNN."""
    text = "/".join(part for part in path.split("/") if part)
    out = []
    for index, byte in enumerate(text.encode()):
        char = chr(byte)
        if char == "/":
            out.append("-")
        elif byte < 128 and (char.isalnum() or char in ":_" or (char == "." and index > 0)):
            out.append(char)
        else:
            out.append(f"\\x{byte:02x}")
    return "".join(out) + ".automount"


@dataclass(frozen=True)
class WorkerBootSpec:
    manager_addr: str
    deploy_public_key: str


def render_worker_cloud_init(spec: WorkerBootSpec) -> str:
    manager = str(ipaddress.ip_address(spec.manager_addr))
    config = {
        "package_update": True,
        "packages": ["docker.io", "nfs-common", "iptables"],
        "ssh_authorized_keys": [spec.deploy_public_key.strip()],
        "write_files": _node_files(),
        # Mounted on first access (automount): the manager's export may come up after us.
        "mounts": [[f"{manager}:{EXPORT_ROOT}/home", NODE_HOME_ROOT, "nfs4", NFS_MOUNT_OPTIONS, "0", "0"]],
        "runcmd": [
            ["install", "-d", "-m", "0755", NODE_HOME_ROOT],
            ["systemctl", "daemon-reload"],
            # The fstab line came after systemd read fstab at boot, and cloud-init's `mount -a`
            # finds no export yet on a new swarm: without this the homes stay a local folder
            # of the worker until its next reboot.
            ["systemctl", "start", automount_unit(NODE_HOME_ROOT)],
            ["systemctl", "enable", "--now", "docker.service"],
            ["systemctl", "enable", "--now", *_NODE_UNITS],
        ],
    }
    return to_user_data(config)


# --- the hub's swarm service --------------------------------------------------------------------

# Docker secrets, mounted as files and turned into the environment the hub config reads
# (hub/swarm/entrypoint.sh): oauth_client_secret becomes OAUTH_CLIENT_SECRET.
HUB_SECRETS: tuple[str, ...] = ("oauth_client_secret", "jshub_admin_token")
# Where the hub's static config, its modules and settings are (docker configs), and the image's
# command reads jupyterhub_config.py.
HUB_CONFIG_DIR = IMAGE_PATHS.config_dir


@dataclass(frozen=True)
class HubServiceSpec:
    """The hub as one swarm service, in plain values: the stack turns it into a pulumi-docker
    Service and the local tests into `docker service create`, so both run the same thing."""

    image: str
    name: str = HUB_SERVICE
    network: str = HUB_NETWORK
    # The hub's state is on the manager's volume and its notebooks' homes are made there.
    constraints: tuple[str, ...] = ("node.role==manager",)
    # host path -> container path
    binds: tuple[tuple[str, str], ...] = (
        ("/var/run/docker.sock", "/var/run/docker.sock"),
        (f"{EXPORT_ROOT}/hub", f"{EXPORT_ROOT}/hub"),
    )
    config_dir: str = HUB_CONFIG_DIR
    secrets: tuple[str, ...] = HUB_SECRETS
    target_port: int = HUB_PORT
    published_port: int = HUB_PORT
    # Production keeps swarm's defaults; tests on a kernel without IPVS use host and dnsrr.
    publish_mode: str = "ingress"
    endpoint_mode: str = "vip"
    restart_condition: str = "any"


def hub_secret_names(auth_type: str, admin_password: bool = False) -> tuple[str, ...]:
    """The hub's docker secrets for a login type: a shared-password workshop's passwords
    (workshop_password becomes WORKSHOP_PASSWORD) instead of the OAuth client secret."""
    if auth_type in OAUTH_TYPES:
        return HUB_SECRETS
    if auth_type == "shared-password":
        return ("jshub_admin_token", "workshop_password") + (
            ("workshop_admin_password",) if admin_password else ()
        )
    return ("jshub_admin_token",)


def hub_service_spec(image: str | None = None, secrets: tuple[str, ...] = HUB_SECRETS) -> HubServiceSpec:
    return HubServiceSpec(image=image or hub_image_tag(), secrets=secrets)
