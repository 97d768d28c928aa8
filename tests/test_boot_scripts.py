"""A VM's first boot fails loudly, for every role: the rendered `runcmd` is run for real (through
cloud-init's own code where it is installed), its commands replaced by stand-ins, with one step
failing; and the script the stack's remote commands start with reports that step."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from renderers import BOOT_LOG_DIR, render
from renderers.boot import BOOT_STEP_COMMAND, render_boot_step_script, step_name
from renderers.k3s import render_fetch_kubeconfig_script
from renderers.scripts import render_install_hpc_key_script, render_install_secrets_script
from renderers.swarm import (
    render_swarm_init_script,
    render_swarm_join_script,
)
from tests.boot_roles import ROLES, user_data
from tests.conftest import require_root, require_tool


def cloud_init_python() -> str:
    """The interpreter of the installed cloud-init, which can import its modules."""
    tool = require_tool("cloud-init", "runs user data's runcmd with cloud-init's own code")
    shebang = Path(tool).read_text().splitlines()[0]
    assert shebang.startswith("#!"), shebang
    return shebang[2:].strip()


@pytest.mark.parametrize("role", sorted(ROLES))
def test_every_role_boots_through_named_steps_behind_set_e(role: str) -> None:
    doc = user_data(role)
    runcmd = doc["runcmd"]
    assert runcmd[:2] == ["set -e", f"rm -f {BOOT_LOG_DIR}/failed-step"]
    assert len(runcmd) > 2
    for index, item in enumerate(runcmd[2:], start=1):
        assert item[0] == BOOT_STEP_COMMAND and item[1] == step_name(index, item[2:]), item
    wrapper = next(f for f in doc["write_files"] if f["path"] == BOOT_STEP_COMMAND)
    assert wrapper["permissions"] == "0755" and wrapper["content"] == render_boot_step_script()


@pytest.mark.parametrize("role", sorted(ROLES))
def test_every_role_passes_cloud_init_schema(role: str, tmp_path: Path) -> None:
    tool = require_tool("cloud-init", "validates rendered user data")
    path = tmp_path / "user-data.yaml"
    path.write_text(ROLES[role]())
    result = subprocess.run([tool, "schema", "--config-file", str(path)], capture_output=True, text=True)
    assert result.returncode == 0 and "Valid" in result.stdout, result.stdout + result.stderr


def test_step_names_say_what_runs() -> None:
    assert step_name(3, ["/opt/jupyterhub/bin/pip", "install", "--no-cache-dir", "-r", "/r.txt"]) == (
        "03-pip-install"
    )
    assert step_name(1, ["/usr/local/sbin/jshub-setup-data-volume"]) == "01-jshub-setup-data-volume"
    assert step_name(12, ["sh", "-c", "grep -q x /etc/fstab || echo y"]) == "12-sh-grep"
    assert step_name(4, ["npm", "install", "--global", "configurable-http-proxy@5.1.0"]) == (
        "04-npm-install-configurable-http-proxy-5.1.0"
    )


# --- the boot, run -------------------------------------------------------------------------


class Boot:
    """A role's runcmd with the step wrapper rendered into a temporary log folder and every
    command replaced by a stand-in that logs its step; the stand-in of `fail_at` fails."""

    def __init__(self, role: str, tmp_path: Path, fail_at: int) -> None:
        self.tmp = tmp_path
        self.log_dir = tmp_path / "boot-logs"
        self.calls = tmp_path / "calls.log"
        wrapper = tmp_path / "jshub-boot-step"
        wrapper.write_text(render_boot_step_script(str(self.log_dir)))
        wrapper.chmod(0o755)
        self.steps: list[str] = []
        runcmd: list[Any] = []
        for item in user_data(role)["runcmd"]:
            if isinstance(item, str):
                runcmd.append(item.replace(BOOT_LOG_DIR, str(self.log_dir)))
                continue
            assert item[0] == BOOT_STEP_COMMAND
            index = len(self.steps) + 1
            self.steps.append(item[1])
            stand_in = tmp_path / f"stand-in-{index:02d}"
            body = f'echo "{item[1]}" >>{self.calls}\n'
            if index == fail_at:
                body += 'echo "error: the disk is on fire"\nexit 3\n'
            stand_in.write_text("#!/bin/bash\n" + body)
            stand_in.chmod(0o755)
            runcmd.append([str(wrapper), item[1], str(stand_in), *item[3:]])
        self.runcmd = runcmd
        self.fail_at = fail_at

    @property
    def failing_step(self) -> str:
        return self.steps[self.fail_at - 1]

    def ran(self) -> list[str]:
        return self.calls.read_text().split() if self.calls.exists() else []


def run_with_cloud_init(runcmd: list[Any], tmp_path: Path) -> dict[str, Any]:
    """cloud-init's own runcmd module writes the script and its scripts_user module runs it, as
    on a VM; an exception from a module is what `cloud-init status` reports as an error."""
    program = textwrap.dedent(
        """
        import inspect, json, logging, sys
        from cloudinit.config import cc_runcmd, cc_scripts_user

        runcmd, instance = json.loads(sys.argv[1]), sys.argv[2]

        class Cloud:
            def get_ipath(self, name=None):
                return instance + "/" + name if name else instance

            def get_ipath_cur(self, name=None):
                return self.get_ipath(name)

        def call(module, cfg):
            args = ["runcmd" if module is cc_runcmd else "scripts_user", cfg, Cloud()]
            if "log" in inspect.signature(module.handle).parameters:
                args.append(logging.getLogger())
            module.handle(*args, [])

        call(cc_runcmd, {"runcmd": runcmd})
        try:
            call(cc_scripts_user, {})
        except Exception as exc:
            print(json.dumps({"error": repr(exc)}))
        else:
            print(json.dumps({"error": None}))
        """
    )
    instance = tmp_path / "instance"
    instance.mkdir()
    result = subprocess.run(
        [cloud_init_python(), "-c", program, json.dumps(runcmd), str(instance)],
        capture_output=True,
        text=True,
        check=True,
    )
    out: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    out["script"] = (instance / "scripts" / "runcmd").read_text()
    out["stderr"] = result.stderr
    return out


@pytest.mark.parametrize("role", sorted(ROLES))
def test_a_failing_step_stops_the_boot_with_its_name_and_ends_in_a_cloud_init_error(
    role: str, tmp_path: Path
) -> None:
    require_root("the step logs belong to the adm group, as cloud-init's own log does")
    (tmp_path / "run").mkdir()
    steps = len([i for i in user_data(role)["runcmd"] if not isinstance(i, str)])
    # The first step when there is only one, else one in the middle: later steps must not run.
    fail_at = 1 if steps == 1 else max(2, steps // 2)
    boot = Boot(role, tmp_path / "run", fail_at)
    outcome = run_with_cloud_init(boot.runcmd, tmp_path)
    assert outcome["script"].startswith("#!/bin/sh\nset -e\n")
    assert outcome["error"] is not None and "Runparts" in outcome["error"], outcome
    assert boot.ran() == boot.steps[:fail_at]
    assert f"jshub step {boot.failing_step} failed (exit 3)" in outcome["stderr"]
    assert "error: the disk is on fire" in outcome["stderr"]
    assert (boot.log_dir / "failed-step").read_text().strip() == boot.failing_step
    assert "the disk is on fire" in (boot.log_dir / f"{boot.failing_step}.log").read_text()


@pytest.mark.parametrize("role", sorted(ROLES))
def test_a_boot_whose_steps_all_succeed_is_done(role: str, tmp_path: Path) -> None:
    require_root("the step logs belong to the adm group, as cloud-init's own log does")
    (tmp_path / "run").mkdir()
    boot = Boot(role, tmp_path / "run", fail_at=0)
    outcome = run_with_cloud_init(boot.runcmd, tmp_path)
    assert outcome["error"] is None, outcome
    assert boot.ran() == boot.steps
    assert not (boot.log_dir / "failed-step").exists()


def test_a_failed_step_of_an_earlier_run_is_forgotten(tmp_path: Path) -> None:
    require_root("the step logs belong to the adm group, as cloud-init's own log does")
    (tmp_path / "run").mkdir()
    boot = Boot("hub", tmp_path / "run", fail_at=0)
    boot.log_dir.mkdir()
    (boot.log_dir / "failed-step").write_text("03-pip-install\n")
    assert run_with_cloud_init(boot.runcmd, tmp_path)["error"] is None
    assert not (boot.log_dir / "failed-step").exists()
    assert oct((boot.log_dir).stat().st_mode & 0o777) == "0o750"


def test_without_set_e_the_same_boot_would_pass() -> None:
    """Why the wrapper is not enough alone: cloud-init's script is judged by its last line."""
    result = subprocess.run(["sh", "-c", "false\ntrue\n"], check=False)
    assert result.returncode == 0
    result = subprocess.run(["sh", "-c", "set -e\nfalse\ntrue\n"], check=False)
    assert result.returncode != 0


# --- what the stack's remote commands do with it ------------------------------------------------


def wait_script(boot_log_dir: Path) -> str:
    return (
        "#!/bin/bash\nset -euo pipefail\n"
        + render("_wait-cloud-init.sh.j2", boot_log_dir=str(boot_log_dir))
        + "echo the remote step went on\n"
    )


def run_wait(tmp_path: Path, boot_log_dir: Path, status: int) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    stand_in = bin_dir / "cloud-init"
    stand_in.write_text(
        "#!/bin/bash\n"
        'case "$*" in\n'
        f'  "status --wait") exit {status} ;;\n'
        '  "status --long") echo "status: error"; echo "detail: scripts_user failed" ;;\n'
        "esac\n"
    )
    stand_in.chmod(0o755)
    script = tmp_path / "wait.sh"
    script.write_text(wait_script(boot_log_dir))
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    return subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env, check=False)


def test_the_wait_reports_the_failed_step_and_the_end_of_its_log(tmp_path: Path) -> None:
    require_root("the step logs belong to the adm group, as cloud-init's own log does")
    (tmp_path / "run").mkdir()
    # The proxy's npm install, a step that needs the network and so can fail on a real boot.
    names = [item[1] for item in user_data("hub")["runcmd"] if isinstance(item, list)]
    npm = next(i for i, name in enumerate(names, start=1) if "-npm-install" in name)
    boot = Boot("hub", tmp_path / "run", fail_at=npm)
    run_with_cloud_init(boot.runcmd, tmp_path)
    result = run_wait(tmp_path, boot.log_dir, status=1)
    assert result.returncode == 1
    assert "the remote step went on" not in result.stdout
    assert "cloud-init failed (status 1)" in result.stderr
    assert "status: error" in result.stderr
    assert f"jshub step {boot.failing_step} failed" in result.stderr
    assert boot.failing_step.startswith(f"{npm:02d}-npm-install")
    assert "error: the disk is on fire" in result.stderr


@pytest.mark.parametrize("status", [0, 2])
def test_the_wait_goes_on_after_a_boot_that_is_done(status: int, tmp_path: Path) -> None:
    result = run_wait(tmp_path, tmp_path / "no-logs", status=status)
    assert result.returncode == 0, result.stderr
    assert "the remote step went on" in result.stdout


def test_the_wait_without_a_failed_step_points_at_cloud_inits_own_log(tmp_path: Path) -> None:
    result = run_wait(tmp_path, tmp_path / "no-logs", status=1)
    assert result.returncode == 1
    assert "status: error" in result.stderr
    assert "/var/log/cloud-init-output.log" in result.stderr


REMOTE_SCRIPTS: dict[str, Callable[[], str]] = {
    "install-secrets": lambda: render_install_secrets_script("/etc/jupyterhub/secrets/hub.env", "x.service"),
    "install-hpc-key": lambda: render_install_hpc_key_script("/etc/jshub/hpc/id", "/etc/jshub/hpc/kh", "h k"),
    "swarm-init": lambda: render_swarm_init_script("10.0.0.5"),
    "swarm-join": lambda: render_swarm_join_script("10.0.0.5"),
    "k3s-fetch-kubeconfig": lambda: render_fetch_kubeconfig_script(1),
}


@pytest.mark.parametrize("name", sorted(REMOTE_SCRIPTS))
def test_every_remote_step_that_waits_for_the_boot_reports_its_failed_step(name: str) -> None:
    script = REMOTE_SCRIPTS[name]()
    assert render("_wait-cloud-init.sh.j2") in script
    assert f"boot_log_dir={BOOT_LOG_DIR}" in script


@pytest.mark.parametrize("name", ["boot-step", "wait"])
def test_boot_scripts_pass_shellcheck(name: str, tmp_path: Path) -> None:
    text = render_boot_step_script() if name == "boot-step" else wait_script(Path(BOOT_LOG_DIR))
    path = tmp_path / f"{name}.sh"
    path.write_text(text)
    shellcheck = require_tool("shellcheck", "lints rendered shell scripts")
    result = subprocess.run(
        [shellcheck, "--severity=style", "--shell=bash", str(path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout
