"""Course material on the single hub, with the production-rendered config run by a real
JupyterHub on loopback: the shared folder on the data volume is written by an admin's kernel,
read (and not written) by a participant's kernel through ~/shared, and follows the hub's admin
list; nbgitpuller's link pulls a git repository into a participant's home.

Needs root, adduser, git and configurable-http-proxy (`make system-deps`).
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import pytest

from tests.conftest import require_tool
from tests.e2e.conftest import ADMIN, random_username

if TYPE_CHECKING:
    from tests.e2e.conftest import Hub

pytestmark = pytest.mark.e2e

WRITE = """
import os
path = os.path.expanduser("~/shared/{name}")
try:
    with open(path, "w") as f:
        f.write("{text}")
    print("written", os.stat(path).st_gid)
except PermissionError as e:
    print("refused", e.errno)
"""
READ = 'import os; print(open(os.path.expanduser("~/shared/{name}")).read())'


@pytest.fixture(scope="module")
def participant(hub: Hub) -> str:
    name = random_username()
    hub.expect(hub.api("POST", f"/users/{name}"), 201)
    return name


def test_admin_writes_and_participant_only_reads_the_shared_folder(hub: Hub, participant: str) -> None:
    hub.start_server(ADMIN)
    hub.start_server(participant)
    shared = Path(hub.paths.shared_root)
    group = grp.getgrnam(hub.paths.shared_group)

    # The folder on the data volume: root's, the admins' group, setgid, no write for others.
    info = shared.stat()
    assert (info.st_uid, info.st_gid, oct(info.st_mode & 0o7777)) == (0, group.gr_gid, "0o2775")
    assert ADMIN in group.gr_mem and participant not in group.gr_mem
    for user in (ADMIN, participant):
        link = Path(hub.paths.home_root) / user / "shared"
        assert link.is_symlink() and os.readlink(link) == str(shared)
        assert link.lstat().st_uid == pwd.getpwnam(user).pw_uid

    out = hub.run_code(ADMIN, WRITE.format(name="welcome.txt", text="day 1: notebooks"))
    assert out.split() == ["written", str(group.gr_gid)], out
    assert hub.run_code(participant, READ.format(name="welcome.txt")).strip() == "day 1: notebooks"
    out = hub.run_code(participant, WRITE.format(name="mine.txt", text="x"))
    assert out.split() == ["refused", "13"], out
    assert not (shared / "mine.txt").exists()
    out = hub.run_code(participant, WRITE.format(name="welcome.txt", text="overwritten"))
    assert out.split() == ["refused", "13"], out
    assert (shared / "welcome.txt").read_text() == "day 1: notebooks"


def test_a_user_made_admin_writes_after_the_next_start_and_loses_it_when_demoted(
    hub: Hub, participant: str
) -> None:
    hub.stop_server(participant)
    hub.expect(hub.api("PATCH", f"/users/{participant}", json={"admin": True}), 200)
    hub.start_server(participant)
    out = hub.run_code(participant, WRITE.format(name="from-new-admin.txt", text="ok"))
    assert out.split()[0] == "written", out

    hub.stop_server(participant)
    hub.expect(hub.api("PATCH", f"/users/{participant}", json={"admin": False}), 200)
    hub.start_server(participant)
    assert participant not in grp.getgrnam(hub.paths.shared_group).gr_mem
    out = hub.run_code(participant, WRITE.format(name="after-demotion.txt", text="x"))
    assert out.split() == ["refused", "13"], out


def test_nbgitpuller_link_pulls_a_repository_into_the_home(
    hub: Hub, participant: str, tmp_path: Path
) -> None:
    require_tool("git", "nbgitpuller runs git in the user's server")
    # A course repository as an organiser would publish it (on GitHub, say), here a bare
    # repository on disk.
    repo = hub.root / "course.git"
    work = tmp_path / "work"
    git = ["git", "-c", "user.name=Organiser", "-c", "user.email=org@example.org"]
    subprocess.run(["git", "init", "--quiet", "--bare", "--initial-branch=main", str(repo)], check=True)
    subprocess.run(["git", "init", "--quiet", "--initial-branch=main", str(work)], check=True)
    (work / "lesson1.ipynb").write_text(
        json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
    )
    subprocess.run([*git, "-C", str(work), "add", "."], check=True)
    subprocess.run([*git, "-C", str(work), "commit", "--quiet", "-m", "lesson 1"], check=True)
    subprocess.run(["git", "-C", str(work), "push", "--quiet", str(repo), "main"], check=True)
    # git reads a repository on disk only as its owner (safe.directory): hand it over.
    subprocess.run(["chown", "-R", participant, str(repo)], check=True)
    if not hub.server(participant):
        hub.start_server(participant)

    query = {"repo": f"file://{repo}", "branch": "main", "targetpath": "course", "urlpath": "lab/tree/course"}
    # The link organisers hand out: the server's own page for it answers.
    page = hub.http.get(f"{hub.public_url}/user/{participant}/git-pull?{urlencode(query)}", timeout=30)
    assert page.status_code == 200 and "nbgitpuller" in page.text.lower(), page.text[:500]
    # What that page's script then calls: the pull, as an event stream that ends "finished".
    pull = hub.http.get(f"{hub.public_url}/user/{participant}/git-pull/api?{urlencode(query)}", timeout=120)
    assert pull.status_code == 200, pull.text[:500]
    events = [
        json.loads(line[len("data: ") :]) for line in pull.text.splitlines() if line.startswith("data: ")
    ]
    assert events and events[-1]["phase"] == "finished", events
    pulled = Path(hub.paths.home_root) / participant / "course" / "lesson1.ipynb"
    assert pulled.is_file()
    assert pulled.stat().st_uid == pwd.getpwnam(participant).pw_uid
