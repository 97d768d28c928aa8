"""The gateway-hpc boot's HPC site (boot/hpc.py), without booting: the login node's user data,
and the stack file the hub is planned with for the boot (only the `hpc` section pointed at the
login node; the hub VM's user data unchanged)."""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from boot.__main__ import VENV, acme_stack_file, stack_config
from boot.hpc import (
    AUTHORIZED_KEY_OPTIONS,
    GUEST_CA,
    START_SLURM,
    hpc_accounts,
    login_address,
    login_node,
    ssh_key,
)
from boot.plan import load_role
from tests.conftest import require_tool

HUB = "gateway.cis000000.projects.jetstream-cloud.org"


@dataclass(frozen=True)
class StandInAcme:
    """What acme_stack_file reads of a running LocalAcme."""

    directory: str
    root_pem: str


def test_accounts_follow_the_spawners_mapping() -> None:
    hpc = {k: v for k, v in stack_config("gateway-hpc")["hpc"].items() if k != "usernamePattern"}
    assert hpc_accounts({**hpc, "usernamePattern": "gw_{username}"}, ["alice", "bob"]) == (
        "gw_alice",
        "gw_bob",
    )
    assert hpc_accounts(hpc, ["alice"]) == ("alice",)
    community = {"accountMode": "community", "communityAccount": "gwuser", "usernamePattern": "x_{username}"}
    assert hpc_accounts({**hpc, **community}, ["alice", "bob"]) == ("gwuser",)


@pytest.mark.parametrize(
    ("hub", "login"),
    [("10.0.0.17", "10.0.0.254"), ("10.0.0.254", "10.0.0.253"), ("192.168.7.3", "192.168.7.254")],
)
def test_login_node_is_in_the_hubs_network_and_not_the_hub(hub: str, login: str) -> None:
    assert login_address(hub) == login


def test_site_keys_are_made_once(tmp_path: Path) -> None:
    first = ssh_key(tmp_path / "key", "site")
    again = ssh_key(tmp_path / "key", "site")
    assert first == again
    assert first.public.startswith("ssh-ed25519 ") and first.public.endswith(" site")
    assert "OPENSSH PRIVATE KEY" in first.private


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Any:
    hpc = stack_config("gateway-hpc")["hpc"]
    return login_node(tmp_path_factory.mktemp("site"), hpc, "10.0.0.17", ["jshub-smoke"])


def test_login_node_user_data_is_valid_and_sets_up_the_site(site: Any, tmp_path: Path) -> None:
    tool = require_tool("cloud-init", "validates the login node's user data")
    root = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    text = site.user_data(
        hub_name=HUB, hub_address="10.0.0.17", partitions=["shared", "gpu-shared"], ca_root_pem=root
    )
    path = tmp_path / "user-data.yaml"
    path.write_text(text)
    result = subprocess.run([tool, "schema", "--config-file", str(path)], capture_output=True, text=True)
    assert result.returncode == 0 and "Valid" in result.stdout, result.stdout + result.stderr

    doc = yaml.safe_load(text)
    # The harness's own login user stays; the HPC account authorises the gateway's key with
    # the options docs/hpc.md gives the site.
    assert doc["users"][0] == "default"
    (account,) = doc["users"][1:]
    assert account["name"] == "jshub-smoke"
    assert account["ssh_authorized_keys"] == [f"{AUTHORIZED_KEY_OPTIONS} {site.hub_key.public}"]
    # The host key the stack pins is the one sshd serves.
    assert doc["ssh_keys"]["ed25519_public"] == site.host_key.public
    assert doc["ssh_keys"]["ed25519_private"] == site.host_key.private
    files = {f["path"]: f["content"] for f in doc["write_files"]}
    assert files[GUEST_CA] == root
    assert files["/usr/local/sbin/start-slurm.sh"] == START_SLURM.read_text()
    script = " ".join(" ".join(step) for step in doc["runcmd"])
    assert f"10.0.0.17 {HUB}" in script
    assert "JSHUB_SLURM_PARTITIONS='shared gpu-shared'" in script


def test_start_slurm_makes_the_stacks_partitions(tmp_path: Path) -> None:
    """The partition lines start-slurm.sh writes for the login node, the first the default
    (the script's heredoc and loop, run up to the config it writes, as bash runs them)."""
    bash = require_tool("bash", "runs the SLURM start script's config part")
    text = START_SLURM.read_text()
    config_part = text[: text.index('mv "$conf.tmp" "$conf"')]
    config_part = config_part.replace("conf=/etc/slurm/slurm.conf", f"conf={tmp_path}/slurm.conf")
    config_part = config_part.replace("install -d -m 0755", f"mkdir -p {tmp_path}/x #")
    env = {"JSHUB_SLURM_PARTITIONS": "shared gpu-shared", "PATH": "/usr/bin:/bin"}
    subprocess.run([bash, "-c", config_part], check=True, env=env)
    lines = [
        line for line in (tmp_path / "slurm.conf.tmp").read_text().splitlines() if "PartitionName" in line
    ]
    assert lines == [
        "PartitionName=shared Nodes=localhost Default=YES MaxTime=INFINITE State=UP",
        "PartitionName=gpu-shared Nodes=localhost Default=NO MaxTime=INFINITE State=UP",
    ]


def test_boot_stack_points_only_the_hpc_section_at_the_login_node(site: Any, tmp_path: Path) -> None:
    # Any real root stands in for the ACME server's: the first of the host's trust store.
    bundle = Path("/etc/ssl/certs/ca-certificates.crt").read_text()
    end = "-----END CERTIFICATE-----\n"
    acme = StandInAcme("https://10.0.2.2:14000/acme/local/directory", bundle[: bundle.index(end) + len(end)])
    path = acme_stack_file("gateway-hpc", acme, tmp_path, site)  # type: ignore[arg-type]
    booted = yaml.safe_load(path.read_text())["config"]
    original = yaml.safe_load((Path(__file__).parent.parent / "Pulumi.gateway-hpc.yaml").read_text())[
        "config"
    ]
    changed = {k for k in booted if booted[k] != original.get(k)}
    assert changed == {
        "jupyterhub-jetstream:acmeDirectory",
        "jupyterhub-jetstream:acmeRootCertificate",
        "jupyterhub-jetstream:hpc",
    }
    hpc, before = booted["jupyterhub-jetstream:hpc"], original["jupyterhub-jetstream:hpc"]
    assert {k for k in hpc if hpc[k] != before.get(k)} == {"loginHost", "hostKey", "environmentSetup"}
    assert hpc["loginHost"] == "10.0.0.254" and hpc["hostKey"] == site.host_key.public
    assert hpc["environmentSetup"][0] == f'export PATH="{VENV}/bin:$PATH"'

    # Planned with it, the hub VM's user data is make plan's; the key step pins the login
    # node's host key for its address.
    plain = load_role("gateway-hpc", out=tmp_path / "plain")
    booted_role = load_role("gateway-hpc", plain.instance, tmp_path / "booted", path, fresh=True)
    assert booted_role.user_data == plain.user_data
    install = next(s for s in booted_role.remote_steps if s.name.endswith("-install-key"))
    assert install.stdin_is_secret
    # The known_hosts line it writes, read by ssh's own tool: the login node's key, for its address.
    (line,) = (
        shlex.split(x)[2]
        for x in install.script.splitlines()
        if x.startswith("printf") and "known_hosts" in x
    )
    (tmp_path / "known_hosts").write_text(line + "\n")
    found = subprocess.run(
        [
            require_tool("ssh-keygen", "reads known_hosts"),
            "-F",
            "10.0.0.254",
            "-f",
            str(tmp_path / "known_hosts"),
        ],
        capture_output=True,
        text=True,
    )
    assert found.returncode == 0, found.stderr
    assert site.host_key.public.split()[1] in found.stdout
