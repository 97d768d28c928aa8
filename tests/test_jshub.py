"""The operators' commands without a real hub: where they find the hub (flags, environment, the
stack's outputs), what they say when they cannot, and what they do against stand-ins (a proxy
that answers in turn; a hub with its REST API and a kernel that runs the code it gets)."""

from __future__ import annotations

import argparse
import http.server
import json
import os
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from jshub import smoke, target, users
from jshub.hubapi import HubAPI, HubError
from tests.fakehub import FakeHub
from tests.jshub_commands import SMOKE_STEPS, smoke_rows


def args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    target.add_arguments(parser)
    return parser.parse_args(list(argv))


@pytest.fixture
def fake_pulumi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `pulumi` on PATH that prints stack outputs as `pulumi stack output --json
    --show-secrets` does, and records its arguments."""
    script = tmp_path / "pulumi"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$@" > {tmp_path}/args\n'
        'echo \'{"url": "https://hub.example.org", "admin_token": "from-stack", "workers": 3}\'\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    monkeypatch.delenv("JSHUB_URL", raising=False)
    monkeypatch.delenv("JSHUB_TOKEN", raising=False)
    return tmp_path


def test_flags_win_over_the_environment_and_the_stack(
    fake_pulumi: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JSHUB_URL", "https://env.example.org")
    monkeypatch.setenv("JSHUB_TOKEN", "from-env")
    assert target.resolve(args("--url", "https://flag.example.org/", "--token", "t")) == target.Target(
        "https://flag.example.org", "t"
    )
    assert target.resolve(args()) == target.Target("https://env.example.org", "from-env")
    assert not (fake_pulumi / "args").exists(), "pulumi was asked although nothing was missing"


def test_the_stack_outputs_fill_in_what_is_missing(
    fake_pulumi: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JSHUB_URL", "https://env.example.org")
    assert target.resolve(args("--stack", "dev")) == target.Target("https://env.example.org", "from-stack")
    assert (fake_pulumi / "args").read_text().split() == [
        "stack",
        "output",
        "--json",
        "--show-secrets",
        "--stack",
        "dev",
    ]


def test_no_hub_to_talk_to_exits_2_saying_why(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no pulumi
    monkeypatch.delenv("JSHUB_URL", raising=False)
    monkeypatch.delenv("JSHUB_TOKEN", raising=False)
    assert smoke.main([]) == 2
    assert "no pulumi command" in capsys.readouterr().err


def test_the_table_names_the_failed_step() -> None:
    text = smoke.table(
        [
            smoke.Step("reach the hub", 0.1, "JupyterHub 5.4.3", True),
            smoke.Step("create user", 0.2, "403", False),
        ]
    )
    lines = text.splitlines()
    assert lines[0].split() == ["step", "seconds", "result"]
    assert lines[2].startswith("create user") and "FAILED: 403" in lines[2]
    assert lines[-1].split() == ["total", "0.30"]


def test_roster_reads_csv_and_text_and_reports_bad_lines_by_number() -> None:
    from jshub import roster

    entries, bad = roster.parse(
        "username,admin\n"
        "alice,true\n"
        "# instructors above, participants below\n"
        "\n"
        "bob\n"
        "carol, no\n"
        "Dave\n"
        "eve,maybe\n"
        "bob\n"
        "frank,true,extra\n"
        "has space\n"
    )
    assert [(e.line, e.name, e.admin) for e in entries] == [
        (2, "alice", True),
        (5, "bob", False),
        (6, "carol", False),
    ]
    assert [(b.line, b.reason.split(":")[0]) for b in bad] == [
        (7, "JupyterHub logs this user in as 'dave'"),
        (8, "admin column 'maybe'"),
        (9, "bob is already on line 5"),
        (10, "more than two columns; write username[,admin]"),
        (11, "not a username"),
    ]
    text_entries, text_bad = roster.parse("alice\nbob\n")
    assert [e.name for e in text_entries] == ["alice", "bob"] and not text_bad


def test_progress_bar_on_a_log_prints_a_line_per_finished_item() -> None:
    import io

    from jshub.progress import Progress

    stream = io.StringIO()
    bar = Progress("warm-up", 2, stream=stream, width=10)
    bar.started()
    bar.started()
    bar.finished(True)
    bar.finished(False)
    bar.close()
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("warm-up [----------] 0/2")
    assert lines[-1].startswith("warm-up [##########] 2/2  ok 1  failed 1  in progress 0")
    assert bar.peak_active == 2 and len(lines) == 3


class _FakeProxy(http.server.BaseHTTPRequestHandler):
    """A proxy that answers each request with the next status of `answers` (the last repeats):
    502/503 while what is behind it is not there yet, then the hub's or the server's answer."""

    answers: ClassVar[list[int]] = []
    seen: ClassVar[list[int]] = []
    bodies: ClassVar[dict[int, dict[str, str]]] = {200: {"version": "5.4.3"}, 201: {"id": "k1"}}

    def _answer(self) -> None:
        status = self.answers[min(len(self.seen), len(self.answers) - 1)]
        self.seen.append(status)
        body = json.dumps(self.bodies.get(status, {"message": "unavailable"})).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake_proxy() -> Iterator[str]:
    _FakeProxy.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeProxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_the_smoke_test_waits_out_a_hub_that_is_still_starting(fake_proxy: str) -> None:
    _FakeProxy.answers = [502, 502, 200]
    run = smoke.Smoke(HubAPI(fake_proxy, "token"), hub_timeout=30, log=lambda line: None)
    assert run._version() == "5.4.3"
    assert _FakeProxy.seen == [502, 502, 200]


def test_a_hub_that_never_starts_fails_reach_the_hub_in_time(fake_proxy: str) -> None:
    _FakeProxy.answers = [502]
    run = smoke.Smoke(HubAPI(fake_proxy, "token"), hub_timeout=3, log=lambda line: None)
    with pytest.raises(HubError, match="timed out after 3s waiting for the hub to answer"):
        run._version()


def test_a_kernel_start_waits_out_a_proxy_that_has_not_settled(fake_proxy: str) -> None:
    _FakeProxy.answers = [503, 502, 201]
    assert HubAPI(fake_proxy, "token").start_kernel("alice")["id"] == "k1"
    assert _FakeProxy.seen == [503, 502, 201]


def test_a_kernel_start_fails_on_other_errors_at_once_and_on_a_proxy_that_never_settles(
    fake_proxy: str,
) -> None:
    _FakeProxy.answers = [500]
    with pytest.raises(HubError, match="-> 500, expected"):
        HubAPI(fake_proxy, "token").start_kernel("alice")
    assert _FakeProxy.seen == [500]
    _FakeProxy.answers, _FakeProxy.seen = [503], []
    with pytest.raises(HubError, match="-> 503, expected"):
        HubAPI(fake_proxy, "token").start_kernel("alice", settle_s=1.0)
    assert 2 <= len(_FakeProxy.seen) <= 4


# --- against a stand-in hub (tests/fakehub.py): the REST API and a kernel that runs the code ---


def _smoke(hub: FakeHub) -> int:
    return smoke.main(["--url", hub.url, "--token", hub.token, "--timeout", "10", "--hub-timeout", "5"])


def test_the_smoke_test_passes_on_a_hub_that_keeps_the_users_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeHub(tmp_path / "homes") as hub:
        assert _smoke(hub) == 0, capsys.readouterr().err
        assert hub.users == {}, "the throw-away user was left on the hub"
    rows = smoke_rows(capsys.readouterr().out)
    assert all(" ok: " in rows[step] for step in SMOKE_STEPS), rows
    assert f"wrote {tmp_path}/homes/{smoke.DEFAULT_USER}/{smoke.MARKER_FILE}" in rows["run a cell"]
    assert f"{smoke.MARKER_FILE} still there" in rows["file kept after restart"]


def _lose(home: Path) -> None:
    (home / smoke.MARKER_FILE).unlink(missing_ok=True)


def _change(home: Path) -> None:
    if (home / smoke.MARKER_FILE).exists():
        (home / smoke.MARKER_FILE).write_text("something else")


@pytest.mark.parametrize(("on_stop", "found"), [(_lose, "missing"), (_change, "something else")])
def test_the_smoke_test_fails_when_the_file_does_not_survive_the_restart(
    on_stop: Callable[[Path], None], found: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A hub whose servers lose (or change) a user's file when they stop: every step up to the
    restart passes, the file check fails saying what it found, and the user is cleaned up."""
    with FakeHub(tmp_path / "homes", on_stop=on_stop) as hub:
        assert _smoke(hub) == 1
        assert hub.users == {}, "the throw-away user was left on the hub"
    out, err = capsys.readouterr()
    rows = smoke_rows(out)
    restart = SMOKE_STEPS.index("file kept after restart")
    assert all(" ok: " in rows[step] for step in SMOKE_STEPS[:restart]), rows
    assert " FAILED: " in rows["file kept after restart"]
    assert not set(SMOKE_STEPS[restart + 1 :]) & set(rows), "steps ran after the failed one"
    assert (
        f"smoke test FAILED at step 'file kept after restart': AssertionError: {smoke.MARKER_FILE} "
        f"in the home holds {found!r}, not what was written"
    ) in err


def test_users_create_reports_each_bad_line_by_number_and_creates_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bad lines (the roster's, and a name the hub refuses) are each reported with their line
    number; every other line is created as the roster says; the exit status is 1. A second
    run changes nothing and reports the same lines."""
    path = tmp_path / "roster.csv"
    path.write_text(
        "username,admin\n"
        "alice,true\n"
        "# instructors above\n"
        "\n"
        "Not A Name\n"
        "bob\n"
        "carol,maybe\n"
        "dave,false\n"
        "bob\n"
        "refused-by-hub\n"
        "erin\n"
    )
    expected = [
        "line 5: 'Not A Name': not a username",
        "line 7: 'carol,maybe': admin column 'maybe'",
        "line 9: 'bob': bob is already on line 6",
        "line 10: refused-by-hub: POST",
    ]
    with FakeHub(tmp_path / "homes", refuse=frozenset({"refused-by-hub"})) as hub:
        argv = ["--url", hub.url, "--token", hub.token, "create", str(path)]
        for summary in ("create: created 4, failed 4", "create: already there 4, failed 4"):
            assert users.main(argv) == 1
            out, err = capsys.readouterr()
            reported = [line for line in err.splitlines() if line.startswith("line ")]
            assert len(reported) == len(expected), err
            for line, start in zip(reported, expected, strict=True):
                assert line.startswith(start), (line, start)
            assert summary in out
            assert {name: u["admin"] for name, u in hub.users.items()} == {
                "alice": True,
                "bob": False,
                "dave": False,
                "erin": False,
            }


@pytest.mark.parametrize(("status", "expected"), [(0, 0), (3, 1)])
def test_the_smoke_test_with_ssh_reports_the_backup_check(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    status: int,
    expected: int,
) -> None:
    """--ssh runs jshub-backup-check on the hub's VM (here a stand-in for ssh and the check)
    after the hub's steps; what the check says is the step's result."""
    assert smoke.ssh_backup_check("ubuntu@203.0.113.5") == [
        "ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=15", "ubuntu@203.0.113.5",
        "sudo", "-n", "/usr/local/sbin/jshub-backup-check",
    ]  # fmt: skip
    said = "the last backup run failed at 2026-01-02T03:20:00Z" if status else "the newest backup is 3 h old"
    stand_in = ["sh", "-c", f"echo '{said}' >&{2 if status else 1}; exit {status}"]
    seen: list[str] = []
    monkeypatch.setattr(smoke, "ssh_backup_check", lambda destination: seen.append(destination) or stand_in)
    with FakeHub(tmp_path / "homes") as hub:
        code = smoke.main(
            [
                "--url",
                hub.url,
                "--token",
                hub.token,
                "--timeout",
                "10",
                "--hub-timeout",
                "5",
                "--ssh",
                "ubuntu@203.0.113.5",
            ]
        )
    out = capsys.readouterr()
    assert code == expected and seen == ["ubuntu@203.0.113.5"]
    rows = smoke_rows(out.out)
    assert said in rows["backups"]
    if status:
        assert "smoke test FAILED at step 'backups': RuntimeError: jshub-backup-check exited 3" in out.err
