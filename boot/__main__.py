"""`make boot STACK=<name> [ROLE=<instance>]`: boot one VM role of a stack for real (QEMU).

The role boots with exactly the user data `make plan` wrote for it, its data volumes as virtio
disks kept under the boot cache (so a second run is a rebuild: a fresh root disk, the same data
disk), and then the stack's remote steps for that VM run over SSH with the deploy key. A bare
image boots first as the reference the phases are compared with. Exit status 0 only when
cloud-init ended `done` and every remote step that could run exited 0.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time

from boot.guest import DataDisk, Guest, GuestError
from boot.image import build, cache_dir
from boot.plan import PlanError, Role, load_role

BARE_USER_DATA = "#cloud-config\n{}\n"


def reference_boot() -> float:
    """Seconds for the bare image to reach cloud-init `done` with an empty user data."""
    with Guest("bare-reference", BARE_USER_DATA, memory_mb=1024) as guest:
        guest.boot(ssh_timeout=900, cloud_init_timeout=900)
        return guest.phases.values["cloud-init"]


def run_remote_steps(guest: Guest, role: Role) -> list[str]:
    """Run the role's remote steps as `pulumi up` would; the names of those that could not run
    (their stdin is a deploy-time secret the harness does not make)."""
    skipped = []
    for step in role.remote_steps:
        if step.stdin_is_secret:
            skipped.append(step.name)
            print(
                f"[boot] {role.instance}: remote step {step.name} skipped: its stdin is a deploy-time secret"
            )
            continue
        start = time.monotonic()
        guest.run(step.script, timeout=3600)
        guest.phases.record(f"remote step {step.name}", time.monotonic() - start)
    return skipped


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
    start = time.monotonic()
    image = build()
    how = f"built in {image.build_s:.0f} s" if image.build_s else "cached"
    print(f"[boot] image: {image.root} ({how})")
    reference = None if args.no_reference else reference_boot()

    state = cache_dir() / "stacks" / args.stack / role.instance
    if args.fresh and state.exists():
        shutil.rmtree(state)
    disks = [DataDisk(state / f"volume-{vid}.img", vid, size="8G") for vid in role.volume_ids]
    guest = Guest(
        role.instance, role.user_data, data_disks=disks, forwards={80: 0, 443: 0}, memory_mb=args.memory_mb
    )
    guest.image = image
    try:
        guest.start()
        print(f"[boot] {role.instance}: 127.0.0.1 ports {guest.ports} (guest port: host port)")
        status = guest.boot(cloud_init_timeout=4 * 3600)
        if status["status"] != "done":
            print(
                f"[boot] {role.instance}: cloud-init {status['status']}: {status['errors']}\n{status['detail']}"
            )
            failed = guest.run("cat /var/log/jshub-boot/failed-step 2>/dev/null", check=False).stdout.strip()
            if failed:
                print(f"[boot] failed boot step: {failed}")
            return 1
        skipped = run_remote_steps(guest, role)
        guest.phases.record("ready", time.monotonic() - start)
    except GuestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        guest.close()
    if reference:
        ci = guest.phases.values["cloud-init"]
        print(
            f"[boot] bare image reached cloud-init done in {reference:.0f} s; {role.instance}: {ci:.0f} s ({ci / reference:.1f}x)"
        )
    if skipped:
        print(f"[boot] not run (secret stdin): {', '.join(skipped)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
