"""The hub's config folder as hub-config writes it (its modules, its settings, the static
jupyterhub_config.py), written into a test's folder so that JupyterHub's own loader runs it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from renderers.hub_config import HubConfigSpec, hub_config_files
from renderers.hub_settings import SETTINGS_FILE


def hub_config_text(spec: HubConfigSpec, folder: Path) -> str:
    """Write the modules and settings of `spec` into `folder`; return jupyterhub_config.py's
    text, which a loader writes there too (it reads the settings from beside itself)."""
    files = hub_config_files(spec)
    text = files.pop("jupyterhub_config.py")
    for name, content in files.items():
        (folder / name).write_text(content)
    return text


def settings_of(spec: HubConfigSpec) -> dict[str, Any]:
    settings: dict[str, Any] = json.loads(hub_config_files(spec)[SETTINGS_FILE])
    return settings
