"""The hub's certificate through the real ACME path, on this machine: the hub's rendered Caddyfile
(with `acmeDirectory` and `acmeRootCertificate` set) in a real Caddy obtains a certificate from
the boot harness's local ACME server (boot/acme.py, Caddy's `acme_server`), which validates the
challenge against the hub's DNS name; a client that trusts only that CA then reaches the hub over
HTTPS. The same stand-in serves the booted VMs (`make boot`)."""

from __future__ import annotations

import http.server
import os
import secrets
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from boot.acme import LocalAcme, in_namespace
from renderers.hub_config import HubConfigSpec, acme_root_path, hub_vm_files
from tests.conftest import make_config, require_root, require_tool

HUB = "hub.cis230000.projects.jetstream-cloud.org"


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"the hub behind caddy\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def _free(address: str, port: int) -> bool:
    with socket.socket() as s:
        # As Caddy binds: a connection of an earlier run in TIME_WAIT does not hold the port.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((address, port))
        except OSError:
            return False
    return True


def public_address() -> str:
    """The floating IP's stand-in for this run: an address of 127.42.0.0/16 whose ports 80 and
    443 are free, so that a `make boot` or another test run beside this one keeps its own."""
    for _ in range(50):
        address = f"127.42.{secrets.randbelow(256)}.{1 + secrets.randbelow(254)}"
        if _free(address, 80) and _free(address, 443):
            return address
    pytest.fail("no address of 127.42.0.0/16 has ports 80 and 443 free", pytrace=False)


def hub_caddyfile(directory: str, root: Path, storage: Path, upstream: int, address: str) -> str:
    """The production Caddyfile as the stack writes it, with only where it keeps its state,
    where the root file is, and the hub's port moved to this machine; it listens on the floating
    IP's stand-in instead of every address."""
    cfg = make_config(acmeDirectory=directory, acmeRootCertificate=root.read_text())
    spec = HubConfigSpec.from_config(cfg)
    files = {
        f.path: f for f in hub_vm_files(spec, cfg.hub_fqdn, "ops@example.org", directory, root.read_text())
    }
    text = files["/etc/caddy/Caddyfile"].content
    assert f"acme_ca {directory}" in text and acme_root_path(spec.paths) in text
    text = text.replace(acme_root_path(spec.paths), str(root)).replace(spec.paths.caddy_dir, str(storage))
    text = text.replace(spec.bind_url.removeprefix("http://"), f"127.0.0.1:{upstream}")
    return text.replace("{\n", f"{{\n\tdefault_bind {address}\n\tadmin off\n", 1)


def start_caddy(acme: LocalAcme, config: Path, log: Path) -> subprocess.Popen[bytes]:
    caddy = require_tool("caddy", "the hub's reverse proxy and ACME client")
    env = {**os.environ, "HOME": str(config.parent)}
    with open(log, "ab") as out:
        return subprocess.Popen(
            in_namespace(acme.hosts, [caddy, "run", "--adapter", "caddyfile", "--config", str(config)]),
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )


def fetch(acme: LocalAcme, timeout: float = 90) -> tuple[str, str]:
    """The hub's answer and its certificate's issuer, through a client that trusts only the local CA."""
    probe = (
        "import socket, ssl, sys, urllib.request\n"
        f"print(urllib.request.urlopen('https://{HUB}/', timeout=10).read().decode(), end='')\n"
        "ctx = ssl.create_default_context()\n"
        f"with ctx.wrap_socket(socket.create_connection(('{HUB}', 443)), server_hostname='{HUB}') as s:\n"
        "    print(dict(x[0] for x in s.getpeercert()['issuer'])['commonName'])\n"
    )
    deadline = time.monotonic() + timeout
    while True:
        result = acme.run(["python3", "-c", probe], timeout=60)
        if result.returncode == 0:
            body, issuer = result.stdout.splitlines()
            return body, issuer
        if time.monotonic() > deadline:
            raise AssertionError(f"the hub never answered over HTTPS: {result.stderr[-800:]}")
        time.sleep(1)


def test_the_hub_obtains_its_certificate_from_the_acme_server_and_keeps_it(
    tmp_path: Path, upstream: int
) -> None:
    require_root("a private mount namespace for the stand-in DNS, and ports 80/443")
    require_tool("unshare", "a private /etc/hosts for the ACME server and the client")
    require_tool("caddy", "the ACME server and the hub's reverse proxy")
    address = public_address()
    with LocalAcme(tmp_path / "ca", {HUB: address}, client_host="127.0.0.1") as acme:
        config = tmp_path / "hub" / "Caddyfile"
        config.parent.mkdir()
        config.write_text(
            hub_caddyfile(acme.directory, acme.root_path, tmp_path / "storage", upstream, address)
        )
        log = tmp_path / "hub" / "caddy.log"
        caddy = start_caddy(acme, config, log)
        try:
            start = time.monotonic()
            body, issuer = fetch(acme)
            issued_s = time.monotonic() - start
        finally:
            caddy.terminate()
            caddy.wait(timeout=30)
        assert body == "the hub behind caddy"
        # From the ACME server's CA, not Caddy's own internal one: the ACME path ran.
        assert issuer == "Caddy Local Authority - ECC Intermediate"
        text = log.read_text()
        assert (
            "validations succeeded; finalizing order" in text and "certificate obtained successfully" in text
        )
        certificates = list((tmp_path / "storage" / "certificates").rglob(f"{HUB}.crt"))
        assert len(certificates) == 1, (
            "the certificate lives in the storage the stack puts on the data volume"
        )

        # A rebuilt hub (same storage, a fresh process) serves the certificate it has: no new order.
        before = certificates[0].read_bytes()
        caddy = start_caddy(acme, config, log)
        try:
            assert fetch(acme)[0] == "the hub behind caddy"
        finally:
            caddy.terminate()
            caddy.wait(timeout=30)
        assert log.read_text().count("certificate obtained successfully") == 1
        assert certificates[0].read_bytes() == before
    print(f"[acme] certificate issued and the hub reached in {issued_s:.1f} s")
