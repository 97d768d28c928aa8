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
}


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
    assert (
        'if [[ -z "$(blkid -o value -s TYPE "$device" || true)" ]]; then\n'
        '    mkfs.xfs -q -L "$label" "$device"' in text
    )
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
