"""Pure renderers: typed values in, the text a VM or cluster runs out. No Pulumi here."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import jinja2

TEMPLATES = Path(__file__).parent / "templates"
# Where each first-boot step logs, and where a failed one leaves its name (renderers/boot.py).
BOOT_LOG_DIR = "/var/log/jshub-boot"


def _py(value: Any) -> str:
    return repr(value)


def _pyset(values: Any) -> str:
    return "{" + ", ".join(repr(v) for v in sorted(set(values))) + "}" if values else "set()"


ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    autoescape=False,
)
ENV.filters["py"] = _py
ENV.filters["pyset"] = _pyset
ENV.filters["sh"] = lambda value: shlex.quote(str(value))
# Scripts that wait for the first boot read the failed step from here; a test renders another.
ENV.globals["boot_log_dir"] = BOOT_LOG_DIR


def render(template: str, **values: Any) -> str:
    return ENV.get_template(template).render(**values)
