"""What the QEMU boot tests share (tests/test_boot_vm.py, tests/test_boot_k8s.py): the tools
they need, and each boot's phases reported against the bare image's."""

from __future__ import annotations

import sys

from boot.guest import Phases
from tests.conftest import require_root, require_tool


def require_qemu() -> None:
    for tool, why in (
        ("qemu-system-x86_64", "boots the guests"),
        ("qemu-img", "makes their disks"),
        ("cloud-localds", "writes the NoCloud seed"),
        ("debootstrap", "builds the guest image"),
        ("ssh", "runs commands in the guests"),
    ):
        require_tool(tool, why)
    require_root("debootstrap and chroot build the guest image")


# The bare image's phases, once a test has booted it ("bare"): the reference for report().
REFERENCE: dict[str, Phases] = {}


def report(phases: Phases) -> None:
    ref = REFERENCE.get("bare")
    line = ", ".join(f"{k} {v:.0f} s" for k, v in phases.values.items())
    if ref and "cloud-init" in ref.values and "cloud-init" in phases.values:
        ratio = phases.values["cloud-init"] / ref.values["cloud-init"]
        line += f" (bare image: cloud-init {ref.values['cloud-init']:.0f} s; {ratio:.1f}x)"
    print(f"\n[boot] {phases.name}: {line}", file=sys.stderr)
