"""What the hub VM runs, checked by the upstream tools themselves: `cloud-init schema`,
shellcheck, `caddy adapt`/`caddy fmt`/`caddy validate`, systemd-analyze, and JupyterHub's own
config loader; the hub-config script is run against a scratch folder."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from renderers.boot import boot_commands
from renderers.cloud_init import HubBootSpec, render_hub_cloud_init
from renderers.hub_config import HubConfigSpec, HubFile, hub_vm_files
from renderers.scripts import (
    render_hub_config_script,
    render_install_secrets_script,
)
from tests.builders import problems
from tests.conftest import BASE_CONFIG, make_config, require_root, require_tool
from tests.hub_config_local import hub_config_text, settings_of
from tests.stubs import stub

BASE_AUTH: dict[str, Any] = BASE_CONFIG["auth"]

AUTH_VARIANTS: dict[str, dict[str, Any]] = {
    "github-org": {
        "type": "github",
        "clientId": "gh",
        "admins": ["octocat"],
        "allowedOrganizations": ["my-org"],
    },
    "cilogon-access": {"type": "cilogon", "clientId": "cilogon:/client_id/1", "admins": ["jdoe"]},
}


def hub_spec(auth: dict[str, Any], **overrides: Any) -> HubConfigSpec:
    return HubConfigSpec.from_config(make_config(auth=auth, **overrides))


def boot_spec(auth: dict[str, Any], **overrides: Any) -> HubBootSpec:
    spec = hub_spec(auth, **overrides)
    assert spec.proxy is not None
    return HubBootSpec(
        paths=spec.paths,
        proxy=spec.proxy,
        data_volume_id="4f0c9a2e-8c1d-4b7e-9f3a-2d6c5e1b0a98",
        deploy_public_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleKeyOnly jshub-deploy",
        home_quotas=spec.home_quotas,
    )


def vm_files(auth: dict[str, Any] | None = None) -> dict[str, HubFile]:
    cfg = make_config(**({"auth": auth} if auth else {}))
    return {
        f.path: f for f in hub_vm_files(HubConfigSpec.from_config(cfg), cfg.hub_fqdn, cfg.lets_encrypt_email)
    }


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
    spec = hub_spec(AUTH_VARIANTS["github-org"])
    return {
        "add-user": files["/usr/local/sbin/jshub-add-user"]["content"],
        "data-volume": files["/usr/local/sbin/jshub-setup-data-volume"]["content"],
        "install-secrets": render_install_secrets_script(
            "/etc/jupyterhub/secrets/hub.env",
            ["jshub-proxy.service", "jupyterhub.service"],
            derived=[("/etc/jupyterhub/secrets/proxy.env", ["CONFIGPROXY_AUTH_TOKEN"])],
        ),
        "hub-config": render_hub_config_script(tuple(vm_files().values()), spec.paths),
        "shared-access": vm_files()["/usr/local/sbin/jshub-shared-access"].content,
        "home-quota": vm_files()["/usr/local/sbin/jshub-home-quota"].content,
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
    content = vm_files()["/etc/caddy/Caddyfile"].content
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
    # The ACME account and certificates live on the data volume, not under the root disk's
    # /var/lib/caddy: a rebuilt or replaced hub serves the certificate it already has.
    assert config["storage"] == {"module": "file_system", "root": "/data/caddy"}
    formatted = subprocess.run([caddy, "fmt", str(path)], capture_output=True, text=True, check=True)
    assert formatted.stdout == content
    validated = subprocess.run(
        [caddy, "validate", "--adapter", "caddyfile", "--config", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert validated.returncode == 0, validated.stdout + validated.stderr


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
    spec = hub_spec(AUTH_VARIANTS[variant])
    config = _load_hub_config(hub_config_text(spec, tmp_path), tmp_path)
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


def test_hub_settings_hold_no_secret_values() -> None:
    spec = hub_spec(AUTH_VARIANTS["github-org"])
    text = json.dumps(settings_of(spec))
    assert "not-a-real-secret" not in text
    # Only the names of the hub's environment variables that hold them.
    assert settings_of(spec)["OAuthenticator"]["client_secret"] == {"$env": "OAUTH_CLIENT_SECRET"}


# --- day 2: the hub's config arrives over SSH, not in user data --------------------------------


def test_user_data_holds_nothing_a_config_change_touches() -> None:
    """Admins, allowed users, limits, culler, auth, host name and e-mail may change after the
    first `pulumi up`; a change of user data creates a new server, so none of them is in it."""
    base = render_hub_cloud_init(boot_spec(AUTH_VARIANTS["github-org"]))
    for auth in AUTH_VARIANTS.values():
        assert render_hub_cloud_init(boot_spec({**auth, "admins": ["someone-else"]})) == base
    for needle in ("octocat", "my-org", "Caddyfile", "ops@example.org", "jupyterhub=="):
        assert needle not in base, needle
    files = written_files(base)
    assert "/etc/jupyterhub/jupyterhub_config.py" not in files
    # ... and the files that do follow the config reach the VM through hub-config.
    assert set(vm_files()) == {
        "/etc/jupyterhub/requirements.txt",
        "/usr/local/sbin/jshub-shared-access",
        "/usr/local/sbin/jshub-home-quota",
        "/etc/systemd/system/jupyterhub.service.d/jshub-servers.conf",
        "/etc/jupyterhub/jupyterlab/overrides.json",
        "/etc/jupyterhub/jshub_accounts.py",
        "/etc/jupyterhub/jshub_settings.py",
        "/etc/jupyterhub/jshub_usage.py",
        "/etc/jupyterhub/jupyterhub_settings.json",
        "/etc/jupyterhub/jupyterhub_config.py",
        "/etc/caddy/Caddyfile",
    }
    # The quota's size is config too: a change of homeQuotaGb reaches the hub through hub-config.
    assert render_hub_cloud_init(boot_spec(AUTH_VARIANTS["github-org"], homeQuotaGb=25)) == base


def test_proxy_runs_as_its_own_unit_and_the_hub_unit_leaves_servers_alone() -> None:
    spec = hub_spec(AUTH_VARIANTS["github-org"])
    files = written_files(render_hub_cloud_init(boot_spec(AUTH_VARIANTS["github-org"])))
    proxy_unit = files["/etc/systemd/system/jshub-proxy.service"]["content"]
    assert spec.proxy is not None
    assert f"ExecStart={' '.join(spec.proxy.argv())}\n" in proxy_unit
    assert "EnvironmentFile=/etc/jupyterhub/secrets/proxy.env\n" in proxy_unit
    assert spec.proxy.argv()[1:] == [
        "--ip", "127.0.0.1", "--port", "8000", "--api-ip", "127.0.0.1", "--api-port", "8001",
        "--default-target", "http://127.0.0.1:8081", "--error-target", "http://127.0.0.1:8081/hub/error",
    ]  # fmt: skip
    hub_unit = files["/etc/systemd/system/jupyterhub.service"]["content"]
    assert "KillMode=process\n" in hub_unit
    assert "Wants=network-online.target jshub-proxy.service\n" in hub_unit and "Requires=" not in hub_unit
    assert "ConditionPathExists=/etc/jupyterhub/jupyterhub_config.py\n" in hub_unit
    dropin = files["/etc/systemd/system/caddy.service.d/jshub-data-volume.conf"]["content"]
    assert "RequiresMountsFor=/data\n" in dropin
    user_data = yaml.safe_load(render_hub_cloud_init(boot_spec(AUTH_VARIANTS["github-org"])))
    runcmd = [" ".join(c) for c in boot_commands(user_data["runcmd"])]
    # Caddy's folder on the volume is made after the volume is mounted.
    mount = next(i for i, c in enumerate(runcmd) if "jshub-setup-data-volume" in c)
    caddy_dir = next(i for i, c in enumerate(runcmd) if c.endswith("-o caddy -g caddy /data/caddy"))
    assert mount < caddy_dir < runcmd.index("chown -R caddy:caddy /data/caddy")


def test_hub_config_uses_the_separate_proxy_and_upgrades_its_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OAUTH_CLIENT_SECRET", "test-secret")
    monkeypatch.setenv("JSHUB_ADMIN_TOKEN", "test-token")
    config = _load_hub_config(hub_config_text(hub_spec(AUTH_VARIANTS["github-org"]), tmp_path), tmp_path)
    assert config.ConfigurableHTTPProxy.should_start is False
    assert config.ConfigurableHTTPProxy.api_url == "http://127.0.0.1:8001"
    assert "pid_file" not in config.ConfigurableHTTPProxy
    assert config.JupyterHub.cleanup_servers is False
    assert config.JupyterHub.upgrade_db is True


def test_hub_config_script_writes_changed_files_and_restarts_only_what_reads_them(tmp_path: Path) -> None:
    """The script the hub-config command runs, run for real against a scratch folder (sudo,
    cloud-init, systemctl and the venv's pip are stubs that log their calls)."""
    require_root("the script installs files owned by root")
    from renderers.hub_config import HubPaths

    paths = HubPaths(
        data_root=str(tmp_path / "data"),
        venv=str(tmp_path / "venv"),
        config_dir=str(tmp_path / "etc"),
        caddyfile=str(tmp_path / "caddy" / "Caddyfile"),
        shared_access_command=str(tmp_path / "sbin" / "jshub-shared-access"),
        home_quota_command=str(tmp_path / "sbin" / "jshub-home-quota"),
        systemd_dir=str(tmp_path / "systemd"),
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "venv" / "bin").mkdir(parents=True)
    log = tmp_path / "calls.log"
    stub(bin_dir, "sudo", 'exec "$@"')
    stub(bin_dir, "cloud-init", 'echo "cloud-init $*" >>"$LOG"')
    stub(bin_dir, "systemctl", 'echo "systemctl $*" >>"$LOG"')
    stub(tmp_path / "venv" / "bin", "pip", 'echo "pip $*" >>"$LOG"')
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "LOG": str(log)}
    cfg = make_config()

    def run(**overrides: Any) -> list[str]:
        spec = HubConfigSpec.from_config(make_config(**overrides), paths=paths)
        files = hub_vm_files(spec, cfg.hub_fqdn, cfg.lets_encrypt_email)
        log.write_text("")
        subprocess.run(["bash", "-c", render_hub_config_script(files, paths)], env=env, check=True)
        return log.read_text().splitlines()

    first = run()  # a new (or rebuilt) server: nothing there yet
    assert first[0] == "cloud-init status --wait"
    assert first[1].startswith("pip install --no-cache-dir --quiet -r ")
    # The hub unit's drop-in is new: systemd reads it before the hub restarts (and stops).
    assert first[2:] == [
        "systemctl daemon-reload",
        "systemctl restart jupyterhub.service",
        "systemctl reload-or-restart caddy.service",
    ]
    dropin = tmp_path / "systemd" / "jupyterhub.service.d" / "jshub-servers.conf"
    assert "KillMode=control-group\n" in dropin.read_text()
    assert (tmp_path / "sbin" / "jshub-home-quota").stat().st_mode & 0o777 == 0o755
    config = Path(paths.config_file)
    settings = Path(paths.config_dir) / "jupyterhub_settings.json"
    assert config.read_text() == (Path(__file__).parent.parent / "hub" / "jupyterhub_config.py").read_text()
    assert oct(config.stat().st_mode & 0o777) == "0o644"
    assert json.loads(settings.read_text())["Authenticator"]["admin_users"] == ["octocat"]
    assert (tmp_path / "etc" / "requirements.txt").read_text() == (
        Path(__file__).parent.parent / "hub" / "requirements.txt"
    ).read_text()
    assert "storage file_system" in (tmp_path / "caddy" / "Caddyfile").read_text()

    assert run() == ["cloud-init status --wait"]  # the same config again: nothing restarts

    admins = {**BASE_AUTH, "admins": ["octocat", "new-admin"]}
    assert run(auth=admins) == ["cloud-init status --wait", "systemctl restart jupyterhub.service"]
    assert json.loads(settings.read_text())["Authenticator"]["admin_users"] == ["new-admin", "octocat"]
    # A new home quota: the config changes, the scripts and units do not.
    assert run(auth=admins, homeQuotaGb=25) == [
        "cloud-init status --wait",
        "systemctl restart jupyterhub.service",
    ]
    hook = json.loads(settings.read_text())["Spawner"]["pre_spawn_hook"]
    assert hook["kwargs"]["home_quota_gb"] == 25


def test_systemd_accepts_the_hub_and_proxy_units(tmp_path: Path) -> None:
    """systemd-analyze verify, with the units' programs pointed at ones that exist here; any
    warning (an unknown key, a bad value) fails."""
    import sys

    from renderers.hub_config import HubPaths

    analyze = require_tool("systemd-analyze", "checks the rendered systemd units")
    paths = HubPaths(
        venv=str(Path(sys.executable).parent.parent),
        proxy_command=require_tool("configurable-http-proxy", "the proxy unit's program"),
    )
    spec = HubConfigSpec.from_config(make_config(), paths=paths)
    assert spec.proxy is not None
    files = written_files(render_hub_cloud_init(HubBootSpec(paths, spec.proxy, "vol", "ssh-ed25519 AAAA k")))
    units = []
    for path, item in files.items():
        if path.startswith("/etc/systemd/system/") and path.endswith(".service"):
            unit = tmp_path / path.rsplit("/", 1)[1]
            unit.write_text(item["content"])
            units.append(str(unit))
    assert {Path(u).name for u in units} >= {"jupyterhub.service", "jshub-proxy.service"}
    # The hub unit's drop-in from hub-config, where systemd looks for it beside the unit.
    dropins = [f for f in hub_vm_files(spec, "hub.example.org", "ops@example.org") if f.unit]
    assert [f.path for f in dropins] == ["/etc/systemd/system/jupyterhub.service.d/jshub-servers.conf"]
    (tmp_path / "jupyterhub.service.d").mkdir()
    (tmp_path / "jupyterhub.service.d" / "jshub-servers.conf").write_text(dropins[0].content)
    result = subprocess.run(
        [analyze, "verify", *units],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "SYSTEMD_UNIT_PATH": f"{tmp_path}:"},
    )
    assert result.returncode == 0 and not result.stderr.strip() and not result.stdout.strip(), (
        result.stdout + result.stderr
    )
    # ... and it did read the drop-in: a bad value there is reported.
    (tmp_path / "jupyterhub.service.d" / "jshub-servers.conf").write_text("[Service]\nKillMode=bogus\n")
    broken = subprocess.run(
        [analyze, "verify", *units],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "SYSTEMD_UNIT_PATH": f"{tmp_path}:"},
    )
    assert "jshub-servers.conf:2: Failed to parse kill mode" in broken.stderr, broken.stderr


@pytest.mark.parametrize(("timeout", "start", "answer"), [(None, 120, 60), (900, 900, 900)])
def test_the_servers_start_timeout_reaches_the_spawner(
    timeout: int | None, start: int, answer: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OAUTH_CLIENT_SECRET", "test-secret")
    monkeypatch.setenv("JSHUB_ADMIN_TOKEN", "test-token")
    cfg = make_config(**({"serverStartTimeoutSeconds": timeout} if timeout else {}))
    config = _load_hub_config(hub_config_text(HubConfigSpec.from_config(cfg), tmp_path), tmp_path)
    assert config.Spawner.start_timeout == start
    assert config.Spawner.http_timeout == answer


def test_the_start_timeout_is_refused_where_the_scenario_sets_its_own() -> None:
    [swarm] = problems(scenario="swarm", swarm={"workerCount": 1}, serverStartTimeoutSeconds=600)
    assert swarm.startswith("serverStartTimeoutSeconds = '600': not a key of scenario swarm, only of single")
    assert "a swarm server has 600 s to start" in swarm
    [short] = problems(serverStartTimeoutSeconds=5)
    assert short.startswith("serverStartTimeoutSeconds") and "30" in short


# --- what participants see first: the login page's announcement, JupyterLab's defaults --------


def test_the_login_announcement_reaches_jupyterhubs_login_page_as_escaped_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OAUTH_CLIENT_SECRET", "test-secret")
    monkeypatch.setenv("JSHUB_ADMIN_TOKEN", "test-token")
    auth = {
        **AUTH_VARIANTS["github-org"],
        "loginAnnouncement": "Log in with GitHub; ask at the front.\n<b>Not</b> bold & kept",
    }
    spec = hub_spec(auth)
    config = _load_hub_config(hub_config_text(spec, tmp_path), tmp_path)
    # login.html sets its announcement from announcement_login and prints it unescaped.
    assert config.JupyterHub.template_vars == {
        "announcement_login": "Log in with GitHub; ask at the front.<br>"
        "&lt;b&gt;Not&lt;/b&gt; bold &amp; kept"
    }
    # Without the key, the login page has no announcement of the stack's.
    assert "template_vars" not in settings_of(hub_spec({**auth, "loginAnnouncement": None}))["JupyterHub"]


def test_jupyterlab_overrides_are_valid_settings_of_the_pinned_jupyterlab() -> None:
    """The overrides file the single hub writes must set keys JupyterLab's own schema of the
    plugin has, with allowed values: a JupyterLab bump that renames them fails here."""
    import sys

    import jsonschema

    from renderers.hub_config import JUPYTERLAB_OVERRIDES, jupyterlab_overrides_json

    schemas = Path(sys.prefix) / "share" / "jupyter" / "lab" / "schemas"
    for plugin, values in JUPYTERLAB_OVERRIDES.items():
        package, _, name = plugin.partition(":")
        schema = json.loads((schemas / package / f"{name}.json").read_text())
        assert set(values) <= set(schema["properties"]), plugin
        jsonschema.validate(values, schema)
        # "none" (the default) is what makes JupyterLab ask about the news.
        assert values["fetchNews"] != schema["properties"]["fetchNews"]["default"]
    files = vm_files()
    overrides = files["/etc/jupyterhub/jupyterlab/overrides.json"]
    assert json.loads(overrides.content) == JUPYTERLAB_OVERRIDES == json.loads(jupyterlab_overrides_json())
    assert overrides.service == "jupyterhub.service" and overrides.mode == "0644"
    # Each user's server reads it as JupyterLab's application settings.
    args = settings_of(hub_spec(BASE_AUTH))["Spawner"]["args"]
    assert args == ["--LabApp.app_settings_dir=/etc/jupyterhub/jupyterlab"]
