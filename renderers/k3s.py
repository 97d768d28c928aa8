"""k3s nodes: cloud-init, the k3s configuration file, the scripts the stack runs over SSH, and
the kubeconfig rewritten for use from outside the cluster. Pure functions of plain values."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from renderers import nvidia, render
from renderers.cloud_init import to_user_data
from renderers.rook import DATA_DIR_HOST_PATH
from renderers.rook import NAMESPACE as ROOK_NAMESPACE
from renderers.scripts import render_data_volume_script

CONFIG_FILE = "/etc/rancher/k3s/config.yaml"
TOKEN_DIR = "/etc/rancher/k3s/secret"
TOKEN_FILE = f"{TOKEN_DIR}/token"
KUBECONFIG = "/etc/rancher/k3s/k3s.yaml"
INSTALL_SCRIPT = "/usr/local/sbin/jshub-k3s-install"
# The k3s version the stack wants on the node, written over SSH (see k3s-upgrade.sh.j2).
VERSION_FILE = "/etc/rancher/k3s/jshub-version"
API_PORT = 6443
# The name the kubeconfig checks the API's certificate against. k3s puts `kubernetes`,
# `kubernetes.default`, `kubernetes.default.svc` and `kubernetes.default.svc.<cluster domain>`
# in the serving certificate of every server, whatever `tls-san` says (k3s pkg/cluster/https.go,
# newListener), and the kubeconfig's CA is the cluster's own: so the check holds whichever
# address reaches the API (the load balancer, a node) and whatever the hub is called. A `tls-san`
# of the hub's name would not follow a new hubHostname: it is in the servers' first-boot user
# data, which later changes never reach, and since 1.28 k3s does not add names it is asked for
# (`tls-san-security`).
API_SERVER_NAME = "kubernetes.default.svc"
# The agent's password, which the servers check when a node registers under its name; the
# stack delivers it, so a re-imaged node keeps it (see k3s-install-token.sh.j2).
NODE_DIR = "/etc/rancher/node"
NODE_PASSWORD_FILE = f"{NODE_DIR}/password"

# A control-plane node's state volume: k3s's server folder (its `db/etcd` is the embedded etcd
# datastore; the certificates and token in `tls/` and `token` must match it) and Rook's
# dataDirHostPath (the mon's store) are bind-mounted from it.
STATE_DIR = "/var/lib/jshub-node"
SERVER_STATE = "/var/lib/rancher/k3s/server"
STATE_BINDS: tuple[tuple[str, str], ...] = (("k3s-server", SERVER_STATE), ("rook", DATA_DIR_HOST_PATH))
STATE_VOLUME_SCRIPT = "/usr/local/sbin/jshub-state-volume"
STATE_BIND_SCRIPT = "/usr/local/sbin/jshub-state-binds"

# Z2JH's node-purpose label: user servers require `user`, the hub and Ceph prefer `core`.
NODE_PURPOSE = "hub.jupyter.org/node-purpose"
# Once any node carries it, k3s's ServiceLB serves LoadBalancer services on labelled nodes only.
SERVICE_LB_LABEL = "svccontroller.k3s.cattle.io/enablelb"


@dataclass(frozen=True)
class K3sNodeSpec:
    node_name: str
    role: Literal["server", "worker"]
    version: str
    deploy_public_key: str
    # The first server starts the embedded etcd cluster; every other node joins it here.
    server_url: str | None = None
    tls_sans: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    wait_for_token_s: int = 1800
    # Control-plane nodes: the Cinder volume that holds the node's state (see STATE_BINDS).
    state_volume_id: str | None = None
    # A GPU worker: NVIDIA's container toolkit before k3s, and the GPU taint (renderers.nvidia).
    gpu: bool = False

    @property
    def cluster_init(self) -> bool:
        return self.role == "server" and self.server_url is None


def k3s_config(spec: K3sNodeSpec) -> dict[str, Any]:
    config: dict[str, Any] = {
        "node-name": spec.node_name,
        "token-file": TOKEN_FILE,
        "node-label": [f"{k}={v}" for k, v in sorted(spec.labels.items())],
    }
    if spec.gpu:
        config["node-taint"] = [nvidia.taint_arg()]
    if spec.server_url:
        config["server"] = spec.server_url
    if spec.role == "server":
        if spec.cluster_init:
            config["cluster-init"] = True
        if spec.tls_sans:
            config["tls-san"] = list(spec.tls_sans)
        config.update(
            {
                "write-kubeconfig-mode": "0600",
                "secrets-encryption": True,
                # Z2JH brings its own proxy (and Let's Encrypt); ServiceLB stays for its
                # LoadBalancer service.
                "disable": ["traefik"],
            }
        )
    return config


def render_k3s_install_script(spec: K3sNodeSpec) -> str:
    if spec.role == "worker" and not spec.server_url:
        raise ValueError(f"{spec.node_name}: a worker needs the URL of a server to join")
    return render(
        "k3s-install.sh.j2",
        token_file=TOKEN_FILE,
        version_file=VERSION_FILE,
        wait_s=spec.wait_for_token_s,
        role=spec.role,
        server_url=spec.server_url or "",
        # A joining node's k3s may have to start several times before it joins (see
        # _k3s-installer.sh.j2); the first server starts on its own.
        start_later=bool(spec.server_url),
    )


def render_k3s_upgrade_script(spec: K3sNodeSpec) -> str:
    """Run over SSH: bring an existing node to `spec.version` (user data only serves the first
    boot, and a rebuilt node boots with the user data it was created with)."""
    if spec.role == "worker" and not spec.server_url:
        raise ValueError(f"{spec.node_name}: a worker needs the URL of a server to join")
    return render(
        "k3s-upgrade.sh.j2",
        token_file=TOKEN_FILE,
        version_file=VERSION_FILE,
        version=spec.version,
        role=spec.role,
        server_url=spec.server_url or "",
        # The node has joined before: the installer restarts k3s and waits for it.
        start_later=False,
    )


def render_node_state_script() -> str:
    return render("k3s-node-state.sh.j2", state_dir=STATE_DIR, binds=STATE_BINDS)


def render_node_ready_script(node: str, version: str, *, storage: bool, wait_s: int = 1800) -> str:
    return render(
        "k3s-node-ready.sh.j2",
        node=node,
        version=version,
        storage=storage,
        wait_s=wait_s,
        namespace=ROOK_NAMESPACE,
    )


def render_node_drain_script(node: str, wait_s: int = 300) -> str:
    """The delete command of a worker's removal step (see components/k8s_cluster.py)."""
    return render("k3s-node-drain.sh.j2", node=node, wait_s=wait_s)


def _state_files(volume_id: str) -> list[dict[str, str]]:
    return [
        {
            "path": STATE_VOLUME_SCRIPT,
            "content": render_data_volume_script(
                volume_id,
                STATE_DIR,
                label="jshub-node",
                folders=tuple((folder, "0700") for folder, _ in STATE_BINDS),
            ),
            "owner": "root:root",
            "permissions": "0755",
        },
        {
            "path": STATE_BIND_SCRIPT,
            "content": render_node_state_script(),
            "owner": "root:root",
            "permissions": "0755",
        },
    ]


def _gpu_files() -> list[dict[str, str]]:
    return [
        {
            "path": nvidia.TOOLKIT_SCRIPT,
            "content": nvidia.render_toolkit_script(),
            "owner": "root:root",
            "permissions": "0755",
        }
    ]


def render_k3s_cloud_init(spec: K3sNodeSpec) -> str:
    if spec.gpu and spec.role != "worker":
        raise ValueError(f"{spec.node_name}: only workers are GPU nodes")
    state = _state_files(spec.state_volume_id) if spec.state_volume_id else []
    # The toolkit goes in before k3s starts, which is when k3s looks for the nvidia runtime.
    gpu = _gpu_files() if spec.gpu else []
    config = {
        "package_update": True,
        # lvm2: Rook's OSD preparation; the others are on the featured images already.
        "packages": ["lvm2", "curl", "iptables"],
        "ssh_authorized_keys": [spec.deploy_public_key.strip()],
        "write_files": [
            {
                "path": CONFIG_FILE,
                "content": yaml.safe_dump(k3s_config(spec), sort_keys=False),
                "owner": "root:root",
                "permissions": "0600",
            },
            {
                "path": INSTALL_SCRIPT,
                "content": render_k3s_install_script(spec),
                "owner": "root:root",
                "permissions": "0755",
            },
            *state,
            *gpu,
        ],
        # Ceph's kernel clients; loaded now and at every boot.
        "bootcmd": [["modprobe", "rbd"], ["modprobe", "ceph"]],
        # The state volume is mounted before k3s is installed, so k3s never writes its
        # datastore to the root disk.
        "runcmd": [[f["path"]] for f in state + gpu] + [[INSTALL_SCRIPT]],
    }
    return to_user_data(config)


def render_install_token_script() -> str:
    """Reads two lines on standard input: the join token, then the node's password."""
    return render(
        "k3s-install-token.sh.j2",
        token_dir=TOKEN_DIR,
        token_file=TOKEN_FILE,
        node_dir=NODE_DIR,
        node_password_file=NODE_PASSWORD_FILE,
    )


def render_fetch_kubeconfig_script(control_planes: int, wait_s: int = 1800) -> str:
    return render(
        "k3s-fetch-kubeconfig.sh.j2", control_planes=control_planes, wait_s=wait_s, kubeconfig=KUBECONFIG
    )


def render_wait_for_nodes_script(selector: str, want: int, wait_s: int = 1800) -> str:
    return render("k3s-wait-nodes.sh.j2", selector=selector, want=want, wait_s=wait_s)


def rewrite_kubeconfig(kubeconfig: str, address: str, server_name: str = API_SERVER_NAME) -> str:
    """k3s writes `server: https://127.0.0.1:6443`; point it at `address` (the load balancer's
    or the first node's floating IP) and check the certificate against `server_name`, a name
    every server's certificate carries (API_SERVER_NAME)."""
    doc = yaml.safe_load(kubeconfig)
    clusters = doc.get("clusters") or []
    if not clusters:
        raise ValueError("the kubeconfig has no cluster")
    for entry in clusters:
        entry["cluster"]["server"] = f"https://{address}:{API_PORT}"
        entry["cluster"]["tls-server-name"] = server_name
    return yaml.safe_dump(doc, sort_keys=False)
