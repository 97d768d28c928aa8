"""The course's packages (userEnvironment): refused by key unless each is pinned, the users'
environment's build script (shellchecked, and run for real against stand-in sudo and
cloud-init with the requirements file download checked), the hub's settings that make its
kernel the default, and under mocks a step of its own that a package change alone re-runs.

The real hub importing a package in a user's kernel is tests/e2e/test_user_env_hub.py."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest
import yaml

from components.hub import HubVM, HubVMArgs
from planner.mocks import SECRET, UNKNOWN, placeholder_id, placeholder_image_id
from renderers.hub_config import HubConfigSpec, HubPaths, hub_config_files
from renderers.user_env import KERNEL_NAME, UsersEnvSpec, render_users_env_script
from stackconfig import ConfigError
from tests.builders import HPC
from tests.conftest import BASE_CONFIG, COMMAND, command_named, make_config, run_mocked

SHELLCHECK = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "shellcheck"


def problems(**overrides: object) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        make_config(**overrides)
    return [str(p) for p in exc.value.problems]


def test_pinned_packages_are_accepted() -> None:
    cfg = make_config(userEnvironment={"packages": ["numpy==2.1.3", "xarray[io]==2024.10.0"]})
    assert cfg.user_environment is not None
    assert cfg.user_environment.requirements == ("numpy==2.1.3", "xarray[io]==2024.10.0")


@pytest.mark.parametrize(
    ("package", "says"),
    [
        ("numpy", "not pinned to one version; write numpy==<version>"),
        ("numpy>=2", "not pinned to one version"),
        ("numpy==2.*", "not pinned to one version"),
        ("numpy==2.1.3,!=2.1.2", "not pinned to one version"),
        ("numpy 2.1.3", "not a pip requirement"),
        ("-e .", "not a pip requirement"),
        ("numpy @ https://example.org/numpy.whl", "a direct URL is not pinned"),
    ],
)
def test_unpinned_or_malformed_requirements_are_refused_by_key(package: str, says: str) -> None:
    found = problems(userEnvironment={"packages": ["pandas==2.2.3", package]})
    assert len(found) == 1, found
    assert found[0].startswith(f"userEnvironment.packages.1 = {package!r}: "), found
    assert says in found[0]


def test_a_package_twice_and_an_unpinned_url_and_conda_are_refused_by_key() -> None:
    found = problems(
        userEnvironment={
            "packages": ["numpy==2.1.3", "NumPy==2.1.2"],
            "requirementsUrl": "https://example.org/requirements.txt",
            "condaPackages": ["r-base==4.3.1"],
        }
    )
    assert any(p.startswith("userEnvironment.packages = ") and "name the same package" in p for p in found)
    assert any(p.startswith("userEnvironment.requirementsUrl = ") and "#sha256=" in p for p in found)
    assert any(p.startswith("userEnvironment.condaPackages = ") and "PyPI wheels" in p for p in found)


@pytest.mark.parametrize(("scenario", "reason"), [("swarm", "swarm.allowedImages"), ("k8s", "k8s.userImage")])
def test_container_scenarios_are_told_where_their_packages_go(scenario: str, reason: str) -> None:
    from stackconfig.loader import parse

    stack = (
        Path(__file__).resolve().parent.parent
        / {
            "swarm": "Pulumi.persistent-swarm.yaml",
            "k8s": "Pulumi.workshop-k8s.yaml",
        }[scenario]
    )
    raw = yaml.safe_load(stack.read_text())["config"]
    raw["jupyterhub-jetstream:userEnvironment"] = {"packages": ["numpy==2.1.3"]}
    secret = [k for k, v in raw.items() if isinstance(v, dict) and "secure" in v]
    raw = {k: ("x" * 40 if k in secret else v) for k, v in raw.items()}
    with pytest.raises(ConfigError) as exc:
        parse(raw, secret_keys=secret)
    found = [str(p) for p in exc.value.problems if p.key == "userEnvironment"]
    assert len(found) == 1 and reason in found[0], exc.value


def hpc_stack(**hpc: object) -> dict[str, object]:
    return {"scenario": "hpc", "hpc": {**HPC, "accountMode": "community", "communityAccount": "gw", **hpc}}


def test_hpc_builds_in_the_named_folder_as_the_gateway_account_or_is_refused_by_key() -> None:
    env = {"packages": ["numpy==2.1.3"], "hpcFolder": "/projects/gw/jshub-users/"}
    cfg = make_config(**hpc_stack(), userEnvironment=env)
    spec = HubConfigSpec.from_config(cfg).users_env
    assert spec is not None and not spec.on_hub_vm
    assert (spec.root, spec.python, spec.setup) == (
        "/projects/gw/jshub-users",
        "python3",
        tuple(HPC["environmentSetup"]),
    )
    missing = problems(**hpc_stack(), userEnvironment={"packages": ["numpy==2.1.3"]})
    assert [p for p in missing if p.startswith("userEnvironment.hpcFolder: is required on hpc")], missing
    per_user = problems(**hpc_stack(accountMode="per-user"), userEnvironment=env)
    assert [p for p in per_user if p.startswith("userEnvironment: needs hpc.accountMode community")], per_user
    relative = problems(**hpc_stack(), userEnvironment={**env, "hpcFolder": "projects/../x"})
    assert [p for p in relative if p.startswith("userEnvironment.hpcFolder = 'projects/../x'")], relative
    on_single = problems(userEnvironment=env)
    assert [p for p in on_single if "is read by scenario hpc only" in p], on_single


# --- the build script ---------------------------------------------------------------------


def spec(
    root: Path, *packages: str, url: str | None = None, python: str = "/usr/bin/python3"
) -> UsersEnvSpec:
    return UsersEnvSpec(root=str(root), packages=packages, requirements_url=url, python=python)


def test_the_script_is_shellcheck_clean_with_and_without_a_url_and_an_admin_group(tmp_path: Path) -> None:
    for n, s in enumerate(
        [
            UsersEnvSpec("/opt/jshub-users", ("numpy==2.1.3",)),
            UsersEnvSpec(
                "/opt/jshub-users",
                ("numpy==2.1.3",),
                "https://example.org/r.txt#sha256=" + "a" * 64,
                admin_group="g",
            ),
        ]
    ):
        script = tmp_path / f"users-env-{n}.sh"
        script.write_text(render_users_env_script(s))
        result = subprocess.run([str(SHELLCHECK), str(script)], capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout


def test_the_script_pins_the_kernel_and_the_packages_and_registers_the_kernel() -> None:
    s = UsersEnvSpec("/opt/jshub-users", ("numpy==2.1.3",))
    script = render_users_env_script(s)
    requirements = script.split("<<'JSHUB_END_OF_FILE'\n", 2)[1].split("JSHUB_END_OF_FILE")[0]
    assert requirements.splitlines()[-1] == "numpy==2.1.3"
    assert all("==" in line for line in requirements.splitlines())
    kernel = json.loads(script.split("<<'JSHUB_END_OF_FILE'\n", 2)[2].split("JSHUB_END_OF_FILE")[0])
    assert kernel["argv"][:3] == [f"/opt/jshub-users/envs/{s.env_id}/bin/python", "-m", "ipykernel_launcher"]
    assert (
        f"{s.kernel_dir}/kernel.json" == f"/opt/jshub-users/share/jupyter/kernels/{KERNEL_NAME}/kernel.json"
    )


def stand_ins(tmp_path: Path) -> dict[str, str]:
    """sudo runs the command as the caller; cloud-init has nothing to wait for; pip installs
    from the caller's environment only (no registry): a stand-in python whose `-m pip` records."""
    bin_dir = tmp_path / "stub-bin"
    bin_dir.mkdir()
    for name, body in {"sudo": 'exec "$@"', "cloud-init": "exit 0"}.items():
        (bin_dir / name).write_text(f"#!/bin/bash\n{body}\n")
        (bin_dir / name).chmod(0o755)
    return {"PATH": f"{bin_dir}:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(tmp_path)}


def fake_python(tmp_path: Path) -> Path:
    """A stand-in for the image's python3: `-m venv DIR` makes DIR/bin/python, itself a stand-in
    whose `-m pip ...` is logged (one argument a line) and succeeds unless FAIL_PIP is set."""
    log = tmp_path / "pip.log"
    python = tmp_path / "python3"
    python.write_text(
        "#!/bin/bash\n"
        'if [[ $1 == -m && $2 == venv ]]; then mkdir -p "$3/bin"; cp "$0" "$3/bin/python"; exit 0; fi\n'
        f'printf "%s\\n" "$@" >>{log}; echo "--" >>{log}\n'
        '[[ -z "${FAIL_PIP:-}" ]]\n'
    )
    python.chmod(0o755)
    return python


def run(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, check=False)


def test_a_new_list_switches_the_kernel_keeps_the_previous_env_and_removes_older(tmp_path: Path) -> None:
    root, env = tmp_path / "users", stand_ins(tmp_path)
    python = str(fake_python(tmp_path))
    specs = [spec(root, p, python=python) for p in ("a==1", "b==1", "c==1")]
    for s in specs:
        result = run(render_users_env_script(s), env)
        assert result.returncode == 0, result.stderr
        kernel = json.loads((Path(s.kernel_dir) / "kernel.json").read_text())
        assert kernel["argv"][0] == f"{s.env_dir()}/bin/python"
        assert (root / "current").resolve() == Path(s.env_dir())
    # The newest and the one before (kernels may still run in it); the first is gone.
    assert sorted(p.name for p in (root / "envs").iterdir()) == sorted(s.env_id for s in specs[1:])
    # Run again with nothing changed (a rebuilt server's disk keeps nothing, but a re-run
    # must be harmless): no pip, same kernel.
    log = tmp_path / "pip.log"
    before = log.read_text()
    assert run(render_users_env_script(specs[-1]), env).returncode == 0
    assert log.read_text() == before


def test_a_failed_build_leaves_the_kernel_on_the_environment_it_had(tmp_path: Path) -> None:
    root, env = tmp_path / "users", stand_ins(tmp_path)
    python = str(fake_python(tmp_path))
    good, bad = spec(root, "a==1", python=python), spec(root, "b==1", python=python)
    assert run(render_users_env_script(good), env).returncode == 0
    result = run(render_users_env_script(bad), {**env, "FAIL_PIP": "1"})
    assert result.returncode == 1
    assert "pip install of userEnvironment.packages" in result.stderr
    assert not Path(bad.env_dir()).exists()
    kernel = json.loads((Path(good.kernel_dir) / "kernel.json").read_text())
    assert kernel["argv"][0] == f"{good.env_dir()}/bin/python"


def test_the_requirements_url_is_installed_only_with_its_pinned_checksum_and_pinned_lines(
    tmp_path: Path,
) -> None:
    env = stand_ins(tmp_path)
    python = str(fake_python(tmp_path))
    good = tmp_path / "good.txt"
    good.write_text("# the course\ntabulate==0.9.0\n\nrich==13.9.4 ; python_version >= '3.8'\n")
    loose = tmp_path / "loose.txt"
    loose.write_text("tabulate==0.9.0\nrich\n")

    def url_spec(name: str, path: Path, digest: str | None = None) -> UsersEnvSpec:
        digest = digest or hashlib.sha256(path.read_bytes()).hexdigest()
        return spec(tmp_path / name, "a==1", url=f"file://{path}#sha256={digest}", python=python)

    ok = run(render_users_env_script(url_spec("ok", good)), env)
    assert ok.returncode == 0, ok.stderr
    assert "/url-requirements.txt\n--\n" in (tmp_path / "pip.log").read_text()
    changed = run(render_users_env_script(url_spec("changed", good, "0" * 64)), env)
    assert changed.returncode == 1 and "sha256 is not the one pinned" in changed.stderr
    unpinned = run(render_users_env_script(url_spec("unpinned", loose)), env)
    assert unpinned.returncode == 1 and "not name==version" in unpinned.stderr
    assert "rich\n" in unpinned.stderr and "tabulate" not in unpinned.stderr


# --- the hub's settings and the stack's steps ------------------------------------------------


def test_servers_get_the_course_kernel_as_default_and_the_env_on_their_path() -> None:
    cfg = make_config(userEnvironment={"packages": ["numpy==2.1.3"]})
    settings = json.loads(hub_config_files(HubConfigSpec.from_config(cfg))["jupyterhub_settings.json"])
    spawner = settings["Spawner"]
    # After the hub's JupyterLab settings folder, which every server gets.
    lab_settings = f"--LabApp.app_settings_dir={HubPaths().lab_settings_dir}"
    assert spawner["args"] == [lab_settings, f"--MultiKernelManager.default_kernel_name={KERNEL_NAME}"]
    assert spawner["environment"]["JUPYTER_PATH"] == f"{HubPaths().users_env_root}/share/jupyter"
    assert spawner["environment"]["PATH"].startswith(f"{HubPaths().users_env_root}/current/bin:")
    # Without the key, kernels stay in the hub's venv as before.
    plain = json.loads(hub_config_files(HubConfigSpec.from_config(make_config()))["jupyterhub_settings.json"])
    assert plain["Spawner"]["args"] == [lab_settings] and "environment" not in plain["Spawner"]


def _registrations(**overrides: object) -> dict[str, object]:
    def program() -> None:
        cfg = make_config(**overrides)
        HubVM("hub", HubVMArgs(config=cfg, network_id="n", subnet_id="s", security_group_ids=["sg"]))

    rec = run_mocked(program, {**BASE_CONFIG, **overrides})
    return {r.name: r for r in rec.registrations}


def test_a_package_change_re_runs_only_the_users_env_step() -> None:
    before = _registrations(userEnvironment={"packages": ["numpy==2.1.3"]})
    after = _registrations(userEnvironment={"packages": ["numpy==2.1.3", "tabulate==0.9.0"]})
    assert before.keys() == after.keys()
    changed = sorted(n for n in before if before[n].inputs != after[n].inputs)  # type: ignore[attr-defined]
    assert changed == ["hub-user-env"], changed
    step = after["hub-user-env"]
    create = step.inputs["create"]  # type: ignore[attr-defined]
    assert "tabulate==0.9.0\n" in create and "numpy==2.1.3\n" in create
    server = after["hub-vm-server"]
    # Triggers: the root disk (server and booted image, known: the applies ran), then the list.
    assert step.inputs["triggers"] == [  # type: ignore[attr-defined]
        placeholder_id("openstack:compute/instance:Instance", server.name),  # type: ignore[attr-defined]
        placeholder_image_id(server.inputs["imageName"]),  # type: ignore[attr-defined]
        HubConfigSpec.from_config(
            make_config(userEnvironment={"packages": ["numpy==2.1.3", "tabulate==0.9.0"]})
        ).users_env.env_id,  # type: ignore[union-attr]
    ]
    assert step.inputs["connection"] == SECRET  # type: ignore[attr-defined]
    assert create not in (UNKNOWN, SECRET)


def test_without_the_key_there_is_no_users_env_step() -> None:
    rec = run_mocked(lambda: HubVM("hub", HubVMArgs(make_config(), "n", "s", ["sg"])))
    assert "hub-user-env" not in {r.name for r in rec.registrations if r.type == COMMAND}
    with_env = {**BASE_CONFIG, "userEnvironment": {"packages": ["numpy==2.1.3"]}}
    rec = run_mocked(lambda: HubVM("hub", HubVMArgs(make_config(**with_env), "n", "s", ["sg"])), with_env)
    assert "numpy==2.1.3" in command_named(rec, "hub-user-env").inputs["create"]


def test_on_hpc_a_package_change_re_runs_only_the_hpc_step_which_uses_the_hub_key() -> None:
    from renderers.user_env import SCRIPT_END
    from stacks.hpc import build

    def registrations(*packages: str) -> dict[str, object]:
        config = {
            **BASE_CONFIG,
            **hpc_stack(),
            "userEnvironment": {"packages": list(packages), "hpcFolder": "/projects/gw/jshub-users"},
        }
        rec = run_mocked(lambda: build(make_config(**config)), config)
        return {r.name: r for r in rec.registrations}

    before, after = registrations("numpy==2.1.3"), registrations("numpy==2.1.3", "tabulate==0.9.0")
    changed = sorted(n for n in before if before[n].inputs != after[n].inputs)  # type: ignore[attr-defined]
    assert changed == ["hpc-user-env"], changed
    step = after["hpc-user-env"]
    create = step.inputs["create"]  # type: ignore[attr-defined]
    assert "hub-user-env" not in after, "nothing is built on the hub VM"
    assert "sudo ssh -i /etc/jupyterhub/hpc/id_hpc -p 22" in create
    assert (
        "UserKnownHostsFile=/etc/jupyterhub/hpc/known_hosts" in create
        and "gw@login.hpc.example.edu" in create
    )
    inner = create.split(f"<<'{SCRIPT_END}'\n", 1)[1]
    assert "module load anaconda3\n" in inner and "sudo " not in inner and "tabulate==0.9.0\n" in inner
    # It waits for the key, and lives on the HPC system: no root-disk trigger.
    assert before["hpc-install-key"].urn in step.dependency_urns  # type: ignore[attr-defined]
    assert len(step.inputs["triggers"]) == 1  # type: ignore[attr-defined]
    settings = after["hub-config"].inputs["create"]  # type: ignore[attr-defined]
    assert '"JUPYTER_PATH": "/projects/gw/jshub-users/share/jupyter"' in settings


def test_the_hpc_scripts_are_shellcheck_clean(tmp_path: Path) -> None:
    from renderers.user_env import HpcLogin, render_hpc_users_env_script

    s = UsersEnvSpec(
        "/projects/gw/u", ("numpy==2.1.3",), python="python3", on_hub_vm=False, setup=("module load x",)
    )
    login = HpcLogin(
        "login.example.org", 22, "gw", "/etc/jupyterhub/hpc/id_hpc", "/etc/jupyterhub/hpc/known_hosts"
    )
    for name, text in {
        "outer": render_hpc_users_env_script(s, login),
        "inner": render_users_env_script(s),
    }.items():
        script = tmp_path / f"{name}.sh"
        script.write_text(text)
        result = subprocess.run([str(SHELLCHECK), str(script)], capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout
