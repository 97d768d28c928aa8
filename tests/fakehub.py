"""A stand-in JupyterHub on loopback for the operators' commands (`jshub.smoke`, `jshub.users`)
on a machine without configurable-http-proxy or root: the admin REST API they call (users,
paginated; a user's server; kernels) with its status codes and token check, and a kernel
websocket that runs the code it is sent with `python -c`, HOME set to the user's home folder.
What happens to a home when its server stops is the test's to choose (`on_stop`), so a hub that
loses or changes a user's files across a restart can be played."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import tornado.httpserver
import tornado.netutil
import tornado.web
import tornado.websocket

VERSION = "5.4.3"
PAGINATION = "application/jupyterhub-pagination+json"


class FakeHub:
    """Run it as a context manager; `url` and `token` are what an operator passes."""

    def __init__(
        self,
        homes: Path,
        on_stop: Callable[[Path], None] | None = None,
        refuse: frozenset[str] = frozenset(),
        page_size: int = 2,
    ) -> None:
        self.homes = homes
        self.on_stop = on_stop
        # Names the hub answers 400 for, as it does for a name its authenticator will not take.
        self.refuse = refuse
        # Smaller than any limit a client asks for, so that paging is exercised.
        self.page_size = page_size
        self.token = uuid.uuid4().hex
        self.users: dict[str, dict[str, Any]] = {}
        self.kernels: dict[str, str] = {}
        self.port = 0
        # When a server starts, as the hub's `started` says it (a test may set the time).
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def home(self, user: str) -> Path:
        return self.homes / user

    def __enter__(self) -> FakeHub:
        ready = threading.Event()

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
            self.port = sockets[0].getsockname()[1]
            server = tornado.httpserver.HTTPServer(self._app())
            server.add_sockets(sockets)
            ready.set()
            self._loop.run_forever()
            server.stop()
            self._loop.close()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._loop is not None and self._thread is not None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _app(self) -> tornado.web.Application:
        hub = {"hub": self}
        return tornado.web.Application(
            [
                (r"/hub/api/?", _Version, hub),
                (r"/hub/api/users", _Users, hub),
                (r"/hub/api/users/([^/]+)", _User, hub),
                (r"/hub/api/users/([^/]+)/server", _Server, hub),
                (r"/user/([^/]+)/api/kernels", _Kernels, hub),
                (r"/user/([^/]+)/api/kernels/([^/]+)/channels", _Channels, hub),
                (r"/user/([^/]+)/api/kernels/([^/]+)", _Kernel, hub),
            ]
        )

    # what the handlers do to the hub's state

    def model(self, name: str) -> dict[str, Any]:
        user = self.users[name]
        servers = (
            {
                "": {
                    "name": "",
                    "ready": True,
                    "pending": None,
                    "url": f"/user/{name}/",
                    "started": user["started"],
                    "last_activity": user["started"],
                }
            }
            if user["running"]
            else {}
        )
        return {"name": name, "admin": user["admin"], "servers": servers, "last_activity": None}

    def stop_server(self, name: str) -> None:
        if self.users[name]["running"]:
            self.users[name]["running"] = False
            if self.on_stop is not None:
                self.on_stop(self.home(name))


class _Handler(tornado.web.RequestHandler):
    hub: FakeHub

    def initialize(self, hub: FakeHub) -> None:
        self.hub = hub

    def prepare(self) -> None:
        if self.request.headers.get("Authorization") != f"token {self.hub.token}":
            self.answer(403, {"message": "Forbidden"})

    def answer(self, status: int, body: Any = None) -> None:
        self.set_status(status)
        if body is not None:
            self.set_header("Content-Type", "application/json")
            self.write(json.dumps(body))
        self.finish()

    def body(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.request.body or b"{}")
        return parsed

    def user_or_404(self, name: str) -> bool:
        if name in self.hub.users:
            return True
        self.answer(404, {"message": f"No such user: {name}"})
        return False


class _Version(_Handler):
    def prepare(self) -> None:  # the one call that needs no token
        pass

    def get(self) -> None:
        self.answer(200, {"version": VERSION})


class _Users(_Handler):
    def get(self) -> None:
        offset = int(self.get_argument("offset", "0"))
        limit = min(int(self.get_argument("limit", "200")), self.hub.page_size)
        names = sorted(self.hub.users)
        items = [self.hub.model(n) for n in names[offset : offset + limit]]
        if PAGINATION not in self.request.headers.get("Accept", ""):
            self.answer(200, items)
            return
        after = offset + len(items)
        following = {"offset": after, "limit": limit, "url": ""} if after < len(names) else None
        page = {"offset": offset, "limit": limit, "total": len(names), "next": following}
        self.answer(200, {"items": items, "_pagination": page})


class _User(_Handler):
    def get(self, name: str) -> None:
        if self.user_or_404(name):
            self.answer(200, self.hub.model(name))

    def post(self, name: str) -> None:
        if name in self.hub.refuse:
            self.answer(400, {"message": f"Invalid username: {name}"})
        elif name in self.hub.users:
            self.answer(409, {"message": f"User {name} already exists"})
        else:
            self.hub.users[name] = {
                "admin": bool(self.body().get("admin")),
                "running": False,
                "started": None,
            }
            self.hub.home(name).mkdir(parents=True, exist_ok=True)
            self.answer(201, self.hub.model(name))

    def patch(self, name: str) -> None:
        if self.user_or_404(name):
            self.hub.users[name]["admin"] = bool(self.body().get("admin", self.hub.users[name]["admin"]))
            self.answer(200, self.hub.model(name))

    def delete(self, name: str) -> None:
        if self.user_or_404(name):
            self.hub.stop_server(name)
            del self.hub.users[name]
            self.answer(204)


class _Server(_Handler):
    def post(self, name: str) -> None:
        if not self.user_or_404(name):
            return
        if self.hub.users[name]["running"]:
            self.answer(400, {"message": f"{name} is already running"})
            return
        self.hub.users[name]["running"] = True
        self.hub.users[name]["started"] = self.hub.clock().isoformat().replace("+00:00", "Z")
        self.answer(201)

    def delete(self, name: str) -> None:
        if self.user_or_404(name):
            self.hub.stop_server(name)
            self.answer(204)


class _Kernels(_Handler):
    def post(self, name: str) -> None:
        if name not in self.hub.users or not self.hub.users[name]["running"]:
            self.answer(404, {"message": f"{name} has no running server"})
            return
        kernel = uuid.uuid4().hex
        self.hub.kernels[kernel] = name
        self.answer(201, {"id": kernel, "name": "python3"})


class _Kernel(_Handler):
    def delete(self, name: str, kernel: str) -> None:
        self.hub.kernels.pop(kernel, None)
        self.answer(204)


class _Channels(tornado.websocket.WebSocketHandler):
    """Jupyter's kernel protocol over one websocket, as much of it as an execute request needs:
    stdout as `stream` messages, then `execute_reply` and iopub's `idle`."""

    hub: FakeHub

    def initialize(self, hub: FakeHub) -> None:
        self.hub = hub

    async def get(self, *args: Any, **kwargs: Any) -> None:
        if self.request.headers.get("Authorization") != f"token {self.hub.token}":
            self.set_status(403)
            self.finish()
            return
        await super().get(*args, **kwargs)

    def reply(self, request: dict[str, Any], channel: str, kind: str, content: dict[str, Any]) -> None:
        header = {"msg_id": uuid.uuid4().hex, "msg_type": kind, "session": request["header"]["session"]}
        message = {
            "header": header,
            "parent_header": request["header"],
            "msg_type": kind,
            "content": content,
            "channel": channel,
            "metadata": {},
        }
        self.write_message(json.dumps(message))

    async def on_message(self, message: str | bytes) -> None:
        request = json.loads(message)
        user = self.hub.kernels[self.path_args[1]]
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            request["content"]["code"],
            env={**os.environ, "HOME": str(self.hub.home(user))},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate()
        if out:
            self.reply(request, "iopub", "stream", {"name": "stdout", "text": out.decode()})
        if process.returncode:
            error = {"ename": "Error", "evalue": err.decode().strip().splitlines()[-1], "traceback": []}
            self.reply(request, "iopub", "error", error)
            self.reply(request, "shell", "execute_reply", {"status": "error", **error})
        else:
            self.reply(request, "shell", "execute_reply", {"status": "ok"})
        self.reply(request, "iopub", "status", {"execution_state": "idle"})
