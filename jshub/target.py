"""Which hub a command talks to: its URL and admin token from flags, else the environment
(JSHUB_URL, JSHUB_TOKEN), else the stack's outputs (`pulumi stack output --json --show-secrets`:
`url` and `admin_token`)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any


class TargetError(RuntimeError):
    """No hub to talk to: says what is missing and where it was looked for."""


@dataclass(frozen=True)
class Target:
    url: str
    token: str


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("which hub (default: the current Pulumi stack's outputs)")
    group.add_argument("--url", help="the hub's public URL (or JSHUB_URL; the stack output url)")
    group.add_argument(
        "--token",
        help="an API token with admin:users, admin:servers and access:servers "
        "(or JSHUB_TOKEN; the stack output admin_token). Prefer the environment: "
        "a flag shows in the process list",
    )
    group.add_argument("--stack", help="the Pulumi stack to read outputs from (default: the selected one)")


def stack_outputs(stack: str | None = None) -> dict[str, str]:
    return {key: value for key, value in stack_values(stack).items() if isinstance(value, str)}


def stack_values(stack: str | None = None) -> dict[str, Any]:
    """Every output of the stack, structured ones (JSON objects) included."""
    pulumi = shutil.which("pulumi")
    if pulumi is None:
        raise TargetError(
            "no --url/--token, no JSHUB_URL/JSHUB_TOKEN, and no pulumi command to read them from"
        )
    cmd = [pulumi, "stack", "output", "--json", "--show-secrets"] + (["--stack", stack] if stack else [])
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise TargetError(f"`pulumi stack output` failed: {done.stderr.strip()[:400]}")
    outputs: dict[str, Any] = json.loads(done.stdout or "{}")
    return outputs


def resolve(args: argparse.Namespace) -> Target:
    url = args.url or os.environ.get("JSHUB_URL")
    token = args.token or os.environ.get("JSHUB_TOKEN")
    if not (url and token):
        outputs = stack_outputs(args.stack)
        url = url or outputs.get("url")
        token = token or outputs.get("admin_token")
    if not url or not token:
        missing = " and ".join(n for n, v in (("url", url), ("admin_token", token)) if not v)
        raise TargetError(f"the stack has no {missing} output; give --url/--token or JSHUB_URL/JSHUB_TOKEN")
    return Target(url=url.rstrip("/"), token=token)
