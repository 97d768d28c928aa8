"""The JupyterHub settings a stack file may add (`hubExtraConfig`): which classes and traits
exist, read from the packages the hubs install (hub/requirements.txt), and which traits the
stack owns.

The Pulumi program does not install JupyterHub, so the catalog is a file beside this module
(`upstream/jupyterhub_traits.json`), made from the installed packages by
`python -m stackconfig.hub_traits --write`; tests/test_hub_options.py fails when a version bump
of the hub's packages changes it."""

from __future__ import annotations

import functools
import importlib
import json
import sys
from pathlib import Path
from typing import Any

CATALOG = Path(__file__).resolve().parent / "upstream" / "jupyterhub_traits.json"

# The classes a stack file may configure, by the name JupyterHub's config uses (`c.<Name>`):
# the hub's own, its proxy, and the login and spawner classes the stack runs. KubeSpawner and
# the swarm's DockerSpawner are configured through their own keys (k8s.helmValues' singleuser,
# swarm.*).
CLASSES: dict[str, str] = {
    "JupyterHub": "jupyterhub.app.JupyterHub",
    "Spawner": "jupyterhub.spawner.Spawner",
    "LocalProcessSpawner": "jupyterhub.spawner.LocalProcessSpawner",
    "SystemdSpawner": "systemdspawner.SystemdSpawner",
    "SlurmSpawner": "batchspawner.SlurmSpawner",
    "Authenticator": "jupyterhub.auth.Authenticator",
    "LocalAuthenticator": "jupyterhub.auth.LocalAuthenticator",
    "SharedPasswordAuthenticator": "jupyterhub.authenticators.shared.SharedPasswordAuthenticator",
    "NativeAuthenticator": "nativeauthenticator.NativeAuthenticator",
    "OAuthenticator": "oauthenticator.oauth2.OAuthenticator",
    "GitHubOAuthenticator": "oauthenticator.github.GitHubOAuthenticator",
    "CILogonOAuthenticator": "oauthenticator.cilogon.CILogonOAuthenticator",
    "Proxy": "jupyterhub.proxy.Proxy",
    "ConfigurableHTTPProxy": "jupyterhub.proxy.ConfigurableHTTPProxy",
}

# The classes the stack's settings name that inherit from a class a stack file may configure.
# JupyterHub's config gives the more specific class precedence, so a stack file's value for
# `Spawner.x` must also reach `SwarmSpawner.x` where the stack set that (renderers/hub_settings.py).
SUBCLASSES: dict[str, tuple[str, ...]] = {
    "Spawner": (
        "LocalProcessSpawner",
        "SystemdSpawner",
        "SlurmSpawner",
        "JetstreamSlurmSpawner",
        "SwarmSpawner",
        "KubeSpawner",
    ),
    "SlurmSpawner": ("JetstreamSlurmSpawner",),
    "Authenticator": (
        "LocalAuthenticator",
        "SharedPasswordAuthenticator",
        "NativeAuthenticator",
        "OAuthenticator",
        "GitHubOAuthenticator",
        "CILogonOAuthenticator",
    ),
    "OAuthenticator": ("GitHubOAuthenticator", "CILogonOAuthenticator"),
    "Proxy": ("ConfigurableHTTPProxy",),
}

# Traits the stack owns, by the class that defines them: its secrets, its services and roles,
# where its state lives, and what its own keys set. The value says why, or which key to set.
OWNED: dict[str, str] = {
    "JupyterHub.services": "the stack's services (the idle culler, jshub-admin) are the stack's",
    "JupyterHub.load_roles": "the stack's roles (jshub-admin, the culler, sharing) are the stack's; "
    "set sharing for users' sharing scopes",
    "JupyterHub.api_tokens": "API tokens are the stack's (its admin service's token is a stack output)",
    "JupyterHub.service_tokens": "service tokens are the stack's",
    "JupyterHub.proxy_auth_token": "the proxy token is a secret the stack makes",
    "JupyterHub.cookie_secret": "the cookie secret is a secret the hub keeps on its data volume",
    "JupyterHub.cookie_secret_file": "the cookie secret is a secret the hub keeps on its data volume",
    "JupyterHub.db_url": "the hub's database lives on the stack's data volume",
    "JupyterHub.authenticator_class": "set auth.type",
    "JupyterHub.spawner_class": "the scenario picks the spawner",
    "JupyterHub.bind_url": "the stack's reverse proxy and proxy service use it",
    "JupyterHub.hub_bind_url": "the stack's proxy and notebooks reach the hub there",
    "JupyterHub.hub_connect_url": "the stack's proxy and notebooks reach the hub there",
    "JupyterHub.active_server_limit": "set concurrentUsers",
    "JupyterHub.allow_named_servers": "set namedServersPerUser",
    "JupyterHub.named_server_limit_per_user": "set namedServersPerUser",
    "Proxy.should_start": "the proxy runs as a service of the stack's",
    "ConfigurableHTTPProxy.auth_token": "the proxy token is a secret the stack makes",
    "ConfigurableHTTPProxy.api_url": "the proxy runs as a service of the stack's",
    "ConfigurableHTTPProxy.command": "the proxy runs as a service of the stack's",
    "ConfigurableHTTPProxy.pid_file": "the proxy runs as a service of the stack's",
    "Authenticator.admin_users": "set auth.admins",
    "Authenticator.allowed_users": "set auth.allowedUsers",
    "Authenticator.allow_all": "set auth.allowAll",
    "Authenticator.post_auth_hook": "the stack's account checks run there",
    "LocalAuthenticator.add_user_cmd": "the stack's add-user script keeps users' UIDs",
    "LocalAuthenticator.create_system_users": "the stack makes users' accounts",
    "SharedPasswordAuthenticator.user_password": "a secret: set workshopPassword",
    "SharedPasswordAuthenticator.admin_password": "a secret: set workshopAdminPassword",
    "OAuthenticator.client_secret": "a secret: set oauthClientSecret",
    "OAuthenticator.client_id": "set auth.clientId",
    "OAuthenticator.oauth_callback_url": "the stack derives it from the hub's name",
    "Spawner.pre_spawn_hook": "the stack's home, quota and shared-folder steps run there",
    "Spawner.mem_limit": "set userMemoryGb",
    "Spawner.cpu_limit": "set userCpu",
    "Spawner.start_timeout": "set serverStartTimeoutSeconds",
    "Spawner.http_timeout": "set serverStartTimeoutSeconds",
}


def _describe(cls: type) -> dict[str, Any]:
    """The classes `cls` inherits configuration from, and its configurable traits, each with
    the name of the class that defines it."""
    traits = cls.class_traits(config=True)  # type: ignore[attr-defined]
    return {
        "bases": [base.__name__ for base in cls.__mro__[1:] if hasattr(base, "class_traits")],
        "traits": {
            name: next(base.__name__ for base in cls.__mro__ if name in vars(base)) for name in sorted(traits)
        },
    }


def generate() -> dict[str, Any]:
    """The catalog, read from the installed packages."""
    catalog: dict[str, Any] = {}
    for name, path in CLASSES.items():
        module, _, attr = path.rpartition(".")
        catalog[name] = _describe(getattr(importlib.import_module(module), attr))
    return catalog


@functools.cache
def catalog() -> dict[str, dict[str, Any]]:
    loaded: dict[str, dict[str, Any]] = json.loads(CATALOG.read_text())
    return loaded


def owner(cls: str, trait: str) -> str | None:
    """Why the stack owns `cls.trait`, set on `cls` or on a class it inherits from (None: a
    user may set it)."""
    for name in (cls, *catalog()[cls]["bases"]):
        if f"{name}.{trait}" in OWNED:
            return OWNED[f"{name}.{trait}"]
    return None


def render() -> str:
    return json.dumps(generate(), indent=1, sort_keys=True) + "\n"


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        CATALOG.write_text(render())
    else:
        sys.stdout.write(render())
