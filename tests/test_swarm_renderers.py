"""What the swarm scenario's VMs and hub run: scripts through shellcheck and for real where
this machine can (the home script, with xfs_quota recorded), cloud-init through
`cloud-init schema`, and the hub config through Python and JupyterHub's own loader."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import pwd
import shlex
import shutil
import stat
import subprocess
import tempfile
import types
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml

from renderers import swarm_manager
from renderers.boot import boot_commands
from renderers.cloud_init import CADDY_MOUNT_DROPIN
from renderers.hub_config import HubConfigSpec
from renderers.scripts import render_data_volume_script
from renderers.swarm import (
    CADDY_STORAGE,
    CONTAINER_BLOCKED_V4,
    CONTAINER_BRIDGES,
    ManagerBootSpec,
    WorkerBootSpec,
    automount_unit,
    export_line,
    hub_image_tag,
    parse_user_home_output,
    render_manager_cloud_init,
    render_nfs_exports_script,
    render_node_firewall_script,
    render_node_ready_script,
    render_node_remove_script,
    render_notebook_isolation_script,
    render_swarm_init_script,
    render_swarm_join_script,
    render_user_home_script,
    render_worker_cloud_init,
)
from stackconfig import StackConfig
from tests.conftest import make_config, require_root, require_tool
from tests.hub_config_local import hub_config_text, settings_of
from tests.iptables_rules import Packet, tables

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPlaceholderKeyForTests jshub-deploy"
VOLUME_ID = "0b5e7f0e-1c1d-4b6a-9d9e-7f0e1c1d4b6a"


def swarm_config(**swarm: object):  # type: ignore[no-untyped-def]
    return make_config(scenario="swarm", swarm={"workerCount": 2, **swarm})


SCRIPTS = {
    "swarm-init": lambda: render_swarm_init_script("10.0.0.5"),
    "swarm-join": lambda: render_swarm_join_script("10.0.0.5"),
    "node-ready": lambda: render_node_ready_script("swarm-worker-0"),
    "node-remove": lambda: render_node_remove_script("swarm-worker-0"),
    "nfs-exports": lambda: render_nfs_exports_script(["10.0.0.7", "10.0.0.6"]),
    "user-home": lambda: render_user_home_script(),
    "node-firewall": lambda: render_node_firewall_script(),
    "notebook-isolation": lambda: render_notebook_isolation_script(),
    "xfs-volume": lambda: render_data_volume_script(
        VOLUME_ID, "/export", fs_type="xfs", mount_options="defaults,prjquota"
    ),
    "caddy-config": lambda: swarm_manager.render_caddy_config_script("hub.example.org", "a@example.org"),
    "host-key": lambda: swarm_manager.render_host_key_script(),
}


def _fake_docker(tmp_path: Path, state: str, managers: str) -> dict[str, str]:
    """`sudo`, `cloud-init` and `docker` stand-ins on PATH; docker logs its calls."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp_path / "docker.log"
    stubs = {
        "sudo": '#!/bin/sh\nexec "$@"\n',
        "cloud-init": "#!/bin/sh\nexit 0\n",
        "docker": (
            "#!/bin/bash\n"
            f'echo "$*" >>{log}\n'
            'if [[ "$1" == info && "$3" == *LocalNodeState* ]]; then echo ' + state + "; fi\n"
            'if [[ "$1" == info && "$3" == *RemoteManagers* ]]; then echo "' + managers + '"; fi\n'
        ),
    }
    for name, text in stubs.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin"}


@pytest.mark.parametrize(
    ("state", "managers", "expected"),
    [
        ("inactive", "", ["join"]),
        # Already in this manager's swarm: nothing to do.
        ("active", "mgr-old mgr-new ", []),
        # Still "active" in the swarm of a replaced manager: leave it, join the new one.
        ("active", "mgr-old ", ["leave", "join"]),
        ("pending", "mgr-old ", ["leave", "join"]),
    ],
)
def test_join_script_leaves_a_dead_swarm_and_joins_the_managers(
    state: str, managers: str, expected: list[str], tmp_path: Path
) -> None:
    bash = require_tool("bash", "runs the rendered join script")
    env = _fake_docker(tmp_path, state, managers)
    result = subprocess.run(
        [bash, "-c", render_swarm_join_script("10.0.0.5")],
        input="SWMTKN-1-abc\nmgr-new\n",
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    calls = (tmp_path / "docker.log").read_text().splitlines()
    swarm_calls = [c.split()[1] for c in calls if c.startswith("swarm ")]
    assert swarm_calls == expected
    if "join" in expected:
        assert "swarm join --token SWMTKN-1-abc 10.0.0.5:2377" in calls


def test_init_prints_the_token_then_the_managers_node_id() -> None:
    init = render_swarm_init_script("10.0.0.5")
    assert init.index("join-token --quiet worker") < init.index("{{.Swarm.NodeID}}")


def test_caddy_config_script_carries_the_name_and_email() -> None:
    script = swarm_manager.render_caddy_config_script("hub.example.org", "ops@example.org")
    assert "email ops@example.org" in script and "hub.example.org {" in script
    assert "reverse_proxy 127.0.0.1:8000" in script and "reload-or-restart caddy.service" in script


def test_docker_provider_trusts_only_the_pinned_host_key() -> None:
    opts = swarm_manager.docker_ssh_opts("203.0.113.5", KEY + "\n")
    pairs = dict(o.split("=", 1) for o in opts if o != "-o")
    assert pairs["StrictHostKeyChecking"] == "yes" and pairs["UserKnownHostsFile"] == "/dev/null"
    assert pairs["KnownHostsCommand"] == (
        "/bin/echo 203.0.113.5 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPlaceholderKeyForTests"
    )


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_scripts_are_shellcheck_clean(name: str, tmp_path: Path) -> None:
    shellcheck = require_tool("shellcheck", "lints every rendered shell script")
    script = tmp_path / f"{name}.sh"
    script.write_text(SCRIPTS[name]())
    result = subprocess.run([shellcheck, "--severity=style", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_worker_cloud_init_files_are_shellcheck_clean_too(tmp_path: Path) -> None:
    shellcheck = require_tool("shellcheck", "lints every rendered shell script")
    cloud = yaml.safe_load(
        render_manager_cloud_init(ManagerBootSpec("hub.example.org", "a@example.org", VOLUME_ID, KEY))
    )
    for item in cloud["write_files"]:
        if item["content"].startswith("#!/bin/bash"):
            path = tmp_path / Path(item["path"]).name
            path.write_text(item["content"])
            result = subprocess.run([shellcheck, str(path)], capture_output=True, text=True)
            assert result.returncode == 0, f"{item['path']}:\n{result.stdout}"


def test_xfs_volume_is_made_only_on_a_blank_disk_and_mounted_with_project_quotas() -> None:
    text = SCRIPTS["xfs-volume"]()
    # The guard itself runs against stub tools in tests/test_data_volume.py, for xfs too.
    assert 'mkfs.xfs -q -L "$label" "$device"' in text and 'elif [[ "$found_type" != xfs ]]' in text
    assert "$mount_point xfs defaults,prjquota,nofail" in text
    # The single-VM hub keeps ext4, unchanged.
    assert "mkfs.ext4" in render_data_volume_script(VOLUME_ID, "/data")


def test_exports_go_to_members_only() -> None:
    assert export_line("/export/home", ["10.0.0.7", "10.0.0.6", "10.0.0.7"]) == (
        "/export/home 10.0.0.6(rw,sync,no_subtree_check,root_squash) "
        "10.0.0.7(rw,sync,no_subtree_check,root_squash)"
    )
    with pytest.raises(ValueError, match="at least one member"):
        export_line("/export/home", [])
    with pytest.raises(ValueError):
        export_line("/export/home", ["0.0.0.0/0"])
    assert "*" not in render_nfs_exports_script(["10.0.0.6"])


def test_join_script_reads_the_token_from_stdin_only() -> None:
    text = render_swarm_join_script("10.0.0.5")
    assert "read -r token" in text
    assert 'docker swarm join --token "$token" "$manager_addr:2377"' in text
    assert "cloud-init status --wait" in text
    init = render_swarm_init_script("10.0.0.5")
    assert "docker swarm init --advertise-addr" in init and "join-token --quiet worker" in init


def test_node_removal_drains_before_removing() -> None:
    text = render_node_remove_script("swarm-worker-2")
    assert text.index("--availability drain") < text.index("docker node rm")
    assert "node=swarm-worker-2" in text


def write_stub(stubs: Path, name: str, log: Path, exit_code: int = 0) -> None:
    """A stand-in for `name` that records each call's arguments one per line, then `#end`: an
    argument split or joined by a quoting bug shows as a different list."""
    stubs.mkdir(exist_ok=True)
    stub = stubs / name
    stub.write_text(
        f"#!/bin/bash\nprintf '%s\\n' \"$@\" '#end' >>{shlex.quote(str(log))}\nexit {exit_code}\n"
    )
    stub.chmod(0o755)


def stub_calls(log: Path) -> list[list[str]]:
    calls: list[list[str]] = [[]]
    for line in log.read_text().splitlines() if log.exists() else []:
        if line == "#end":
            calls.append([])
        else:
            calls[-1].append(line)
    return calls[:-1]


def _run_home_script(
    tmp_path: Path, enforce: bool, *args: str
) -> tuple[subprocess.CompletedProcess[str], list[list[str]]]:
    require_root("the home script gives each home to a UID of its own (chown)")
    export = tmp_path / "export"
    (export / "home").mkdir(parents=True, exist_ok=True)
    stubs = tmp_path / "bin"
    log = tmp_path / "xfs_quota.log"
    write_stub(stubs, "xfs_quota", log)
    script = tmp_path / "jshub-user-home"
    script.write_text(render_user_home_script(str(export), enforce_quota=enforce))
    script.chmod(0o755)
    env = {"PATH": f"{stubs}:/usr/sbin:/usr/bin:/sbin:/bin"}
    result = subprocess.run([str(script), *args], capture_output=True, text=True, env=env)
    return result, stub_calls(log)


def test_home_script_gives_each_user_a_uid_and_sets_the_exact_quota_commands(tmp_path: Path) -> None:
    export = tmp_path / "export"
    first, calls = _run_home_script(tmp_path, True, "alice", "10")
    assert first.returncode == 0, first.stderr
    home = export / "home" / "alice"
    assert parse_user_home_output(first.stdout) == {"home": str(home), "uid": "10000", "gid": "100"}
    info = home.stat()
    assert stat.S_IMODE(info.st_mode) == 0o700 and (info.st_uid, info.st_gid) == (10000, 100)
    # The project ID is the user's UID; each -c command is one argument.
    assert calls == [
        ["-x", "-c", f"project -s -p {home} 10000", str(export)],
        ["-x", "-c", "limit -p bhard=10g 10000", str(export)],
    ]
    # A second user gets the next UID and project; a returning user keeps theirs, with a new quota.
    second, calls = _run_home_script(tmp_path, True, "bob", "5")
    assert parse_user_home_output(second.stdout)["uid"] == "10001"
    assert (export / "home" / "bob").stat().st_uid == 10001
    assert calls[-1] == ["-x", "-c", "limit -p bhard=5g 10001", str(export)]
    (home / "notes.txt").write_text("kept")
    os.chown(home / "notes.txt", 10000, 100)
    again, calls = _run_home_script(tmp_path, True, "alice", "50")
    assert parse_user_home_output(again.stdout)["uid"] == "10000"
    assert calls[-2:] == [
        ["-x", "-c", f"project -s -p {home} 10000", str(export)],
        ["-x", "-c", "limit -p bhard=50g 10000", str(export)],
    ]
    assert (home / "notes.txt").read_text() == "kept"
    assert (export / ".jshub-users").read_text() == "alice:10000\nbob:10001\n"


def test_home_script_gives_a_shared_uid_home_to_its_user_and_keeps_an_owner_when_the_list_is_lost(
    tmp_path: Path,
) -> None:
    export = tmp_path / "export"
    old = export / "home" / "carol"
    old.mkdir(parents=True)
    (old / "data.csv").write_text("1,2\n")
    for path in (old, old / "data.csv"):
        os.chown(path, 1000, 100)
    result, _ = _run_home_script(tmp_path, False, "carol", "10")
    assert result.returncode == 0, result.stderr
    assert parse_user_home_output(result.stdout)["uid"] == "10000"
    assert old.stat().st_uid == 10000 and (old / "data.csv").stat().st_uid == 10000
    assert stat.S_IMODE(old.stat().st_mode) == 0o700

    # The UID list is gone (restored from an old backup): a home keeps the UID that owns it.
    kept = export / "home" / "dave"
    kept.mkdir()
    os.chown(kept, 10042, 100)
    result, _ = _run_home_script(tmp_path, False, "dave", "10")
    assert parse_user_home_output(result.stdout)["uid"] == "10042"
    result, _ = _run_home_script(tmp_path, False, "erin", "10")
    assert parse_user_home_output(result.stdout)["uid"] == "10043"


def test_home_script_without_quotas_only_makes_the_home(tmp_path: Path) -> None:
    result, calls = _run_home_script(tmp_path, False, "carol", "10")
    assert result.returncode == 0, result.stderr
    assert calls == [] and (tmp_path / "export" / "home" / "carol").is_dir()


@pytest.mark.parametrize("args", [("../etc", "10"), ("alice", "0"), ("alice", "1.5"), ("alice",)])
def test_home_script_refuses_bad_arguments(tmp_path: Path, args: tuple[str, ...]) -> None:
    result, calls = _run_home_script(tmp_path, True, *args)
    assert result.returncode in (64, 65) and calls == []
    assert (
        not (tmp_path / "export" / ".jshub-users").exists()
        or not (tmp_path / "export" / ".jshub-users").read_text()
    )


def test_home_output_is_parsed_strictly() -> None:
    assert parse_user_home_output("noise\nhome=/h/a uid=10000 gid=100\n")["uid"] == "10000"
    for bad in ("home=/h/a uid=root gid=100", "home=/h/a uid=10000", "/h/a"):
        with pytest.raises(ValueError):
            parse_user_home_output(bad)


@pytest.mark.parametrize("which", ["manager", "worker"])
def test_cloud_init_passes_the_schema(which: str, tmp_path: Path) -> None:
    cloud_init = require_tool("cloud-init", "validates rendered user data")
    if which == "manager":
        text = render_manager_cloud_init(ManagerBootSpec("hub.example.org", "a@example.org", VOLUME_ID, KEY))
    else:
        text = render_worker_cloud_init(WorkerBootSpec("10.0.0.5", KEY))
    path = tmp_path / "user-data.yaml"
    path.write_text(text)
    result = subprocess.run(
        [cloud_init, "schema", "--config-file", str(path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_worker_mounts_the_managers_homes_over_nfs() -> None:
    cloud = yaml.safe_load(render_worker_cloud_init(WorkerBootSpec("10.0.0.5", KEY)))
    assert cloud["mounts"][0][:3] == ["10.0.0.5:/export/home", "/srv/jshub/home", "nfs4"]
    assert "docker.io" in cloud["packages"] and "nfs-common" in cloud["packages"]


def test_worker_starts_the_homes_automount_on_its_first_boot() -> None:
    # Found by booting a worker (tests/test_boot_vm.py): systemd had read fstab before cloud-init
    # wrote the homes' line, and `mount -a` found no export yet, so the homes stayed a local
    # folder of the worker. The first boot starts the automount unit of that mount point.
    cloud = yaml.safe_load(render_worker_cloud_init(WorkerBootSpec("10.0.0.5", KEY)))
    commands = [shlex.join(c) for c in cloud["runcmd"]]
    reload = next(i for i, c in enumerate(commands) if "systemctl daemon-reload" in c)
    start = next(i for i, c in enumerate(commands) if "systemctl start srv-jshub-home.automount" in c)
    assert reload < start, commands
    assert cloud["mounts"][0][1] == "/srv/jshub/home"


@pytest.mark.parametrize("path", ["/srv/jshub/home", "/srv/my-homes/a.b", "/mnt/.hidden/x y", "/srv/ü"])
def test_automount_unit_names_match_systemd_escape(path: str) -> None:
    tool = require_tool("systemd-escape", "names systemd's units for mount points")
    expected = subprocess.run(
        [tool, "--path", "--suffix=automount", path], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert automount_unit(path) == expected


def test_swarm_hub_config_uses_swarmspawner_with_limits_homes_and_images() -> None:
    cfg = swarm_config(homeQuotaOverrides={"alice": 50}, allowedImages=["example.org/a:1", "example.org/b:2"])
    spec = HubConfigSpec.from_config(cfg)
    settings = settings_of(spec)
    hub, swarm, spawner = settings["JupyterHub"], settings["SwarmSpawner"], settings["Spawner"]
    assert hub["spawner_class"] == "dockerspawner.SwarmSpawner"
    assert swarm["network_name"] == "jshub"
    assert swarm["allowed_images"] == ["example.org/a:1", "example.org/b:2"]
    assert swarm["volumes"] == {
        "/srv/jshub/home/{raw_username}": "/home/jovyan",
        "/srv/jshub/home/.shared": {"bind": "/srv/shared", "mode": "ro"},
    }
    # In this order through the settings file: the home is the notebook's first mount.
    assert list(swarm["volumes"]) == ["/srv/jshub/home/{raw_username}", "/srv/jshub/home/.shared"]
    assert (spawner["mem_limit"], spawner["mem_guarantee"], spawner["cpu_guarantee"]) == (
        "1024M",
        "512M",
        0.5,
    )
    hook = spawner["pre_spawn_hook"]
    assert hook["$call"] == "jshub_swarm.prepare_home"
    assert hook["kwargs"]["quota_overrides"] == {"alice": 50}
    assert hook["kwargs"]["enforce_quota"] is True
    assert hook["kwargs"]["hub_image"] == hub_image_tag()
    # The hub's API stays on loopback in its container; notebooks reach it through the proxy.
    assert hub["hub_bind_url"] == hub["hub_connect_url"] == "http://127.0.0.1:8081"
    assert swarm["hub_connect_url"] == "http://jshub-hub:8000"
    assert swarm["port"] == 8888
    assert swarm["extra_container_spec"] == {"labels": {"jshub.role": "notebook"}}
    assert hub["authenticator_class"] == "oauthenticator.github.GitHubOAuthenticator"
    assert swarm["extra_placement_spec"] == {"constraints": ["node.labels.jshub.notebooks==true"]}
    assert "jupyterhub_idle_culler" in hub["services"][0]["command"]
    assert "extra_endpoint_spec" not in swarm  # production keeps swarm's VIP endpoints
    assert "LocalAuthenticator" not in settings and "SystemdSpawner" not in settings
    assert "post_auth_hook" not in settings["Authenticator"]


def test_single_hub_config_still_runs_servers_on_the_hub_vm() -> None:
    settings = settings_of(HubConfigSpec.from_config(make_config()))
    assert settings["JupyterHub"]["spawner_class"] == "systemdspawner.SystemdSpawner"
    assert settings["JupyterHub"]["authenticator_class"] == "oauthenticator.github.LocalGitHubOAuthenticator"
    assert "SwarmSpawner" not in settings
    # On a hub VM the proxy is a service of its own (jshub-proxy.service).
    assert settings["ConfigurableHTTPProxy"] == {"should_start": False, "api_url": "http://127.0.0.1:8001"}


@pytest.mark.parametrize(
    "path", ["tests/services/dockerd.sh", "tests/services/base-image.sh", "hub/swarm/entrypoint.sh"]
)
def test_fixed_scripts_are_shellcheck_clean(path: str) -> None:
    shellcheck = require_tool("shellcheck", "lints every shell script")
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run([shellcheck, str(root / path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_entrypoint_turns_secret_files_into_the_environment(tmp_path: Path) -> None:
    # The same loop the image runs, pointed at a scratch folder instead of /run/secrets.
    root = Path(__file__).resolve().parent.parent
    text = (root / "hub/swarm/entrypoint.sh").read_text().replace("/run/secrets", str(tmp_path))
    (tmp_path / "oauth_client_secret").write_text("s3cret")
    (tmp_path / "jshub_admin_token").write_text("t0ken")
    script = tmp_path / "entrypoint.sh"
    script.write_text(text)
    result = subprocess.run(
        ["bash", str(script), "sh", "-c", 'echo "$OAUTH_CLIENT_SECRET $JSHUB_ADMIN_TOKEN"'],
        capture_output=True,
        text=True,
    )
    assert result.stdout.strip() == "s3cret t0ken", result.stderr


def _manager_stubs(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """`sudo` (as the caller, with `install -o root` tolerated), `cloud-init` and `systemctl`
    stand-ins; systemctl logs what it is asked to do."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp_path / "systemctl.log"
    stubs = {
        "sudo": '#!/bin/bash\nif [[ "$1" == install ]]; then shift; exec install -m 0600 "${@: -2}"; fi\nexec "$@"\n',
        "cloud-init": "#!/bin/sh\nexit 0\n",
        "systemctl": f'#!/bin/sh\necho "$*" >>{log}\n',
    }
    for name, text in stubs.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin"}, log


def test_host_key_script_installs_the_stacks_key_and_restarts_sshd_once(tmp_path: Path) -> None:
    bash = require_tool("bash", "runs the rendered host-key script")
    keygen = require_tool("ssh-keygen", "makes the key the script installs")
    key = tmp_path / "given"
    subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    target = tmp_path / "ssh_host_ed25519_key"
    script = swarm_manager.render_host_key_script().replace(swarm_manager.HOST_KEY, str(target))
    env, log = _manager_stubs(tmp_path)
    for _ in range(2):
        result = subprocess.run(
            [bash, "-c", script], input=key.read_text(), capture_output=True, text=True, env=env
        )
        assert result.returncode == 0, result.stderr
    assert target.read_text() == key.read_text()
    assert (tmp_path / "ssh_host_ed25519_key.pub").read_text().split()[:2] == (
        (tmp_path / "given.pub").read_text().split()[:2]
    )
    # The second run finds the same key: sshd is not restarted again.
    assert log.read_text().splitlines() == ["restart ssh.service"]
    assert "ED25519" in result.stdout


def _caddy_script(tmp_path: Path, email: str) -> tuple[str, dict[str, Path]]:
    """The rendered Caddy script with its system paths moved under tmp_path."""
    paths = {
        "caddyfile": tmp_path / "Caddyfile",
        "storage": tmp_path / "export" / "caddy",
        "default": tmp_path / "var-lib-caddy",
        "dropin": tmp_path / "caddy.service.d" / "jshub-data-volume.conf",
    }
    script = swarm_manager.render_caddy_config_script("hub.example.org", email)
    script = script.replace(swarm_manager.CADDYFILE, str(paths["caddyfile"]))
    script = script.replace(CADDY_STORAGE, str(paths["storage"]))
    script = script.replace(swarm_manager.CADDY_DEFAULT_STORAGE, str(paths["default"]))
    script = script.replace(CADDY_MOUNT_DROPIN, str(paths["dropin"]))
    return script, paths


def test_caddy_script_writes_the_new_config_and_reloads_only_on_change(tmp_path: Path) -> None:
    bash = require_tool("bash", "runs the rendered Caddy script")
    require_tool("caddy", "its package makes the caddy user the script gives the storage to")
    env, log = _manager_stubs(tmp_path)
    for email in ("a@example.org", "a@example.org", "b@example.org"):
        script, paths = _caddy_script(tmp_path, email)
        result = subprocess.run([bash, "-c", script], capture_output=True, text=True, env=env)
        assert result.returncode == 0, result.stderr
        caddyfile = paths["caddyfile"].read_text()
        assert f"email {email}" in caddyfile
        assert f"storage file_system {paths['storage']}" in caddyfile
    # The mount ordering is written once; Caddy reloads for the first config and the new e-mail.
    assert log.read_text().splitlines() == ["daemon-reload"] + ["reload-or-restart caddy.service"] * 2
    assert paths["dropin"].read_text() == "[Unit]\nRequiresMountsFor=/export\n"
    storage = paths["storage"].stat()
    assert pwd.getpwuid(storage.st_uid).pw_name == "caddy" and stat.S_IMODE(storage.st_mode) == 0o700


def test_caddy_keeps_its_certificates_across_the_move_and_a_rebuild(tmp_path: Path) -> None:
    """A manager deployed when Caddy kept its state on the root disk: the first run after the
    upgrade carries the account and certificate to the volume; a rebuilt manager (a fresh root
    disk, the same volume) finds them there and Let's Encrypt is not asked again."""
    bash = require_tool("bash", "runs the rendered Caddy script")
    require_tool("caddy", "its package makes the caddy user the script gives the storage to")
    env, log = _manager_stubs(tmp_path)
    script, paths = _caddy_script(tmp_path, "a@example.org")
    cert = Path("certificates/acme-v02.api.letsencrypt.org-directory/hub.example.org/hub.example.org.crt")
    (paths["default"] / cert).parent.mkdir(parents=True)
    (paths["default"] / cert).write_text("the issued certificate\n")
    paths["caddyfile"].write_text("an older config, storage on the root disk\n")

    result = subprocess.run([bash, "-c", script], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert (paths["storage"] / cert).read_text() == "the issued certificate\n"
    assert pwd.getpwuid((paths["storage"] / cert).stat().st_uid).pw_name == "caddy"

    # The rebuild: the root disk's state is gone (the old place and the config), the volume stays.
    shutil.rmtree(paths["default"])
    paths["caddyfile"].unlink()
    paths["dropin"].unlink()
    result = subprocess.run([bash, "-c", script], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert (paths["storage"] / cert).read_text() == "the issued certificate\n"
    assert f"storage file_system {paths['storage']}" in paths["caddyfile"].read_text()
    assert log.read_text().splitlines().count("reload-or-restart caddy.service") == 2


class _FakeContainers:
    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.calls: list[tuple[tuple[object, ...], dict[str, object]]] = []

    def run(self, *args: object, **kwargs: object) -> bytes:
        self.calls.append((args, kwargs))
        return self.answer


_PATCHES: list[Any] = []


@pytest.fixture(autouse=True)
def _stop_docker_stand_ins() -> Any:
    yield
    while _PATCHES:
        _PATCHES.pop().stop()


def _load_swarm_hub_config(cfg: StackConfig, answer: bytes) -> tuple[Any, _FakeContainers]:
    """Execute the rendered jupyterhub_config.py as JupyterHub would, with a stand-in for the
    Docker client its pre-spawn hook uses."""
    from traitlets.config import Config

    containers = _FakeContainers(answer)
    client = types.SimpleNamespace(containers=containers, close=lambda: None)
    with tempfile.TemporaryDirectory() as folder, pytest.MonkeyPatch.context() as patch:
        text = hub_config_text(HubConfigSpec.from_config(cfg), Path(folder))
        for key, value in {"OAUTH_CLIENT_SECRET": "x", "JSHUB_ADMIN_TOKEN": "y"}.items():
            patch.setenv(key, value)
        config = Config()
        exec(
            compile(text, "jupyterhub_config.py", "exec"),
            {"get_config": lambda: config, "__file__": f"{folder}/jupyterhub_config.py"},
        )
    # The hook's Docker client is made at each call: a stand-in from now on.
    patcher = mock.patch("docker.from_env", lambda: client)
    patcher.start()
    _PATCHES.append(patcher)
    return config, containers


def _spawner(name: str, spec: dict[str, Any], volumes: Any = None, admin: bool = False) -> Any:
    return types.SimpleNamespace(
        user=types.SimpleNamespace(name=name, admin=admin),
        extra_container_spec=dict(spec),
        volumes=dict(volumes or {}),
    )


def _home_calls(containers: _FakeContainers) -> list[tuple[tuple[object, ...], dict[str, object]]]:
    return [c for c in containers.calls if c[0][1][0] == "/usr/local/sbin/jshub-user-home"]  # type: ignore[index]


def test_pre_spawn_applies_the_users_quota_override_and_runs_the_notebook_as_their_uid() -> None:
    cfg = swarm_config(homeQuotaGb=10, homeQuotaOverrides={"alice": 50})
    config, containers = _load_swarm_hub_config(cfg, b"home=/export/home/alice uid=10007 gid=100\n")
    hook = config.Spawner.pre_spawn_hook
    base = config.SwarmSpawner.extra_container_spec
    assert base == {"labels": {"jshub.role": "notebook"}}

    alice = _spawner("alice", base, config.SwarmSpawner.volumes)
    asyncio.run(hook(alice))
    (args, kwargs) = _home_calls(containers)[-1]
    assert args[1] == ["/usr/local/sbin/jshub-user-home", "alice", "50"]
    assert kwargs["privileged"] is True and kwargs["network_mode"] == "none"
    assert alice.extra_container_spec == {"labels": {"jshub.role": "notebook"}, "user": "10007:100"}

    bob = _spawner("bob", base, config.SwarmSpawner.volumes)
    asyncio.run(hook(bob))
    assert _home_calls(containers)[-1][0][1] == ["/usr/local/sbin/jshub-user-home", "bob", "10"]


def test_pre_spawn_mounts_the_shared_folder_read_write_with_its_group_for_admins_only() -> None:
    config, containers = _load_swarm_hub_config(
        swarm_config(), b"home=/export/home/alice uid=10007 gid=100\n"
    )
    hook = config.Spawner.pre_spawn_hook
    shared = "/srv/jshub/home/.shared"
    assert config.SwarmSpawner.volumes[shared] == {"bind": "/srv/shared", "mode": "ro"}

    alice = _spawner(
        "alice", config.SwarmSpawner.extra_container_spec, config.SwarmSpawner.volumes, admin=True
    )
    asyncio.run(hook(alice))
    # The folder and alice's ~/shared link are made on the manager's volume, unprivileged.
    (args, kwargs) = containers.calls[-1]
    command = args[1]
    assert command[:2] == ["/bin/sh", "-c"]  # type: ignore[index]
    assert command[3:] == [  # type: ignore[index]
        "sh",
        "9999",
        "/export/home/.shared",
        "/export/home/alice/shared",
        "/srv/shared",
        "10007",
        "100",
    ]
    assert "privileged" not in kwargs and kwargs["network_mode"] == "none"
    assert alice.volumes[shared] == {"bind": "/srv/shared", "mode": "rw"}
    assert alice.extra_container_spec["groups"] == ["9999"]
    assert alice.volumes["/srv/jshub/home/{raw_username}"] == "/home/jovyan"

    # Demoted: the same spawner's next start reads only, without the group.
    alice.user.admin = False
    asyncio.run(hook(alice))
    assert alice.volumes[shared] == {"bind": "/srv/shared", "mode": "ro"}
    assert "groups" not in alice.extra_container_spec


def test_swarm_hub_without_the_shared_folder_mounts_only_homes() -> None:
    config, containers = _load_swarm_hub_config(
        make_config(scenario="swarm", swarm={"workerCount": 2}, sharedFolder=False),
        b"home=/export/home/alice uid=10007 gid=100\n",
    )
    assert config.SwarmSpawner.volumes == {"/srv/jshub/home/{raw_username}": "/home/jovyan"}
    alice = _spawner(
        "alice", config.SwarmSpawner.extra_container_spec, config.SwarmSpawner.volumes, admin=True
    )
    asyncio.run(config.Spawner.pre_spawn_hook(alice))
    assert len(containers.calls) == 1 and "groups" not in alice.extra_container_spec


@pytest.mark.parametrize(
    "answer",
    [b"home=/export/home/alice uid=0 gid=100\n", b"home=/export/home/alice uid=1000 gid=100\n", b"oops\n"],
)
def test_pre_spawn_refuses_root_a_shared_uid_or_an_unreadable_answer(answer: bytes) -> None:
    config, _ = _load_swarm_hub_config(swarm_config(), answer)
    spawner = _spawner("alice", config.SwarmSpawner.extra_container_spec)
    with pytest.raises((RuntimeError, ValueError)):
        asyncio.run(config.Spawner.pre_spawn_hook(spawner))
    assert "user" not in spawner.extra_container_spec


def _run_firewall(tmp_path: Path, action: str) -> list[list[str]]:
    stubs = tmp_path / "bin"
    log = tmp_path / "iptables.log"
    log.unlink(missing_ok=True)
    # `-C` (is the jump there?) answers no, as on a fresh node.
    stubs.mkdir(exist_ok=True)
    for tool in ("iptables", "ip6tables"):
        stub = stubs / tool
        stub.write_text(
            "#!/bin/bash\n"
            f"printf '%s\\n' {tool} \"$@\" '#end' >>{shlex.quote(str(log))}\n"
            'for arg in "$@"; do [[ "$arg" == -C || "$arg" == -D ]] && exit 1; done\nexit 0\n'
        )
        stub.chmod(0o755)
    script = tmp_path / "jshub-node-firewall"
    script.write_text(render_node_firewall_script())
    result = subprocess.run(
        ["bash", str(script), action],
        capture_output=True,
        text=True,
        env={"PATH": f"{stubs}:/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    return stub_calls(log)


def test_node_firewall_rejects_private_ranges_and_the_node_itself_for_containers(tmp_path: Path) -> None:
    calls = _run_firewall(tmp_path, "start")
    v4 = [c[1:] for c in calls if c[0] == "iptables"]
    chain = [c[2:] for c in v4 if c[:2] == ["-w", "-A"] and c[2] == "JSHUB-CONTAINERS"]
    assert chain[0] == [
        "JSHUB-CONTAINERS",
        "-m",
        "conntrack",
        "--ctstate",
        "ESTABLISHED,RELATED",
        "-j",
        "RETURN",
    ]
    for net in ("169.254.0.0/16", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"):
        assert [
            "JSHUB-CONTAINERS",
            "-d",
            net,
            "-p",
            "tcp",
            "-j",
            "REJECT",
            "--reject-with",
            "tcp-reset",
        ] in chain
    # Name resolution is allowed before any reject.
    dns = chain.index(["JSHUB-CONTAINERS", "-p", "udp", "--dport", "53", "-j", "RETURN"])
    first_reject = next(i for i, rule in enumerate(chain) if "REJECT" in rule)
    assert dns < first_reject and chain[-1] == ["JSHUB-CONTAINERS", "-j", "RETURN"]
    node = [c[2:] for c in v4 if c[:2] == ["-w", "-A"] and c[2] == "JSHUB-CONTAINERS-NODE"]
    assert node[-1] == ["JSHUB-CONTAINERS-NODE", "-j", "REJECT", "--reject-with", "icmp-port-unreachable"]
    for bridge in ("docker_gwbridge", "docker0"):
        assert ["-w", "-I", "DOCKER-USER", "1", "-i", bridge, "-j", "JSHUB-CONTAINERS"] in v4
        assert ["-w", "-I", "INPUT", "1", "-i", bridge, "-j", "JSHUB-CONTAINERS-NODE"] in v4
    v6 = [c[1:] for c in calls if c[0] == "ip6tables"]
    assert ["-w", "-I", "FORWARD", "1", "-i", "docker_gwbridge", "-j", "JSHUB-CONTAINERS"] in v6

    stop = _run_firewall(tmp_path, "stop")
    assert ["iptables", "-w", "-X", "JSHUB-CONTAINERS"] in stop
    assert ["iptables", "-w", "-D", "DOCKER-USER", "-i", "docker_gwbridge", "-j", "JSHUB-CONTAINERS"] in stop


# What crosses a node between containers and the cluster besides TCP: VXLAN (4789), swarm
# gossip (7946), the portmapper and NFS (111, 2049), and a plain HTTP port.
UDP_PORTS = (4789, 7946, 111, 2049, 80)


def _hosts(net: str) -> list[str]:
    network = ipaddress.ip_network(net)
    hosts = [str(network.network_address + 1), str(network.broadcast_address - 1)]
    return hosts + (
        ["169.254.169.254"] if network.overlaps(ipaddress.ip_network("169.254.169.254/32")) else []
    )


def test_node_firewall_rejects_udp_and_icmp_to_every_blocked_range_as_well_as_tcp(tmp_path: Path) -> None:
    """The rules the rendered script leaves behind, walked as the kernel walks them: a container
    opens nothing in a blocked range, whatever the protocol (UDP to the metadata service, VXLAN,
    swarm gossip, NFS), and nothing on the node itself; name resolution, the Internet and
    replies still pass."""
    rules = tables(_run_firewall(tmp_path, "start"))
    v4, v6 = rules["iptables"], rules["ip6tables"]
    for bridge in CONTAINER_BRIDGES:
        for net in CONTAINER_BLOCKED_V4:
            for host in _hosts(net):
                for port in UDP_PORTS:
                    packet = Packet("udp", host, dport=port, iface=bridge)
                    assert v4.verdict("DOCKER-USER", packet) == "REJECT", packet
                assert v4.verdict("DOCKER-USER", Packet("icmp", host, iface=bridge)) == "REJECT", host
                assert v4.verdict("DOCKER-USER", Packet("tcp", host, dport=443, iface=bridge)) == "REJECT"
                assert v4.verdict("DOCKER-USER", Packet("udp", host, dport=53, iface=bridge)) is None
                reply = Packet("udp", host, dport=7946, iface=bridge, state="ESTABLISHED")
                assert v4.verdict("DOCKER-USER", reply) is None
        # The node's own addresses, whichever they are: INPUT from a bridge.
        for proto, port in (("udp", 7946), ("udp", 4789), ("icmp", None), ("tcp", 22)):
            packet = Packet(proto, "10.0.0.5", dport=port, iface=bridge)
            assert v4.verdict("INPUT", packet) == "REJECT", packet
        for proto in ("udp", "tcp", "icmp"):
            assert v4.verdict("DOCKER-USER", Packet(proto, "198.51.100.7", dport=443, iface=bridge)) is None
    # Traffic that does not come from a container's bridge is not the firewall's business.
    assert v4.verdict("DOCKER-USER", Packet("udp", "10.0.0.7", dport=7946, iface="ens3")) is None
    assert v4.verdict("INPUT", Packet("udp", "10.0.0.5", dport=7946, iface="ens3")) is None
    for chain in ("FORWARD", "INPUT"):
        for proto in ("udp", "tcp", "icmp"):
            packet = Packet(proto, "fe80::a9fe:a9fe", src="fe80::2", dport=80, iface="docker_gwbridge")
            assert v6.verdict(chain, packet) == "REJECT", (chain, packet)


def test_every_node_runs_the_firewall_and_the_notebook_isolation_agent() -> None:
    manager = yaml.safe_load(
        render_manager_cloud_init(ManagerBootSpec("hub.example.org", "a@example.org", VOLUME_ID, KEY))
    )
    worker = yaml.safe_load(render_worker_cloud_init(WorkerBootSpec("10.0.0.5", KEY)))
    for cloud in (manager, worker):
        files = {f["path"]: f for f in cloud["write_files"]}
        assert files["/usr/local/sbin/jshub-node-firewall"]["permissions"] == "0755"
        assert files["/usr/local/sbin/jshub-notebook-isolation"]["permissions"] == "0755"
        unit = files["/etc/systemd/system/jshub-node-firewall.service"]["content"]
        assert (
            "ExecStart=/usr/local/sbin/jshub-node-firewall start" in unit and "After=docker.service" in unit
        )
        agent = files["/etc/systemd/system/jshub-notebook-isolation.service"]["content"]
        assert "Restart=always" in agent
        assert [
            "systemctl",
            "enable",
            "--now",
            "jshub-node-firewall.service",
            "jshub-notebook-isolation.service",
        ] in boot_commands(cloud["runcmd"])


def test_isolation_agent_admits_only_the_proxy_port_out_and_the_server_port_in() -> None:
    text = render_notebook_isolation_script()
    assert "label=jshub.role=notebook" in text and "network=jshub" in text
    assert "proxy_port=8000" in text and "notebook_port=8888" in text
    assert 'ns -A JSHUB-OUT -d "$subnet" -p tcp --dport "$proxy_port" -j RETURN' in text
    assert 'ns -A JSHUB-IN -s "$subnet" -p tcp --dport "$notebook_port" -j RETURN' in text
    # Events since before the sweep of running containers: none starts unseen.
    assert text.index("since=$(date +%s)") < text.index("docker ps --quiet") < text.index('--since "$since"')


def _run_isolation_agent(tmp_path: Path, failing_rule: str | None) -> tuple[list[list[str]], str]:
    """The rendered agent against stand-ins: Docker reports one running notebook (PID 4242) on
    the overlay 10.0.1.0/24, then no more events; nsenter records each call and fails on the
    rule containing `failing_rule`."""
    stubs = tmp_path / "bin"
    stubs.mkdir(exist_ok=True)
    log = tmp_path / "calls.log"
    quoted = shlex.quote(str(log))
    (stubs / "docker").write_text(
        "#!/bin/bash\n"
        f"printf '%s\\n' docker \"$@\" '#end' >>{quoted}\n"
        'case "$1" in\n'
        "  ps) echo abc123 ;;\n"
        "  inspect) echo 4242 ;;\n"
        "  network) echo '10.0.1.0/24 ' ;;\n"
        "esac\n"
    )
    fail = f'[[ "$*" == *{shlex.quote(failing_rule)}* ]] && exit 1\n' if failing_rule else ""
    (stubs / "nsenter").write_text(
        "#!/bin/bash\n"
        f"printf '%s\\n' nsenter \"$@\" '#end' >>{quoted}\n"
        # `-N` and `-C` answer: no such chain or rule yet.
        'for arg in "$@"; do [[ "$arg" == -N ]] && exit 0; [[ "$arg" == -C ]] && exit 1; done\n'
        f"{fail}exit 0\n"
    )
    for tool in ("docker", "nsenter"):
        (stubs / tool).chmod(0o755)
    script = tmp_path / "agent.sh"
    script.write_text(render_notebook_isolation_script())
    result = subprocess.run(
        ["bash", str(script)],
        capture_output=True,
        text=True,
        env={"PATH": f"{stubs}:/usr/bin:/bin"},
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    return stub_calls(log), result.stdout + result.stderr


def test_isolation_agent_sets_the_rules_in_the_notebooks_namespace(tmp_path: Path) -> None:
    calls, output = _run_isolation_agent(tmp_path, None)
    prefix = ["nsenter", "--target", "4242", "--net", "--", "iptables", "-w"]
    rules = [c[len(prefix) :] for c in calls if c[: len(prefix)] == prefix]
    assert ["-A", "JSHUB-OUT", "-d", "10.0.1.0/24", "-p", "tcp", "--dport", "8000", "-j", "RETURN"] in rules
    assert ["-A", "JSHUB-IN", "-s", "10.0.1.0/24", "-p", "tcp", "--dport", "8888", "-j", "RETURN"] in rules
    assert ["-I", "OUTPUT", "1", "-j", "JSHUB-OUT"] in rules and [
        "-I",
        "INPUT",
        "1",
        "-j",
        "JSHUB-IN",
    ] in rules
    # The chains are complete before they are hooked in.
    last_rule = max(i for i, rule in enumerate(rules) if rule[0] == "-A")
    assert rules.index(["-I", "OUTPUT", "1", "-j", "JSHUB-OUT"]) > last_rule
    assert next(c for c in calls if c[:2] == ["docker", "events"])[:3] == ["docker", "events", "--since"]
    assert not any(c[:2] == ["docker", "kill"] for c in calls)
    assert "isolated notebook container abc123" in output


def test_isolation_agent_rejects_udp_and_icmp_between_notebooks_as_well_as_tcp(tmp_path: Path) -> None:
    """The rules left in a notebook's namespace, walked as the kernel walks them: on the overlay
    (10.0.1.0/24) a notebook reaches only the hub's proxy port over TCP, and accepts only TCP to
    its server port; every other packet to or from another notebook is rejected, UDP and ICMP
    included. Beyond the overlay (the node firewall's part) it is not in the way."""
    calls, _ = _run_isolation_agent(tmp_path, None)
    table = tables(calls, ("nsenter", "--target", "4242", "--net", "--"))["iptables"]
    peer, me = "10.0.1.7", "10.0.1.9"
    for proto, port in [("udp", p) for p in (*UDP_PORTS, 8000, 8888, 53)] + [("icmp", None), ("tcp", 8888)]:
        out = Packet(proto, peer, src=me, dport=port, iface="eth0")
        assert table.verdict("OUTPUT", out) == "REJECT", out
        if (proto, port) != ("tcp", 8888):
            inbound = Packet(proto, me, src=peer, dport=port, iface="eth0")
            assert table.verdict("INPUT", inbound) == "REJECT", inbound
    assert table.verdict("OUTPUT", Packet("tcp", "10.0.1.2", src=me, dport=8000, iface="eth0")) is None
    assert table.verdict("INPUT", Packet("tcp", me, src="10.0.1.2", dport=8888, iface="eth0")) is None
    for state in ("ESTABLISHED", "RELATED"):
        assert table.verdict("OUTPUT", Packet("udp", peer, src=me, dport=7946, state=state)) is None
    assert table.verdict("OUTPUT", Packet("udp", "198.51.100.7", src=me, dport=443, iface="eth1")) is None


@pytest.mark.parametrize("failing", ["--dport 8000", "-I INPUT"])
def test_isolation_agent_kills_a_notebook_it_cannot_isolate(tmp_path: Path, failing: str) -> None:
    calls, output = _run_isolation_agent(tmp_path, failing)
    assert ["docker", "kill", "abc123"] in calls
    assert "could not isolate notebook container abc123" in output
    assert "isolated notebook container" not in output.replace("could not isolate notebook container", "")
