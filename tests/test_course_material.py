"""Course material: the sharedFolder key, where the shared folder is offered, and what the hub
VM gets for it (the access script, the pre-spawn hook, nbgitpuller). The folder itself is
tested for real in tests/e2e/test_course_material_hub.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from renderers.hub_config import HUB_REQUIREMENTS, HubConfigSpec, hub_vm_files
from stackconfig import ConfigError
from tests.builders import HPC, hpc_config
from tests.conftest import make_config, require_root, require_tool
from tests.hub_config_local import settings_of

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "hub"))
from jshub_swarm import SHARED_SETUP as SWARM_SHARED_SETUP

SCRIPT = "/usr/local/sbin/jshub-shared-access"
SETTINGS = "/etc/jupyterhub/jupyterhub_settings.json"


def problems(**overrides: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        make_config(**overrides)
    return [str(p) for p in info.value.problems]


def files(cfg: Any) -> dict[str, str]:
    spec = HubConfigSpec.from_config(cfg)
    return {f.path: f.content for f in hub_vm_files(spec, cfg.hub_fqdn, cfg.lets_encrypt_email)}


def test_single_hub_offers_the_shared_folder_by_default() -> None:
    cfg = make_config()
    assert cfg.shared_folder is None and cfg.shared_folder_on
    vm = files(cfg)
    assert "shared=/data/home/.shared" in vm[SCRIPT] and "group=jshub-admins" in vm[SCRIPT]
    hook = json.loads(vm[SETTINGS])["Spawner"]["pre_spawn_hook"]
    assert hook["$call"] == "jshub_accounts.prepare_home"
    assert hook["kwargs"]["shared_access_command"] == SCRIPT
    # The script is in place before the settings that name it (files install in order).
    paths = list(vm)
    assert paths.index(SCRIPT) < paths.index(SETTINGS) < paths.index("/etc/jupyterhub/jupyterhub_config.py")


def test_single_hub_without_the_shared_folder_gets_neither_script_nor_hook() -> None:
    cfg = make_config(sharedFolder=False)
    assert not cfg.shared_folder_on
    vm = files(cfg)
    assert SCRIPT not in vm
    # The hook stays, for the home quota alone.
    assert SCRIPT not in vm[SETTINGS]
    hook = json.loads(vm[SETTINGS])["Spawner"]["pre_spawn_hook"]
    assert hook["kwargs"] == {"home_quota_command": "/usr/local/sbin/jshub-home-quota", "home_quota_gb": 10}


def test_hpc_hub_offers_no_shared_folder() -> None:
    cfg = hpc_config()
    assert not cfg.shared_folder_on
    assert SCRIPT not in files(cfg)
    assert "pre_spawn_hook" not in settings_of(HubConfigSpec.from_config(cfg))["Spawner"]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"scenario": "hpc", "hpc": HPC, "sharedFolder": True},
            "sharedFolder = True: true is offered only by scenarios single, swarm, k8s: on hpc notebooks run as batch jobs "
            "on the HPC system",
        ),
        (
            {"scenario": "k8s", "k8s": {"engine": "k3s"}, "sharedFolder": False},
            "sharedFolder = False: false is not offered by scenario k8s",
        ),
        ({"sharedFolder": "maybe"}, "sharedFolder = 'maybe': Input should be a valid boolean"),
    ],
)
def test_bad_shared_folder_values_name_key_value_and_what_is_allowed(
    overrides: dict[str, Any], expected: str
) -> None:
    found = problems(**overrides)
    assert any(p.startswith(expected) for p in found), found


def test_nbgitpuller_is_pinned_in_the_hubs_packages_and_installed_here() -> None:
    pins = [line for line in HUB_REQUIREMENTS.read_text().splitlines() if line.startswith("nbgitpuller==")]
    assert len(pins) == 1
    version = pins[0].split("==")[1]
    # The tests' venv runs the hub's own pins: the server extension the e2e test calls is this one.
    from importlib.metadata import version as installed

    assert installed("nbgitpuller") == version
    listed = subprocess.run(
        [sys.executable, "-m", "jupyter", "server", "extension", "list"],
        capture_output=True,
        text=True,
        check=False,
    )
    # Installing the package enables its server extension (its jupyter_server_config.d file).
    lines = (listed.stdout + listed.stderr).splitlines()
    assert any("nbgitpuller" in line and "enabled" in line for line in lines), lines


def test_swarm_shared_setup_passes_shellcheck(tmp_path: Path) -> None:
    path = tmp_path / "shared-setup.sh"
    path.write_text("#!/bin/sh\n" + SWARM_SHARED_SETUP)
    tool = require_tool("shellcheck", "lints rendered shell scripts")
    result = subprocess.run(
        [tool, "--severity=style", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout


def test_swarm_shared_setup_makes_the_folder_and_links_it_into_a_home_once(tmp_path: Path) -> None:
    """What the swarm hub's one-shot container runs on the manager's volume, run for real."""
    require_root("the folder is root's and the link the user's")
    home_root = tmp_path / "home"
    home = home_root / "alice"
    home.mkdir(parents=True, mode=0o700)
    os.chown(home, 10007, 100)
    shared = home_root / ".shared"

    def run(link_owner: tuple[str, str]) -> None:
        subprocess.run(
            ["/bin/sh", "-c", SWARM_SHARED_SETUP, "sh", "9999", str(shared), str(home / "shared"), "/srv/shared",
             *link_owner],
            check=True,
        )  # fmt: skip

    run(("10007", "100"))
    info = shared.stat()
    assert (info.st_uid, info.st_gid, oct(info.st_mode & 0o7777)) == (0, 9999, "0o2775")
    link = home / "shared"
    assert os.readlink(link) == "/srv/shared" and link.lstat().st_uid == 10007
    # A second start changes nothing; a user's own `shared` is never replaced.
    run(("10007", "100"))
    link.unlink()
    (home / "shared").mkdir()
    run(("10007", "100"))
    assert (home / "shared").is_dir() and not (home / "shared").is_symlink()
