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

Exit status 0 only when cloud-init ended `done`, every remote step that could run exited 0 and,
on a hub, the smoke test passed.
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from boot.acme import PUBLIC_ADDRESS, AcmeError, LocalAcme
from boot.guest import DataDisk, Guest, GuestError, PrivateLink, free_port
from boot.image import build, cache_dir
from boot.plan import REPO, PlanError, Role, load_role
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


def acme_stack_file(stack: str, acme: LocalAcme, folder: Path) -> Path:
    """Pulumi.<stack>.yaml with only the ACME server and its root added, and on a single hub
    the servers' start timeout raised for emulation."""
    project = yaml.safe_load((REPO / "Pulumi.yaml").read_text())["name"]
    document = yaml.safe_load((REPO / f"Pulumi.{stack}.yaml").read_text())
    config = document["config"]
    config[f"{project}:acmeDirectory"] = acme.directory
    config[f"{project}:acmeRootCertificate"] = acme.root_pem
    if config.get(f"{project}:scenario") == "single":
        config[f"{project}:serverStartTimeoutSeconds"] = EMULATED_START_TIMEOUT_S
    path = folder / f"Pulumi.{stack}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def smoke(acme: LocalAcme, url: str, token: str) -> bool:
    """The project's smoke test against the booted hub's HTTPS name."""
    result = acme.run(
        [sys.executable, "-m", "jshub.smoke"],
        env={"JSHUB_URL": url, "JSHUB_TOKEN": token, "PYTHONPATH": str(REPO)},
    )
    print(result.stdout + result.stderr, end="")
    return result.returncode == 0


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
            args.stack, role.instance, state / "plan", acme_stack_file(args.stack, acme, state), fresh=True
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
    links = (
        [PrivateLink(free_port(), f"{role.private_address}/24", listen=True, mac="52:54:00:00:01:01")]
        if role.private_address
        else []
    )
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
    smoke_ok = True
    try:
        guest.start()
        print(f"[boot] {role.instance}: ports {guest.ports} (guest port: host port)")
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
            smoke_ok = smoke(acme, f"https://{hub}", admin_token)
            guest.phases.record("smoke test over HTTPS", time.monotonic() - begin)
            if not smoke_ok:
                units = " ".join(f"-u {unit}" for unit in (HUB_UNIT, PROXY_UNIT, "caddy.service"))
                journal = guest.sudo(f"journalctl --no-pager -n 80 {units}", check=False)
                print(f"[boot] the end of the hub's, proxy's and Caddy's journal:\n{journal.stdout}")
        guest.phases.record("ready", time.monotonic() - start)
    except GuestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        guest.close()
        if acme:
            acme.stop()
    if reference:
        ci = guest.phases.values["cloud-init"]
        print(
            f"[boot] bare image reached cloud-init done in {reference:.0f} s; {role.instance}: {ci:.0f} s ({ci / reference:.1f}x)"
        )
    if skipped:
        print(f"[boot] not run (secret stdin): {', '.join(skipped)}")
    if not smoke_ok:
        print(f"[boot] the smoke test against https://{hub} failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
