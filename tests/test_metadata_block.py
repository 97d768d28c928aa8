"""The cloud metadata block covers IPv4 and IPv6: the rendered units' own ExecStart and ExecStop
lines run for real with iptables/ip6tables, in a network namespace of the test's own where the
metadata addresses answer, and a user other than root is refused at both until the unit stops."""

from __future__ import annotations

import shlex
import subprocess
import textwrap
from pathlib import Path

import pytest

from renderers import render
from tests.conftest import require_root, require_tool

V4, V6 = "169.254.169.254", "fe80::a9fe:a9fe"
# The swarm nodes keep containers off the metadata service with their firewall
# (jshub-node-firewall.sh.j2, run against recording iptables in tests/test_swarm_renderers.py).
UNITS = ("jshub-block-metadata.service.j2",)


def exec_lines(unit: str, key: str) -> list[list[str]]:
    prefix = f"{key}="
    return [shlex.split(line[len(prefix) :]) for line in render(unit).splitlines() if line.startswith(prefix)]


@pytest.mark.parametrize("unit", UNITS)
def test_each_unit_blocks_both_metadata_addresses_and_undoes_exactly_that(unit: str) -> None:
    starts, stops = exec_lines(unit, "ExecStart"), exec_lines(unit, "ExecStop")
    tools = {cmd[cmd.index("-d") + 1]: Path(cmd[0]).name for cmd in starts}
    assert tools == {V4: "iptables", V6: "ip6tables"}
    assert all(cmd[0].startswith("/usr/sbin/") and "-w" in cmd for cmd in starts)
    assert stops == [[("-D" if arg == "-I" else arg) for arg in cmd] for cmd in starts]
    assert "Type=oneshot" in render(unit) and "RemainAfterExit=yes" in render(unit)


CONNECT = textwrap.dedent(
    """
    import socket, sys
    host = sys.argv[1]
    if ":" in host:
        sock, addr = socket.socket(socket.AF_INET6), (host, 80, 0, socket.if_nametoindex("lo"))
    else:
        sock, addr = socket.socket(socket.AF_INET), (host, 80)
    sock.settimeout(3)
    try:
        sock.connect(addr)
    except OSError:
        print("refused", host)
    else:
        print("open", host)
    """
)

SERVE = textwrap.dedent(
    """
    import socket, threading
    def serve(family, addr):
        s = socket.socket(family)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(addr)
        s.listen(16)
        while True:
            s.accept()[0].close()
    threading.Thread(target=serve, args=(socket.AF_INET, ("169.254.169.254", 80)), daemon=True).start()
    serve(socket.AF_INET6, ("fe80::a9fe:a9fe", 80, 0, socket.if_nametoindex("lo")))
    """
)


def namespace_script(unit: str) -> str:
    """Runs inside `unshare --net`: the metadata addresses on lo, a listener on both, then who
    gets through before, during and after the unit's rules."""
    start = "\n".join(shlex.join(cmd) for cmd in exec_lines(unit, "ExecStart"))
    stop = "\n".join(shlex.join(cmd) for cmd in exec_lines(unit, "ExecStop"))
    check = "\n".join(
        f"{shlex.join([('-C' if a == '-I' else a) for a in cmd])} && echo rule for {cmd[cmd.index('-d') + 1]}"
        for cmd in exec_lines(unit, "ExecStart")
    )
    probe = "\n".join(
        f"echo {phase} {who} $({run} /usr/bin/python3 -c {shlex.quote(CONNECT)} {host})"
        for phase in ("{phase}",)
        for who, run in (("root", ""), ("user", "setpriv --reuid=65534 --regid=65534 --clear-groups"))
        for host in (V4, V6)
    )
    return textwrap.dedent(
        f"""\
        set -euo pipefail
        ip link set lo up
        ip addr add {V4}/32 dev lo
        ip addr add {V6}/128 dev lo nodad
        # Docker makes this chain; the test's namespace has no Docker.
        iptables -w -N DOCKER-USER
        /usr/bin/python3 -c {shlex.quote(SERVE)} &
        sleep 0.5
        """
    ) + "\n".join(
        [
            probe.replace("{phase}", "before"),
            start,
            check,
            probe.replace("{phase}", "during"),
            stop,
            probe.replace("{phase}", "after"),
            "kill %1",
        ]
    )


@pytest.mark.parametrize("unit", UNITS)
def test_the_rules_refuse_users_at_both_addresses_until_the_unit_stops(unit: str, tmp_path: Path) -> None:
    require_root("applies the unit's firewall rules in a network namespace of its own")
    for tool, why in (
        ("unshare", "a network namespace of the test's own"),
        ("setpriv", "the probes run as an ordinary user"),
        ("iptables", "the unit's IPv4 rules"),
        ("ip6tables", "the unit's IPv6 rules"),
        ("ip", "the namespace's addresses and routes"),
    ):
        require_tool(tool, why)
    script = tmp_path / "netns.sh"
    script.write_text(namespace_script(unit))
    result = subprocess.run(["unshare", "--net", "bash", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    seen = set(result.stdout.splitlines())
    assert {f"rule for {V4}", f"rule for {V6}"} <= seen, result.stdout
    for host in (V4, V6):
        for who in ("root", "user"):
            assert f"before {who} open {host}" in seen, result.stdout
            assert f"after {who} open {host}" in seen, result.stdout
    if unit == "jshub-block-metadata.service.j2":
        # Processes on the VM itself: everyone but root is refused, at both addresses.
        for host in (V4, V6):
            assert f"during root open {host}" in seen, result.stdout
            assert f"during user refused {host}" in seen, result.stdout
