"""The hub VM's account and secrets scripts, run for real: `jshub-add-user` with the system's
own useradd in a temporary home root (as root; every account made here is removed again), and
the secrets installer writing its environment file into a temporary folder."""

from __future__ import annotations

import os
import pwd
import secrets
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from renderers.scripts import render_add_user_script, render_install_secrets_script
from tests.conftest import require_root, require_tool

# --- jshub-add-user ---------------------------------------------------------------------------


def free_uid() -> int:
    for uid in range(42100, 42900):
        try:
            pwd.getpwuid(uid)
        except KeyError:
            return uid
    raise AssertionError("no free UID in 42100-42899")


@pytest.fixture
def accounts() -> Iterator[list[str]]:
    """Names of the accounts a test makes; all are deleted afterwards, with their groups."""
    require_root("creates real Unix accounts with useradd")
    require_tool("useradd", "jshub-add-user calls it")
    made: list[str] = []
    yield made
    for name in made:
        subprocess.run(["userdel", name], capture_output=True, check=False)
        subprocess.run(["groupdel", name], capture_output=True, check=False)
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        raise AssertionError(f"account {name} was not removed")


def new_name(accounts: list[str]) -> str:
    name = f"jshubt{secrets.token_hex(4)}"
    accounts.append(name)
    return name


def add_user(tmp_path: Path, *names: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "jshub-add-user"
    script.write_text(render_add_user_script(str(tmp_path / "home")))
    script.chmod(0o755)
    return subprocess.run([str(script), *names], capture_output=True, text=True, check=False)


@pytest.fixture
def home_root(tmp_path: Path) -> Path:
    root = tmp_path / "home"
    root.mkdir()
    root.chmod(0o755)
    return root


def test_a_returning_user_gets_the_uid_that_owns_their_home(
    accounts: list[str], home_root: Path, tmp_path: Path
) -> None:
    name, uid = new_name(accounts), free_uid()
    home = home_root / name
    home.mkdir()
    (home / "notebook.ipynb").write_text("{}")
    for path in (home, home / "notebook.ipynb"):
        os.chown(path, uid, uid)
    result = add_user(tmp_path, name)
    assert result.returncode == 0, result.stderr
    account = pwd.getpwnam(name)
    assert account.pw_uid == uid and account.pw_dir == str(home)
    assert home.stat().st_uid == uid and (home / "notebook.ipynb").stat().st_uid == uid
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    # Again (the hub calls it at every spawn): nothing changes.
    assert add_user(tmp_path, name).returncode == 0
    assert pwd.getpwnam(name).pw_uid == uid


def test_a_home_whose_uid_another_account_holds_is_refused(
    accounts: list[str], home_root: Path, tmp_path: Path
) -> None:
    holder, name, uid = new_name(accounts), new_name(accounts), free_uid()
    subprocess.run(["useradd", "--uid", str(uid), "--no-create-home", holder], check=True)
    home = home_root / name
    home.mkdir()
    os.chown(home, uid, uid)
    result = add_user(tmp_path, name)
    assert result.returncode == 1
    assert f"home {home} belongs to UID {uid}, which another account already holds" in result.stderr
    with pytest.raises(KeyError):
        pwd.getpwnam(name)


def test_a_new_user_gets_a_private_home(accounts: list[str], home_root: Path, tmp_path: Path) -> None:
    name = new_name(accounts)
    result = add_user(tmp_path, name)
    assert result.returncode == 0, result.stderr
    account = pwd.getpwnam(name)
    home = home_root / name
    assert account.pw_dir == str(home) and home.stat().st_uid == account.pw_uid
    assert stat.S_IMODE(home.stat().st_mode) == 0o700


def test_one_call_makes_many_accounts_and_a_failing_name_fails_alone(
    accounts: list[str], home_root: Path, tmp_path: Path
) -> None:
    """The hub's batch: new users, a returning one, one whose home's UID is taken, and one that
    exists already, in one call. Each gets its line; the others are made all the same."""
    new_one, new_two, returning, blocked, holder = (new_name(accounts) for _ in range(5))
    uid, taken = free_uid(), free_uid() + 1
    (home_root / returning).mkdir()
    os.chown(home_root / returning, uid, uid)
    subprocess.run(["useradd", "--uid", str(taken), "--no-create-home", holder], check=True)
    (home_root / blocked).mkdir()
    os.chown(home_root / blocked, taken, taken)
    result = add_user(tmp_path, new_one, returning, blocked, new_two, holder)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"ok {new_one}",
        f"ok {returning}",
        f"failed {blocked}: home {home_root / blocked} belongs to UID {taken}, which another account already holds",
        f"ok {new_two}",
        f"ok {holder}",
    ]
    assert pwd.getpwnam(returning).pw_uid == uid
    with pytest.raises(KeyError):
        pwd.getpwnam(blocked)
    # New accounts take UIDs above every UID that owns a home here (the returning user's and
    # the blocked home's), so no one inherits a stranger's files.
    for name in (new_one, new_two):
        account = pwd.getpwnam(name)
        assert account.pw_uid > taken, (name, account.pw_uid)
        home = home_root / name
        assert home.stat().st_uid == account.pw_uid and stat.S_IMODE(home.stat().st_mode) == 0o700
        assert account.pw_shell == "/bin/bash"
    assert pwd.getpwnam(new_two).pw_uid > pwd.getpwnam(new_one).pw_uid


# --- install-secrets ----------------------------------------------------------------------------


def test_the_secrets_file_is_private_from_the_moment_it_exists(tmp_path: Path) -> None:
    """`umask 077` makes tee create the file 0600 (no window in which others could read it),
    and chmod keeps it so; the secret arrives on standard input only."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls"
    env_file = tmp_path / "etc" / "secrets" / "hub.env"
    stubs = {
        "cloud-init": "exit 0",
        "systemctl": f'printf "%s\\n" systemctl "$@" >>{log}',
        # sudo runs the command with the caller's umask, as sudo does when the caller's is the
        # stricter one; before chmod it records the mode tee created the file with.
        "sudo": f'if [[ $1 == chmod ]]; then stat -c "created %a %n" "$3" >>{log}; fi; exec "$@"',
    }
    for name, body in stubs.items():
        (bin_dir / name).write_text(f"#!/bin/bash\n{body}\n")
        (bin_dir / name).chmod(0o755)
    proxy_env = env_file.parent / "proxy.env"
    # As the hub VM's secrets step calls it: the proxy's unit gets its token alone.
    script = render_install_secrets_script(
        str(env_file),
        ["jshub-proxy.service", "jupyterhub.service"],
        derived=[(str(proxy_env), ["CONFIGPROXY_AUTH_TOKEN"])],
    )
    secret = "OAUTH_CLIENT_SECRET=s3cr3t-value\nCONFIGPROXY_AUTH_TOKEN=proxy-t0ken\n"
    result = subprocess.run(
        ["bash", "-c", script],
        input=secret,
        capture_output=True,
        text=True,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)},
        umask=0o022,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert env_file.read_text() == secret
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(env_file.parent.stat().st_mode) == 0o700
    calls = log.read_text().splitlines()
    assert calls[:2] == [f"created 600 {env_file}", f"created 600 {proxy_env}"]
    assert proxy_env.read_text() == "CONFIGPROXY_AUTH_TOKEN=proxy-t0ken\n"
    assert stat.S_IMODE(proxy_env.stat().st_mode) == 0o600
    assert calls[2:] == [
        "systemctl",
        "enable",
        "jshub-proxy.service",
        "systemctl",
        "restart",
        "jshub-proxy.service",
        "systemctl",
        "enable",
        "jupyterhub.service",
        "systemctl",
        "restart",
        "jupyterhub.service",
    ]
    assert "s3cr3t" not in result.stdout + result.stderr + script
