"""A participant's browser against a hub's HTML forms: GET the page, take the `_xsrf` token
from its cookie and its hidden field, POST the form back with both, as a browser does."""

from __future__ import annotations

import re
from typing import Protocol

import requests

_XSRF_FIELD = re.compile(r'name="_xsrf"\s+value="([^"]+)"')


class PublicHub(Protocol):
    public_url: str


def browser() -> requests.Session:
    """A fresh cookie jar, speaking to loopback directly (no HTTP(S)_PROXY detour)."""
    session = requests.Session()
    session.trust_env = False
    return session


def xsrf_token(session: requests.Session, url: str) -> str:
    page = session.get(url, timeout=30)
    assert page.status_code == 200, f"GET {url} -> {page.status_code}: {page.text[:400]}"
    field = _XSRF_FIELD.search(page.text)
    assert field, f"no _xsrf field in the form at {url}"
    assert session.cookies.get("_xsrf"), f"GET {url} set no _xsrf cookie"
    return field.group(1)


def submit(session: requests.Session, url: str, fields: dict[str, str]) -> requests.Response:
    """Fill in the form at `url` and post it; redirects are returned, not followed."""
    token = xsrf_token(session, url)
    return session.post(url, data={**fields, "_xsrf": token}, allow_redirects=False, timeout=60)


def login(hub: PublicHub, session: requests.Session, username: str, password: str) -> requests.Response:
    """The hub's login form: 302 on success (with the session cookie set); anything else is
    a refusal (JupyterHub's own form answers 403, nativeauthenticator's 200 with the reason)."""
    return submit(session, f"{hub.public_url}/hub/login", {"username": username, "password": password})
