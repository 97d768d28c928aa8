"""Users as Unix accounts on the single hub VM: their authenticators, the login hook that keeps
logins off the VM's own accounts, and the pre-spawn hook that prepares a home. The settings
(renderers/hub_settings.py) name these; jupyterhub_config.py imports them from beside it."""

from __future__ import annotations

import asyncio
import os
import pwd
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from jupyterhub.auth import LocalAuthenticator
from jupyterhub.authenticators.shared import SharedPasswordAuthenticator
from nativeauthenticator import NativeAuthenticator

# One account made at a time (adduser picks UIDs and edits /etc/passwd), in a queue of its own.
_ACCOUNTS = asyncio.Lock()


class AccountsOffTheEventLoop(LocalAuthenticator):
    """Makes a new user's Unix account without stopping the hub. LocalAuthenticator waits for
    the add-user command with the hub's event loop blocked: in a workshop's login storm each
    first login then froze every other request for a whole adduser run (100 participants at
    once: the median login took 26 s, bench/login_storm.py)."""

    async def add_system_user(self, user: Any) -> None:
        command = [arg.replace("USERNAME", user.name) for arg in self.add_user_cmd] + [user.name]
        async with _ACCOUNTS:
            self.log.info("Creating user: %s", " ".join(command))
            process = await asyncio.create_subprocess_exec(
                *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
            )
            output, _ = await process.communicate()
        if process.returncode:
            raise RuntimeError(f"Failed to create system user {user.name}: {output.decode(errors='replace')}")


class LocalSharedPasswordAuthenticator(AccountsOffTheEventLoop, SharedPasswordAuthenticator):
    """The shared password, and a Unix account for each user (as LocalGitHubOAuthenticator)."""


class LocalNativeAuthenticator(AccountsOffTheEventLoop, NativeAuthenticator):
    """Sign-up with an admin's approval, and a Unix account for each user."""


PostAuthHook = Callable[[Any, Any, dict[str, Any]], dict[str, Any] | None]


def refuse_system_accounts(home_root: str) -> PostAuthHook:
    """A post-auth hook: spawned servers run as the account of the same name, so a login must
    never be one of the VM's own accounts (root, ubuntu, a daemon), only one whose home is in
    `home_root` (on the data volume), or a name without an account yet."""

    def never_a_system_account(
        authenticator: Any, handler: Any, authentication: dict[str, Any]
    ) -> dict[str, Any] | None:
        try:
            home = pwd.getpwnam(authentication["name"]).pw_dir
        except KeyError:
            return authentication
        if os.path.dirname(home.rstrip("/")) != home_root:
            authenticator.log.warning("Refused login as system account %r", authentication["name"])
            return None
        return authentication

    return never_a_system_account


def prepare_home(
    home_quota_command: str | None = None,
    home_quota_gb: int | None = None,
    shared_access_command: str | None = None,
) -> Callable[[Any], Awaitable[None]]:
    """A pre-spawn hook: the scripts that prepare a user's home, run as root before each start
    of the server, each a script of its own on the VM."""

    async def prepare(spawner: Any) -> None:
        name = spawner.user.name
        steps: list[Sequence[str]] = []
        if home_quota_command and home_quota_gb:
            # The home's quota on the data volume, applied again at every start (a changed
            # homeQuotaGb takes effect at the next one).
            steps.append((home_quota_command, name, str(home_quota_gb)))
        if shared_access_command:
            # Admins (as the hub knows them now) write the shared folder, everyone reads it: the
            # group is set before the server starts, which takes its groups from /etc/group then.
            steps.append((shared_access_command, name, "admin" if spawner.user.admin else "user"))
        for argv in steps:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
            )
            output, _ = await proc.communicate()
            if proc.returncode != 0:
                raise RuntimeError(f"{argv[0]} {name} failed: {output.decode()}")
            if output.strip():
                spawner.log.info("%s: %s", argv[0], output.decode().strip())

    return prepare
