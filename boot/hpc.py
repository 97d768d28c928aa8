"""The HPC site of a `gateway-hpc` boot: a login-node guest that stands in for Expanse or Anvil.

The hub VM boots with its own rendered user data; what the HPC centre provides comes from here,
as a site would set it up for a gateway (docs/hpc.md, "What the HPC site must provide"):

- SLURM (Debian's `slurm-wlm` and `munge`, and `dbus`, which slurmd's cgroup v2 plugin needs on a
  systemd host): controller and one compute node on the login node
  itself, started by the same script the local SLURM tests use (tests/services/start-slurm.sh),
  with the stack's partition names;
- sshd with a host key made here, which the boot's stack file pins in `hpc.hostKey`;
- the HPC accounts of the hub's users (by `hpc.usernamePattern`, or the community account),
  each authorising the hub's key with the line docs/hpc.md gives the site
  (`restrict,port-forwarding ...`); the key is made here too and reaches the hub VM as the
  `hpc-install-key` step's standard input, where `pulumi up` feeds the stack's generated key;
- an environment with `jupyterhub-singleuser` and batchspawner: the host's virtualenv, shared
  read-only at its own path (boot.guest.Share), activated by `hpc.environmentSetup`;
- the network the compute nodes have in `ssh-tunnel` mode: outbound HTTPS to the hub's name.
  The name resolves to the hub VM's address on the private segment, and the site trusts the
  local ACME CA that signed the hub's certificate (on Jetstream2: a public name, Let's Encrypt).

Only the stack file's `hpc` section changes for the boot (login host, host key, environment
setup); the hub VM's user data stays byte-identical to `make plan`'s.
"""

from __future__ import annotations

import ipaddress
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from boot.plan import REPO
from stackconfig.hpc import HpcConfig

LOGIN_NAME = "hpc-login"
HUB_KEY_COMMENT = "jupyterhub-gateway"
# What docs/hpc.md asks the site to put before the hub's key (ssh-tunnel needs port forwarding).
AUTHORIZED_KEY_OPTIONS = "restrict,port-forwarding"
START_SLURM = REPO / "tests" / "services" / "start-slurm.sh"
GUEST_CA = "/usr/local/share/ca-certificates/jshub-boot-acme.crt"
GUEST_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
# The node is declared larger than the guest (start-slurm.sh's config_overrides), so that the
# stack's default request (cores, memory) is scheduled on a 1-vCPU guest as on a real node.
NODE_CPUS = 64
NODE_MEMORY_MB = 256000


@dataclass(frozen=True)
class SshKey:
    private: str
    public: str  # "ssh-ed25519 AAAA... comment"


def ssh_key(path: Path, comment: str) -> SshKey:
    """An ED25519 key pair at `path` (made once: a rebuild keeps the site's keys)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], check=True
        )
    return SshKey(path.read_text(), Path(f"{path}.pub").read_text().strip())


@dataclass(frozen=True)
class LoginNode:
    """The site's side of a gateway-hpc boot: where it is, its keys, who logs in."""

    address: str  # on the private segment, the hub VM's /24
    host_key: SshKey
    hub_key: SshKey  # the gateway's key: the hub VM gets the private half
    accounts: tuple[str, ...]

    def stack_section(self, hpc: dict[str, Any], venv: Path) -> dict[str, Any]:
        """The stack's `hpc` section pointed at this login node: its address, its host key, and
        the environment that provides the notebook server (the host's virtualenv)."""
        return {
            **hpc,
            "loginHost": self.address,
            "loginPort": 22,
            "hostKey": self.host_key.public,
            "environmentSetup": [
                f'export PATH="{venv}/bin:$PATH"',
                # The notebook's calls to the hub's HTTPS name (tornado, requests) trust the
                # site's store, where the local ACME CA is.
                f"export SSL_CERT_FILE={GUEST_BUNDLE}",
                f"export REQUESTS_CA_BUNDLE={GUEST_BUNDLE}",
            ],
        }

    def user_data(self, *, hub_name: str, hub_address: str, partitions: list[str], ca_root_pem: str) -> str:
        """The login node's cloud-config (the site's own set-up, not the project's)."""
        authorized = f"{AUTHORIZED_KEY_OPTIONS} {self.hub_key.public}"
        environment = (
            f"JSHUB_SLURM_PARTITIONS='{' '.join(partitions)}' JSHUB_SLURM_CPUS={NODE_CPUS} "
            f"JSHUB_SLURM_MEMORY_MB={NODE_MEMORY_MB} JSHUB_SLURM_WAIT_S=300"
        )
        document = {
            "users": [
                "default",
                *(
                    {"name": account, "shell": "/bin/bash", "ssh_authorized_keys": [authorized]}
                    for account in self.accounts
                ),
            ],
            "ssh_deletekeys": True,
            "ssh_keys": {
                "ed25519_private": self.host_key.private,
                "ed25519_public": self.host_key.public,
            },
            # dbus: slurmd's cgroup v2 plugin asks systemd (over D-Bus) for the jobs' scope; it is
            # on every real node, not in the minimal guest image.
            "packages": ["dbus", "slurm-wlm", "munge"],
            "write_files": [
                {
                    "path": "/usr/local/sbin/start-slurm.sh",
                    "permissions": "0755",
                    "content": START_SLURM.read_text(),
                },
                {"path": GUEST_CA, "permissions": "0644", "content": ca_root_pem},
            ],
            "runcmd": [
                ["update-ca-certificates"],
                ["systemctl", "start", "dbus.service"],
                ["sh", "-c", f"echo '{hub_address} {hub_name}' >> /etc/hosts"],
                ["sh", "-c", f"{environment} /usr/local/sbin/start-slurm.sh"],
            ],
        }
        return "#cloud-config\n" + yaml.safe_dump(document, sort_keys=False)


def hpc_accounts(hpc: dict[str, Any], hub_users: list[str]) -> tuple[str, ...]:
    """The HPC accounts the hub logs in as for `hub_users` (the stack's `hpc` section, read by
    the project's own config model: its account mapping is the spawner's)."""
    section = HpcConfig.model_validate(hpc)
    return tuple(dict.fromkeys(section.login_user_for(user) for user in hub_users))


def login_address(hub_address: str) -> str:
    """An address for the login node in the hub's /24 that is not the hub's."""
    network = ipaddress.ip_network(f"{hub_address}/24", strict=False)
    hosts = list(network.hosts())
    choice = next(h for h in reversed(hosts) if str(h) != hub_address)
    return str(choice)


def login_node(state: Path, hpc: dict[str, Any], hub_address: str, hub_users: list[str]) -> LoginNode:
    return LoginNode(
        address=login_address(hub_address),
        host_key=ssh_key(state / "login-host-key", LOGIN_NAME),
        hub_key=ssh_key(state / "hub-hpc-key", HUB_KEY_COMMENT),
        accounts=hpc_accounts(hpc, hub_users),
    )
