"""The upstream files the schema tests read are the ones the renderers pin, byte for byte as
upstream published them, and the refresh command reproduces them."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from renderers.k8s_monitoring import CHART_VERSION as KUBE_PROMETHEUS_VERSION
from renderers.k8s_monitoring import GRAFANA_CHART_VERSION
from renderers.rook import ROOK_VERSION
from renderers.z2jh import CHART_VERSION
from tests.fixtures.upstream import refresh

PINS = {
    "z2jh": CHART_VERSION,
    "rook": ROOK_VERSION,
    "kube-prometheus-stack": KUBE_PROMETHEUS_VERSION,
    "grafana": GRAFANA_CHART_VERSION,
}


@pytest.mark.parametrize("name", sorted(PINS))
def test_fixture_version_is_the_version_the_renderer_pins(name: str) -> None:
    entry = refresh.load_sources()[name]
    assert entry["version"] == PINS[name], (
        f"tests/fixtures/upstream holds {name} {entry['version']} but the renderer pins {PINS[name]}: "
        f"refresh the fixtures (python -m tests.fixtures.upstream.refresh {name} {PINS[name]} --from ...)"
    )


@pytest.mark.parametrize("name", sorted(PINS))
def test_fixture_files_are_unedited_copies_with_their_licence(name: str) -> None:
    entry = refresh.load_sources()[name]
    folder = refresh.HERE / entry["folder"]
    expected = {*entry["files"].values(), "LICENSE"}
    assert set(entry["sha256"]) == expected
    for file_name, digest in entry["sha256"].items():
        assert refresh.sha256(folder / file_name) == digest, f"{folder / file_name} differs from upstream"
    assert entry["license_name"] and entry["repository"].startswith("https://github.com/")
    assert len(entry["commit"]) == 40


def _git(repo: Path, *args: str) -> None:
    identity = ["-c", "user.email=release@example.org", "-c", "user.name=release"]
    subprocess.run(["git", "-C", str(repo), *identity, *args], check=True, capture_output=True)


def test_refresh_takes_the_tagged_files_from_a_git_repository(tmp_path: Path) -> None:
    """A stand-in upstream repository with the real files at a tag, and a new file at HEAD that
    must not leak in: the refresh reproduces the carried files and their checksums."""
    root = tmp_path / "fixtures"
    shutil.copytree(refresh.HERE, root, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    entry = refresh.load_sources(root)["z2jh"]
    upstream = tmp_path / "upstream"
    for path, file_name in {**entry["files"], "LICENSE": "LICENSE"}.items():
        (upstream / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(refresh.HERE / "z2jh" / file_name, upstream / path)
    _git(upstream, "init", "-q")
    _git(upstream, "add", ".")
    _git(upstream, "commit", "-qm", "release")
    _git(upstream, "tag", "9.9.9")
    (upstream / "jupyterhub" / "values.yaml").write_text("after: the tag\n")
    _git(upstream, "commit", "-qam", "later")
    for file_name in entry["files"].values():
        (root / "z2jh" / file_name).write_text("stale\n")

    new = refresh.refresh("z2jh", "9.9.9", upstream, root=root)

    assert new["version"] == "9.9.9" and len(new["commit"]) == 40
    assert new["sha256"] == refresh.load_sources()["z2jh"]["sha256"]
    assert json.loads((root / "sources.json").read_text())["z2jh"]["version"] == "9.9.9"


def test_refresh_reads_a_packaged_chart(tmp_path: Path) -> None:
    root = tmp_path / "fixtures"
    shutil.copytree(refresh.HERE, root, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    schema = {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object"}
    archive = tmp_path / "jupyterhub-9.9.9.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in {
            "jupyterhub/values.yaml": b"hub: {}\n",
            "jupyterhub/values.schema.json": json.dumps(schema).encode(),
            "jupyterhub/templates/hub.yaml": b"ignored\n",
        }.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

    refresh.refresh("z2jh", "9.9.9", archive, root=root)

    assert (root / "z2jh" / "values.yaml").read_text() == "hub: {}\n"
    assert json.loads((root / "z2jh" / "values.schema.yaml").read_text()) == schema
