"""Workshop logins (auth.type shared-password and native): the config refuses what JupyterHub
would refuse or what would lock people out, naming the key and never echoing a password; the
rendered hub config builds the authenticator in JupyterHub's own loader with the passwords
from the environment only; the Z2JH values validate against the chart's schema and keep the
passwords in a Secret; a plan never shows them."""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from components.hub import hub_env_file, workshop_secrets
from renderers.cloud_init import HubBootSpec, render_hub_cloud_init
from renderers.hub_config import HubConfigSpec, hub_vm_files
from renderers.z2jh import HUB_SECRETS, Z2JHSpec, hub_secret_data, z2jh_values
from stackconfig import ConfigError
from tests.builders import HPC
from tests.conftest import BASE_CONFIG, make_config, run_mocked
from tests.hub_config_local import hub_config_text, settings_of
from tests.upstream_schemas import z2jh_errors

PASSWORD = "tea-and-biscuits-42"
ADMIN_PASSWORD = "instructors-only-" + "x" * 20
SHARED: dict[str, Any] = {
    "auth": {"type": "shared-password", "allowAll": True, "admins": ["instructor"]},
    "oauthClientSecret": "",
    "workshopPassword": PASSWORD,
    "workshopAdminPassword": ADMIN_PASSWORD,
}
NATIVE: dict[str, Any] = {
    "auth": {"type": "native", "admins": ["instructor"], "allowedUsers": ["alice"]},
    "oauthClientSecret": "",
}
K8S = {
    "scenario": "k8s",
    "concurrentUsers": 20,
    "userMemoryGb": 4,
    "userCpu": 2,
    "k8s": {"userMemoryGuaranteeGb": 2, "cephVolumeGb": 300, "workerFlavor": "m3.medium"},
}


def problems(**overrides: Any) -> list[str]:
    with pytest.raises(ConfigError) as error:
        make_config(**overrides)
    return [str(p) for p in error.value.problems]


# --- config -----------------------------------------------------------------------------------


def test_shared_password_config_is_accepted() -> None:
    cfg = make_config(**SHARED)
    assert cfg.auth.type == "shared-password" and cfg.oauth_client_secret is None
    assert cfg.workshop_password is not None and cfg.workshop_password.get_secret_value() == PASSWORD


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"workshopPassword": "short7!"}, "workshopPassword: must be 8 to 256 characters"),
        ({"workshopPassword": "has space in it"}, "workshopPassword: use printable ASCII without spaces"),
        ({"workshopPassword": "dollar$sign1"}, "workshopPassword: use printable ASCII"),
        ({"workshopAdminPassword": "only-twenty-chars-ok"}, "workshopAdminPassword: must be 32 to 256"),
        (
            {"workshopAdminPassword": PASSWORD * 2, "workshopPassword": PASSWORD * 2},
            "workshopAdminPassword: must differ",
        ),
        ({"workshopAdminPassword": ""}, "workshopAdminPassword: auth.admins ['instructor'] can log in only"),
        ({"workshopPassword": ""}, "workshopPassword: is required with auth.type shared-password"),
        ({"oauthClientSecret": "abc"}, "oauthClientSecret: only github and cilogon use it"),
    ],
)
def test_bad_workshop_passwords_name_the_key_and_never_the_value(
    overrides: dict[str, Any], expected: str
) -> None:
    found = problems(**{**SHARED, **overrides})
    assert any(p.startswith(expected.split(":")[0]) and expected.split(": ", 1)[-1] in p for p in found), (
        found
    )
    for value in overrides.values():
        if len(value) > 3:
            assert not any(value in p for p in found), found


def test_participant_names_must_be_unix_names() -> None:
    found = problems(**{**SHARED, "auth": {**SHARED["auth"], "admins": ["Instructor One"]}})
    assert any("not usernames a participant can log in with: ['Instructor One']" in p for p in found)


def test_native_needs_an_admin_to_approve() -> None:
    found = problems(**{**NATIVE, "auth": {"type": "native", "allowAll": True}})
    assert any(p.startswith("auth: native sign-up needs an admin") for p in found), found
    assert make_config(**NATIVE).auth.type == "native"


def test_oauth_types_still_need_their_client_id_and_secret() -> None:
    found = problems(auth={"type": "github", "admins": ["octocat"]}, oauthClientSecret="")
    assert any(p.startswith("auth.clientId: is required with auth.type github") for p in found), found
    assert any(p.startswith("oauthClientSecret: is required with auth.type github") for p in found), found


def test_shared_password_refused_with_per_user_hpc_accounts() -> None:
    found = problems(scenario="hpc", hpc=HPC, **SHARED)
    assert any(p.startswith("auth.type = 'shared-password': with hpc.accountMode per-user") for p in found)


# --- the VM hub's jupyterhub_config.py ---------------------------------------------------------


def _load(text: str, tmp_path: Path) -> Any:
    from jupyterhub.app import JupyterHub

    path = tmp_path / "jupyterhub_config.py"
    path.write_text(text)
    app = JupyterHub()
    app.load_config_file(str(path))
    return app.config


def _chart_config(values: dict[str, Any], folder: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The config the chart's jupyterhub_config.py builds from the release's values: hub.config
    first, hub.services with the token the chart generates, the hub's modules where
    hub.extraFiles mounts them (on the path), then the extraConfig run."""
    from traitlets.config import Config

    c = Config()
    for app, cfg in copy.deepcopy(values["hub"]["config"]).items():
        c[app].update(cfg)
    c.JupyterHub.services = [{"name": "jshub-admin", "api_token": "chart-generated"}]
    for extra in values["hub"]["extraFiles"].values():
        (folder / Path(extra["mountPath"]).name).write_text(extra["stringData"])
    monkeypatch.syspath_prepend(str(folder))
    [extra_config] = values["hub"]["extraConfig"].values()
    exec(extra_config, {"c": c})
    return c


def _authenticator(config: Any) -> Any:
    from traitlets.utils.importstring import import_item

    cls = config.JupyterHub.authenticator_class
    if isinstance(cls, str):
        from jupyterhub.app import JupyterHub

        cls = JupyterHub(config=config).authenticator_class  # resolves entry-point names
        cls = import_item(cls) if isinstance(cls, str) else cls
    return cls(config=config)


def test_single_hub_config_takes_the_passwords_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jupyterhub.auth import LocalAuthenticator
    from jupyterhub.authenticators.shared import SharedPasswordAuthenticator

    spec = HubConfigSpec.from_config(make_config(**SHARED))
    settings = json.dumps(settings_of(spec))
    assert PASSWORD not in settings and ADMIN_PASSWORD not in settings
    assert "OAUTH_CLIENT_SECRET" not in settings
    text = hub_config_text(spec, tmp_path)
    for key, value in workshop_secrets(make_config(**SHARED)).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("JSHUB_ADMIN_TOKEN", "test-token")
    authenticator = _authenticator(_load(text, tmp_path))
    assert isinstance(authenticator, SharedPasswordAuthenticator)
    assert isinstance(authenticator, LocalAuthenticator) and authenticator.create_system_users
    assert authenticator.user_password == PASSWORD and authenticator.admin_password == ADMIN_PASSWORD
    assert authenticator.allow_all and authenticator.allow_existing_users
    assert authenticator.admin_users == {"instructor"}
    assert authenticator.validate_username("alice-1")
    assert not authenticator.validate_username("alice smith")


def _shared_password_authenticator(scenario: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The authenticator a shared-password hub builds from its rendered config: the VM hub's
    class of its own (Unix accounts), or JupyterHub's by name from the chart's values, with the
    extraConfig run as the chart runs it."""
    if scenario == "k8s":
        values = z2jh_values(Z2JHSpec.from_config(make_config(**K8S, **SHARED)))
        return _authenticator(_chart_config(values, tmp_path, monkeypatch))
    text = hub_config_text(HubConfigSpec.from_config(make_config(**SHARED)), tmp_path)
    return _authenticator(_load(text, tmp_path))


@pytest.mark.parametrize("scenario", ["single", "k8s"])
def test_the_rendered_authenticator_lets_in_the_right_password_and_refuses_a_wrong_one(
    scenario: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a participant's login form reaches: the rendered config's own authenticator, its
    authenticate() called directly, then the whole check JupyterHub makes of a login."""
    from jupyterhub.authenticators.shared import SharedPasswordAuthenticator

    for key, value in workshop_secrets(make_config(**SHARED)).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("JSHUB_ADMIN_TOKEN", "test-token")
    authenticator = _shared_password_authenticator(scenario, tmp_path, monkeypatch)
    assert isinstance(authenticator, SharedPasswordAuthenticator)

    def authenticate(name: str, password: str) -> Any:
        return asyncio.run(authenticator.authenticate(None, {"username": name, "password": password}))

    def login(name: str, password: str) -> Any:
        return asyncio.run(
            authenticator.get_authenticated_user(None, {"username": name, "password": password})
        )

    assert authenticate("alice", PASSWORD) == {"name": "alice", "admin": False}
    for wrong in ("not-the-password", PASSWORD[:-1], PASSWORD + "x", PASSWORD.upper(), ""):
        assert authenticate("alice", wrong) is None, wrong
    # The admin password is no participant's, and an admin needs it: the shared one is not enough.
    assert authenticate("alice", ADMIN_PASSWORD) is None
    assert authenticate("instructor", PASSWORD) is None
    assert authenticate("instructor", ADMIN_PASSWORD) == {"name": "instructor", "admin": True}
    # A participant picks any name that makes an account, and is never an admin.
    assert login("alice-1", PASSWORD) == {"name": "alice-1", "admin": False, "auth_state": None}
    assert login("alice-1", "not-the-password") is None
    assert login("has space", PASSWORD) is None
    if scenario == "single":  # the VM's own accounts are refused (local accounts only there)
        assert login("root", PASSWORD) is None


def test_without_admin_password_the_hub_starts_with_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = make_config(
        **{**SHARED, "auth": {"type": "shared-password", "allowAll": True}, "workshopAdminPassword": ""}
    )
    monkeypatch.setenv("WORKSHOP_PASSWORD", PASSWORD)
    monkeypatch.delenv("WORKSHOP_ADMIN_PASSWORD", raising=False)
    monkeypatch.setenv("JSHUB_ADMIN_TOKEN", "test-token")
    authenticator = _authenticator(_load(hub_config_text(HubConfigSpec.from_config(cfg), tmp_path), tmp_path))
    assert authenticator.admin_password is None and authenticator.user_password == PASSWORD


@pytest.fixture
def local_shared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The single hub's shared-password authenticator (Unix accounts), as its config builds it."""
    monkeypatch.setenv("WORKSHOP_PASSWORD", PASSWORD)
    monkeypatch.setenv("JSHUB_ADMIN_TOKEN", "test-token")
    spec = HubConfigSpec.from_config(make_config(**SHARED))
    return _authenticator(_load(hub_config_text(spec, tmp_path), tmp_path))


def test_local_accounts_never_log_in_as_a_system_account(local_shared: Any, tmp_path: Path) -> None:
    authenticator = local_shared
    hook = authenticator.post_auth_hook
    assert hook(authenticator, None, {"name": "root"}) is None
    assert hook(authenticator, None, {"name": "nobody-here-xyz"}) == {"name": "nobody-here-xyz"}


def test_accounts_are_made_off_the_login_in_batches_and_each_spawn_waits_for_its_own(
    local_shared: Any, tmp_path: Path
) -> None:
    """A workshop's first logins each need a Unix account. A login only queues it and returns
    (JupyterHub's LocalAuthenticator would make it there, with the hub's event loop blocked);
    one add-user call runs at a time and takes every name that queued while the one before ran
    (a login storm makes its accounts in a few calls, not a process each); the user's spawn
    waits for the account in pre_spawn_start, and a name the command fails fails that user's
    spawn only, with the command's reason, and is tried again at the next spawn. (The native
    sign-up's class makes accounts the same way: test_native_config_builds_nativeauthenticator_with_approval.)"""
    import asyncio
    import time
    from types import SimpleNamespace

    authenticator = local_shared
    assert authenticator.create_system_users
    log, made = tmp_path / "calls.log", tmp_path / "made"
    made.touch()
    command = tmp_path / "add-user"
    # The rendered script's protocol: a line per name, "ok NAME" or "failed NAME: REASON".
    command.write_text(
        "#!/bin/bash\n"
        f'echo "start $*" >>{log}\nsleep 0.4\necho "end" >>{log}\n'
        'for n in "$@"; do\n'
        '  if [[ $n == bad ]]; then echo "failed $n: useradd: no such thing"; continue; fi\n'
        f'  echo "$n" >>{made}; echo "ok $n"\n'
        "done\n"
    )
    command.chmod(0o755)
    authenticator.add_user_cmd = [str(command)]
    authenticator.system_user_exists = lambda user: user.name in made.read_text().split()
    names = ["ann", "bad", "bob", "cy", "dee"]
    users = {n: SimpleNamespace(name=n) for n in names}

    async def workshop() -> tuple[float, list[BaseException | None], BaseException | None, int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.05)
                ticks += 1

        running = asyncio.create_task(ticker())
        start = time.monotonic()
        await authenticator.add_system_user(users["ann"])
        await asyncio.sleep(0.1)  # the others log in while ann's call runs
        for n in names[1:]:
            await authenticator.add_system_user(users[n])
        logins_s = time.monotonic() - start
        spawns = await asyncio.gather(
            *(authenticator.pre_spawn_start(users[n], None) for n in names), return_exceptions=True
        )
        again = await asyncio.gather(
            authenticator.pre_spawn_start(users["bad"], None), return_exceptions=True
        )
        running.cancel()
        return logins_s, spawns, again[0], ticks

    start = time.monotonic()
    logins_s, spawns, again, ticks = asyncio.run(workshop())
    elapsed = time.monotonic() - start
    assert logins_s < 0.3, f"the logins waited {logins_s:.2f} s for accounts"
    outcome = dict(zip(names, spawns, strict=True))
    assert all(outcome[n] is None for n in names if n != "bad"), outcome
    assert isinstance(outcome["bad"], RuntimeError) and "useradd: no such thing" in str(outcome["bad"])
    assert isinstance(again, RuntimeError)
    # Calls never at once: ann's, one with every name that queued meanwhile, then bad's retry.
    assert log.read_text().splitlines() == [
        "start ann", "end", "start bad bob cy dee", "end", "start bad", "end",
    ]  # fmt: skip
    assert made.read_text().split() == ["ann", "bob", "cy", "dee"]
    assert ticks >= 0.5 * elapsed / 0.05, f"{ticks} ticks in {elapsed:.2f}s: the loop was blocked"


def test_a_first_spawn_waits_for_the_whole_add_user_call_not_only_the_passwd_entry(
    local_shared: Any, tmp_path: Path
) -> None:
    """The add-user command writes /etc/passwd first and makes the home after: a participant's
    browser asks for the spawn right after the login, and the home's pre-spawn hook failed
    ("no home") when the spawn went on as soon as the account existed."""
    import asyncio
    from types import SimpleNamespace

    authenticator = local_shared
    passwd, home = tmp_path / "passwd", tmp_path / "home"
    passwd.touch()
    command = tmp_path / "add-user"
    command.write_text(f'#!/bin/bash\necho "$1" >>{passwd}\nsleep 0.4\nmkdir {home}\necho "ok $1"\n')
    command.chmod(0o755)
    authenticator.add_user_cmd = [str(command)]
    authenticator.system_user_exists = lambda user: user.name in passwd.read_text().split()
    user = SimpleNamespace(name="ann")

    async def login_then_spawn() -> bool:
        await authenticator.add_system_user(user)
        while not authenticator.system_user_exists(user):
            await asyncio.sleep(0.02)
        await authenticator.pre_spawn_start(user, None)
        return home.is_dir()

    assert asyncio.run(login_then_spawn()), "the spawn went on before the account's home was made"


def test_a_batch_whose_command_reports_nothing_fails_each_spawn_with_the_error(
    local_shared: Any, tmp_path: Path
) -> None:
    import asyncio
    from types import SimpleNamespace

    authenticator = local_shared
    command = tmp_path / "add-user"
    command.write_text('#!/bin/bash\necho "home root is gone" >&2\nexit 2\n')
    command.chmod(0o755)
    authenticator.add_user_cmd = [str(command)]
    authenticator.system_user_exists = lambda user: False
    users = [SimpleNamespace(name=n) for n in ("ann", "bob")]

    async def spawns() -> list[BaseException | None]:
        for user in users:
            await authenticator.add_system_user(user)
        return await asyncio.gather(
            *(authenticator.pre_spawn_start(user, None) for user in users), return_exceptions=True
        )

    for result in asyncio.run(spawns()):
        assert isinstance(result, RuntimeError) and "home root is gone" in str(result)


def test_hpc_hub_uses_jupyterhubs_own_shared_password_class(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jupyterhub.authenticators.shared import SharedPasswordAuthenticator

    cfg = make_config(
        scenario="hpc", hpc={**HPC, "accountMode": "community", "communityAccount": "gw"}, **SHARED
    )
    spec = HubConfigSpec.from_config(cfg)
    assert settings_of(spec)["JupyterHub"]["authenticator_class"] == "shared-password"
    text = hub_config_text(spec, tmp_path)
    monkeypatch.setenv("WORKSHOP_PASSWORD", PASSWORD)
    monkeypatch.setenv("JSHUB_ADMIN_TOKEN", "test-token")
    authenticator = _authenticator(_load(text, tmp_path))
    assert type(authenticator) is SharedPasswordAuthenticator


def test_native_config_builds_nativeauthenticator_with_approval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nativeauthenticator import NativeAuthenticator

    monkeypatch.setenv("JSHUB_ADMIN_TOKEN", "test-token")
    config = _load(hub_config_text(HubConfigSpec.from_config(make_config(**NATIVE)), tmp_path), tmp_path)
    from traitlets.utils.importstring import import_item

    cls = import_item(config.JupyterHub.authenticator_class)
    assert issubclass(cls, NativeAuthenticator)
    # Accounts made off the hub's event loop, as for the shared password (tested there).
    assert cls.add_system_user.__qualname__ == "AccountsOffTheEventLoop.add_system_user"
    assert config.NativeAuthenticator.open_signup is False
    assert config.Authenticator.allow_all is True  # approval is the gate
    assert set(config.Authenticator.allowed_users) == {"alice"}


def test_the_rendered_native_authenticator_signs_up_logs_in_and_stops_guessing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sign-up's rules as the rendered config sets them, on the authenticator it builds
    over a database of its own: passwords of 8 characters or more and not common ones; the
    listed users and admins approved at sign-up, anyone else only by an admin; a wrong
    password refused; after 10 wrong ones in a row even the right one, for a while."""
    import bcrypt
    from jupyterhub import orm

    # bcrypt's fewest rounds: some 30 password checks take a moment rather than ten seconds.
    gensalt = bcrypt.gensalt
    monkeypatch.setattr(bcrypt, "gensalt", lambda: gensalt(rounds=4))
    monkeypatch.setenv("JSHUB_ADMIN_TOKEN", "test-token")
    config = _load(hub_config_text(HubConfigSpec.from_config(make_config(**NATIVE)), tmp_path), tmp_path)
    db = orm.new_session_factory("sqlite:///:memory:")()
    from traitlets.utils.importstring import import_item

    cls = config.JupyterHub.authenticator_class
    authenticator = (import_item(cls) if isinstance(cls, str) else cls)(config=config, db=db)

    def login(name: str, password: str) -> Any:
        return asyncio.run(authenticator.authenticate(None, {"username": name, "password": password}))

    good = "tea-cup8"
    assert authenticator.create_user("alice", good[:-1]) is None  # 7 characters
    assert authenticator.create_user("alice", "password") is None  # 8, but on the common list
    assert authenticator.create_user("alice", good) is not None
    assert authenticator.create_user("instructor", good + "-admin") is not None
    assert authenticator.create_user("mallory", good) is not None
    assert login("alice", good) == "alice" and login("instructor", good + "-admin") == "instructor"
    assert login("alice", "not-the-password") is None and login("alice", good.upper()) is None
    assert login("mallory", good) is None, "signed up without an admin's approval, yet let in"
    assert login("nobody", good) is None
    assert login("alice", good) == "alice"  # a login clears the failed ones before it
    for _ in range(9):
        assert login("alice", "guess") is None
    assert login("alice", good) == "alice", "blocked before 10 failed logins"
    for _ in range(10):
        assert login("alice", "guess") is None
    assert login("alice", good) is None, "let in right after 10 failed logins"


def test_env_file_carries_the_passwords_and_user_data_does_not() -> None:
    cfg = make_config(**SHARED)
    env = hub_env_file("", "token", "proxy-token", workshop_secrets(cfg))
    assert f"WORKSHOP_PASSWORD={PASSWORD}\n" in env and f"WORKSHOP_ADMIN_PASSWORD={ADMIN_PASSWORD}\n" in env
    spec = HubConfigSpec.from_config(cfg)
    user_data = render_hub_cloud_init(
        HubBootSpec(
            paths=spec.paths,
            proxy=spec.proxy,
            data_volume_id="4f0c9a2e-8c1d-4b7e-9f3a-2d6c5e1b0a98",
            deploy_public_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleKeyOnly jshub-deploy",
        )
    )
    assert PASSWORD not in user_data and ADMIN_PASSWORD not in user_data
    # What hub-config writes (the config, the Caddyfile, the pinned requirements): no password.
    files = {f.path: f.content for f in hub_vm_files(spec, cfg.hub_fqdn, cfg.lets_encrypt_email)}
    assert not [path for path, text in files.items() if PASSWORD in text or ADMIN_PASSWORD in text]
    assert "jupyterhub-nativeauthenticator==" in files[f"{spec.paths.config_dir}/requirements.txt"]


def test_hub_vm_sends_the_passwords_only_on_secret_stdin() -> None:
    from stacks.single import build

    config = {**BASE_CONFIG, **SHARED}
    rec = run_mocked(lambda: build(make_config(**SHARED)), config)
    secrets = next(r for r in rec.registrations if r.name == "hub-secrets")
    assert "stdin" in secrets.secret_inputs and secrets.inputs["logging"] == "none"
    text = json.dumps([r.inputs for r in rec.registrations])
    assert PASSWORD not in text and ADMIN_PASSWORD not in text


# --- Z2JH ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("auth", [SHARED, NATIVE], ids=["shared-password", "native"])
def test_z2jh_values_validate_and_hold_no_password(auth: dict[str, Any]) -> None:
    cfg = make_config(**K8S, **auth)
    values = z2jh_values(Z2JHSpec.from_config(cfg))
    assert z2jh_errors(values) == []
    text = json.dumps(values)
    assert PASSWORD not in text and ADMIN_PASSWORD not in text
    hub = values["hub"]
    assert hub["config"]["Authenticator"]["allow_existing_users"] is True
    assert "OAUTH_CLIENT_SECRET" not in hub["extraEnv"]
    assert hub["extraEnv"]["JSHUB_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == HUB_SECRETS
    assert hub["services"]["jshub-admin"] == {"name": "jshub-admin", "admin": True}  # no token here
    assert hub["loadRoles"]["jshub-admin"]["scopes"] == [
        "admin:users",
        "admin:servers",
        "tokens",
        "access:servers",
    ]
    if auth is SHARED:
        assert hub["config"]["JupyterHub"]["authenticator_class"] == "shared-password"
        assert hub["extraEnv"]["WORKSHOP_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == HUB_SECRETS
        assert set(hub_secret_data(cfg, "t")) == {
            "admin-token",
            "workshop-password",
            "workshop-admin-password",
        }
    else:
        assert hub["config"]["NativeAuthenticator"]["open_signup"] is False


def test_z2jh_extra_config_sets_the_passwords_and_the_admin_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run the rendered extraConfig the way the chart's jupyterhub_config.py does: after the
    chart has put hub.config into the config and appended hub.services with a generated token,
    with the hub's modules where hub.extraFiles mounts them."""
    values = z2jh_values(Z2JHSpec.from_config(make_config(**K8S, **SHARED)))
    monkeypatch.setenv("JSHUB_ADMIN_TOKEN", "ours")
    monkeypatch.setenv("WORKSHOP_PASSWORD", PASSWORD)
    monkeypatch.delenv("WORKSHOP_ADMIN_PASSWORD", raising=False)
    c = _chart_config(values, tmp_path, monkeypatch)
    assert c.JupyterHub.services[0]["api_token"] == "ours"
    assert c.SharedPasswordAuthenticator.user_password == PASSWORD
    assert c.SharedPasswordAuthenticator.admin_password is None
    # Admins' servers mount the shared folder read-write, everyone else's read-only.
    hook = c.KubeSpawner.pre_spawn_hook
    mounts = [{"name": "shared-data", "readOnly": True}, {"name": "home"}]
    for admin in (False, True):
        spawner = SimpleNamespace(user=SimpleNamespace(admin=admin), volume_mounts=list(mounts))
        hook(spawner)
        assert spawner.volume_mounts[0]["readOnly"] is not admin
        assert spawner.volume_mounts[1] == {"name": "home"}


def test_github_on_k8s_lets_users_an_admin_adds_log_in() -> None:
    values = z2jh_values(Z2JHSpec.from_config(make_config(**K8S)))
    assert values["hub"]["config"]["Authenticator"]["allow_existing_users"] is True
    assert "OAUTH_CLIENT_SECRET" in values["hub"]["extraEnv"]


def test_k8s_stack_exports_a_secret_admin_token() -> None:
    from stacks.k8s import build

    config = {**BASE_CONFIG, **K8S, **SHARED}
    rec = run_mocked(lambda: build(make_config(**K8S, **SHARED)), config)
    assert "admin_token" in rec.outputs
    secret = next(r for r in rec.registrations if r.name == "hub-secrets")
    assert "stringData" in secret.secret_inputs
    assert not any(r.name == "hub-oauth" for r in rec.registrations)
    text = json.dumps([r.inputs for r in rec.registrations])
    assert PASSWORD not in text and ADMIN_PASSWORD not in text


# --- the plan ---------------------------------------------------------------------------------------


def _plan_text(capsys: pytest.CaptureFixture[str], out: Path, argv: list[str]) -> str:
    """Everything a plan shows: what it prints, its JSON and every file it writes."""
    from planner.__main__ import main

    assert main([*argv, "--json", str(out / "plan.json"), "--out", str(out / "files")]) == 0
    printed = capsys.readouterr()
    files = [p for p in (out / "files").rglob("*") if p.is_file()]
    assert any(p.name in ("jupyterhub_config.py", "plan.json") for p in files)
    return (
        printed.out
        + printed.err
        + "".join(p.read_text(errors="replace") for p in [out / "plan.json", *files])
    )


def test_plans_with_a_shared_password_never_show_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from planner.stackfile import SECRET_PLACEHOLDER

    dev = yaml.safe_load((Path(__file__).parent.parent / "Pulumi.dev.yaml").read_text())
    config = dev["config"]
    config.pop("jupyterhub-jetstream:oauthClientSecret")
    config["jupyterhub-jetstream:auth"] = {
        "type": "shared-password",
        "allowAll": True,
        "admins": ["instructor"],
    }
    config["jupyterhub-jetstream:workshopPassword"] = {"secure": "v1:encrypted"}
    config["jupyterhub-jetstream:workshopAdminPassword"] = {"secure": "v1:encrypted"}
    stack_file = tmp_path / "Pulumi.workshop-dev.yaml"
    stack_file.write_text(yaml.safe_dump(dev))
    single = _plan_text(
        capsys, tmp_path / "single", ["--stack", "workshop-dev", "--stack-file", str(stack_file)]
    )
    # The planner stands in f"{SECRET_PLACEHOLDER}-workshopPassword" for the encrypted value.
    assert SECRET_PLACEHOLDER not in single
    assert '"$env": "WORKSHOP_PASSWORD"' in single
    k8s = _plan_text(capsys, tmp_path / "k8s", ["--stack", "workshop-k8s"])
    assert SECRET_PLACEHOLDER not in k8s
    assert "output admin_token: [secret]" in k8s and "shared-password" in k8s


# --- swarm ------------------------------------------------------------------------------------


def test_swarm_hub_gets_the_passwords_as_docker_secrets() -> None:
    import base64
    import hashlib

    from planner.mocks import SECRET
    from stacks.swarm import build

    changes = {"scenario": "swarm", "swarm": {"workerCount": 2}, **SHARED}
    rec = run_mocked(lambda: build(make_config(**changes)), {**BASE_CONFIG, **changes})
    service = next(r for r in rec.registrations if r.type == "docker:index/service:Service")
    files = {s["fileName"] for s in service.inputs["taskSpec"]["containerSpec"]["secrets"]}
    # The entrypoint turns workshop_password into WORKSHOP_PASSWORD, which the config reads.
    # jshub_metrics_token: monitoring is on by default for swarm.
    assert files == {
        "jshub_admin_token",
        "workshop_password",
        "workshop_admin_password",
        "jshub_metrics_token",
    }
    secrets = [r for r in rec.registrations if r.type == "docker:index/secret:Secret"]
    assert secrets and all(s.inputs["data"] == SECRET for s in secrets)
    # A plain hash of a short password in the secret's visible name could be searched.
    for value in (PASSWORD, ADMIN_PASSWORD):
        assert hashlib.sha256(value.encode()).hexdigest()[:12] not in json.dumps([s.inputs for s in secrets])
    text = json.dumps([r.inputs for r in rec.registrations])
    assert PASSWORD not in text and ADMIN_PASSWORD not in text
    config = next(r for r in rec.registrations if r.name == "hub-settings")
    settings = json.loads(base64.b64decode(config.inputs["data"]).decode())
    assert settings["JupyterHub"]["authenticator_class"] == "shared-password"
    assert settings["SharedPasswordAuthenticator"]["user_password"] == {"$env": "WORKSHOP_PASSWORD"}


def test_swarm_hub_with_native_sign_up_has_no_password_secret() -> None:
    from stacks.swarm import build

    changes = {"scenario": "swarm", "swarm": {"workerCount": 2}, **NATIVE}
    rec = run_mocked(lambda: build(make_config(**changes)), {**BASE_CONFIG, **changes})
    service = next(r for r in rec.registrations if r.type == "docker:index/service:Service")
    assert [s["fileName"] for s in service.inputs["taskSpec"]["containerSpec"]["secrets"]] == [
        "jshub_admin_token",
        "jshub_metrics_token",  # monitoring is on by default for swarm
    ]
    requirements = (Path(__file__).parent.parent / "hub" / "swarm" / "requirements.txt").read_text()
    assert "jupyterhub-nativeauthenticator==1.3.0" in requirements
