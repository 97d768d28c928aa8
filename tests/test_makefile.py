"""`make help` names every entry point the Makefile declares."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_make_help_names_every_phony_target() -> None:
    make = shutil.which("make")
    assert make is not None, "make is part of the README's two commands"
    text = (ROOT / "Makefile").read_text()
    phony = re.search(r"^\.PHONY:(.*)$", text, re.M)
    assert phony is not None
    targets = set(phony.group(1).split()) - {"help"}
    declared = {m.group(1) for m in re.finditer(r"^([a-z][a-z-]*):", text, re.M)}
    assert targets == declared - {"help"}, "every rule with a name is .PHONY, and every .PHONY has a rule"
    out = subprocess.run(
        [make, "-s", "-C", str(ROOT), "help"], capture_output=True, text=True, check=True
    ).stdout
    named = {word for line in out.splitlines() for word in re.findall(r"make ([a-z-]+)", line)}
    assert targets <= named, f"make help does not name {sorted(targets - named)}"
