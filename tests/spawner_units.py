"""The `systemd-run` command line SystemdSpawner builds for a user's server from the rendered
jupyterhub_config.py: the real spawner, loaded by JupyterHub's own config loader, with only its
child processes recorded instead of run (there is no systemd as PID 1 on this machine). The
limits tests check its properties here and run it for real in a VM (tests/e2e/test_limits_vm.py)."""

from __future__ import annotations

import asyncio
import contextlib
import pwd
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock


class _Proc:
    def __init__(self, returncode: int) -> None:
        self.returncode = returncode

    async def wait(self) -> int:
        return self.returncode


class _User:
    """What SystemdSpawner and Spawner.get_env/get_args read of a hub user."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.id = 7
        self.url = f"/user/{name}/"
        self.admin = False
        self.escaped_name = name
        self.settings: dict[str, Any] = {}


def load_config(text: str, folder: Path, env: dict[str, str]) -> Any:
    from jupyterhub.app import JupyterHub

    path = folder / "jupyterhub_config.py"
    path.write_text(text)
    with mock.patch.dict("os.environ", env):
        app = JupyterHub()
        app.load_config_file(str(path))
    return app.config


@contextlib.contextmanager
def _recorded_children(calls: list[list[str]]) -> Iterator[None]:
    """systemctl says no unit runs until systemd-run has been called, then that it runs."""

    async def fake_exec(*argv: str, **_: Any) -> _Proc:
        calls.append(list(argv))
        if argv[0] == "systemd-run":
            return _Proc(0)
        started = any(c[0] == "systemd-run" for c in calls)
        if argv[:2] == ("systemctl", "is-active"):
            return _Proc(0 if started else 3)
        return _Proc(1)  # is-failed: no

    with mock.patch.object(asyncio, "create_subprocess_exec", fake_exec):
        yield


def systemd_run_argv(
    config: Any, unix_user: str, run_root: Path, env: dict[str, str] | None = None
) -> list[str]:
    """The argv SystemdSpawner.start() hands to systemd-run for `unix_user`'s server, with the
    spawner's environment file written under `run_root` instead of /run."""
    from systemdspawner import systemd
    from systemdspawner.systemdspawner import SystemdSpawner

    pwd.getpwnam(unix_user)  # the spawner looks the account up: it must exist
    calls: list[list[str]] = []
    spawner = SystemdSpawner(config=config, user=_User(unix_user), _deprecated_db_session=None)
    spawner.api_token = "recorded-not-real"
    with (
        _recorded_children(calls),
        mock.patch.object(systemd, "RUN_ROOT", str(run_root)),
        mock.patch.object(SystemdSpawner, "get_env", lambda self: dict(env or {"PATH": "/usr/bin:/bin"})),
    ):
        ip_port = asyncio.run(spawner.start())
    assert ip_port is not None and ip_port[1] == spawner.port
    runs = [c for c in calls if c[0] == "systemd-run"]
    assert len(runs) == 1, calls
    return runs[0]


def properties(argv: list[str]) -> dict[str, str]:
    return dict(a.removeprefix("--property=").split("=", 1) for a in argv if a.startswith("--property="))
