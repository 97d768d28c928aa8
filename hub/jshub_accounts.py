"""Users as Unix accounts on the single hub VM: their authenticators, the login hook that keeps
logins off the VM's own accounts, and the pre-spawn hook that prepares a home. The settings
(renderers/hub_settings.py) name these; jupyterhub_config.py imports them from beside it."""

from __future__ import annotations

import asyncio
import inspect
import os
import pwd
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from jupyterhub.auth import LocalAuthenticator
from jupyterhub.authenticators.shared import SharedPasswordAuthenticator
from nativeauthenticator import NativeAuthenticator

# The most names one add-user call takes: a login storm's first callers are not kept waiting
# for hundreds of accounts made before theirs.
BATCH_SIZE = 64


class _AccountQueue:
    """First logins queue here for their Unix account. One add-user command runs at a time (it
    picks UIDs and edits /etc/passwd), and each call takes every name that queued while the
    previous one ran, up to BATCH_SIZE: a thousand first logins make their accounts in a few
    calls rather than a thousand processes in turn."""

    def __init__(self, command: Sequence[str], log: Any) -> None:
        self.command = list(command)
        self.log = log
        self.waiting: dict[str, asyncio.Future[None]] = {}
        self.running: dict[str, asyncio.Future[None]] = {}  # the call under way
        self.worker: asyncio.Task[None] | None = None

    async def add(self, name: str) -> None:
        future = self.waiting.get(name) or self.running.get(name)
        if future is None:
            future = self.waiting[name] = asyncio.get_running_loop().create_future()
        if self.worker is None or self.worker.done():
            self.worker = asyncio.create_task(self._work())
        await asyncio.shield(future)

    def pending(self, name: str) -> bool:
        """Whether `name` is queued or in the call under way (whose account may already be in
        /etc/passwd while its home is still being made)."""
        return name in self.waiting or name in self.running

    async def _work(self) -> None:
        while self.waiting:
            names = list(self.waiting)[:BATCH_SIZE]
            batch = self.running = {name: self.waiting.pop(name) for name in names}
            try:
                results = await self._run(names)
            except Exception as exc:  # the command could not run at all: every login in it fails
                results = {name: f"{exc}" for name in names}
            for name, future in batch.items():
                error = results.get(name, "the add-user command did not report it")
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(RuntimeError(f"Failed to create system user {name}: {error}"))
            self.running = {}

    async def _run(self, names: list[str]) -> dict[str, str | None]:
        """Run the command for `names`; each name's error, or None when its account exists."""
        self.log.info("Creating users: %s %s", " ".join(self.command), " ".join(names))
        process = await asyncio.create_subprocess_exec(
            *self.command, *names, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await process.communicate()
        results: dict[str, str | None] = {}
        for line in out.decode(errors="replace").splitlines():
            status, _, rest = line.partition(" ")
            if status == "ok":
                results[rest] = None
            elif status == "failed":
                name, _, reason = rest.partition(": ")
                results[name] = reason
        missing = [n for n in names if n not in results]
        if missing:
            detail = err.decode(errors="replace").strip() or f"exit code {process.returncode}"
            results.update(dict.fromkeys(missing, detail))
        return results


class AccountsOffTheEventLoop(LocalAuthenticator):
    """Makes new users' Unix accounts off the login: JupyterHub's LocalAuthenticator makes the
    account with the hub's event loop blocked, and the login waits for it. Here a first login
    queues its account (made in batches by _AccountQueue) and completes at once; the user's
    first spawn waits for it in pre_spawn_start, before any spawner or hook needs the account,
    and fails with the command's reason if it could not be made. A thousand first logins then
    cost the hub what a thousand logins cost it, and the accounts are made while the hub shows
    each participant the spawn's progress (bench/login_storm.py)."""

    _queues: dict[int, _AccountQueue]

    def _queue(self) -> _AccountQueue:
        if any("USERNAME" in arg for arg in self.add_user_cmd):
            raise ValueError("add_user_cmd takes the names as arguments: no USERNAME placeholder")
        # One queue per event loop (the hub has one; tests run several in turn).
        queues = self.__dict__.setdefault("_queues", {})
        loop = id(asyncio.get_running_loop())
        if loop not in queues:
            queues.clear()
            queues[loop] = _AccountQueue(self.add_user_cmd, self.log)
        queue: _AccountQueue = queues[loop]
        return queue

    async def add_system_user(self, user: Any) -> None:
        name = user.name
        task = asyncio.ensure_future(self._queue().add(name))

        def report(done: asyncio.Future[None]) -> None:
            if not done.cancelled() and done.exception() is not None:
                self.log.error("%s (the user's next spawn tries again)", done.exception())

        task.add_done_callback(report)

    async def pre_spawn_start(self, user: Any, spawner: Any) -> None:
        started = super().pre_spawn_start(user, spawner)
        if inspect.isawaitable(started):
            await started
        if not self.create_system_users:
            return
        queue = self._queue()
        # Queued at login (then this waits for that call, also once the account is in
        # /etc/passwd: the add-user command makes the home after it, and the pre-spawn hook
        # needs the home), or failed there (then this is the retry the log promised).
        if queue.pending(user.name) or not self.system_user_exists(user):
            await queue.add(user.name)


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
