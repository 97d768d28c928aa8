"""The hub's usage record: a JupyterHub managed service that asks the hub's REST API every few
minutes which servers run, and appends one line of JSON to a file on the hub's data volume:

    {"t": "<when, UTC>", "servers": [{"user": ..., "server": ..., "started": ...}, ...]}

The API keeps no history (a stopped server is gone from it); these samples are the history.
`python -m jshub.usage` reads them: a server counts from its `started` to the last sample that
saw it. The hub gives the service JUPYTERHUB_API_URL and JUPYTERHUB_API_TOKEN (scopes
list:users, read:servers). Standard library only: it runs on the hub's interpreter."""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

PAGINATION = "application/jupyterhub-pagination+json"
log = logging.getLogger("jshub_usage")


def active_users(api_url: str, token: str, timeout: float = 30) -> Iterator[dict[str, Any]]:
    """Users with a server that is running or starting, page by page."""
    offset = 0
    while True:
        query = urllib.parse.urlencode({"state": "active", "offset": offset, "limit": 200})
        request = urllib.request.Request(
            f"{api_url.rstrip('/')}/users?{query}",
            headers={"Authorization": f"token {token}", "Accept": PAGINATION},
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = json.load(response)
        items: list[dict[str, Any]] = body["items"] if isinstance(body, dict) else body
        yield from items
        following = body.get("_pagination", {}).get("next") if isinstance(body, dict) else None
        if not following or not items:
            return
        offset = following["offset"]


def running_servers(users: Iterator[dict[str, Any]] | list[dict[str, Any]]) -> list[dict[str, str]]:
    """Each started server's user, name and start time."""
    found = []
    for user in users:
        for name, server in (user.get("servers") or {}).items():
            if server and server.get("started"):
                found.append({"user": user["name"], "server": name, "started": server["started"]})
    return found


def sample(api_url: str, token: str, record: Path, now: datetime | None = None) -> int:
    """Append one sample to `record`; the number of servers it saw."""
    servers = running_servers(active_users(api_url, token))
    line = json.dumps({"t": (now or datetime.now(UTC)).isoformat(), "servers": servers}, sort_keys=True)
    record.parent.mkdir(parents=True, exist_ok=True)
    # One write of a whole line: a reader never sees half of one except at a crash, and skips it.
    with record.open("a", encoding="utf-8") as f:
        f.write(line + "\n")
    os.chmod(record, 0o600)
    return len(servers)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m jshub_usage")
    parser.add_argument("--record", type=Path, required=True, help="the file samples are appended to")
    parser.add_argument("--every", type=float, default=300, help="seconds between samples")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s jshub_usage %(message)s")
    api_url, token = os.environ["JUPYTERHUB_API_URL"], os.environ["JUPYTERHUB_API_TOKEN"]
    while True:
        started = time.monotonic()
        try:
            sample(api_url, token, args.record)
        except OSError as exc:  # the hub restarting, a full disk: try again next time
            log.warning("no sample: %s", exc)
        time.sleep(max(1.0, args.every - (time.monotonic() - started)))


if __name__ == "__main__":
    main()
