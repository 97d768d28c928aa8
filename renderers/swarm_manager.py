"""The swarm manager's day-2 pieces, written over SSH rather than in user data: Caddy's
configuration (so a new hub name or Let's Encrypt e-mail does not replace the manager) and the
SSH host key the stack generates (so the Docker provider pins it instead of trusting the first
key it is shown). Pure functions of plain values."""

from __future__ import annotations

from renderers import render
from renderers.cloud_init import CADDY_MOUNT_DROPIN, render_caddy_mount_dropin
from renderers.swarm import CADDY_STORAGE, EXPORT_ROOT, HUB_PORT

CADDYFILE = "/etc/caddy/Caddyfile"
HUB_UPSTREAM = f"127.0.0.1:{HUB_PORT}"
HOST_KEY = "/etc/ssh/ssh_host_ed25519_key"
# Where Debian's and Ubuntu's caddy package keeps its state when nothing else is configured:
# managers deployed before CADDY_STORAGE have their certificates here.
CADDY_DEFAULT_STORAGE = "/var/lib/caddy/.local/share/caddy"


def render_caddyfile(
    fqdn: str, email: str, upstream: str = HUB_UPSTREAM, acme_directory: str | None = None
) -> str:
    return render(
        "Caddyfile.j2",
        fqdn=fqdn,
        email=email,
        upstream=upstream,
        storage=CADDY_STORAGE,
        acme_directory=acme_directory,
    )


def render_caddy_config_script(
    fqdn: str, email: str, upstream: str = HUB_UPSTREAM, acme_directory: str | None = None
) -> str:
    content = render_caddyfile(fqdn, email, upstream, acme_directory)
    if "CADDYFILE" in content:
        raise ValueError("the Caddyfile must not contain the here-document's end marker")
    return render(
        "swarm-caddy.sh.j2",
        caddyfile=CADDYFILE,
        content=content,
        storage=CADDY_STORAGE,
        default_storage=CADDY_DEFAULT_STORAGE,
        dropin=CADDY_MOUNT_DROPIN,
        dropin_content=render_caddy_mount_dropin(EXPORT_ROOT),
    )


def render_host_key_script() -> str:
    """Reads the private key on standard input."""
    return render("swarm-host-key.sh.j2", host_key=HOST_KEY)


def known_hosts_line(address: str, public_key_openssh: str) -> str:
    key_type, key = public_key_openssh.split()[:2]
    return f"{address} {key_type} {key}"


def docker_ssh_opts(address: str, public_key_openssh: str) -> list[str]:
    """ssh options for the Docker provider: trust the pinned key and nothing else (no
    known_hosts file on the operator's machine is read or written). KnownHostsCommand needs
    OpenSSH 8.5 or later where `pulumi up` runs."""
    return [
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        f"KnownHostsCommand=/bin/echo {known_hosts_line(address, public_key_openssh)}",
        "-o",
        "HostKeyAlgorithms=ssh-ed25519",
        "-o",
        "ServerAliveInterval=30",
    ]
