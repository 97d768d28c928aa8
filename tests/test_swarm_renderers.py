"""What the swarm scenario's VMs and hub run: scripts through shellcheck and for real where
this machine can (the home script, with xfs_quota recorded), cloud-init through
`cloud-init schema`, and the hub config through Python and JupyterHub's own loader."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from renderers import swarm_manager
from renderers.hub_config import HubConfigSpec, render_jupyterhub_config
from renderers.scripts import render_data_volume_script
from renderers.swarm import (
    ManagerBootSpec,
    WorkerBootSpec,
    export_line,
    hub_image_tag,
    render_manager_cloud_init,
    render_nfs_exports_script,
    render_node_ready_script,
    render_node_remove_script,
    render_swarm_init_script,
    render_swarm_join_script,
    render_user_home_script,
    render_worker_cloud_init,
)
from tests.conftest import make_config, require_tool

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


def _run_home_script(
    tmp_path: Path, enforce: bool, *args: str
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    export = tmp_path / "export"
    (export / "home").mkdir(parents=True, exist_ok=True)
    stubs = tmp_path / "bin"
    stubs.mkdir(exist_ok=True)
    log = tmp_path / "xfs_quota.log"
    stub = stubs / "xfs_quota"
    stub.write_text(f'#!/bin/bash\nprintf "%s\\n" "$*" >>{log}\n')
    stub.chmod(0o755)
    script = tmp_path / "jshub-user-home"
    script.write_text(
        render_user_home_script(str(export), enforce_quota=enforce, owner=(os.getuid(), os.getgid()))
    )
    script.chmod(0o755)
    env = {"PATH": f"{stubs}:/usr/bin:/bin"}
    result = subprocess.run([str(script), *args], capture_output=True, text=True, env=env)
    calls = log.read_text().splitlines() if log.exists() else []
    return result, calls


def test_home_script_creates_the_home_and_sets_the_exact_quota_commands(tmp_path: Path) -> None:
    export = tmp_path / "export"
    first, calls = _run_home_script(tmp_path, True, "alice", "10")
    assert first.returncode == 0, first.stderr
    home = export / "home" / "alice"
    assert first.stdout.strip() == str(home)
    info = home.stat()
    assert stat.S_IMODE(info.st_mode) == 0o700 and info.st_uid == os.getuid()
    assert calls == [
        f"-x -c project -s -p {home} 1000 {export}",
        f"-x -c limit -p bhard=10g 1000 {export}",
    ]
    # A second user gets the next project; a returning user keeps theirs, with a new quota.
    _, calls = _run_home_script(tmp_path, True, "bob", "5")
    assert calls[-1] == f"-x -c limit -p bhard=5g 1001 {export}"
    (home / "notes.txt").write_text("kept")
    _, calls = _run_home_script(tmp_path, True, "alice", "50")
    assert calls[-2:] == [
        f"-x -c project -s -p {home} 1000 {export}",
        f"-x -c limit -p bhard=50g 1000 {export}",
    ]
    assert (home / "notes.txt").read_text() == "kept"
    assert (export / ".jshub-projects").read_text() == "alice:1000\nbob:1001\n"


def test_home_script_without_quotas_only_makes_the_home(tmp_path: Path) -> None:
    result, calls = _run_home_script(tmp_path, False, "carol", "10")
    assert result.returncode == 0, result.stderr
    assert calls == [] and (tmp_path / "export" / "home" / "carol").is_dir()


@pytest.mark.parametrize("args", [("../etc", "10"), ("alice", "0"), ("alice", "1.5"), ("alice",)])
def test_home_script_refuses_bad_arguments(tmp_path: Path, args: tuple[str, ...]) -> None:
    result, calls = _run_home_script(tmp_path, True, *args)
    assert result.returncode in (64, 65) and calls == []


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


def test_swarm_hub_config_uses_swarmspawner_with_limits_homes_and_images() -> None:
    cfg = swarm_config(homeQuotaOverrides={"alice": 50}, allowedImages=["example.org/a:1", "example.org/b:2"])
    spec = HubConfigSpec.from_config(cfg)
    text = render_jupyterhub_config(spec)
    compile(text, "jupyterhub_config.py", "exec")
    for line in (
        'c.JupyterHub.spawner_class = "dockerspawner.SwarmSpawner"',
        "c.SwarmSpawner.network_name = 'jshub'",
        "c.SwarmSpawner.allowed_images = ['example.org/a:1', 'example.org/b:2']",
        "c.SwarmSpawner.volumes = {'/srv/jshub/home/{raw_username}': '/home/jovyan'}",
        "c.Spawner.mem_limit = '1024M'",
        "c.Spawner.mem_guarantee = '512M'",
        "c.Spawner.cpu_guarantee = 0.5",
        "_HOME_QUOTA_OVERRIDES = {'alice': 50}",
        "c.JupyterHub.hub_connect_url = 'http://jshub-hub:8081'",
        'c.JupyterHub.authenticator_class = "oauthenticator.github.GitHubOAuthenticator"',
        "c.SwarmSpawner.extra_placement_spec = {\"constraints\": ['node.labels.jshub.notebooks==true']}",
        "jupyterhub_idle_culler",
        "privileged=True,",
    ):
        assert line in text, line
    assert hub_image_tag() in text
    assert "extra_endpoint_spec" not in text  # production keeps swarm's VIP endpoints
    assert "add_user_cmd" not in text and "LocalProcessSpawner" not in text


def test_single_hub_config_still_uses_local_processes() -> None:
    text = render_jupyterhub_config(HubConfigSpec.from_config(make_config()))
    assert 'c.JupyterHub.spawner_class = "jupyterhub.spawner.LocalProcessSpawner"' in text
    assert "LocalGitHubOAuthenticator" in text and "SwarmSpawner" not in text
    # On a hub VM the proxy is a service of its own (jshub-proxy.service).
    assert "c.ConfigurableHTTPProxy.should_start = False" in text and "pid_file" not in text


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


def test_caddy_script_writes_the_new_config_and_reloads_only_on_change(tmp_path: Path) -> None:
    bash = require_tool("bash", "runs the rendered Caddy script")
    caddyfile = tmp_path / "Caddyfile"
    caddyfile.write_text("old\n")
    env, log = _manager_stubs(tmp_path)
    for email in ("a@example.org", "a@example.org", "b@example.org"):
        script = swarm_manager.render_caddy_config_script("hub.example.org", email)
        script = script.replace(swarm_manager.CADDYFILE, str(caddyfile))
        result = subprocess.run([bash, "-c", script], capture_output=True, text=True, env=env)
        assert result.returncode == 0, result.stderr
        assert f"email {email}" in caddyfile.read_text()
    assert log.read_text().splitlines() == ["reload-or-restart caddy.service"] * 2
