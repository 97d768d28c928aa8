"""What the hub VM runs, checked by the upstream tools themselves: `cloud-init schema`,
shellcheck, `caddy adapt`/`caddy fmt`, and JupyterHub's own config loader."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from renderers.cloud_init import HubBootSpec, render_hub_cloud_init
from renderers.hub_config import HubConfigSpec, render_jupyterhub_config
from renderers.scripts import (
    render_install_secrets_script,
)
from tests.conftest import make_config, require_tool

AUTH_VARIANTS: dict[str, dict[str, Any]] = {
    "github-org": {
        "type": "github",
        "clientId": "gh",
        "admins": ["octocat"],
        "allowedOrganizations": ["my-org"],
    },
    "cilogon-access": {"type": "cilogon", "clientId": "cilogon:/client_id/1", "admins": ["jdoe"]},
}


def boot_spec(auth: dict[str, Any]) -> HubBootSpec:
    cfg = make_config(auth=auth)
    return HubBootSpec(
        hub=HubConfigSpec.from_config(cfg),
        fqdn=cfg.hub_fqdn,
        lets_encrypt_email=cfg.lets_encrypt_email,
        data_volume_id="4f0c9a2e-8c1d-4b7e-9f3a-2d6c5e1b0a98",
        deploy_public_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleKeyOnly jshub-deploy",
    )


def written_files(user_data: str) -> dict[str, dict[str, Any]]:
    return {f["path"]: f for f in yaml.safe_load(user_data)["write_files"]}


@pytest.mark.parametrize("variant", sorted(AUTH_VARIANTS))
def test_hub_cloud_init_passes_cloud_init_schema(variant: str, tmp_path: Path) -> None:
    cloud_init = require_tool("cloud-init", "validates rendered user data")
    path = tmp_path / "user-data.yaml"
    path.write_text(render_hub_cloud_init(boot_spec(AUTH_VARIANTS[variant])))
    result = subprocess.run(
        [cloud_init, "schema", "--config-file", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Valid" in result.stdout


def test_cloud_init_schema_rejects_a_broken_document(tmp_path: Path) -> None:
    """The validator really validates: the same tool fails a wrong type."""
    cloud_init = require_tool("cloud-init", "validates rendered user data")
    path = tmp_path / "bad.yaml"
    path.write_text("#cloud-config\npackages: 42\nruncmd: {not: a list}\n")
    result = subprocess.run(
        [cloud_init, "schema", "--config-file", str(path)], capture_output=True, check=False
    )
    assert result.returncode != 0


def scripts() -> dict[str, str]:
    files = written_files(render_hub_cloud_init(boot_spec(AUTH_VARIANTS["github-org"])))
    return {
        "add-user": files["/usr/local/sbin/jshub-add-user"]["content"],
        "data-volume": files["/usr/local/sbin/jshub-setup-data-volume"]["content"],
        "install-secrets": render_install_secrets_script(
            "/etc/jupyterhub/secrets/hub.env", "jupyterhub.service"
        ),
    }


@pytest.mark.parametrize("name", sorted(scripts()))
def test_shell_scripts_pass_shellcheck(name: str, tmp_path: Path) -> None:
    path = tmp_path / f"{name}.sh"
    path.write_text(scripts()[name])
    result = subprocess.run(
        [
            require_tool("shellcheck", "lints rendered shell scripts"),
            "--severity=style",
            "--shell=bash",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout


def test_shellcheck_catches_an_unquoted_variable(tmp_path: Path) -> None:
    path = tmp_path / "bad.sh"
    path.write_text("#!/bin/bash\nrm -rf $1/tmp\n")
    shellcheck = require_tool("shellcheck", "lints rendered shell scripts")
    assert subprocess.run([shellcheck, str(path)], capture_output=True, check=False).returncode != 0


def test_caddyfile_serves_the_hub_name_over_https_with_the_contact_email(tmp_path: Path) -> None:
    caddy = require_tool("caddy", "checks the reverse proxy's configuration")
    content = written_files(render_hub_cloud_init(boot_spec(AUTH_VARIANTS["github-org"])))[
        "/etc/caddy/Caddyfile"
    ]["content"]
    path = tmp_path / "Caddyfile"
    path.write_text(content)
    adapted = subprocess.run(
        [caddy, "adapt", "--adapter", "caddyfile", "--config", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    config = json.loads(adapted.stdout)
    server = config["apps"]["http"]["servers"]["srv0"]
    assert server["listen"] == [":443"]
    assert server["routes"][0]["match"][0]["host"] == ["hub.cis230000.projects.jetstream-cloud.org"]
    issuers = config["apps"]["tls"]["automation"]["policies"][0]["issuers"]
    assert {i.get("email") for i in issuers} == {"ops@example.org"}
    assert "127.0.0.1:8000" in adapted.stdout
    formatted = subprocess.run([caddy, "fmt", str(path)], capture_output=True, text=True, check=True)
    assert formatted.stdout == content


def _load_hub_config(text: str, tmp_path: Path) -> Any:
    from jupyterhub.app import JupyterHub

    path = tmp_path / "jupyterhub_config.py"
    path.write_text(text)
    app = JupyterHub()
    app.load_config_file(str(path))
    return app.config


@pytest.mark.parametrize("variant", sorted(AUTH_VARIANTS))
def test_jupyterhub_loads_the_config_and_builds_its_authenticator(
    variant: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from traitlets.utils.importstring import import_item

    monkeypatch.setenv("OAUTH_CLIENT_SECRET", "test-secret")
    monkeypatch.setenv("JSHUB_ADMIN_TOKEN", "test-token")
    spec = boot_spec(AUTH_VARIANTS[variant]).hub
    config = _load_hub_config(render_jupyterhub_config(spec), tmp_path)
    authenticator = import_item(config.JupyterHub.authenticator_class)(config=config)
    assert authenticator.client_secret == "test-secret"
    assert (
        authenticator.oauth_callback_url
        == "https://hub.cis230000.projects.jetstream-cloud.org/hub/oauth_callback"
    )
    assert authenticator.create_system_users
    assert config.JupyterHub.active_server_limit == 5
    services = {s["name"]: s for s in config.JupyterHub.services}
    assert "--timeout=3600" in services["idle-culler"]["command"]
    assert services["jshub-admin"]["api_token"] == "test-token"
    if variant.startswith("cilogon"):
        assert (
            authenticator.idps["https://access-ci.org/idp"]["username_derivation"]["action"]
            == "strip_idp_domain"
        )
    else:
        assert authenticator.allowed_organizations == {"my-org"}


def test_rendered_hub_config_holds_no_secret_values() -> None:
    text = render_jupyterhub_config(boot_spec(AUTH_VARIANTS["github-org"]).hub)
    assert "not-a-real-secret" not in text
    assert 'os.environ["OAUTH_CLIENT_SECRET"]' in text
