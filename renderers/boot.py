"""Loud first boots: every `runcmd` item of a VM's user data runs as a named step.

cloud-init writes `runcmd` into one `/bin/sh` script, an item per line, and judges the boot by
that script's exit status, which without `set -e` is only the last command's: a failed volume
setup or pip install would still end in `done`. Here the script starts with `set -e` and each
item runs through `jshub-boot-step NAME ...`, which logs the step, and on failure records its
name and exits non-zero. The first failing step stops the boot, `cloud-init status` reports an
error, and the stack's remote commands (renderers/templates/_wait-cloud-init.sh.j2) print the
step's name and the end of its log.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence
from typing import Any

from renderers import BOOT_LOG_DIR, render

BOOT_STEP_COMMAND = "/usr/local/sbin/jshub-boot-step"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def render_boot_step_script(boot_log_dir: str = BOOT_LOG_DIR) -> str:
    return render("jshub-boot-step.sh.j2", boot_log_dir=boot_log_dir)


def step_name(index: int, command: Sequence[str]) -> str:
    """`03-pip-install`: the position (names stay unique) and the command in a few words:
    its program and up to two plain arguments (no options, paths or numbers)."""
    program = posixpath.basename(command[0])
    rest = list(command[1:])
    if program in ("sh", "bash") and rest[:1] == ["-c"] and len(rest) > 1:
        rest = rest[1].split()[:1]
    words = [program]
    for arg in rest:
        if len(words) == 3:
            break
        if arg.startswith("-") or "/" in arg or arg.isdigit():
            continue
        words.append(arg)
    slug = _UNSAFE.sub("-", "-".join(words)).strip("-")[:60]
    return f"{index:02d}-{slug}"


def as_steps(runcmd: Sequence[Any]) -> list[Any]:
    """`set -e`, then each command through the step wrapper. A failed step recorded by an
    earlier run of the same disk (`cloud-init clean`) is forgotten first."""
    steps: list[Any] = ["set -e", f"rm -f {BOOT_LOG_DIR}/failed-step"]
    for index, item in enumerate(runcmd, start=1):
        command = [str(a) for a in item] if isinstance(item, (list, tuple)) else ["sh", "-c", str(item)]
        steps.append([BOOT_STEP_COMMAND, step_name(index, command), *command])
    return steps


def with_boot_steps(config: dict[str, Any]) -> dict[str, Any]:
    """The user data with its `runcmd` as loud steps and the step wrapper written before it
    runs (write_files runs in cloud-init's first stage, runcmd in its last)."""
    if not config.get("runcmd"):
        return config
    wrapper = {
        "path": BOOT_STEP_COMMAND,
        "content": render_boot_step_script(),
        "owner": "root:root",
        "permissions": "0755",
    }
    return {
        **config,
        "write_files": [*config.get("write_files", []), wrapper],
        "runcmd": as_steps(config["runcmd"]),
    }


def boot_commands(runcmd: Sequence[Any]) -> list[list[str]]:
    """The commands of a loud `runcmd`, in order, without `set -e` and the step wrapper."""
    return [list(item[2:]) for item in runcmd if isinstance(item, list) and item[:1] == [BOOT_STEP_COMMAND]]
