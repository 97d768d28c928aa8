"""The first control-plane node of `workshop-k8s` booted with its real rendered user data (QEMU,
boot/), up to the k3s install: k3s itself is not obtainable here (its installer comes from
GitHub, which these machines cannot reach), so what is checked is everything before it and the
install attempt itself.

What the node's first boot does (renderers/k3s.py): cloud-init installs `lvm2 curl iptables`,
loads `rbd` and `ceph` (bootcmd), writes /etc/rancher/k3s/config.yaml, and its `runcmd` runs
three boot steps: the state volume (formatted once, mounted by UUID at /var/lib/jshub-node), the
bind mounts of k3s's server folder and Rook's dataDirHostPath from it, then
/usr/local/sbin/jshub-k3s-install, which waits (up to 1800 s) for the join token and the k3s
version that the stack's `-join-token` (secret stdin) and `-k3s` remote steps deliver over SSH,
downloads the installer of that tag from raw.githubusercontent.com and runs it. cloud-init
therefore ends only after the remote steps ran.

For the test only, a stand-in `curl` goes first in the guest's PATH (/usr/local/bin) before the
remote steps run: it records its arguments; in `real` mode it makes the real download once
without curl's ten retries (whose backoff would take 17 minutes), in `serve` mode it hands out a
stand-in installer that records its arguments, environment and the command lines that ran it.
The production scripts run unchanged.

One guest: 11 minutes to cloud-init's end here with three other guests running beside it
(docs/boot.md, k8s nodes). A rebuild's keeping of a data volume is the swarm manager's boot test
(the same volume script, tests/test_boot_vm.py) and tests/test_data_volume.py on real images.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from boot.guest import DataDisk, Guest, GuestError
from boot.plan import Role, load_role
from renderers import BOOT_LOG_DIR
from renderers import k3s as k3s_renderer
from tests.boot_guests import report, require_qemu

pytestmark = pytest.mark.boot

STACK = "workshop-k8s"
NODE = "k8s-cp-0-server"
# Made up for the test: what the stack's RandomPasswords (64 and 48 characters, no specials)
# look like. The stack feeds the -join-token step "<token>\n<node password>\n".
JOIN_TOKEN = "jshubBootTestJoinToken0123456789abcdefghijklmnopqrstuvwxyzABCDEF"
NODE_PASSWORD = "jshubBootTestNodePassword0123456789abcdefghijklm"
TEST_LOG = "/var/log/jshub-test"
CURL_MODE = "/etc/jshub-test/curl-mode"
STAND_IN_INSTALLER = "/usr/local/lib/jshub-test/install.sh"

STAND_IN_CURL = f"""\
#!/bin/bash
# A stand-in for curl, put first in PATH by tests/test_boot_k8s.py only. It records its
# arguments. `real` mode: the real download, once (no --retry: curl's backoff would take 17
# minutes), its error passed on; should it ever succeed, the k3s installer is NOT run: the
# stand-in installer is handed out instead. `serve` mode: the stand-in installer.
set -uo pipefail
log={TEST_LOG}
mkdir -p "$log"
printf '%q ' "$@" >>"$log/curl.calls"
echo >>"$log/curl.calls"
args=() output="" skip=0 next_is_output=0
for arg in "$@"; do
    if ((skip)); then skip=0; continue; fi
    if ((next_is_output)); then output=$arg; next_is_output=0; fi
    case "$arg" in
    --retry) skip=1; continue ;;
    --retry-all-errors) continue ;;
    --output | -o) next_is_output=1 ;;
    esac
    args+=("$arg")
done
mode=$(cat {CURL_MODE} 2>/dev/null || echo real)
if [[ "$mode" == real ]]; then
    status=0
    /usr/bin/curl --connect-timeout 20 --max-time 60 "${{args[@]}}" 2>"$log/curl.err" || status=$?
    cat "$log/curl.err" >&2
    echo "$status" >>"$log/curl.status"
    if ((status != 0)); then exit "$status"; fi
    echo reachable >>"$log/curl.status"
fi
cp {STAND_IN_INSTALLER} "$output"
"""

STAND_IN_INSTALLER_SCRIPT = f"""\
#!/bin/sh
# A stand-in for k3s's install.sh (tests/test_boot_k8s.py): records how it was run and installs
# nothing: its arguments, its environment, and the command line of each process above it.
dir={TEST_LOG}/installer/$(date +%s%N)
mkdir -p "$dir"
: >"$dir/args"
for arg in "$@"; do printf '%s\\n' "$arg" >>"$dir/args"; done
env >"$dir/env"
id -u >"$dir/uid"
pid=$$
depth=0
while [ "$pid" -gt 1 ]; do
    tr '\\0' '\\n' <"/proc/$pid/cmdline" >"$dir/cmdline.$depth"
    pid=$(awk '/^PPid:/ {{ print $2 }}' "/proc/$pid/status")
    depth=$((depth + 1))
done
echo "stand-in k3s installer: nothing installed"
"""


@dataclass
class Node:
    role: Role
    node_name: str
    state: DataDisk
    ceph: DataDisk
    guest: Guest
    user_data: dict[str, Any]
    install_step: str  # the boot step's name in runcmd (jshub-boot-step NAME ...)
    version: str  # the k3s version the -k3s step delivers


def plan_resource(plan_dir: Path, name: str) -> dict[str, Any]:
    plan = json.loads((plan_dir / "plan.json").read_text())
    return next(r for r in plan["resources"] if r["name"] == name)  # type: ignore[no-any-return]


def install_step_name(user_data: dict[str, Any]) -> str:
    for entry in user_data["runcmd"]:
        if isinstance(entry, list) and entry[-1] == k3s_renderer.INSTALL_SCRIPT:
            return str(entry[1])
    raise AssertionError(f"no runcmd step runs {k3s_renderer.INSTALL_SCRIPT}: {user_data['runcmd']}")


def put_stand_ins(guest: Guest, mode: str) -> None:
    """The stand-in curl (first in PATH for cloud-init's runcmd and for SSH sessions) and the
    installer it serves; test-only files outside every path the production scripts write."""
    guest.run(f"sudo install -D -m 0755 /dev/stdin {STAND_IN_INSTALLER}", input=STAND_IN_INSTALLER_SCRIPT)
    guest.run("sudo install -D -m 0755 /dev/stdin /usr/local/bin/curl", input=STAND_IN_CURL)
    guest.run(f"sudo install -D -m 0644 /dev/stdin {CURL_MODE}", input=mode + "\n")
    assert guest.run("command -v curl").stdout.strip() == "/usr/local/bin/curl"


def skip_initramfs_update(guest: Guest) -> None:
    """For the test only, as soon as SSH answers: no initramfs rebuild when the user data's
    `lvm2` install triggers one (11 minutes of emulated CPU here). The harness boots the cached
    kernel and initrd (-kernel/-initrd), so the guest's own initrd is never used. On the cloud
    the trigger runs too, on a real CPU; nothing the checks look at depends on it."""
    guest.sudo(
        "sed -i 's/^update_initramfs=.*/update_initramfs=no/' /etc/initramfs-tools/update-initramfs.conf"
    )


def wait_for_install_wait(guest: Guest, install_step: str, timeout: float = 2400) -> None:
    """Until the boot reaches the k3s install step, which waits for the remote steps; fails
    fast if cloud-init ended before it (a failed earlier step)."""
    deadline = time.monotonic() + timeout
    log = f"{BOOT_LOG_DIR}/{install_step}.log"
    while True:
        probe = guest.run(
            # -x: the whole command line, not this probe's own shell, which names the script too.
            f"sudo test -e {shlex.quote(log)} && pgrep -fx {shlex.quote('/bin/bash ' + k3s_renderer.INSTALL_SCRIPT)}",
            check=False,
        )
        if probe.returncode == 0:
            break
        if guest.run("test -e /run/cloud-init/result.json", check=False).returncode == 0:
            detail = guest.run("cloud-init status --long; sudo tail -n 40 /var/log/cloud-init-output.log")
            raise GuestError(f"cloud-init ended before the k3s install step:\n{detail.stdout}")
        if time.monotonic() > deadline:
            raise GuestError(f"the boot did not reach {install_step} after {timeout:.0f} s")
        time.sleep(5)
    guest.phases.record("up to the k3s install's wait", guest.since_start())


def deliver(guest: Guest, role: Role, node_name: str, *, check: bool) -> dict[str, Any]:
    """The node's -join-token step with the stdin the stack builds (token, node password), then
    its -k3s step: their real scripts over SSH, as `pulumi up` runs them (dependencies first).
    Not the steps that need a running k3s (-ready, k8s-kubeconfig: they wait for Ready nodes)."""
    wanted = (f"{node_name}-join-token", f"{node_name}-k3s")
    results: dict[str, Any] = {}
    for remote in role.remote_steps:
        if remote.name not in wanted:
            continue
        stdin = f"{JOIN_TOKEN}\n{NODE_PASSWORD}\n" if remote.stdin_is_secret else None
        start = time.monotonic()
        results[remote.name] = guest.run(remote.script, input=stdin, check=check, timeout=1200)
        guest.phases.record(f"step {remote.name}", time.monotonic() - start)
    return results


def installer_runs(guest: Guest) -> list[dict[str, Any]]:
    """What the stand-in installer recorded, one entry per run, oldest first."""
    listing = guest.run(f"sudo ls {TEST_LOG}/installer 2>/dev/null || true").stdout.split()
    runs = []
    for run in sorted(listing):
        base = f"{TEST_LOG}/installer/{run}"
        env = dict(
            line.split("=", 1) for line in guest.sudo(f"cat {base}/env").stdout.splitlines() if "=" in line
        )
        depth = int(guest.sudo(f"ls {base} | grep -c '^cmdline\\.'").stdout.strip())
        cmdlines = [guest.sudo(f"cat {base}/cmdline.{i}").stdout.splitlines() for i in range(depth)]
        runs.append(
            {
                "args": guest.sudo(f"cat {base}/args").stdout.splitlines(),
                "env": env,
                "uid": guest.sudo(f"cat {base}/uid").stdout.strip(),
                "cmdlines": cmdlines,
            }
        )
    return runs


def curl_calls(guest: Guest) -> list[list[str]]:
    text = guest.run(f"sudo cat {TEST_LOG}/curl.calls").stdout
    return [shlex.split(line) for line in text.splitlines() if line.strip()]


def cloud_init_stage_errors(guest: Guest) -> dict[str, list[Any]]:
    status = json.loads(guest.run("cat /run/cloud-init/status.json").stdout)["v1"]
    return {
        stage: list(value.get("errors", []))
        for stage, value in status.items()
        if isinstance(value, dict) and "errors" in value
    }


def device_of(guest: Guest, disk: DataDisk) -> str:
    return guest.run(f"readlink -f /dev/disk/by-id/virtio-{disk.serial}").stdout.strip()


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    require_qemu()
    work = tmp_path_factory.mktemp("k8s-boot")
    role = load_role(STACK, NODE, out=work / "plan")
    node_name = plan_resource(work / "plan", NODE)["inputs"]["name"]
    # The state volume is the one the user data's volume script looks for; the other is Ceph's
    # OSD, a raw device Rook takes as it is.
    (state_id,) = [v for v in role.volume_ids if v in role.user_data]
    (ceph_id,) = [v for v in role.volume_ids if v != state_id]
    state = DataDisk(work / "state.img", state_id, size="4G")
    ceph = DataDisk(work / "ceph.img", ceph_id, size="2G")
    user_data = yaml.safe_load(role.user_data)
    version_match = re.search(r"^version=(\S+)$", role.step("k3s").script, re.M)
    assert version_match, role.step("k3s").script
    guest = Guest("k8s-cp-0", role.user_data, data_disks=[state, ceph], memory_mb=2048)
    try:
        guest.start()
        guest.wait_ssh(900)
        print(f"\n[boot] k8s-cp-0: {' '.join(guest.ssh_command())}", file=sys.stderr)
        skip_initramfs_update(guest)
        put_stand_ins(guest, "real")
        install_step = install_step_name(user_data)
        wait_for_install_wait(guest, install_step)
        yield Node(role, node_name, state, ceph, guest, user_data, install_step, version_match.group(1))
    finally:
        report(guest.phases)
        guest.close()


def test_boot_reaches_the_k3s_install_without_error(node: Node) -> None:
    guest = node.guest
    # cloud-init is still running: its last stage waits in the install step for the token.
    assert guest.run("test -e /run/cloud-init/result.json", check=False).returncode != 0
    errors = cloud_init_stage_errors(guest)
    assert errors and not any(errors.values()), errors
    assert guest.run(f"sudo test -e {BOOT_LOG_DIR}/failed-step", check=False).returncode != 0
    steps = [e[1] for e in node.user_data["runcmd"] if isinstance(e, list) and len(e) > 2]
    assert steps[-1] == node.install_step, steps
    for earlier in steps[:-1]:
        assert guest.sudo(f"test -e {BOOT_LOG_DIR}/{earlier}.log").returncode == 0, earlier
    # The packages the user data lists are installed (cloud-init's package stage came first).
    for package in node.user_data["packages"]:
        status = guest.run(f"dpkg-query -W -f '${{Status}}' {package}").stdout
        assert status == "install ok installed", (package, status)
    # Nothing is installed, nor any token there, before the remote steps deliver them.
    assert guest.run("sudo test -e /etc/rancher/k3s/secret/token", check=False).returncode != 0
    assert guest.run("command -v k3s", check=False).returncode != 0


def test_state_volume_found_by_id_formatted_and_bind_mounted(node: Node) -> None:
    guest = node.guest
    device = device_of(guest, node.state)
    assert device.startswith("/dev/vd"), device
    mount = guest.run(f"findmnt -no SOURCE,FSTYPE {k3s_renderer.STATE_DIR}").stdout.split()
    assert mount == [device, "ext4"], mount
    uuid = guest.run(f"sudo blkid -o value -s UUID {device}").stdout.strip()
    label = guest.run(f"sudo blkid -o value -s LABEL {device}").stdout.strip()
    assert label == "jshub-node", label
    fstab = guest.run("cat /etc/fstab").stdout
    assert fstab.count(f"UUID={uuid} {k3s_renderer.STATE_DIR} ext4 ") == 1, fstab
    for folder, target in k3s_renderer.STATE_BINDS:
        source = f"{k3s_renderer.STATE_DIR}/{folder}"
        assert fstab.count(f"{source} {target} none bind,") == 1, (target, fstab)
        # A bind mount shows the volume's device and the folder on it.
        shown = guest.run(f"findmnt -no SOURCE {target}").stdout.strip()
        assert shown == f"{device}[/{folder}]", (target, shown)
        assert guest.sudo(f"stat -c %a {source}").stdout.strip() == "700"
    # What k3s's server writes lands on the volume: through the bind, on the volume's folder.
    server = k3s_renderer.SERVER_STATE
    guest.sudo(f"echo first-boot > {server}/jshub-boot-test")
    assert (
        guest.sudo(f"cat {k3s_renderer.STATE_DIR}/k3s-server/jshub-boot-test").stdout.strip() == "first-boot"
    )
    # k3s may only start with both bind mounts in place.
    dropin = guest.run("cat /etc/systemd/system/k3s.service.d/jshub-state.conf").stdout
    targets = " ".join(target for _, target in k3s_renderer.STATE_BINDS)
    assert f"RequiresMountsFor={targets}" in dropin, dropin
    # Ceph's OSD volume is attached, found by its ID, and left blank for Rook.
    ceph = device_of(guest, node.ceph)
    assert ceph.startswith("/dev/vd") and ceph != device, ceph
    assert guest.run(f"sudo blkid -p {ceph}", check=False).returncode == 2
    assert guest.sudo(f"wipefs --no-act --noheadings {ceph}").stdout.strip() == ""
    assert guest.run(f"findmnt -S {ceph}", check=False).returncode != 0


def test_kernel_modules_and_sysctls_of_the_user_data(node: Node) -> None:
    guest = node.guest
    # Every module the user data loads (bootcmd's modprobe, modules-load.d) and every sysctl it
    # sets (sysctl.d), read from the rendered user data.
    modules: list[str] = []
    for entry in node.user_data.get("bootcmd", []) + node.user_data.get("runcmd", []):
        if isinstance(entry, list) and entry[:1] == ["modprobe"]:
            modules += [m for m in entry[1:] if not m.startswith("-")]
    sysctls: dict[str, str] = {}
    for item in node.user_data["write_files"]:
        if item["path"].startswith("/etc/modules-load.d/"):
            modules += [ln.strip() for ln in item["content"].splitlines() if ln.strip()[:1] not in ("", "#")]
        if item["path"].startswith("/etc/sysctl.d/"):
            for ln in item["content"].splitlines():
                if "=" in ln and not ln.lstrip().startswith(("#", ";")):
                    key, value = ln.split("=", 1)
                    sysctls[key.strip()] = value.strip()
    assert modules, node.user_data.get("bootcmd")
    loaded = guest.run("cat /proc/modules").stdout
    for module in modules:
        assert re.search(rf"^{module.replace('-', '_')} ", loaded, re.M), module
    for key, value in sysctls.items():
        assert guest.run(f"sysctl -n {key}").stdout.split() == value.split(), key


def test_k3s_config_names_the_node(node: Node) -> None:
    guest = node.guest
    path = k3s_renderer.CONFIG_FILE
    assert guest.sudo(f"stat -c '%U:%G %a' {path}").stdout.strip() == "root:root 600"
    text = guest.sudo(f"cat {path}").stdout
    (written,) = [f for f in node.user_data["write_files"] if f["path"] == path]
    assert text == written["content"]
    config = yaml.safe_load(text)
    assert config["node-name"] == node.node_name
    # The first control-plane node starts the embedded etcd cluster; it joins no server.
    assert config["cluster-init"] is True and "server" not in config
    # The token is read from the file the -join-token step writes, never from the user data.
    assert config["token-file"] == k3s_renderer.TOKEN_FILE and "token" not in config
    assert JOIN_TOKEN not in node.role.user_data
    # No tls-san: the kubeconfig checks the certificate against a name k3s always puts in it
    # (k3s.API_SERVER_NAME), so nothing here has to follow the hub's name.
    assert "tls-san" not in config, config
    # No data-dir: k3s's default /var/lib/rancher/k3s, whose server/ folder (etcd, the cluster's
    # certificates) is the volume's bind mount checked above; no node-ip: k3s takes the address
    # of the default route's interface, the private network's port on Jetstream2.
    assert "data-dir" not in config and "node-ip" not in config, config


def test_install_attempt_fails_only_on_the_unreachable_installer(node: Node) -> None:
    guest = node.guest
    results = deliver(guest, node.role, node.node_name, check=False)
    token_step = node.role.step("join-token")
    assert results[token_step.name].returncode == 0, results[token_step.name]
    assert guest.sudo(f"cat {k3s_renderer.TOKEN_FILE}").stdout.strip() == JOIN_TOKEN
    assert guest.sudo(f"cat {k3s_renderer.NODE_PASSWORD_FILE}").stdout.strip() == NODE_PASSWORD
    assert guest.sudo(f"stat -c %a {k3s_renderer.TOKEN_FILE}").stdout.strip() == "600"
    version = guest.sudo(f"cat {k3s_renderer.VERSION_FILE}").stdout.strip()
    assert version == node.version
    status = guest.wait_cloud_init(900)
    # The boot went on to the install as soon as both files were there, and stopped there.
    assert status["status"] == "error", status
    assert status["errors"] and all("scripts-user" in str(e) for e in status["errors"]), status
    assert guest.sudo(f"cat {BOOT_LOG_DIR}/failed-step").stdout.strip() == node.install_step
    # One download, the installer of the delivered version's tag, with the script's options.
    calls = curl_calls(guest)
    assert len(calls) == 1, calls
    (call,) = calls
    url = f"https://raw.githubusercontent.com/k3s-io/k3s/{version.replace('+', '%2B')}/install.sh"
    assert call[-1] == url, call
    for option in ("--fail", "--location", "--retry-all-errors"):
        assert option in call, (option, call)
    assert call[call.index("--retry") + 1] == "10", call
    # It failed for the reason expected here: GitHub is unreachable (the name does not resolve,
    # or the connection fails or times out); curl's own message names it.
    curl_status = guest.sudo(f"cat {TEST_LOG}/curl.status").stdout.split()
    assert curl_status in (["6"], ["7"], ["28"]), curl_status
    curl_error = guest.sudo(f"cat {TEST_LOG}/curl.err").stdout.strip()
    assert "raw.githubusercontent.com" in curl_error or "timed out" in curl_error, curl_error
    step_log = guest.sudo(f"cat {BOOT_LOG_DIR}/{node.install_step}.log").stdout
    assert curl_error in step_log and "no join token" not in step_log, step_log
    # Nothing ran after the failed download: no installer, no k3s.
    assert installer_runs(guest) == []
    assert guest.run("command -v k3s", check=False).returncode != 0
    # The -k3s step, run as the stack runs it, fails naming the boot step and curl's error.
    k3s_step = results[node.role.step("k3s").name]
    assert k3s_step.returncode == 1, k3s_step
    assert f"jshub step {node.install_step} failed" in k3s_step.stderr, k3s_step.stderr
    assert curl_error in k3s_step.stderr, k3s_step.stderr


def assert_installer_run(run: dict[str, Any], version: str) -> None:
    """The k3s installer as the production script runs it: as root, the version and the server
    role in its environment, no token anywhere on a command line or in its environment (k3s
    reads the token file its config names)."""
    assert run["uid"] == "0", run
    assert run["env"].get("INSTALL_K3S_VERSION") == version, run["env"]
    assert run["env"].get("INSTALL_K3S_EXEC") == "server", run["env"]
    for name in ("K3S_TOKEN", "K3S_URL", "K3S_TOKEN_FILE"):
        assert name not in run["env"], name
    assert run["args"] == [], run["args"]
    # The command line that ran it: `sudo env INSTALL_K3S_VERSION=... INSTALL_K3S_EXEC=server
    # sh <the downloaded file>`.
    sudo = next(c for c in run["cmdlines"] if c[:1] == ["sudo"])
    assert sudo[:4] == ["sudo", "env", f"INSTALL_K3S_VERSION={version}", "INSTALL_K3S_EXEC=server"], sudo
    assert sudo[4] == "sh" and len(sudo) == 6, sudo
    everything = json.dumps(run)
    assert JOIN_TOKEN not in everything and NODE_PASSWORD not in everything


def test_install_runs_the_installer_with_the_version_and_no_token(node: Node) -> None:
    """The failed boot step again, as its runcmd line runs it, with the download served by the
    stand-in: what the installer would have been run with."""
    guest = node.guest
    guest.run(f"sudo install -m 0644 /dev/stdin {CURL_MODE}", input="serve\n")
    (line,) = [e for e in node.user_data["runcmd"] if isinstance(e, list) and e[1:2] == [node.install_step]]
    result = guest.sudo(shlex.join(line))
    assert "stand-in k3s installer" in result.stdout, result.stdout
    (run,) = installer_runs(guest)
    assert_installer_run(run, node.version)
