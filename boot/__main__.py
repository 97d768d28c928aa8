"""`make boot STACK=<name> [ROLE=<instance>]`: boot one VM role of a stack for real (QEMU).

The role boots with exactly the user data `make plan` wrote for it, its data volumes as virtio
disks kept under the boot cache (so a second run is a rebuild: a fresh root disk, the same data
disk), and then the stack's remote steps for that VM run over SSH with the deploy key. A bare
image boots first as the reference the phases are compared with.

A hub VM (the stack has a `url`) gets Let's Encrypt's stand-in, a local ACME server
(boot/acme.py): the stack is planned again with only `acmeDirectory` and `acmeRootCertificate`
set to it (the user data stays byte-identical, which is checked), the hub's secrets step gets
tokens made here, and once the steps have run the project's smoke test (`jshub.smoke`) runs
against https://<the hub's name>/: a user is made, a server spawns, a kernel runs code.

A gateway-hpc hub boots beside a second guest, the HPC site's login node (boot/hpc.py: SLURM,
sshd, the users' HPC accounts, a Jupyter environment) on a private segment: the stack file's
`hpc` section points at it, the hub's `hpc-install-key` step gets the key the site authorised,
and the smoke test's server is a SLURM job on that node, reached through the SSH tunnel.

Exit status 0 only when cloud-init ended `done`, every remote step that could run exited 0 and,
on a hub, the smoke test passed and a rebuild (a second boot of the role) kept the hub's users
and certificate and, on a single hub, the users' UIDs and files (boot/keep.py).
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from boot.acme import PUBLIC_ADDRESS, AcmeError, LocalAcme
from boot.guest import DataDisk, Guest, GuestError, PrivateLink, Share, free_port
from boot.hpc import LOGIN_NAME, LoginNode, login_node
from boot.image import build, cache_dir
from boot.keep import EVERYTHING, HUB_STATE, KEEPER, compare
from boot.plan import REPO, PlanError, Role, load_role
from jshub.smoke import DEFAULT_USER as SMOKE_USER
from renderers.cloud_init import HUB_UNIT, PROXY_UNIT

BARE_USER_DATA = "#cloud-config\n{}\n"


def reference_boot() -> float:
    """Seconds for the bare image to reach cloud-init `done` with an empty user data."""
    with Guest("bare-reference", BARE_USER_DATA, memory_mb=1024) as guest:
        guest.boot(ssh_timeout=900, cloud_init_timeout=900)
        return guest.phases.values["cloud-init"]


def run_remote_steps(guest: Guest, role: Role, stdins: dict[str, str] | None = None) -> list[str]:
    """Run the role's remote steps as `pulumi up` would; the names of those that could not run
    (their stdin is a deploy-time secret the harness does not make). `stdins`: the secret
    standard input of a step, by the end of its name."""
    skipped = []
    for step in role.remote_steps:
        stdin = next((v for k, v in (stdins or {}).items() if step.name.endswith(k)), None)
        if step.stdin_is_secret and stdin is None:
            skipped.append(step.name)
            print(
                f"[boot] {role.instance}: remote step {step.name} skipped: its stdin is a deploy-time secret"
            )
            continue
        start = time.monotonic()
        guest.run(step.script, input=stdin, timeout=3600)
        guest.phases.record(f"remote step {step.name}", time.monotonic() - start)
    return skipped


def hub_secrets() -> tuple[str, str]:
    """The hub's secrets file as the stack makes it (components.hub), with tokens made here:
    (the file, the admin token the smoke test uses)."""
    from components.hub import hub_env_file

    admin = secrets.token_hex(32)
    return hub_env_file("boot-oauth-client-secret", admin, secrets.token_hex(32)), admin


# Emulation runs a notebook server 10-20x slower than a VM: its start takes 50-60 s here, at
# the edge of the single hub's 60 s default to answer.
EMULATED_START_TIMEOUT_S = 900


PROJECT = yaml.safe_load((REPO / "Pulumi.yaml").read_text())["name"]
# The HPC site's Jupyter environment in a gateway-hpc boot: this virtualenv, shared read-only.
VENV = Path(sys.prefix)


def stack_config(stack: str) -> dict[str, Any]:
    """The `config` of Pulumi.<stack>.yaml, keys without the project's prefix."""
    config = yaml.safe_load((REPO / f"Pulumi.{stack}.yaml").read_text())["config"]
    return {key.removeprefix(f"{PROJECT}:"): value for key, value in config.items()}


def acme_stack_file(stack: str, acme: LocalAcme, folder: Path, login: LoginNode | None = None) -> Path:
    """Pulumi.<stack>.yaml with only the ACME server and its root added, on a single hub the
    servers' start timeout raised for emulation, and on a gateway-hpc hub the `hpc` section
    pointed at the boot's login node."""
    document = yaml.safe_load((REPO / f"Pulumi.{stack}.yaml").read_text())
    config = document["config"]
    config[f"{PROJECT}:acmeDirectory"] = acme.directory
    config[f"{PROJECT}:acmeRootCertificate"] = acme.root_pem
    if config.get(f"{PROJECT}:scenario") == "single":
        config[f"{PROJECT}:serverStartTimeoutSeconds"] = EMULATED_START_TIMEOUT_S
    if login is not None:
        config[f"{PROJECT}:hpc"] = login.stack_section(config[f"{PROJECT}:hpc"], VENV)
    path = folder / f"Pulumi.{stack}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def smoke(acme: LocalAcme, url: str, token: str) -> bool:
    """The project's smoke test against the booted hub's HTTPS name."""
    result = acme.run(
        # The hub restarted by the last step starts as slowly as the rest under emulation (one
        # boot with other guests running beside it took 125 s): wait as for a server's start.
        [sys.executable, "-m", "jshub.smoke", "--hub-timeout", str(EMULATED_START_TIMEOUT_S)],
        env={"JSHUB_URL": url, "JSHUB_TOKEN": token, "PYTHONPATH": str(REPO)},
    )
    print(result.stdout + result.stderr, end="")
    return result.returncode == 0


def kept_across_rebuild(acme: LocalAcme, url: str, token: str, state: Path, keys: tuple[str, ...]) -> bool:
    """What the booted hub holds (boot/keep.py), compared with what the role's last boot left
    in `state` when there is one (this boot is then a rebuild); recorded for the next."""
    result = acme.run(
        [sys.executable, "-m", "boot.keep", url, token], env={"PYTHONPATH": str(REPO)}, timeout=3600
    )
    if result.returncode != 0:
        print(f"[boot] the lasting user's check failed:\n{result.stdout}{result.stderr}")
        return False
    now = json.loads(result.stdout.strip().splitlines()[-1])
    record = state / "kept.json"
    lost = compare(json.loads(record.read_text()), now, keys) if record.exists() else []
    what = ", ".join(keys)
    if not record.exists():
        print(f"[boot] recorded for the next boot (a rebuild) to compare: {what}")
    elif lost:
        print(f"[boot] the rebuild lost: {'; '.join(lost)}")
    else:
        print(f"[boot] the rebuild kept {what}: {now}")
    record.write_text(json.dumps(now))
    return not lost


def boot_site(site: Guest) -> None:
    """Boot the HPC site's login node and wait until SLURM schedules on it."""
    status = site.boot(cloud_init_timeout=3600)
    if status["status"] != "done":
        output = site.sudo("tail -n 40 /var/log/cloud-init-output.log", check=False).stdout
        raise GuestError(f"{site.name}: cloud-init {status['status']}: {status['errors']}\n{output}")
    nodes = site.run("sinfo -h -o '%P %t'").stdout.split("\n")
    print(f"[boot] {site.name}: SLURM partitions and node state: {'; '.join(n for n in nodes if n)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m boot", description=__doc__)
    parser.add_argument("--stack", default="dev")
    parser.add_argument("--role", default=None, help="an Instance resource of the plan (default: the first)")
    parser.add_argument("--fresh", action="store_true", help="start from blank data disks")
    parser.add_argument("--no-reference", action="store_true", help="skip the bare-image reference boot")
    parser.add_argument("--memory-mb", type=int, default=3072)
    args = parser.parse_args(argv)

    try:
        role = load_role(args.stack, args.role)
    except PlanError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    state = cache_dir() / "stacks" / args.stack / role.instance
    if args.fresh and state.exists():
        shutil.rmtree(state)
    state.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    image = build()
    how = f"built in {image.build_s:.0f} s" if image.build_s else "cached"
    print(f"[boot] image: {image.root} ({how})")
    reference = None if args.no_reference else reference_boot()

    hub = urlsplit(role.url).hostname if role.url else None
    acme: LocalAcme | None = None
    stdins: dict[str, str] = {}
    admin_token = ""
    login: LoginNode | None = None
    config = stack_config(args.stack)
    if hub and role.private_address and config.get("scenario") == "hpc":
        login = login_node(state / "hpc-site", config["hpc"], role.private_address, [SMOKE_USER, KEEPER])
        # What `pulumi up` feeds the step: the gateway's private key (the site authorised its
        # public half for the smoke test's HPC account).
        stdins["-install-key"] = login.hub_key.private
        print(f"[boot] HPC login node {LOGIN_NAME} at {login.address}, accounts {', '.join(login.accounts)}")
    if hub:
        # Kept with the data disk: a rebuild finds the same CA that signed the kept certificate.
        try:
            acme = LocalAcme(state / "acme", {hub: PUBLIC_ADDRESS}).start()
        except AcmeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(
            f"[boot] local ACME server: {acme.directory} (as the guest reaches it); {hub} -> {PUBLIC_ADDRESS}"
        )
        with_acme = load_role(
            args.stack,
            role.instance,
            state / "plan",
            acme_stack_file(args.stack, acme, state, login),
            fresh=True,
        )
        if with_acme.user_data != role.user_data:
            print(
                "error: the ACME keys changed the user data; they must reach the VM over SSH only",
                file=sys.stderr,
            )
            acme.stop()
            return 1
        print("[boot] user data: byte-identical to `make plan`'s")
        role = with_acme
        stdins["-secrets"], admin_token = hub_secrets()

    disks = [DataDisk(state / f"volume-{vid}.img", vid, size="8G") for vid in role.volume_ids]
    # The VM's port on the private network, at the address the plan's scripts were written for.
    # With a login node: one segment for both guests.
    port = free_port()
    links = (
        [
            PrivateLink(
                port, f"{role.private_address}/24", listen=True, mac="52:54:00:00:01:01", segment=bool(login)
            )
        ]
        if role.private_address
        else []
    )
    site: Guest | None = None
    if login and acme and hub and role.private_address:
        site = Guest(
            LOGIN_NAME,
            login.user_data(
                hub_name=hub,
                hub_address=role.private_address,
                partitions=[p["name"] for p in config["hpc"]["partitions"]],
                ca_root_pem=acme.root_pem,
            ),
            links=[
                PrivateLink(port, f"{login.address}/24", listen=False, mac="52:54:00:00:01:02", segment=True)
            ],
            shares=[Share(VENV, str(VENV))],
            memory_mb=2048,
            cpus=2,
        )
        site.image = image
    guest = Guest(
        role.instance,
        role.user_data,
        data_disks=disks,
        links=links,
        # A hub answers on its name's address, ports 80 and 443, as the ACME server expects.
        forwards={80: 80, 443: 443} if acme else {80: 0, 443: 0},
        public_address=PUBLIC_ADDRESS if acme else "127.0.0.1",
        memory_mb=args.memory_mb,
    )
    guest.image = image
    hub_ok = True
    skipped: list[str] = []
    try:
        guest.start()
        print(f"[boot] {role.instance}: ports {guest.ports} (guest port: host port)")
        if site:
            boot_site(site.start())
        status = guest.boot(cloud_init_timeout=4 * 3600)
        if status["status"] != "done":
            print(
                f"[boot] {role.instance}: cloud-init {status['status']}: {status['errors']}\n{status['detail']}"
            )
            failed = guest.run("cat /var/log/jshub-boot/failed-step 2>/dev/null", check=False).stdout.strip()
            if failed:
                print(f"[boot] failed boot step: {failed}")
            return 1
        skipped = run_remote_steps(guest, role, stdins)
        if acme and hub:
            begin = time.monotonic()
            hub_ok = smoke(acme, f"https://{hub}", admin_token)
            guest.phases.record("smoke test over HTTPS", time.monotonic() - begin)
            if not hub_ok:
                units = " ".join(f"-u {unit}" for unit in (HUB_UNIT, PROXY_UNIT, "caddy.service"))
                journal = guest.sudo(f"journalctl --no-pager -n 80 {units}", check=False)
                print(f"[boot] the end of the hub's, proxy's and Caddy's journal:\n{journal.stdout}")
                if site:
                    logs = site.sudo(
                        "tail -n 40 /var/log/slurm/slurmctld.log /home/*/jupyterhub-*.log", check=False
                    )
                    print(f"[boot] the login node's SLURM log and job logs:\n{logs.stdout}")
            else:
                begin = time.monotonic()
                keys = HUB_STATE if site else EVERYTHING
                hub_ok = kept_across_rebuild(acme, f"https://{hub}", admin_token, state, keys)
                guest.phases.record("what a rebuild keeps", time.monotonic() - begin)
            if hub_ok and site:
                jobs = site.sudo("ls /home/*/jupyterhub-*.log", check=False).stdout.split()
                if jobs:
                    print(f"[boot] the servers ran as SLURM jobs on {LOGIN_NAME}: {' '.join(jobs)}")
                else:
                    print(f"[boot] no SLURM job log on {LOGIN_NAME}: the servers did not run there")
                hub_ok = bool(jobs)
        guest.phases.record("ready", time.monotonic() - start)
    except GuestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        # The data disks stay for the next run, a rebuild: power the guest off cleanly first, as
        # OpenStack's rebuild does, so that what it last wrote reaches them (QEMU killed outright
        # is a power cut: a file written seconds before is left empty by ext4's delayed
        # allocation, which is what the first rebuild check of the dev hub found).
        if "boot to SSH" in guest.phases.values:
            begin = time.monotonic()
            guest.shutdown()
            guest.phases.record("clean power-off", time.monotonic() - begin)
        guest.close()
        if site:
            site.close()
        if acme:
            acme.stop()
    if reference:
        if site:
            ci = site.phases.values["cloud-init"]
            print(f"[boot] {LOGIN_NAME}: cloud-init done in {ci:.0f} s ({ci / reference:.1f}x)")
        ci = guest.phases.values["cloud-init"]
        print(
            f"[boot] bare image reached cloud-init done in {reference:.0f} s; {role.instance}: {ci:.0f} s ({ci / reference:.1f}x)"
        )
    if skipped:
        print(f"[boot] not run (secret stdin): {', '.join(skipped)}")
    if not hub_ok:
        print(f"[boot] the checks against https://{hub} failed (above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
