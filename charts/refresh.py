"""Vendor the Helm charts the k8s stack installs, at the versions the renderers pin.

    make charts-refresh                      # needs the network: clones from GitHub
    python -m charts.refresh --git rook/rook=../rook jupyterhub rook-ceph

Each chart is taken from its upstream repository at the release tag (`git archive`), with the
repository's licence, and with what the upstream release process fills in at release time and
git does not hold (Zero to JupyterHub: chartpress's chart version and image tags, and the
values.schema.json made from values.schema.yaml; Rook: the chart version and `master` image
tags, and the `library` chart its symlink points at; NVIDIA's device plugin: the chart version
and appVersion `helm package` is given). The chart's dependencies from chart
repositories are vendored the same way under `<chart>/charts/<name>/`, from their own release
tags, as `helm dependency build` would place them, unless the chart's own tree already holds the
dependency (a folder, or a packaged `charts/<name>-*.tgz`, which `helm package` ships as it is). `SOURCE` in each folder records the
repository, tag, commit, licence, what was filled in, and a digest of the files
(tests/test_charts.py fails when a file was edited by hand or a pin moved without a refresh).

`--git owner/name=PATH` reads a repository from a local clone or bare mirror that has the tags
instead of cloning it."""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import io
import json
import posixpath
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from renderers import k8s_monitoring, nvidia, rook, z2jh  # noqa: E402

LICENCES = {
    "jupyterhub/zero-to-jupyterhub-k8s": "BSD-3-Clause",
    "rook/rook": "Apache-2.0",
    "ceph/ceph-csi-operator": "Apache-2.0",
    "prometheus-community/helm-charts": "Apache-2.0",
    "grafana-community/helm-charts": "Apache-2.0",
    "NVIDIA/k8s-device-plugin": "Apache-2.0",
}
# Chart repositories the charts' dependencies come from -> (GitHub repository, tag, chart folder)
# for a dependency name and version.
CHART_REPOSITORIES: dict[str, Callable[[str, str], tuple[str, str, str]]] = {
    "https://prometheus-community.github.io/helm-charts": lambda n, v: (
        "prometheus-community/helm-charts",
        f"{n}-{v}",
        f"charts/{n}",
    ),
    "https://grafana-community.github.io/helm-charts": lambda n, v: (
        "grafana-community/helm-charts",
        f"{n}-{v}",
        f"charts/{n}",
    ),
    "https://ceph.github.io/ceph-csi-operator": lambda n, v: (
        "ceph/ceph-csi-operator",
        f"v{v}",
        f"deploy/charts/{n}",
    ),
}


@dataclass(frozen=True)
class Chart:
    folder: str
    repo: str
    tag: str
    path: str
    # What the upstream release fills in that git does not hold: (chart folder, tag) -> notes.
    release: Callable[[Path, str], list[str]] | None = None
    notes: list[str] = field(default_factory=list)


def _set_chart_yaml(chart: Path, **fields: str) -> None:
    text = (chart / "Chart.yaml").read_text()
    for key, value in fields.items():
        text, count = re.subn(rf"^{key}:.*$", f"{key}: {value}", text, count=1, flags=re.M)
        if count != 1:
            raise SystemExit(f"error: {chart}/Chart.yaml has no {key}")
    (chart / "Chart.yaml").write_text(text)


def _chartpress_release(chart: Path, tag: str) -> list[str]:
    """What the Zero to JupyterHub release does (its .github/workflows/publish.yml): make
    values.schema.json from values.schema.yaml without the descriptions
    (tools/generate-json-schema.py), then chartpress sets the chart version and the tag of the
    chart's own images to the release tag."""

    def drop_descriptions(schema: dict[str, Any]) -> None:
        schema.pop("description", None)
        for value in schema.get("properties", {}).values():
            if isinstance(value, dict):
                drop_descriptions(value)

    schema = yaml.safe_load((chart / "values.schema.yaml").read_text())
    drop_descriptions(schema)
    (chart / "values.schema.json").write_text(json.dumps(schema))
    _set_chart_yaml(chart, version=tag)
    values = chart / "values.yaml"
    values.write_text(values.read_text().replace('tag: "set-by-chartpress"', f'tag: "{tag}"'))
    return [
        "values.schema.json generated from values.schema.yaml as tools/generate-json-schema.py does",
        f"Chart.yaml version and the chart's own image tags (set-by-chartpress) set to {tag}, as chartpress does",
    ]


def _rook_release(chart: Path, tag: str) -> list[str]:
    """What Rook's release does (build/makelib/helm.mk): `master` -> the version in values.yaml,
    `helm package --version --app-version`."""
    values = chart / "values.yaml"
    values.write_text(values.read_text().replace("master", tag))
    _set_chart_yaml(chart, version=tag, appVersion=tag)
    return [
        f"values.yaml: master replaced by {tag}; Chart.yaml version and appVersion {tag}, as build/makelib/helm.mk does"
    ]


def _ceph_csi_release(chart: Path, tag: str) -> list[str]:
    """ceph-csi-operator's .github/workflows/publish-helm-charts.yaml sets the chart's versions."""
    version = tag.removeprefix("v")
    _set_chart_yaml(chart, version=version, appVersion=f"v{version}")
    return [f"Chart.yaml version {version} and appVersion v{version}, as publish-helm-charts.yaml does"]


def _nvidia_release(chart: Path, tag: str) -> list[str]:
    """What NVIDIA's device-plugin release does: hack/prepare-release.sh writes the version into
    Chart.yaml before tagging, and hack/package-helm-charts.sh runs `helm package --version
    --app-version` with the version without its `v`; the image tag is `v` + appVersion
    (`nvidia-device-plugin.fullimage` in templates/_helpers.tpl)."""
    version = tag.removeprefix("v")
    before = yaml.safe_load((chart / "Chart.yaml").read_text())
    if before.get("version") == before.get("appVersion") == version:
        return [
            f"Chart.yaml: version and appVersion already {version} at the tag (set by hack/prepare-release.sh), "
            "as hack/package-helm-charts.sh passes them to helm package: nothing filled in"
        ]
    _set_chart_yaml(chart, version=f'"{version}"', appVersion=f'"{version}"')
    return [
        f"Chart.yaml version and appVersion set to {version}, as hack/package-helm-charts.sh's "
        "helm package --version/--app-version does"
    ]


RELEASES = {"ceph/ceph-csi-operator": _ceph_csi_release}

CHARTS = {
    "jupyterhub": Chart(
        "jupyterhub",
        "jupyterhub/zero-to-jupyterhub-k8s",
        z2jh.CHART_VERSION,
        "jupyterhub",
        _chartpress_release,
    ),
    "rook-ceph": Chart("rook-ceph", "rook/rook", rook.ROOK_VERSION, "deploy/charts/rook-ceph", _rook_release),
    "rook-ceph-cluster": Chart(
        "rook-ceph-cluster", "rook/rook", rook.ROOK_VERSION, "deploy/charts/rook-ceph-cluster", _rook_release
    ),
    "kube-prometheus-stack": Chart(
        "kube-prometheus-stack",
        "prometheus-community/helm-charts",
        f"kube-prometheus-stack-{k8s_monitoring.CHART_VERSION}",
        "charts/kube-prometheus-stack",
    ),
    "nvidia-device-plugin": Chart(
        "nvidia-device-plugin",
        "NVIDIA/k8s-device-plugin",
        f"v{nvidia.DEVICE_PLUGIN_VERSION}",
        "deployments/helm/nvidia-device-plugin",
        _nvidia_release,
    ),
}


class Repos:
    """Git directories of the upstream repositories: given, or cloned (blobs on demand)."""

    def __init__(self, given: dict[str, Path], scratch: Path) -> None:
        self.given = given
        self.scratch = scratch

    def git_dir(self, repo: str) -> Path:
        if repo in self.given:
            return self.given[repo]
        target = self.scratch / repo.replace("/", "+")
        if not target.exists():
            url = f"https://github.com/{repo}.git"
            subprocess.run(
                ["git", "clone", "--quiet", "--bare", "--filter=blob:none", url, str(target)], check=True
            )
        return target

    def git(self, repo: str, *args: str) -> str:
        out = subprocess.run(
            ["git", f"--git-dir={self.git_dir(repo)}", *args], check=True, capture_output=True, text=True
        )
        return out.stdout

    def commit(self, repo: str, tag: str) -> str:
        return self.git(repo, "rev-parse", f"{tag}^{{commit}}").strip()

    def extract(self, repo: str, tag: str, path: str, dest: Path) -> None:
        archive = subprocess.run(
            ["git", f"--git-dir={self.git_dir(repo)}", "archive", "--format=tar", tag, path],
            check=True,
            capture_output=True,
        ).stdout
        strip = len(Path(path).parts)
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            for member in tar.getmembers():
                parts = Path(member.name).parts[strip:]
                if not parts or member.isdir():
                    continue
                target = dest.joinpath(*parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                if member.issym():
                    target.symlink_to(member.linkname)
                elif (handle := tar.extractfile(member)) is not None:
                    target.write_bytes(handle.read())
                    target.chmod(0o644)


def _resolve_version(repos: Repos, repo: str, name: str, wanted: str, before: str) -> str:
    """An exact version, or for a wildcard (`0.12.*`) the highest matching release tagged no
    later than the parent chart's release: what `helm dependency update` chose on that day."""
    if "*" not in wanted:
        return wanted
    cutoff = int(repos.git(repo, "log", "-1", "--format=%ct", before).strip())
    candidates = []
    for line in repos.git(
        repo, "for-each-ref", "--format=%(refname:short) %(creatordate:unix)", "refs/tags"
    ).splitlines():
        tag, created = line.rsplit(" ", 1)
        version = tag.removeprefix(f"{name}-")
        if tag.startswith(f"{name}-") and fnmatch.fnmatch(version, wanted) and int(created) <= cutoff:
            candidates.append(tuple(int(p) for p in version.split(".")))
    if not candidates:
        raise SystemExit(f"error: no {name} release matches {wanted} before {before}")
    return ".".join(map(str, max(candidates)))


def digest(folder: Path) -> str:
    """sha256 over every file's path and content under `folder`, SOURCE and subcharts' own
    folders included (their SOURCE too), the top-level SOURCE excluded."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder).as_posix()
        if relative == "SOURCE":
            continue
        h.update(relative.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def _write_source(dest: Path, entries: dict[str, Any]) -> None:
    header = "# Where this chart comes from (charts/refresh.py writes this file; charts/README.md).\n"
    (dest / "SOURCE").write_text(header + yaml.safe_dump(entries, sort_keys=False, width=200))


def vendor(repos: Repos, chart: Chart, dest: Path, release: Callable[[Path, str], list[str]] | None) -> None:
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    repos.extract(chart.repo, chart.tag, chart.path, dest)
    (dest / "LICENSE").write_text(repos.git(chart.repo, "show", f"{chart.tag}:LICENSE"))
    notes: list[str] = []
    # A chart's own .gitignore keeps its subcharts out of its repository (they are fetched at
    # packaging time); here they are vendored, and git must see them.
    for ignore in sorted(dest.rglob(".gitignore")):
        ignore.unlink()
        notes.append(
            f"{ignore.relative_to(dest).as_posix()} removed: it would keep the vendored subcharts out of git"
        )
    meta = yaml.safe_load((dest / "Chart.yaml").read_text())
    for dep in meta.get("dependencies") or []:
        name, repository = dep["name"], dep.get("repository", "")
        sub = dest / "charts" / name
        packaged = sorted((dest / "charts").glob(f"{name}-*.tgz"))
        if packaged:
            # Committed as a package (NVIDIA's node-feature-discovery): shipped as it is.
            notes.append(
                f"{packaged[0].relative_to(dest).as_posix()}: the dependency {name} {dep['version']} "
                f"packaged in the repository at the tag, kept as it is (helm package ships it so)"
            )
            continue
        if sub.is_symlink() or sub.exists():
            if sub.is_symlink():
                sub.unlink()
            else:
                continue  # in the chart's own tree (kube-prometheus-stack's crds)
        if repository.startswith("file://"):
            local = posixpath.normpath(posixpath.join(chart.path, repository.removeprefix("file://")))
            sub.mkdir(parents=True)
            repos.extract(chart.repo, chart.tag, local, sub)
            notes.append(f"charts/{name}: the repository's {local} at the same tag (a symlink in git)")
            continue
        if repository not in CHART_REPOSITORIES:
            raise SystemExit(
                f"error: {chart.folder} depends on {name} from {repository}, which has no source here"
            )
        dep_repo, _, _ = CHART_REPOSITORIES[repository](name, "0")
        version = _resolve_version(repos, dep_repo, name, str(dep["version"]), chart.tag)
        dep_repo, tag, path = CHART_REPOSITORIES[repository](name, version)
        vendor(
            repos, Chart(f"{chart.folder}/charts/{name}", dep_repo, tag, path), sub, RELEASES.get(dep_repo)
        )
        notes.append(f"charts/{name}: {dep_repo} {tag} (the dependency {dep['version']} from {repository})")
    if release is not None:
        notes += release(dest, chart.tag)
    _write_source(
        dest,
        {
            "repository": f"https://github.com/{chart.repo}",
            "tag": chart.tag,
            "commit": repos.commit(chart.repo, chart.tag),
            "path": chart.path,
            "licence": f"{LICENCES[chart.repo]} (LICENSE, the repository's licence file at the tag)",
            "changes": notes or ["none: the files as they are at the tag"],
            "digest": digest(dest),
        },
    )


def _git_option(text: str) -> tuple[str, Path]:
    repo, sep, path = text.partition("=")
    if not sep or repo.count("/") != 1:
        raise argparse.ArgumentTypeError(f"expected owner/name=PATH, got {text!r}")
    return repo, Path(path).expanduser().resolve()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("charts", nargs="*", metavar="chart", help=f"default: all of {', '.join(CHARTS)}")
    parser.add_argument("--git", type=_git_option, action="append", default=[], metavar="owner/name=PATH")
    args = parser.parse_args(argv)
    if unknown := sorted(set(args.charts) - set(CHARTS)):
        parser.error(f"unknown chart {', '.join(unknown)}; known: {', '.join(CHARTS)}")
    with tempfile.TemporaryDirectory(prefix="charts-refresh-") as scratch:
        repos = Repos(dict(args.git), Path(scratch))
        for name in args.charts or CHARTS:
            chart = CHARTS[name]
            vendor(repos, chart, HERE / chart.folder, chart.release)
            print(f"charts/{chart.folder}: {chart.repo} {chart.tag}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
