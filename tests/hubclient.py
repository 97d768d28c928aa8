"""What every test of a real JupyterHub does from the outside, whichever way the hub runs (a
process on loopback, a process driving SLURM, a swarm service): call its REST API through the
proxy as the admin service, wait for a condition with the hub's own diagnostics on timeout,
and run code in a user's kernel over its websocket."""

from __future__ import annotations

import functools
import json
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import requests
import websocket

T = TypeVar("T")

TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    probe: Callable[[], T | None],
    what: str,
    timeout: float,
    diagnose: Callable[[], str],
    poll_s: float = 0.25,
) -> T:
    """Call `probe` until it returns something truthy. A request error or a half-written reply
    counts as "not yet"; an AssertionError from the probe fails at once. On timeout, fail with
    the last error and `diagnose()`."""
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
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}{detail}\n{diagnose()}")


class HubClient:
    """The admin's view of a running hub. A subclass provides `public_url` (the proxy's public
    address), `admin_token`, and either a `log_path` or its own `diagnose()`."""

    public_url: str
    admin_token: str
    log_path: Path

    @functools.cached_property
    def http(self) -> requests.Session:
        """The admin's session, speaking to loopback directly (no HTTP(S)_PROXY detour)."""
        session = requests.Session()
        session.trust_env = False
        session.headers["Authorization"] = f"token {self.admin_token}"
        return session

    # diagnostics and waiting

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_text()
        except OSError as exc:
            return f"(no hub log: {exc})"
        tail = "\n".join(text.splitlines()[-lines:])
        return f"--- last {lines} lines of {self.log_path} ---\n{tail}"

    def diagnose(self) -> str:
        """What to show when a test fails: by default the end of the hub's log."""
        return self.log_tail()

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
        assert response.status_code in codes, (
            f"{response.request.method} {response.url} -> {response.status_code}, expected {codes}: "
            f"{response.text[:800]}\n{self.diagnose()}"
        )
        return response

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
        ws_url = self.public_url.replace("http://", "ws://", 1)
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
                    raise AssertionError(f"kernel error: {content.get('ename')}: {content.get('evalue')}")
                elif kind == "execute_reply":
                    assert content["status"] == "ok", content
                    replied = True
                elif kind == "status" and content.get("execution_state") == "idle":
                    idle = True
                if replied and idle:
                    return "".join(stdout)
        finally:
            conn.close()
        raise AssertionError(f"the kernel did not finish within {timeout:g}s\n{self.diagnose()}")

    def run_code(self, user: str, code: str, timeout: float = TIMEOUT_S) -> str:
        """Start a kernel in the user's server, run `code` there and shut the kernel down."""
        kernel = self.expect(self.user_api(user, "POST", "/kernels", json={}), 201).json()
        try:
            return self.run_in_kernel(user, kernel["id"], code, timeout)
        finally:
            self.user_api(user, "DELETE", f"/kernels/{kernel['id']}")
