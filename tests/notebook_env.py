"""The Python environment the tests' real hubs run from, as a hub VM runs /opt/jupyterhub.

The notebook servers (and SLURM jobs) run as the users' own Unix accounts, so every folder above
that environment must be traversable by other users and its files readable by them. A checkout
under /root or in a `mktemp -d` folder (both mode 0700) is neither, so the checkout's `.venv`
cannot serve them, and changing the permissions of the folders above a checkout is not the
tests' business. The environment is therefore built apart, from exactly the list the hub VM
installs (hub/requirements.txt), once per list and interpreter, in a folder of its own under
/var/tmp (JSHUB_TEST_ENV_ROOT moves it), which later and concurrent test runs share under a lock.
That it is the VM's list alone also proves the list is enough for the config the hub runs.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "hub" / "requirements.txt"
DEFAULT_ENV_ROOT = "/var/tmp/jshub-test-envs"
COMPLETE = ".complete"


class NotebookEnvError(RuntimeError):
    pass


def closed_to_others(path: Path) -> Path | None:
    """The first folder on the way to `path` that other users cannot enter, or `path` itself
    when they cannot read it; None when other users can reach and read it. Judged by the mode
    bits for others (no ACLs), which is what an account outside root's group has."""
    path = Path(os.path.abspath(path))
    for folder in reversed(path.parents):
        if not folder.stat().st_mode & stat.S_IXOTH:
            return folder
    mode = path.stat().st_mode
    needed = stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(mode) or mode & stat.S_IXUSR else 0)
    return None if mode & needed == needed else path


def base_interpreter() -> Path:
    """The interpreter the running venv was built from (Makefile: /usr/bin/python3)."""
    return Path(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))


def env_root() -> Path:
    return Path(os.environ.get("JSHUB_TEST_ENV_ROOT", DEFAULT_ENV_ROOT))


def env_key(interpreter: Path) -> str:
    digest = hashlib.sha256(REQUIREMENTS.read_bytes())
    digest.update(f"{interpreter}\n{sys.version}".encode())
    return digest.hexdigest()[:12]


def planned_location() -> Path:
    return env_root() / f"notebook-{env_key(base_interpreter())}"


def _make_open_folder(folder: Path) -> None:
    """Create `folder` (and missing parents) traversable by others; an existing one is left as is."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    for path in reversed(missing):
        path.mkdir()
        path.chmod(0o755)


def _build(target: Path, interpreter: Path) -> None:
    started = time.monotonic()
    print(f"[notebook env] building {target} from {REQUIREMENTS.name} with {interpreter}", file=sys.stderr)
    shutil.rmtree(target, ignore_errors=True)
    for argv in (
        [str(interpreter), "-m", "venv", str(target)],
        [
            str(target / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
            str(REQUIREMENTS),
        ],
    ):
        # umask 022: files other users must read, whatever the caller's umask is.
        result = subprocess.run(argv, capture_output=True, text=True, umask=0o022, check=False)
        if result.returncode != 0:
            shutil.rmtree(target, ignore_errors=True)
            raise NotebookEnvError(
                f"could not build the notebook environment in {target} ({' '.join(argv[:4])} exited "
                f"{result.returncode}): {(result.stderr or result.stdout)[-1500:]}\n"
                "PyPI must be reachable; JSHUB_TEST_ENV_ROOT chooses another folder."
            )
    (target / COMPLETE).write_text(f"{REQUIREMENTS.read_text()}")
    print(f"[notebook env] built in {time.monotonic() - started:.0f} s", file=sys.stderr)


@functools.cache
def notebook_env() -> Path:
    """The hub's environment for this run (built on first use, then reused)."""
    interpreter = base_interpreter()
    blocked = closed_to_others(interpreter)
    if blocked is not None:
        raise NotebookEnvError(
            f"the tests' Python {interpreter} cannot be run by other users ({blocked} is closed to "
            "them): notebook servers run as the users' accounts. Build .venv from the system "
            "Python (make clean venv PYTHON=/usr/bin/python3)."
        )
    target = planned_location()
    _make_open_folder(target.parent)
    blocked = closed_to_others(target.parent)
    if blocked is not None:
        raise NotebookEnvError(
            f"{blocked} is closed to other users, so notebook servers could not run from "
            f"{target}: set JSHUB_TEST_ENV_ROOT to a folder every user can enter."
        )
    with open(target.parent / f"{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a concurrent run builds it once; the others wait
        if not (target / COMPLETE).exists():
            _build(target, interpreter)
    return target
