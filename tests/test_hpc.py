"""Scenario hpc without a cluster: its config rules, the rendered hub config, batch script and
scripts (checked by shellcheck and cloud-init), the spawner's request checks and queue messages,
and the resource graph under mocks (the key stays secret, only 80/443 face the world)."""

from __future__ import annotations

import asyncio
import ipaddress
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest

from planner.mocks import SECRET, UNKNOWN, placeholder_image_id
from renderers.cloud_init import HubBootSpec, render_hub_cloud_init
from renderers.hub_config import HubConfigSpec, SlurmSpawnerSpec, hub_vm_files
from renderers.scripts import render_install_hpc_key_script
from stackconfig import ConfigError
from tests.builders import HOST_KEY, HPC, hpc_config
from tests.conftest import BASE_CONFIG, SECRET_KEYS, as_pulumi_config, by_type, make_config, one, require_tool
from tests.hub_config_local import settings_of
from tests.slurm_spawner import jshub_slurm, spawner

ROOT = Path(__file__).resolve().parent.parent

RULE = "openstack:networking/secGroupRule:SecGroupRule"
COMMAND = "command:remote:Command"


def problems(**overrides: Any) -> str:
    with pytest.raises(ConfigError) as info:
        make_config(**overrides)
    return str(info.value)


# --- config -----------------------------------------------------------------------------------


def test_hpc_section_parses_with_defaults() -> None:
    cfg = hpc_config()
    assert cfg.hpc is not None
    assert cfg.hpc.login_port == 22 and cfg.hpc.connectivity == "ssh-tunnel"
    assert cfg.hpc.login_user_for("jdoe") == "jdoe"
    assert hpc_config(usernamePattern="gw_{username}").hpc.login_user_for("jdoe") == "gw_jdoe"  # type: ignore[union-attr]
    # ssh-keyscan's output (host name first) is accepted and reduced to the key.
    scanned = hpc_config(hostKey=f"login.hpc.example.edu {HOST_KEY} comment")
    assert scanned.hpc.host_key == HOST_KEY  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("overrides", "key", "words"),
    [
        ({"scenario": "hpc"}, "hpc", "scenario hpc needs the hpc section"),
        ({"hpc": HPC}, "hpc", "not a key of scenario single, only of hpc"),
        (
            {"scenario": "hpc", "hpc": {**HPC, "accountMode": "community"}},
            "hpc.communityAccount",
            "gateway's HPC",
        ),
        ({"scenario": "hpc", "hpc": {**HPC, "usernamePattern": "gw"}}, "hpc.usernamePattern", "{username}"),
        (
            {"scenario": "hpc", "hpc": {**HPC, "usernamePattern": "GW-{username}"}},
            "hpc.usernamePattern",
            "Unix",
        ),
        ({"scenario": "hpc", "hpc": {**HPC, "connectivity": "direct"}}, "hpc.computeCidrs", "direct needs"),
        (
            {"scenario": "hpc", "hpc": {**HPC, "connectivity": "direct", "computeCidrs": ["0.0.0.0/0"]}},
            "hpc.computeCidrs[0]",
            "whole internet",
        ),
        ({"scenario": "hpc", "hpc": {**HPC, "hostKey": "ssh-ed25519 notbase64!"}}, "hpc.hostKey", "base64"),
        (
            {"scenario": "hpc", "hpc": {**HPC, "hostKey": "REPLACE_ME"}},
            "hpc.hostKey",
            "not an SSH host public key",
        ),
        ({"scenario": "hpc", "hpc": {**HPC, "defaultCores": 32}}, "hpc.defaultCores", "maxCores 16"),
        ({"scenario": "hpc", "hpc": {**HPC, "partitions": []}}, "hpc.partitions", "at least 1"),
        (
            {"scenario": "hpc", "hpc": {**HPC, "sbatchOptions": ["--qos=x; rm"]}},
            "hpc.sbatchOptions.0",
            "shell",
        ),
        (
            {"scenario": "hpc", "hpc": {**HPC, "environmentSetup": ["a\nb"]}},
            "hpc.environmentSetup.0",
            "one shell",
        ),
        ({"scenario": "hpc", "hpc": {**HPC, "loginHost": "bad host"}}, "hpc.loginHost", "host name"),
        ({"scenario": "hpc", "hpc": {**HPC, "loginHots": "x"}}, "hpc.loginHots", "did you mean 'loginHost'?"),
        (
            {
                "scenario": "hpc",
                "hpc": {**HPC, "partitions": [{"name": "a", "maxCores": 1, "maxMemoryGb": 1}]},
            },
            "hpc.partitions.0.maxWallHours",
            "pulumi config set --path 'hpc.partitions[0].maxWallHours'",
        ),
    ],
)
def test_hpc_config_errors_name_the_key(overrides: dict[str, Any], key: str, words: str) -> None:
    text = problems(**overrides)
    assert f"  - {key}" in text and words in text, text


def test_hpc_private_key_must_be_a_secret() -> None:
    from stackconfig import parse

    raw = as_pulumi_config({**BASE_CONFIG, "scenario": "hpc", "hpc": HPC, "hpcSshPrivateKey": "-----BEGIN"})
    with pytest.raises(ConfigError, match="hpcSshPrivateKey: holds a secret"):
        parse(raw, secret_keys=SECRET_KEYS)
    cfg = parse(raw, secret_keys=[*SECRET_KEYS, "jupyterhub-jetstream:hpcSshPrivateKey"])
    assert cfg.hpc_ssh_private_key is not None


# --- rendered files ---------------------------------------------------------------------------


def test_rendered_hub_config_uses_the_slurm_spawner_without_local_accounts() -> None:
    spec = HubConfigSpec.from_config(hpc_config())
    assert isinstance(spec.spawner, SlurmSpawnerSpec)
    settings = settings_of(spec)
    assert settings["JupyterHub"]["spawner_class"] == "jshub_slurm.JetstreamSlurmSpawner"
    assert settings["JupyterHub"]["authenticator_class"] == "oauthenticator.github.GitHubOAuthenticator"
    assert "LocalAuthenticator" not in settings and "SystemdSpawner" not in settings
    assert "post_auth_hook" not in settings["Authenticator"]
    slurm = settings["JetstreamSlurmSpawner"]
    assert slurm["job_hub_url"] == "https://hub.cis230000.projects.jetstream-cloud.org/hub/"
    assert settings["JupyterHub"]["hub_bind_url"] == "http://127.0.0.1:8081"
    assert spec.spawner.known_hosts == f"login.hpc.example.edu {HOST_KEY}\n"
    import batchspawner

    assert issubclass(jshub_slurm.JetstreamSlurmSpawner, batchspawner.SlurmSpawner)


def test_direct_mode_binds_the_hub_api_for_compute_nodes_and_the_proxy_stays_on_loopback() -> None:
    spec = HubConfigSpec.from_config(hpc_config(connectivity="direct", computeCidrs=["198.51.100.0/24"]))
    settings = settings_of(spec)
    assert settings["JupyterHub"]["hub_bind_url"] == "http://0.0.0.0:8081"
    assert settings["JupyterHub"]["hub_connect_url"] == "http://127.0.0.1:8081"
    assert (
        settings["JetstreamSlurmSpawner"]["job_hub_url"]
        == "http://hub.cis230000.projects.jetstream-cloud.org:8081/hub/"
    )
    nonstandard = HubConfigSpec.from_config(hpc_config(loginPort=2222)).spawner
    assert isinstance(nonstandard, SlurmSpawnerSpec)
    assert nonstandard.known_hosts.startswith("[login.hpc.example.edu]:2222 ssh-ed25519 ")


def test_hpc_cloud_init_passes_the_schema_and_the_spawner_arrives_with_the_config(tmp_path: Path) -> None:
    cloud_init = require_tool("cloud-init", "validates the rendered user data")
    cfg = hpc_config()
    spec = HubConfigSpec.from_config(cfg)
    assert spec.proxy is not None
    user_data = render_hub_cloud_init(HubBootSpec(spec.paths, spec.proxy, "vol-1", "ssh-ed25519 AAAA deploy"))
    assert "PRIVATE KEY" not in user_data and "jshub_slurm" not in user_data
    path = tmp_path / "user-data.yaml"
    path.write_text(user_data)
    result = subprocess.run(
        [cloud_init, "schema", "--config-file", str(path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # The spawner module follows the project's code, not the first boot: hub-config installs
    # it next to jupyterhub_config.py, before the config that imports it.
    files = [f.path for f in hub_vm_files(spec, cfg.hub_fqdn, cfg.lets_encrypt_email)]
    assert files.index("/etc/jupyterhub/jshub_slurm.py") < files.index("/etc/jupyterhub/jupyterhub_config.py")
    module = next(
        f
        for f in hub_vm_files(spec, cfg.hub_fqdn, cfg.lets_encrypt_email)
        if f.path.endswith("jshub_slurm.py")
    )
    assert module.content == (ROOT / "hub" / "jshub_slurm.py").read_text()


def shellcheck(text: str, tmp_path: Path, name: str) -> None:
    tool = require_tool("shellcheck", "checks rendered shell scripts")
    path = tmp_path / name
    path.write_text(text)
    result = subprocess.run([tool, "--shell=bash", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_batch_script_is_shellcheck_clean_and_quotes_what_it_exports(tmp_path: Path) -> None:
    script = jshub_slurm.render_batch_script(
        job_name="jupyterhub-jdoe",
        hub_user="jdoe",
        partition="gpu",
        cores=4,
        memory_mb=8192,
        walltime="02:00:00",
        gres="gpu:v100:1",
        account="abc123",
        sbatch_options=["--qos=normal"],
        environment_setup=["module load anaconda3", "conda activate jupyterhub"],
        environment=[
            ("JUPYTERHUB_API_TOKEN", "tok'en; echo hi"),
            ("JUPYTERHUB_API_URL", "https://h/hub/api"),
        ],
        workdir="jupyterhub/jdoe",
        command="batchspawner-singleuser jupyterhub-singleuser",
    )
    shellcheck(script, tmp_path, "job.sh")
    assert "#SBATCH --gres=gpu:v100:1\n" in script and "#SBATCH --account=abc123\n" in script
    assert "#SBATCH --cpus-per-task=4\n#SBATCH --mem=8192M\n#SBATCH --time=02:00:00\n" in script
    assert "export JUPYTERHUB_API_TOKEN='tok'\"'\"'en; echo hi'\n" in script
    # Nothing in a value expands in the job's shell.
    assert "export X='$HOME'\n" in jshub_slurm.render_batch_script(
        **{**dict.fromkeys(("job_name", "hub_user", "partition", "walltime", "gres", "account", "workdir"), ""),
           "cores": 1, "memory_mb": 1, "sbatch_options": [], "environment_setup": [], "command": "x",
           "environment": [("X", "$HOME")]}
    )  # fmt: skip
    assert script.rstrip().endswith("exec batchspawner-singleuser jupyterhub-singleuser")


def test_scripts_of_the_hpc_path_are_shellcheck_clean(tmp_path: Path) -> None:
    spec = HubConfigSpec.from_config(hpc_config()).spawner
    assert isinstance(spec, SlurmSpawnerSpec)
    install = render_install_hpc_key_script(spec.key_file, spec.known_hosts_file, spec.known_hosts)
    shellcheck(install, tmp_path, "install-hpc-key.sh")
    assert "sudo tee /etc/jupyterhub/hpc/id_hpc" in install and HOST_KEY in install
    for script in ("start-slurm.sh", "start-login-node.sh"):
        shellcheck((ROOT / "tests" / "services" / script).read_text(), tmp_path, script)


# --- the spawner's own logic --------------------------------------------------------------------


def test_requests_are_checked_against_the_partition_limits() -> None:
    s = spawner(default_cores=2, default_memory_gb=4)
    request = s.resolve_request({})
    assert (request.partition, request.cores, request.memory_gb, request.gpus) == ("shared", 2, 4.0, 0)
    assert request.walltime == "01:00:00" and request.memory_mb == 4096
    form = s.options_from_form({"partition": ["gpu"], "cores": ["8"], "gpus": ["2"], "wall_hours": ["1.5"]})
    assert form == {"partition": "gpu", "cores": 8, "memory_gb": 4.0, "gpus": 2, "wall_hours": 1.5}
    for options, words in (
        ({"cores": 17}, "cores = 17 is outside what partition 'shared' allows here (1 to 16)"),
        ({"partition": "gpu", "gpus": 3}, "gpus = 3 is outside"),
        ({"gpus": 1}, "gpus = 1 is outside what partition 'shared' allows here (0 to 0)"),
        ({"wall_hours": 9}, "wall_hours = 9 is outside"),
        ({"memory_gb": "lots"}, "memory_gb = 'lots' is not a number"),
        ({"memory_gb": "nan"}, "not a finite number"),
        ({"partition": "debug"}, "partition 'debug' is not offered here; choose one of: shared, gpu"),
        ({"cmd": "rm -rf ~"}, "unknown options ['cmd']"),
    ):
        with pytest.raises(jshub_slurm.RequestError) as info:
            s.resolve_request(options)
        assert words in str(info.value)
        assert info.value.status_code == 400


def test_options_form_offers_each_partition_with_its_limits() -> None:
    form = spawner().options_form
    assert '<option value="shared">shared (up to 16 cores, 32 GB, 0 GPUs, 8 h)</option>' in form
    assert 'name="gpus" id="gpus" min="0" max="2"' in form


def test_the_form_says_why_the_last_job_ended() -> None:
    s = spawner()
    assert "alert" not in asyncio.run(s.get_options_form())
    s.end_reason = "batch job 42 TIMEOUT: the job reached its wall time of 01:00:00 <b>"
    form = asyncio.run(s.get_options_form())
    assert form.startswith(
        '<div class="alert alert-warning">Your last notebook job ended: batch job 42 TIMEOUT'
    )
    assert "&lt;b&gt;" in form and 'name="partition"' in form


def test_commands_reach_the_login_node_quoted_once_more_with_the_host_key_pinned() -> None:
    s = spawner(control_dir="/run/jupyterhub/ssh", login_port=2222)
    argv = s.ssh_argv()
    assert (
        "StrictHostKeyChecking=yes" in argv and "UserKnownHostsFile=/etc/jupyterhub/hpc/known_hosts" in argv
    )
    assert not any("StrictHostKeyChecking=no" in a or "accept-new" in a for a in argv)
    assert argv[-5:] == ["-p", "2222", "-l", "jdoe", "login.hpc.example.edu"]
    seen: list[str] = []

    async def fake_shell(self: Any, cmd: str, input: Any = None, env: Any = None) -> str:
        seen.append(cmd)
        return "RUNNING node-7 2026-01-01T00:00:00 None"

    query = "squeue -h -j 42 -o '%T %B %S %r'"
    original = jshub_slurm.SlurmSpawner.run_command
    jshub_slurm.SlurmSpawner.run_command = fake_shell  # type: ignore[method-assign]
    try:
        asyncio.run(s.run_command(query))
    finally:
        jshub_slurm.SlurmSpawner.run_command = original  # type: ignore[method-assign]
    words = shlex.split(seen[0])
    assert words[:-1] == s.ssh_argv() and words[-1] == query  # the login node's shell sees the original


def test_queue_feedback_shows_state_reason_and_estimated_start() -> None:
    s = spawner()
    s.request = s.resolve_request({})
    s.job_id = "42"
    s.job_status = "PENDING n/a 2026-11-25T21:30:00 Priority"
    assert s.queue_message() == (
        "Job 42 is PENDING in partition shared: jobs with higher priority are ahead of it; "
        "SLURM estimates it starts at 2026-11-25T21:30:00 (login node's time)"
    )
    s.job_status = "PENDING n/a N/A Resources"
    assert "estimates" not in s.queue_message() and "waiting for free nodes" in s.queue_message()
    s.job_status = "RUNNING node-7 2026-11-25T21:30:00 None"
    assert s.queue_message() == "Job 42 is running on node-7; waiting for the notebook server to start"
    assert s.state_gethost() == "node-7"
    for reason in ("PartitionConfig", "QOSMaxCpuPerJobLimit", "AssocMaxWallDurationPerJobLimit"):
        assert jshub_slurm.NEVER_STARTS.match(reason)
    for reason in ("Priority", "Resources", "QOSMaxJobsPerUserLimit", "None"):
        assert not jshub_slurm.NEVER_STARTS.match(reason)


def test_end_reason_says_what_happened_in_words() -> None:
    s = spawner()
    s.job_id = "42"
    out = (
        "JobId=42 JobName=jupyterhub-jdoe JobState=TIMEOUT Reason=TimeLimit ExitCode=0:15 TimeLimit=01:00:00"
    )

    async def scontrol(cmd: str, input: Any = None, env: Any = None) -> str:
        assert cmd == "scontrol show job -o 42"
        return out

    s.run_command = scontrol
    text = asyncio.run(s.job_end_reason())
    assert text.startswith("batch job 42 TIMEOUT: the job reached its wall time of 01:00:00 (exit code 0:15)")
    assert "jupyterhub-42.log" in text


# --- the resource graph -------------------------------------------------------------------------


def build(**hpc: Any) -> Any:
    from tests.conftest import run_mocked

    config = {**BASE_CONFIG, "scenario": "hpc", "hpc": {**HPC, **hpc}}

    def program() -> None:
        from stackconfig import parse
        from stacks.hpc import build as build_hpc

        build_hpc(parse(as_pulumi_config(config), secret_keys=SECRET_KEYS))

    return run_mocked(program, config)


def test_bridge_delivers_the_key_on_stdin_and_outputs_only_the_public_half() -> None:
    rec = build()
    keys = {r.name: r for r in by_type(rec, "tls:index/privateKey:PrivateKey")}
    assert keys["hpc-key"].inputs["algorithm"] == "ED25519"
    install = next(r for r in by_type(rec, COMMAND) if r.name == "hpc-install-key")
    assert install.inputs["stdin"] == SECRET and install.inputs["logging"] == "none"
    assert install.inputs["connection"] == SECRET
    assert "stdin" in install.additional_secret_outputs
    assert f"login.hpc.example.edu {HOST_KEY}" in install.inputs["create"]
    bridge = one(rec, "jshub:index:BatchBridge")
    assert bridge.urn in {r.parent_urn for r in (install, keys["hpc-key"])}
    server = one(rec, "openstack:compute/instance:Instance")
    assert server.urn in install.dependency_urns
    # The key goes in alongside the hub's secrets (each waits for cloud-init), not after them.
    secrets = next(r for r in by_type(rec, COMMAND) if r.name == "hub-secrets")
    assert secrets.urn not in install.dependency_urns
    assert rec.outputs["hpc_public_key"].startswith("ssh-ed25519 ")
    assert rec.outputs["admin_token"] == SECRET
    user_data = server.inputs["userData"]
    assert user_data not in (SECRET, UNKNOWN), "the cloud-init apply must have run"
    config = next(r for r in by_type(rec, COMMAND) if r.name == "hub-config")
    assert "jshub_slurm.JetstreamSlurmSpawner" in config.inputs["create"]
    # The key is on the hub's root disk: a new server (ID) or a rebuilt one (image) needs it
    # again, like the hub's secrets and config; a resize does not.
    assert install.inputs["triggers"] == secrets.inputs["triggers"] == config.inputs["triggers"][:2]
    # The image the server booted, as the provider reads it back, not the config's name.
    assert server.inputs["imageName"] == BASE_CONFIG.get("image", "Featured-Ubuntu24")
    assert install.inputs["triggers"][1] == placeholder_image_id(server.inputs["imageName"])


def test_an_image_change_puts_the_hpc_key_back_and_a_flavor_change_does_not(next_image: str) -> None:
    def triggers(**top: Any) -> Any:
        config = {**BASE_CONFIG, **top, "scenario": "hpc", "hpc": HPC}

        def program() -> None:
            from stackconfig import parse
            from stacks.hpc import build as build_hpc

            build_hpc(parse(as_pulumi_config(config), secret_keys=SECRET_KEYS))

        from tests.conftest import run_mocked

        rec = run_mocked(program, config)
        return next(r for r in by_type(rec, COMMAND) if r.name == "hpc-install-key").inputs["triggers"]

    base = triggers()
    assert triggers(image=next_image) != base
    assert triggers(hubFlavor="m3.medium") == base


def test_given_private_key_is_used_instead_of_a_new_one() -> None:
    config = {**BASE_CONFIG, "scenario": "hpc", "hpc": HPC, "hpcSshPrivateKey": "-----BEGIN OPENSSH-----x"}
    secret_keys = [*SECRET_KEYS, "jupyterhub-jetstream:hpcSshPrivateKey"]

    def program() -> None:
        from stackconfig import parse
        from stacks.hpc import build as build_hpc

        build_hpc(parse(as_pulumi_config(config), secret_keys=secret_keys))

    from planner.harness import run_program
    from stackconfig import PROJECT

    rec = run_program(program, PROJECT, "test", as_pulumi_config(config), secret_keys)
    assert [r.name for r in by_type(rec, "tls:index/privateKey:PrivateKey")] == ["hub-deploy-key"]
    install = next(r for r in by_type(rec, COMMAND) if r.name == "hpc-install-key")
    assert install.inputs["stdin"] == SECRET
    for r in rec.registrations:
        assert "-----BEGIN OPENSSH-----x" not in str(r.inputs), r.name


@pytest.mark.parametrize("connectivity", ["direct", "ssh-tunnel"])
def test_only_web_ports_face_the_world_and_direct_admits_only_compute_nodes(connectivity: str) -> None:
    extra = {"computeCidrs": ["198.51.100.0/24"]} if connectivity == "direct" else {}
    rec = build(connectivity=connectivity, **extra)
    rules = by_type(rec, RULE)
    world = [
        r for r in rules if ipaddress.ip_network(r.inputs.get("remoteIpPrefix", "10.0.0.0/8")).prefixlen == 0
    ]
    assert sorted({r.inputs["portRangeMin"] for r in world}) == [80, 443]
    api = [r for r in rules if r.inputs.get("portRangeMin") == 8081]
    if connectivity == "direct":
        assert [(r.inputs["remoteIpPrefix"], r.inputs["portRangeMax"]) for r in api] == [
            ("198.51.100.0/24", 8081)
        ]
    else:
        assert api == []
