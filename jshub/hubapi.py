"""A hub's REST API as an admin service sees it: users, their servers, and code run in a
user's kernel over its websocket, always through the hub's public URL (the proxy)."""

from __future__ import annotations

import functools
import json
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import requests
import websocket

T = TypeVar("T")

TIMEOUT_S = 60.0


class HubError(AssertionError):
    """The hub answered otherwise than expected. An AssertionError, so that tests driving a hub
    through this class fail (not error) with the hub's own message."""


def wait_until(
    probe: Callable[[], T | None],
    what: str,
    timeout: float,
    diagnose: Callable[[], str] = lambda: "",
    poll_s: float = 0.25,
) -> T:
    """Call `probe` until it returns something truthy. A request error or a half-written reply
    counts as "not yet"; a HubError (or AssertionError) from the probe fails at once. On
    timeout, fail with the last error and `diagnose()`."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = probe()
        except (requests.RequestException, ValueError, KeyError) as exc:
            last, result = exc, None
        if result:
            return result
        time.sleep(poll_s)
    detail = f" (last error: {last!r})" if last else ""
    raise HubError(f"timed out after {timeout:g}s waiting for {what}{detail}\n{diagnose()}".rstrip())


class HubAPI:
    """The admin's view of a running hub: `public_url` (the proxy's public address, no trailing
    slash) and an API token with admin:users, admin:servers and access:servers."""

    public_url: str
    admin_token: str

    def __init__(self, public_url: str, admin_token: str) -> None:
        self.public_url = public_url.rstrip("/")
        self.admin_token = admin_token

    @functools.cached_property
    def http(self) -> requests.Session:
        """The admin's session. Loopback hubs are reached directly, without HTTP(S)_PROXY."""
        session = requests.Session()
        if "//127.0.0.1" in self.public_url or "//localhost" in self.public_url:
            session.trust_env = False
        session.headers["Authorization"] = f"token {self.admin_token}"
        return session

    # diagnostics and waiting

    def diagnose(self) -> str:
        """What to add to an error: nothing from the outside; subclasses show the hub's log."""
        return ""

    def wait_for(
        self, probe: Callable[[], T | None], what: str, timeout: float = TIMEOUT_S, poll_s: float = 0.25
    ) -> T:
        return wait_until(probe, what, timeout, self.diagnose, poll_s)

    # HTTP, always through the proxy

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.http.request(method, f"{self.public_url}/hub/api{path}", timeout=60, **kwargs)

    def user_api(self, user: str, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.http.request(method, f"{self.public_url}/user/{user}/api{path}", timeout=30, **kwargs)

    def expect(self, response: requests.Response, *codes: int) -> requests.Response:
        if response.status_code not in codes:
            raise HubError(
                f"{response.request.method} {response.url} -> {response.status_code}, expected {codes}: "
                f"{response.text[:800]}\n{self.diagnose()}".rstrip()
            )
        return response

    def version(self) -> str:
        """The hub's JupyterHub version (GET /hub/api/ needs no token)."""
        return str(self.expect(self.api("GET", "/"), 200).json()["version"])

    def user(self, user: str) -> dict[str, Any] | None:
        """The user's model, or None when the hub has no such user."""
        response = self.api("GET", f"/users/{user}")
        if response.status_code == 404:
            return None
        model: dict[str, Any] = self.expect(response, 200).json()
        return model

    def server(self, user: str) -> dict[str, Any] | None:
        """The user's default server as the hub's REST API reports it, or None."""
        model = self.expect(self.api("GET", f"/users/{user}"), 200).json()
        server: dict[str, Any] | None = model["servers"].get("")
        return server

    def start_server(
        self,
        user: str,
        options: dict[str, Any] | None = None,
        timeout: float = TIMEOUT_S,
        poll_s: float = 0.25,
    ) -> dict[str, Any]:
        """Ask for the user's server (with spawn `options`) and wait until the hub says ready."""
        self.expect(self.api("POST", f"/users/{user}/server", data=json.dumps(options or {})), 201, 202)

        def ready() -> dict[str, Any] | None:
            server = self.server(user)
            return server if server and server["ready"] else None

        return self.wait_for(ready, f"{user}'s server to be ready", timeout, poll_s)

    def stop_server(self, user: str, timeout: float = TIMEOUT_S) -> None:
        """Stop the user's server and wait until the hub no longer lists it."""
        self.expect(self.api("DELETE", f"/users/{user}/server"), 202, 204)
        self.wait_for(lambda: self.server(user) is None, f"{user}'s server to stop", timeout)

    # kernels

    def run_in_kernel(self, user: str, kernel_id: str, code: str, timeout: float = TIMEOUT_S) -> str:
        """Execute `code` in a kernel over its websocket, through the proxy; return stdout."""
        ws_url = self.public_url.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
        conn = websocket.create_connection(
            f"{ws_url}/user/{user}/api/kernels/{kernel_id}/channels",
            header=[f"Authorization: token {self.admin_token}"],
            timeout=timeout,
        )
        msg_id = uuid.uuid4().hex
        request = {
            "header": {
                "msg_id": msg_id,
                "msg_type": "execute_request",
                "session": uuid.uuid4().hex,
                "username": user,
                "version": "5.3",
            },
            "parent_header": {},
            "metadata": {},
            "content": {
                "code": code,
                "silent": False,
                "store_history": False,
                "user_expressions": {},
                "allow_stdin": False,
                "stop_on_error": True,
            },
            "channel": "shell",
            "buffers": [],
        }
        stdout: list[str] = []
        # The reply comes on the shell channel, output on iopub, in no set order; iopub's
        # "idle" for the request follows all of its output.
        replied = idle = False
        deadline = time.monotonic() + timeout
        try:
            conn.send(json.dumps(request))
            while time.monotonic() < deadline:
                message = json.loads(conn.recv())
                if message.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind, content = message["msg_type"], message["content"]
                if kind == "stream" and content.get("name") == "stdout":
                    stdout.append(content["text"])
                elif kind == "error":
                    raise HubError(f"kernel error: {content.get('ename')}: {content.get('evalue')}")
                elif kind == "execute_reply":
                    if content["status"] != "ok":
                        raise HubError(f"the kernel replied {content}")
                    replied = True
                elif kind == "status" and content.get("execution_state") == "idle":
                    idle = True
                if replied and idle:
                    return "".join(stdout)
        finally:
            conn.close()
        raise HubError(f"the kernel did not finish within {timeout:g}s\n{self.diagnose()}".rstrip())

    def start_kernel(self, user: str, settle_s: float = 30.0) -> dict[str, Any]:
        """Start a kernel in the user's server; its model. Just after the server (re)started, the
        proxy can answer 502/503 for a moment while the server's new address settles (seen on a
        swarm: the hub had already reached the new task, the proxy not yet): those answers are
        retried for up to `settle_s`, any other is an error at once, JupyterLab's front end
        retries its kernel requests the same way."""
        deadline = time.monotonic() + settle_s
        while True:
            response = self.user_api(user, "POST", "/kernels", json={})
            if response.status_code not in (502, 503) or time.monotonic() > deadline:
                model: dict[str, Any] = self.expect(response, 201).json()
                return model
            time.sleep(0.5)

    def run_code(self, user: str, code: str, timeout: float = TIMEOUT_S) -> str:
        """Start a kernel in the user's server, run `code` there and shut the kernel down."""
        kernel = self.start_kernel(user)
        try:
            return self.run_in_kernel(user, kernel["id"], code, timeout)
        finally:
            self.user_api(user, "DELETE", f"/kernels/{kernel['id']}")
