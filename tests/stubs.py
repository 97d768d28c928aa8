"""Stand-in commands for tests that run a rendered script for real: a bash script of a given
body, put on the PATH the test hands the script."""

from __future__ import annotations

from pathlib import Path


def stub(bin_dir: Path, name: str, body: str) -> None:
    """`bin_dir/name`, an executable bash script running `body`."""
    (bin_dir / name).write_text("#!/bin/bash\n" + body + ("" if body.endswith("\n") else "\n"))
    (bin_dir / name).chmod(0o755)
