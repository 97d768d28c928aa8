"""`make diff` shows a changed hub config as the data that changed (planner/datadiff.py)."""

from __future__ import annotations

import base64
import json

from planner.datadiff import ABSENT, data_changes, json_documents
from planner.diff import Change, Diff, render
from renderers.hub_config import HubConfigSpec, hub_vm_files
from renderers.scripts import render_hub_config_script
from tests.conftest import BASE_CONFIG, make_config


def _script(**overrides: object) -> str:
    cfg = make_config(**overrides)
    spec = HubConfigSpec.from_config(cfg)
    return render_hub_config_script(hub_vm_files(spec, cfg.hub_fqdn, cfg.lets_encrypt_email), spec.paths)


def test_a_changed_admin_and_culler_read_as_settings_leaves() -> None:
    before = _script()
    after = _script(auth={**BASE_CONFIG["auth"], "admins": ["octocat", "bob"]}, idleTimeoutMinutes=120)
    # Inside the script's heredocs: JupyterLab's defaults for users, and the hub's settings.
    documents = json_documents(before)
    assert len(documents) == 2 and any("Authenticator" in d for d in documents)
    assert data_changes(before, after) == [
        ("Authenticator.admin_users", ["octocat"], ["bob", "octocat"]),
        ("JupyterHub.services[0].command[3]", "--timeout=3600", "--timeout=7200"),
    ]
    text = render(
        Diff([Change("update", "command:remote:Command", "hub-config", {"create": (before, after)})], [], []),
        {},
    )
    assert '  Authenticator.admin_users: ["octocat"] => ["bob", "octocat"]' in text
    assert '  JupyterHub.services[0].command[3]: "--timeout=3600" => "--timeout=7200"' in text


def test_a_docker_configs_base64_settings_are_read_too() -> None:
    def b64(doc: object) -> str:
        return base64.b64encode(json.dumps(doc).encode()).decode()

    old, new = b64({"Spawner": {"start_timeout": 600}}), b64({"Spawner": {"start_timeout": 900}})
    assert data_changes(old, new) == [("Spawner.start_timeout", 600, 900)]
    assert data_changes("#!/bin/bash\necho hi\n", "#!/bin/bash\necho ho\n") == []
    assert data_changes(b64({"A": {}}), b64({"A": {"b": 1}})) == [("A", {}, ABSENT), ("A.b", ABSENT, 1)]
