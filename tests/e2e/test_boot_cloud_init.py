"""A first boot run by the real cloud-init, end to end: a Debian root made with debootstrap
(cached), cloud-init's four stages run in it with a NoCloud seed, in namespaces of their own
(mounts, network, hostname, processes) so that nothing reaches this machine. The user data is
the hub's as rendered, its commands replaced by stand-ins; with one failing, `cloud-init
status` says error and the stack's wait script names the step and shows the end of its log."""

from __future__ import annotations

import shutil
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from renderers import BOOT_LOG_DIR, render
from renderers.boot import BOOT_STEP_COMMAND
from renderers.cloud_init import to_user_data
from tests.boot_roles import user_data
from tests.conftest import require, require_root, require_tool

pytestmark = pytest.mark.e2e

SUITE = "bookworm"
# Kept between runs, like the swarm tests' base image: debootstrap is the slow part (~2.5 min).
ROOT_CACHE = Path("/var/cache/jshub-tests") / f"cloud-init-{SUITE}"
STAND_IN_LOG = "/var/log/jshub-stand-ins"


def apt_mirror() -> str:
    """The Debian mirror apt itself uses here, read at run time."""
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        uris = ""
        for line in path.read_text().splitlines():
            if line.startswith("URIs:"):
                uris = line.split()[1]
            if line.startswith("Suites:") and SUITE in line.split()[1:]:
                return uris
    for path in [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*.list")]:
        for line in path.read_text().splitlines() if path.exists() else []:
            words = line.split()
            if len(words) > 2 and words[0] == "deb" and words[2] == SUITE:
                return words[1]
    pytest.fail(f"no {SUITE} mirror in apt's sources", pytrace=False)


@pytest.fixture(scope="module")
def guest_root() -> Path:
    require_root("runs cloud-init in a chroot, in namespaces of its own")
    for tool in ("debootstrap", "unshare", "chroot"):
        require_tool(tool, "runs a first boot with the real cloud-init")
    if (ROOT_CACHE / "usr" / "bin" / "cloud-init").exists():
        return ROOT_CACHE
    partial = ROOT_CACHE.with_name(ROOT_CACHE.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    # python3-cffi-backend and locales: without them cloud-init ends half-configured.
    result = subprocess.run(
        [
            "debootstrap",
            "--variant=minbase",
            "--include=cloud-init,python3-cffi-backend,locales",
            SUITE,
            str(partial),
            apt_mirror(),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    unconfigured = subprocess.run(
        ["chroot", str(partial), "dpkg", "--audit"], capture_output=True, text=True
    ).stdout
    assert not unconfigured.strip(), unconfigured
    partial.rename(ROOT_CACHE)
    return ROOT_CACHE


@dataclass
class Boot:
    status: str
    stages: str
    ran: list[str]
    wait_rc: int
    wait_out: str
    wait_err: str


def boot(guest_root: Path, tmp_path: Path, role: str, fail_at: int) -> tuple[Boot, list[str]]:
    """The role's rendered runcmd, each command replaced by a stand-in that logs its step, the
    `fail_at`-th failing; only the step wrapper is kept of its files and nothing is installed."""
    rendered = user_data(role)
    wrapper = next(f for f in rendered["write_files"] if f["path"] == BOOT_STEP_COMMAND)
    files: list[dict[str, Any]] = []
    runcmd: list[Any] = []
    steps: list[str] = []
    for item in rendered["runcmd"]:
        if isinstance(item, str):
            continue  # set -e and the rest come back when to_user_data renders it again
        steps.append(item[1])
        stand_in = f"/usr/local/bin/jshub-stand-in-{len(steps):02d}"
        body = f'echo "{item[1]}" >>{STAND_IN_LOG}\n'
        if len(steps) == fail_at:
            body += 'echo "error: the disk is on fire"\nexit 3\n'
        files.append({"path": stand_in, "content": "#!/bin/sh\n" + body, "permissions": "0755"})
        runcmd.append([stand_in, *item[3:]])
    document = yaml.safe_load(to_user_data({"write_files": files, "runcmd": runcmd}))
    # The steps keep the names the role's own commands gave them.
    for item, name in zip([i for i in document["runcmd"] if isinstance(i, list)], steps, strict=True):
        item[1] = name
    assert any(f["content"] == wrapper["content"] for f in document["write_files"])

    upper, work, root = tmp_path / "upper", tmp_path / "work", tmp_path / "root"
    seed = upper / "var" / "lib" / "cloud" / "seed" / "nocloud"
    seed.mkdir(parents=True)
    (seed / "user-data").write_text("#cloud-config\n" + yaml.safe_dump(document, sort_keys=False))
    (seed / "meta-data").write_text("instance-id: jshub-boot-test\nlocal-hostname: jshub-boot-test\n")
    cfg_dir = upper / "etc" / "cloud" / "cloud.cfg.d"
    cfg_dir.mkdir(parents=True)
    # Only the seed here; no locale to generate (a chroot has no locale tooling set up).
    (cfg_dir / "99-jshub-test.cfg").write_text("datasource_list: [NoCloud, None]\nlocale: false\n")
    (upper / "jshub-wait.sh").write_text(
        "#!/bin/bash\nset -euo pipefail\n"
        + render("_wait-cloud-init.sh.j2")
        + "echo the remote step went on\n"
    )
    for d in (work, root):
        d.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    inner = textwrap.dedent(
        f"""\
        set -u
        mount -t overlay overlay -o lowerdir={guest_root},upperdir={upper},workdir={work} {root}
        mount -t proc proc {root}/proc
        mount -t sysfs sys {root}/sys
        mount --rbind /dev {root}/dev
        mount -t tmpfs tmpfs {root}/run
        chroot {root} sh -c 'cloud-init init --local; cloud-init init; cloud-init modules --mode config; \\
            cloud-init modules --mode final' >{out}/stages 2>&1
        chroot {root} cloud-init status --long >{out}/status 2>&1
        chroot {root} bash /jshub-wait.sh >{out}/wait.out 2>{out}/wait.err
        echo $? >{out}/wait.rc
        cat {root}{STAND_IN_LOG} >{out}/ran 2>/dev/null
        true
        """
    )
    script = tmp_path / "inner.sh"
    script.write_text(inner)
    result = subprocess.run(
        [
            "unshare",
            "--mount",
            "--uts",
            "--net",
            "--pid",
            "--fork",
            "--propagation",
            "private",
            "bash",
            str(script),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    read = lambda name: (out / name).read_text() if (out / name).exists() else ""  # noqa: E731
    return (
        Boot(
            status=read("status"),
            stages=read("stages"),
            ran=read("ran").split(),
            wait_rc=int(read("wait.rc") or -1),
            wait_out=read("wait.out"),
            wait_err=read("wait.err"),
        ),
        steps,
    )


def test_a_hub_boot_with_a_failing_step_ends_in_a_cloud_init_error_that_the_stack_reports(
    guest_root: Path, tmp_path: Path
) -> None:
    # The proxy's npm install: it needs the network, so it is a step that can fail on a real boot.
    names = [item[1] for item in user_data("hub")["runcmd"] if isinstance(item, list)]
    npm = next(i for i, name in enumerate(names, start=1) if "-npm-install" in name)
    result, steps = boot(guest_root, tmp_path, "hub", fail_at=npm)
    failing = steps[npm - 1]
    assert failing.startswith(f"{npm:02d}-npm-install")
    assert "status: error" in result.status, result.status + result.stages
    assert "scripts-user" in result.status  # cloud-init blames its runcmd scripts
    assert result.ran == steps[:npm]  # the steps after the failing one never ran
    assert f"jshub step {failing} failed (exit 3)" in result.stages
    assert result.wait_rc == 1, result.wait_err
    assert "the remote step went on" not in result.wait_out
    assert f"jshub step {failing} failed; the end of {BOOT_LOG_DIR}/{failing}.log:" in result.wait_err
    assert "error: the disk is on fire" in result.wait_err


def test_the_same_boot_with_every_step_passing_is_done(guest_root: Path, tmp_path: Path) -> None:
    result, steps = boot(guest_root, tmp_path, "hub", fail_at=0)
    assert "status: done" in result.status, result.status + result.stages
    assert result.ran == steps
    assert result.wait_rc == 0 and "the remote step went on" in result.wait_out, result.wait_err


def test_the_namespaced_boot_left_this_machine_alone() -> None:
    require(Path("/usr/local/bin").exists(), "no /usr/local/bin")
    assert not list(Path("/usr/local/bin").glob("jshub-stand-in-*"))
    assert not Path(STAND_IN_LOG).exists()
