"""The hub's own modules (hub/), called directly: the settings loader and its markers, the
login hook that refuses the VM's own accounts, the home-preparation hooks of the single and
swarm hubs. The authenticators' account queue is tested in tests/test_workshop_auth.py, the
SLURM spawner in tests/test_hpc.py; every module also runs in the real hubs of tests/e2e."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest
from traitlets.config import Config

from renderers.hub_config import HUB_DIR, HubConfigSpec, hub_config_files
from renderers.hub_settings import SETTINGS_FILE
from tests.conftest import make_config

sys.path.insert(0, str(HUB_DIR))
import jshub_accounts
import jshub_settings
import jshub_swarm

# --- jshub_settings ---------------------------------------------------------------------------


def test_markers_resolve_from_the_environment_and_the_modules() -> None:
    env = {"TOKEN": "t0k", "EMPTY": ""}
    value = {
        "token": {"$env": "TOKEN"},
        "optional": {"$env": "UNSET", "default": None},
        "empty": {"$env": "EMPTY", "default": "fallback"},
        "python": [{"$sys": "executable"}, "-m", "x"],
        "hook": {"$call": "jshub_accounts.refuse_system_accounts", "kwargs": {"home_root": "/data/home"}},
        "module": {"$import": "jshub_accounts.LocalNativeAuthenticator"},
        "items": [1, {"$if_env": "TOKEN", "value": {"$env": "TOKEN"}}, {"$if_env": "EMPTY", "value": 3}],
    }
    resolved = jshub_settings.resolve(value, env)
    assert resolved["token"] == "t0k"
    assert resolved["optional"] is None and resolved["empty"] == "fallback"
    assert resolved["python"] == [sys.executable, "-m", "x"]
    assert callable(resolved["hook"]) and resolved["module"] is jshub_accounts.LocalNativeAuthenticator
    assert resolved["items"] == [1, "t0k"]
    with pytest.raises(KeyError, match="the hub's environment has no SECRET"):
        jshub_settings.resolve({"$env": "SECRET"}, {})
    with pytest.raises(ValueError, match="unknown settings marker"):
        jshub_settings.resolve({"$eval": "1"}, {})


def test_settings_apply_to_the_config_and_markers_resolve_in_place() -> None:
    c = Config()
    jshub_settings.apply_settings(
        c,
        {"JupyterHub": {"active_server_limit": 5}, "OAuthenticator": {"client_secret": {"$env": "S"}}},
        {"S": "x"},
    )
    assert c.JupyterHub.active_server_limit == 5 and c.OAuthenticator.client_secret == "x"
    # k8s: the chart put hub.config into c as it is; the extraConfig resolves it there.
    c = Config()
    c.SharedPasswordAuthenticator.update(
        {"user_password": {"$env": "P"}, "admin_password": {"$env": "A", "default": None}}
    )
    c.JupyterHub.services = [
        {"name": "jshub-admin", "api_token": "chart"},
        {"name": "other", "api_token": "o"},
    ]
    jshub_settings.resolve_config(c, {"P": "pw"})
    jshub_settings.service_tokens_from_env(c, {"jshub-admin": "T"}, {"T": "ours"})
    assert c.SharedPasswordAuthenticator.user_password == "pw"
    assert c.SharedPasswordAuthenticator.admin_password is None
    assert [s["api_token"] for s in c.JupyterHub.services] == ["ours", "o"]


def test_the_settings_file_is_plain_json_without_secret_values(tmp_path: Path) -> None:
    cfg = make_config()
    text = hub_config_files(HubConfigSpec.from_config(cfg))[SETTINGS_FILE]
    path = tmp_path / SETTINGS_FILE
    path.write_text(text)
    settings = jshub_settings.load_settings(path)
    assert settings["JupyterHub"]["active_server_limit"] == cfg.concurrent_users
    assert cfg.oauth_client_secret is not None
    assert cfg.oauth_client_secret.get_secret_value() not in text
    path.write_text(json.dumps({"JupyterHub": 1}))
    with pytest.raises(ValueError, match=r"expected \{Class: \{trait: value\}\}"):
        jshub_settings.load_settings(path)


# --- jshub_accounts ---------------------------------------------------------------------------


def test_logins_as_the_vms_own_accounts_are_refused(caplog: pytest.LogCaptureFixture) -> None:
    hook = jshub_accounts.refuse_system_accounts("/data/home")
    authenticator = SimpleNamespace(log=logging.getLogger("test"))
    users = {"root": "/root", "alice": "/data/home/alice", "ubuntu": "/home/ubuntu"}

    def getpwnam(name: str) -> Any:
        if name not in users:
            raise KeyError(name)
        return SimpleNamespace(pw_dir=users[name])

    with mock.patch("pwd.getpwnam", getpwnam), caplog.at_level(logging.WARNING):
        assert hook(authenticator, None, {"name": "root"}) is None
        assert hook(authenticator, None, {"name": "ubuntu"}) is None
        assert hook(authenticator, None, {"name": "alice"}) == {"name": "alice"}
        # A new user has no account yet: the add-user command makes one in the home root.
        assert hook(authenticator, None, {"name": "newcomer"}) == {"name": "newcomer"}
    assert "Refused login as system account 'root'" in caplog.text


def _spawner(name: str, admin: bool) -> Any:
    messages: list[str] = []
    log = SimpleNamespace(info=lambda fmt, *args: messages.append(fmt % args))
    return SimpleNamespace(user=SimpleNamespace(name=name, admin=admin), log=log, messages=messages)


def test_the_home_hook_runs_the_quota_then_the_shared_folder_script(tmp_path: Path) -> None:
    log = tmp_path / "calls"
    for name in ("quota", "shared"):
        (tmp_path / name).write_text(f'#!/bin/bash\necho "{name} $*" >>{log}\necho "{name} ok"\n')
        (tmp_path / name).chmod(0o755)
    hook = jshub_accounts.prepare_home(
        home_quota_command=str(tmp_path / "quota"),
        home_quota_gb=7,
        shared_access_command=str(tmp_path / "shared"),
    )
    admin, user = _spawner("alice", admin=True), _spawner("bob", admin=False)
    asyncio.run(hook(admin))
    asyncio.run(hook(user))
    assert log.read_text().splitlines() == [
        "quota alice 7",
        "shared alice admin",
        "quota bob 7",
        "shared bob user",
    ]
    assert admin.messages == [f"{tmp_path}/quota: quota ok", f"{tmp_path}/shared: shared ok"]

    # Only the steps configured: no quota, no shared folder, nothing at all.
    log.write_text("")
    asyncio.run(jshub_accounts.prepare_home(shared_access_command=str(tmp_path / "shared"))(user))
    asyncio.run(jshub_accounts.prepare_home()(user))
    assert log.read_text().splitlines() == ["shared bob user"]

    (tmp_path / "quota").write_text("#!/bin/bash\necho 'no home'\nexit 3\n")
    with pytest.raises(RuntimeError, match=r"quota bob failed: no home"):
        asyncio.run(hook(user))


# --- jshub_swarm ------------------------------------------------------------------------------


def test_the_swarm_home_hook_refuses_a_uid_below_the_users_range() -> None:
    calls: list[tuple[Any, ...]] = []

    def run(*args: Any, **kwargs: Any) -> bytes:
        calls.append(args)
        return b"home=/export/home/mallory uid=1000 gid=100\n"

    client = SimpleNamespace(containers=SimpleNamespace(run=run), close=lambda: None)
    hook = jshub_swarm.prepare_home(
        hub_image="hub:1",
        home_command="/usr/local/sbin/jshub-user-home",
        export_root="/export",
        home_quota_gb=10,
        quota_overrides={},
        enforce_quota=True,
        notebook_gid=100,
        notebook_min_uid=10000,
    )
    spawner = SimpleNamespace(
        user=SimpleNamespace(name="mallory", admin=False), extra_container_spec={}, volumes={}
    )
    with (
        mock.patch("docker.from_env", lambda: client),
        pytest.raises(RuntimeError, match="refusing UID 1000"),
    ):
        asyncio.run(hook(spawner))
    assert calls == [("hub:1", ["/usr/local/sbin/jshub-user-home", "mallory", "10"])]
    with pytest.raises(RuntimeError, match="the home script answered"):
        jshub_swarm.parse_home_output("home=/export/home/x uid=10001 gid=0\n", 100)
