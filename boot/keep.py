"""What a rebuild of a hub VM must keep: a fresh root disk, the same data disk, and the hub's
users, their Unix UIDs and files, and its HTTPS certificate are all back.

`python -m boot.keep URL TOKEN` runs as a client of a booted hub (`make boot` runs it through
the local ACME server's namespace, after the smoke test passed). It makes sure a lasting user
exists, has a kernel of theirs report their UID and home and a file kept there (written on the
first boot only), fetches the certificate the hub serves, and prints what it saw as JSON.
`make boot` keeps that beside the role's data disks and compares the next boot of the role
(a rebuild) with it.
"""

from __future__ import annotations

import hashlib
import json
import ssl
import sys
from typing import Any
from urllib.parse import urlsplit

from jshub.hubapi import HubAPI

KEEPER = "jshub-boot-keeper"
KEPT_FILE = "kept-across-rebuilds.txt"
# Everything a rebuild keeps on a single hub; on a gateway the homes and UIDs are the HPC
# site's, not the hub VM's (compare HUB_STATE only).
EVERYTHING = ("users", "uid", "home", "file", "certificate")
HUB_STATE = ("users", "certificate")

CODE = f"""\
import hashlib, os, pathlib, secrets
path = pathlib.Path.home() / {KEPT_FILE!r}
if not path.exists():
    path.write_text(secrets.token_hex(16))
print(os.getuid(), pathlib.Path.home(), hashlib.sha256(path.read_bytes()).hexdigest())
"""


def observe(url: str, token: str, timeout: float = 900) -> dict[str, Any]:
    hub = HubAPI(url, token)
    if hub.user(KEEPER) is None:
        hub.expect(hub.api("POST", f"/users/{KEEPER}"), 201)
    if hub.server(KEEPER) is None:
        hub.start_server(KEEPER, timeout=timeout, poll_s=1.0)
    uid, home, digest = hub.run_code(KEEPER, CODE, timeout=300).split()
    hub.stop_server(KEEPER, timeout=timeout)
    users = sorted(model["name"] for model in hub.expect(hub.api("GET", "/users"), 200).json())
    host = urlsplit(url).hostname or ""
    pem = ssl.get_server_certificate((host, 443))
    return {
        "users": users,
        "uid": int(uid),
        "home": home,
        "file": digest,
        "certificate": hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest(),
    }


def compare(before: dict[str, Any], after: dict[str, Any], keys: tuple[str, ...]) -> list[str]:
    """What the rebuild did not keep, one line each (empty: everything kept)."""
    return [
        f"{key}: {before.get(key)!r} before, {after.get(key)!r} after"
        for key in keys
        if before.get(key) != after.get(key)
    ]


if __name__ == "__main__":
    print(json.dumps(observe(sys.argv[1], sys.argv[2])))
