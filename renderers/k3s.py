"""k3s nodes: cloud-init, the k3s configuration file, the scripts the stack runs over SSH, and
the kubeconfig rewritten for use from outside the cluster. Pure functions of plain values."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from renderers import render
from renderers.cloud_init import to_user_data

CONFIG_FILE = "/etc/rancher/k3s/config.yaml"
TOKEN_DIR = "/etc/rancher/k3s/secret"
TOKEN_FILE = f"{TOKEN_DIR}/token"
KUBECONFIG = "/etc/rancher/k3s/k3s.yaml"
INSTALL_SCRIPT = "/usr/local/sbin/jshub-k3s-install"
API_PORT = 6443

# Z2JH's node-purpose label: user servers require `user`, the hub and Ceph prefer `core`.
NODE_PURPOSE = "hub.jupyter.org/node-purpose"


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

    @property
    def cluster_init(self) -> bool:
        return self.role == "server" and self.server_url is None


def k3s_config(spec: K3sNodeSpec) -> dict[str, Any]:
    config: dict[str, Any] = {
        "node-name": spec.node_name,
        "token-file": TOKEN_FILE,
        "node-label": [f"{k}={v}" for k, v in sorted(spec.labels.items())],
    }
    if spec.server_url:
        config["server"] = spec.server_url
    if spec.role == "server":
        if spec.cluster_init:
            config["cluster-init"] = True
        config.update(
            {
                "tls-san": list(spec.tls_sans),
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
        wait_s=spec.wait_for_token_s,
        version=spec.version,
        role=spec.role,
        server_url=spec.server_url or "",
    )


def render_k3s_cloud_init(spec: K3sNodeSpec) -> str:
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
        ],
        # Ceph's kernel clients; loaded now and at every boot.
        "bootcmd": [["modprobe", "rbd"], ["modprobe", "ceph"]],
        "runcmd": [[INSTALL_SCRIPT]],
    }
    return to_user_data(config)


def render_install_token_script() -> str:
    return render("k3s-install-token.sh.j2", token_dir=TOKEN_DIR, token_file=TOKEN_FILE)


def render_fetch_kubeconfig_script(control_planes: int, wait_s: int = 1800) -> str:
    return render(
        "k3s-fetch-kubeconfig.sh.j2", control_planes=control_planes, wait_s=wait_s, kubeconfig=KUBECONFIG
    )


def render_wait_for_nodes_script(selector: str, want: int, wait_s: int = 1800) -> str:
    return render("k3s-wait-nodes.sh.j2", selector=selector, want=want, wait_s=wait_s)


def rewrite_kubeconfig(kubeconfig: str, address: str, server_name: str) -> str:
    """k3s writes `server: https://127.0.0.1:6443`; point it at the node's floating IP and check
    the certificate against `server_name`, a name k3s put in the certificate (`tls-san`)."""
    doc = yaml.safe_load(kubeconfig)
    clusters = doc.get("clusters") or []
    if not clusters:
        raise ValueError("the kubeconfig has no cluster")
    for entry in clusters:
        entry["cluster"]["server"] = f"https://{address}:{API_PORT}"
        entry["cluster"]["tls-server-name"] = server_name
    return yaml.safe_dump(doc, sort_keys=False)
