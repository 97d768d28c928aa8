"""The data-volume guard: the real rendered script, run against stub system tools that log
their arguments one per line, formats a blank disk once, mounts a disk holding our filesystem,
and refuses a disk with anything else on it (a partition table, any signature). The real
blkid and wipefs then show that they report what the stubs stand for."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from renderers.scripts import render_data_volume_script
from renderers.swarm import ManagerBootSpec, render_manager_cloud_init
from tests.conftest import require

VOLUME = "0123456789abcdefghij-0000-1111"
SERIAL = VOLUME[:20]
UUID = "1234-abcd"
CALL = "### call"

STUBS = {
    # blkid -p -o export DEVICE: what is on the disk, exit 2 when nothing; -s UUID: its UUID.
    "blkid": """
if [[ " $* " == *" -s UUID "* ]]; then sed -n 's/^UUID=//p' "$DISK/export"; exit 0; fi
[[ -s "$DISK/export" ]] || exit 2
cat "$DISK/export"
""",
    "wipefs": '[[ -f "$DISK/signatures" ]] && cat "$DISK/signatures"; exit 0',
    **{
        f"mkfs.{fs}": f"""
label=""; while [[ $# -gt 1 ]]; do [[ $1 == -L ]] && label=$2; shift; done
printf 'UUID={UUID}\\nTYPE={fs}\\nLABEL=%s\\n' "$label" >"$DISK/export"
echo "0x438 {fs} $label {UUID}" >"$DISK/signatures"
"""
        for fs in ("ext4", "xfs")
    },
    "mountpoint": "exit 1",
    "mount": "exit 0",
    "install": "exit 0",
    "mkdir": "exit 0",
}


@dataclass
class Run:
    returncode: int
    stderr: str
    calls: list[list[str]]
    fstab: list[str]

    def called(self, tool: str) -> list[list[str]]:
        return [c[1:] for c in self.calls if c[0] == tool]


def parse_calls(text: str) -> list[list[str]]:
    calls: list[list[str]] = []
    for line in text.splitlines():
        if line == CALL:
            calls.append([])
        else:
            calls[-1].append(line)
    return calls


def run_script(
    tmp_path: Path, export: str, signatures: str, boots: int = 1, blkid: str = "", script: str = ""
) -> Run:
    bin_dir, disk, by_id = tmp_path / "bin", tmp_path / "disk", tmp_path / "by-id"
    for d in (bin_dir, disk, by_id):
        d.mkdir(parents=True)
    (by_id / f"virtio-{SERIAL}").touch()
    if export:
        (disk / "export").write_text(export)
    if signatures:
        (disk / "signatures").write_text(signatures)
    log = tmp_path / "calls.log"
    for tool, body in {**STUBS, **({"blkid": blkid} if blkid else {})}.items():
        stub = bin_dir / tool
        # Each call: a marker line, the tool, then every argument on a line of its own, so a
        # quoting bug (two arguments run together, or one split) shows in the log.
        stub.write_text(f'#!/bin/bash\nprintf "%s\\n" "{CALL}" "{tool}" "$@" >>"$LOG"\n{body}\n')
        stub.chmod(0o755)
    fstab = tmp_path / "fstab"
    fstab.write_text("")
    script = (
        (script or render_data_volume_script(VOLUME, "/data", wait_s=5))
        .replace("/dev/disk/by-id", str(by_id))
        .replace("/etc/fstab", str(fstab))
    )
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "LOG": str(log), "DISK": str(disk)}
    result = subprocess.CompletedProcess[str]([], 0, "", "")
    for _ in range(boots):
        result = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, check=False)
        if result.returncode:
            break
    calls = parse_calls(log.read_text()) if log.exists() else []
    return Run(result.returncode, result.stderr, calls, fstab.read_text().splitlines())


def test_a_blank_disk_is_formatted_once_and_mounted_by_uuid(tmp_path: Path) -> None:
    run = run_script(tmp_path, export="", signatures="", boots=2)
    assert run.returncode == 0, run.stderr
    device = str(tmp_path / "by-id" / f"virtio-{SERIAL}")
    assert run.called("mkfs.ext4") == [["-q", "-L", "jshub-data", device]]
    assert ["-p", "-o", "export", device] in run.called("blkid")
    assert run.called("wipefs") == [["--no-act", "--noheadings", device]] * 2
    assert run.called("mount") == [["/data"], ["/data"]]
    assert run.fstab == [f"UUID={UUID} /data ext4 defaults,nofail,x-systemd.device-timeout=10min 0 2"]
    assert run.called("install")[:2] == [
        ["-d", "-m", "0700", "/data/hub"],
        ["-d", "-m", "0755", "/data/home"],
    ]


def test_a_disk_with_our_filesystem_is_mounted_not_formatted(tmp_path: Path) -> None:
    run = run_script(
        tmp_path,
        export=f"UUID={UUID}\nTYPE=ext4\nLABEL=jshub-data\n",
        signatures=f"0x438 ext4 jshub-data {UUID}\n",
    )
    assert run.returncode == 0, run.stderr
    assert run.called("mkfs.ext4") == []
    assert run.called("mount") == [["/data"]]
    assert run.fstab[0].startswith(f"UUID={UUID} /data ext4 ")


@pytest.mark.parametrize(
    ("what", "export", "signatures"),
    [
        ("a partition table only", "PTUUID=5c1b7e2a\nPTTYPE=gpt\n", "0x200 gpt\n0x1fffe00 gpt\n0x1fe PMBR\n"),
        ("a signature blkid does not report", "", "0x0 LVM2_member\n"),
        ("another filesystem", "UUID=9f1e\nTYPE=xfs\nLABEL=other\n", "0x0 xfs other 9f1e\n"),
    ],
)
def test_a_disk_with_anything_else_on_it_is_refused(
    what: str, export: str, signatures: str, tmp_path: Path
) -> None:
    run = run_script(tmp_path, export=export, signatures=signatures)
    assert run.returncode != 0, what
    assert run.called("mkfs.ext4") == [] and run.called("mount") == []
    assert run.fstab == []
    assert f"refusing to format {tmp_path / 'by-id' / f'virtio-{SERIAL}'} (volume {VOLUME})" in run.stderr
    assert "holds no ext4 filesystem" in run.stderr
    assert signatures.splitlines()[0] in run.stderr


def test_a_disk_blkid_cannot_read_is_left_alone(tmp_path: Path) -> None:
    run = run_script(tmp_path, export="", signatures="", blkid="exit 4")
    assert run.returncode != 0
    assert "cannot probe" in run.stderr and "blkid exit 4" in run.stderr
    assert run.called("mkfs.ext4") == [] and run.called("mount") == []


def manager_volume_script() -> str:
    """The swarm manager's homes volume (XFS with project quotas), as its user data writes it."""
    doc = yaml.safe_load(
        render_manager_cloud_init(ManagerBootSpec("hub.example.org", "o@example.org", VOLUME, "k"))
    )
    files = {f["path"]: f["content"] for f in doc["write_files"]}
    return str(files["/usr/local/sbin/jshub-setup-data-volume"])


def test_the_swarm_managers_xfs_volume_is_guarded_the_same_way(tmp_path: Path) -> None:
    blank = run_script(tmp_path / "blank", export="", signatures="", boots=2, script=manager_volume_script())
    assert blank.returncode == 0, blank.stderr
    assert blank.called("mkfs.xfs") == [
        ["-q", "-L", "jshub-homes", str(tmp_path / "blank" / "by-id" / f"virtio-{SERIAL}")]
    ]
    assert (
        blank.fstab[0]
        == f"UUID={UUID} /export xfs defaults,prjquota,nofail,x-systemd.device-timeout=10min 0 2"
    )
    ext4 = run_script(
        tmp_path / "ext4",
        export=f"UUID={UUID}\nTYPE=ext4\nLABEL=jshub-data\n",
        signatures="0x438 ext4\n",
        script=manager_volume_script(),
    )
    assert ext4.returncode != 0 and "holds no xfs filesystem" in ext4.stderr
    assert ext4.called("mkfs.xfs") == [] and ext4.called("mount") == []


# --- the real tools see what the stubs stand for ------------------------------------------------


def real_tool(name: str) -> str:
    for folder in ("/usr/sbin", "/sbin", "/usr/bin"):
        if Path(folder, name).is_file():
            return str(Path(folder, name))
    path = shutil.which(name)
    require(
        path is not None, f"{name} is not installed (util-linux/e2fsprogs); `make system-deps` installs it"
    )
    assert path is not None
    return path


def test_real_blkid_and_wipefs_report_a_bare_partition_table(tmp_path: Path) -> None:
    image = tmp_path / "disk.img"
    with image.open("wb") as f:
        f.truncate(32 * 1024 * 1024)
    blkid, wipefs = real_tool("blkid"), real_tool("wipefs")
    blank = subprocess.run([blkid, "-p", "-o", "export", str(image)], capture_output=True, text=True)
    assert blank.returncode == 2 and blank.stdout == ""
    assert (
        subprocess.run(
            [wipefs, "--no-act", "--noheadings", str(image)], capture_output=True, text=True
        ).stdout
        == ""
    )
    subprocess.run([real_tool("sfdisk"), "--quiet", str(image)], input="label: gpt\n", text=True, check=True)
    probe = subprocess.run([blkid, "-p", "-o", "export", str(image)], capture_output=True, text=True)
    assert probe.returncode == 0 and "PTTYPE=gpt" in probe.stdout and "\nTYPE=" not in "\n" + probe.stdout
    signatures = subprocess.run(
        [wipefs, "--no-act", "--noheadings", str(image)], capture_output=True, text=True
    )
    assert "gpt" in signatures.stdout


def test_real_blkid_reports_our_filesystem_type(tmp_path: Path) -> None:
    image = tmp_path / "fs.img"
    with image.open("wb") as f:
        f.truncate(32 * 1024 * 1024)
    subprocess.run([real_tool("mkfs.ext4"), "-q", "-L", "jshub-data", str(image)], check=True)
    probe = subprocess.run(
        [real_tool("blkid"), "-p", "-o", "export", str(image)], capture_output=True, text=True
    )
    assert "TYPE=ext4" in probe.stdout.splitlines() and "LABEL=jshub-data" in probe.stdout.splitlines()
