"""The charts the k8s stack installs (charts/, vendored at the renderers' pins), rendered by a
real `helm template` with the values the workshop-k8s plan gives each release, every rendered
object validated strictly: built-in kinds by kubernetes-validate at the cluster's Kubernetes
version, custom resources against their CRD's schema (closed, as `kubectl apply
--validate=strict` does), with the CRDs taken from the same rendered charts. NVIDIA's device
plugin installs only with GPU workers: it is rendered with the GPU workshop's values
(tests/gpu_workshop.py)."""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from renderers import k8s_monitoring, nvidia, rook, z2jh
from tests.conftest import ROOT, require_helm
from tests.gpu_workshop import GPU_WORKSHOP
from tests.upstream_schemas import _strict, rook_crd_schemas, z2jh_errors

CHARTS = ROOT / "charts"
RELEASE = "kubernetes:helm.sh/v3:Release"
STACK = "workshop-k8s"
# The API groups of the CRDs the stack's own releases install (Rook's operator chart,
# kube-prometheus-stack): present in the cluster when the other releases install, so charts that
# look for them (Capabilities.APIVersions) render as they will there.
CLUSTER_APIS = ("ceph.rook.io/v1", "monitoring.coreos.com/v1")


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """PyYAML resolves a bare `=` (YAML 1.1's value key) to a tag it cannot construct; Helm's
    YAML 1.2 reads it as the string it is (prometheus-operator's CRDs list it in an enum)."""


_Loader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))


class HelmError(Exception):
    pass


@functools.cache
def _plan(gpu: bool = False) -> dict[str, Any]:
    from planner.plan import plan_stack

    return plan_stack(STACK, overrides=GPU_WORKSHOP if gpu else None)


def releases(gpu: bool = False) -> dict[str, dict[str, Any]]:
    """The plan's Helm releases by chart folder: inputs as the program gives them to Pulumi
    (`gpu`: the GPU workshop's plan)."""
    found = {}
    for resource in _plan(gpu)["resources"]:
        if resource["type"] == RELEASE:
            inputs = resource["inputs"]
            found[Path(inputs["chart"]).name] = inputs
    return found


def kubernetes_version() -> str:
    """The cluster's Kubernetes minor version (k8s.k3sVersion of the stack), as x.y.0."""
    from planner import stackfile

    loaded = stackfile.load(ROOT, STACK, None, None)
    k3s = json.loads(loaded.config["jupyterhub-jetstream:k8s"])["k3sVersion"]
    major, minor = k3s.removeprefix("v").split(".")[:2]
    return f"{major}.{minor}.0"


def render(helm: str, inputs: dict[str, Any], values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """`helm template` of a release's chart with its values (or `values`), hooks and CRDs
    included, as the release installs them."""
    with tempfile.NamedTemporaryFile("w", suffix=".json") as handle:
        json.dump(inputs["values"] if values is None else values, handle)
        handle.flush()
        command = [
            helm,
            "template",
            inputs["name"],
            str(ROOT / inputs["chart"]),
            "--namespace",
            inputs["namespace"],
            "--kube-version",
            kubernetes_version(),
            "--include-crds",
            *(arg for api in CLUSTER_APIS for arg in ("--api-versions", api)),
            "--values",
            handle.name,
        ]
        result = subprocess.run(command, capture_output=True, text=True, env={"HOME": tempfile.gettempdir()})
    if result.returncode != 0:
        raise HelmError(result.stderr)
    objects = []
    for doc in yaml.load_all(result.stdout, Loader=_Loader):
        # Helm's client flattens a v1 List into its items before it applies them.
        if doc and doc.get("apiVersion") == "v1" and doc.get("kind") == "List":
            objects += doc["items"]
        elif doc:
            objects.append(doc)
    return objects


@pytest.fixture(scope="module")
def helm() -> str:
    return require_helm()


@pytest.fixture(scope="module")
def rendered(helm: str) -> dict[str, list[dict[str, Any]]]:
    found = {chart: render(helm, inputs) for chart, inputs in releases().items()}
    found[nvidia.DEVICE_PLUGIN_CHART] = render(helm, releases(gpu=True)[nvidia.DEVICE_PLUGIN_CHART])
    return found


def crd_schemas(objects: list[dict[str, Any]]) -> dict[tuple[str, str], Any]:
    """(apiVersion, kind) -> the served version's schema, closed, for every rendered CRD."""
    schemas = {}
    for crd in objects:
        if crd["kind"] != "CustomResourceDefinition":
            continue
        for version in crd["spec"]["versions"]:
            api = f"{crd['spec']['group']}/{version['name']}"
            schemas[(api, crd["spec"]["names"]["kind"])] = _strict(version["schema"]["openAPIV3Schema"])
    return schemas


def errors(objects: list[dict[str, Any]], crds: dict[tuple[str, str], Any]) -> list[str]:
    found = []
    for obj in objects:
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        schema = crds.get((obj["apiVersion"], obj["kind"]))
        if schema is not None:
            validator = jsonschema.Draft7Validator(schema)
            found += [
                f"{where}: {'.'.join(map(str, e.absolute_path))}: {e.message}"
                for e in validator.iter_errors(obj)
            ]
            continue
        try:
            kubernetes_validate.validate(obj, kubernetes_version(), strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            found.append(
                f"{where}: {obj['apiVersion']} is neither a built-in kind nor a CRD the stack installs"
            )
        except kubernetes_validate.ValidationError as exc:
            found.append(f"{where}: {'.'.join(map(str, exc.path))}: {exc.message}")
    return found


def all_crds(rendered: dict[str, list[dict[str, Any]]]) -> dict[tuple[str, str], Any]:
    return crd_schemas([obj for objects in rendered.values() for obj in objects])


@pytest.fixture(scope="module")
def crds(rendered: dict[str, list[dict[str, Any]]]) -> dict[tuple[str, str], Any]:
    """The CRDs the stack's releases install, closed: one copy for the module."""
    return all_crds(rendered)


# --- the vendored charts are the pinned releases ------------------------------------------


def _source(folder: Path) -> dict[str, Any]:
    return yaml.safe_load((folder / "SOURCE").read_text())


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder).as_posix()
        if relative != "SOURCE":
            h.update(relative.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def test_every_release_installs_a_vendored_chart_at_its_pin() -> None:
    found = releases()
    assert sorted(found) == ["jupyterhub", "kube-prometheus-stack", "rook-ceph", "rook-ceph-cluster"]
    pins = {
        "jupyterhub": z2jh.CHART_VERSION,
        "rook-ceph": rook.ROOK_VERSION,
        "rook-ceph-cluster": rook.ROOK_VERSION,
        "kube-prometheus-stack": k8s_monitoring.CHART_VERSION,
    }
    for name, inputs in found.items():
        # A relative path in the project folder: no chart repository at deploy time.
        assert inputs["chart"] == f"./charts/{name}" and "repositoryOpts" not in inputs, name
        meta = yaml.safe_load((CHARTS / name / "Chart.yaml").read_text())
        assert meta["version"] == inputs["version"] == pins[name], name
    grafana = yaml.safe_load((CHARTS / "kube-prometheus-stack/charts/grafana/Chart.yaml").read_text())
    assert grafana["version"] == k8s_monitoring.GRAFANA_CHART_VERSION
    # With GPU workers, one more: NVIDIA's device plugin.
    with_gpus = releases(gpu=True)
    assert sorted(with_gpus) == sorted([*found, nvidia.DEVICE_PLUGIN_CHART])
    plugin = with_gpus[nvidia.DEVICE_PLUGIN_CHART]
    assert plugin["chart"] == nvidia.DEVICE_PLUGIN_CHART_PATH and "repositoryOpts" not in plugin
    meta = yaml.safe_load((CHARTS / nvidia.DEVICE_PLUGIN_CHART / "Chart.yaml").read_text())
    assert meta["version"] == meta["appVersion"] == plugin["version"] == nvidia.DEVICE_PLUGIN_VERSION


@pytest.mark.parametrize(
    "folder", sorted(p.parent.relative_to(CHARTS).as_posix() for p in CHARTS.rglob("SOURCE"))
)
def test_vendored_chart_is_the_upstream_release_untouched(folder: str) -> None:
    path = CHARTS / folder
    source = _source(path)
    assert (path / "LICENSE").is_file() and source["licence"]
    assert source["repository"].startswith("https://github.com/") and len(source["commit"]) == 40
    assert _digest(path) == source["digest"], (
        f"charts/{folder} differs from its refresh: `make charts-refresh`"
    )


@pytest.mark.parametrize(
    ("fixture", "vendored"),
    [
        ("z2jh/values.schema.yaml", "jupyterhub/values.schema.yaml"),
        ("kube-prometheus-stack/values.yaml", "kube-prometheus-stack/values.yaml"),
        ("grafana/values.yaml", "kube-prometheus-stack/charts/grafana/values.yaml"),
    ],
)
def test_the_schema_fixtures_are_the_vendored_charts_files(fixture: str, vendored: str) -> None:
    """The renderer tests' copies (tests/fixtures/upstream/) and the charts agree: one release."""
    upstream = ROOT / "tests" / "fixtures" / "upstream"
    assert (upstream / fixture).read_bytes() == (CHARTS / vendored).read_bytes()


def test_refresh_and_the_tests_digest_the_same_way(tmp_path: Path) -> None:
    from charts.refresh import digest

    (tmp_path / "Chart.yaml").write_text("name: x\n")
    (tmp_path / "SOURCE").write_text("ignored\n")
    assert digest(tmp_path) == _digest(tmp_path)


# --- rendered by Helm, validated strictly --------------------------------------------------


@pytest.mark.parametrize(
    "chart", ["jupyterhub", "rook-ceph", "rook-ceph-cluster", "kube-prometheus-stack", "nvidia-device-plugin"]
)
def test_chart_renders_with_the_stack_values_and_every_object_validates(
    chart: str, rendered: dict[str, list[dict[str, Any]]], crds: dict[tuple[str, str], Any]
) -> None:
    objects = rendered[chart]
    assert objects, f"{chart} rendered nothing"
    assert errors(objects, crds) == []


def test_hub_release_renders_what_the_workshop_needs(rendered: dict[str, list[dict[str, Any]]]) -> None:
    kinds = {(o["kind"], o["metadata"]["name"]) for o in rendered["jupyterhub"]}
    for needed in [
        ("Deployment", "hub"),
        ("Deployment", "proxy"),
        ("Deployment", "autohttps"),
        ("StatefulSet", "user-placeholder"),
        ("Deployment", "user-scheduler"),
        ("DaemonSet", "hook-image-puller"),  # a hook: rendered as the release runs it
        ("NetworkPolicy", "singleuser"),
        ("PersistentVolumeClaim", "hub-db-dir"),
    ]:
        assert needed in kinds
    hub = next(
        o for o in rendered["jupyterhub"] if o["kind"] == "Deployment" and o["metadata"]["name"] == "hub"
    )
    image = hub["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"quay.io/jupyterhub/k8s-hub:{z2jh.CHART_VERSION}"


def _plugin_pods(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o["spec"]["template"]["spec"] for o in objects if o["kind"] == "DaemonSet"}


def _only_gpu_nodes(pod: dict[str, Any], term: dict[str, Any]) -> None:
    """The pod runs on the GPU nodes and nowhere else: one required term, the GPU taint."""
    required = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert required == {"nodeSelectorTerms": [{"matchExpressions": [term]}]}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


def test_device_plugin_release_runs_the_pinned_plugin_on_the_gpu_nodes_only(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    objects = rendered[nvidia.DEVICE_PLUGIN_CHART]
    # The plugin, and the chart's MPS daemon, which runs only where MPS sharing is configured
    # (nvidia.com/mps.capable, which the stack never sets); no feature discovery, no ConfigMap.
    assert sorted((o["kind"], o["metadata"]["name"]) for o in objects) == [
        ("DaemonSet", "nvidia-device-plugin"),
        ("DaemonSet", "nvidia-device-plugin-mps-control-daemon"),
    ]
    assert {o["metadata"]["namespace"] for o in objects} == {"kube-system"}
    pods = _plugin_pods(objects)
    assert pods["nvidia-device-plugin-mps-control-daemon"]["nodeSelector"] == {
        "nvidia.com/mps.capable": "true"
    }
    k3s_gpu = {"key": "nvidia.com/gpu.present", "operator": "In", "values": ["true"]}
    for pod in pods.values():
        _only_gpu_nodes(pod, k3s_gpu)
        assert pod["runtimeClassName"] == "nvidia"
        assert pod["priorityClassName"] == "system-node-critical"
        assert {c["image"] for c in pod["containers"]} == {"nvcr.io/nvidia/k8s-device-plugin:v0.17.3"}
    (plugin,) = pods["nvidia-device-plugin"]["containers"]
    assert {"name": "FAIL_ON_INIT_ERROR", "value": "true"} in plugin["env"]
    assert plugin["securityContext"] == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    mounts = {m["name"]: m["mountPath"] for m in plugin["volumeMounts"]}
    assert mounts["device-plugin"] == "/var/lib/kubelet/device-plugins"


def test_device_plugin_on_magnum_selects_the_gpu_flavor(helm: str, crds: dict[tuple[str, str], Any]) -> None:
    """magnum's GPU nodes are found by their flavor, and run the default runtime."""
    inputs = releases(gpu=True)[nvidia.DEVICE_PLUGIN_CHART]
    objects = render(helm, inputs, nvidia.device_plugin_values("magnum", "g3.medium"))
    assert errors(objects, crds) == []
    flavor = {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["g3.medium"]}
    for pod in _plugin_pods(objects).values():
        _only_gpu_nodes(pod, flavor)
        assert "runtimeClassName" not in pod


def test_ceph_resources_match_the_fixture_crds(
    rendered: dict[str, list[dict[str, Any]]], crds: dict[tuple[str, str], Any]
) -> None:
    """Rook's operator chart installs the CRDs the renderer tests check against."""
    ours = crds
    kinds = {o["kind"] for o in rendered["rook-ceph-cluster"] if o["apiVersion"] == "ceph.rook.io/v1"}
    assert {"CephCluster", "CephBlockPool", "CephFilesystem"} <= kinds
    for kind in kinds:
        assert ours[("ceph.rook.io/v1", kind)] == rook_crd_schemas()[kind], kind


# --- the checks catch what they are for -----------------------------------------------------


def test_a_value_the_templates_cannot_render_fails(helm: str) -> None:
    inputs = releases()["jupyterhub"]
    values = copy.deepcopy(inputs["values"])
    # The schema leaves a profile's override untyped; the chart's templates range over it.
    values["singleuser"]["profileList"][0]["kubespawner_override"] = "image=python"
    assert z2jh_errors(values) == [], "the schema alone would let this through"
    with pytest.raises(HelmError, match=r"kubespawner_override|profileList|image-puller"):
        render(helm, inputs, values)


def test_a_value_the_chart_schema_refuses_fails_in_helm_too(helm: str) -> None:
    inputs = releases()["jupyterhub"]
    values = copy.deepcopy(inputs["values"])
    values["hub"]["db"]["upgrade"] = "yes"
    assert any(e.startswith("hub.db.upgrade:") for e in z2jh_errors(values))
    with pytest.raises(HelmError, match=r"hub\.db\.upgrade"):
        render(helm, inputs, values)


def test_a_device_plugin_value_its_chart_refuses_fails(helm: str) -> None:
    inputs = releases(gpu=True)[nvidia.DEVICE_PLUGIN_CHART]
    values = {**inputs["values"], "config": {"name": "plugin-config", "map": {"default": "version: v1"}}}
    with pytest.raises(HelmError, match=r"Only one of 'config.name' or 'config.map'"):
        render(helm, inputs, values)


def test_a_field_kubernetes_does_not_know_fails_validation(
    helm: str, crds: dict[tuple[str, str], Any]
) -> None:
    inputs = releases()["jupyterhub"]
    values = copy.deepcopy(inputs["values"])
    values["hub"]["extraPodSpec"] = {"priorityClasName": "misspelt"}
    found = errors(render(helm, inputs, values), crds)
    assert any(e.startswith("Deployment/hub:") and "priorityClasName" in e for e in found), found


def test_a_ceph_resource_its_crd_refuses_fails_validation(
    helm: str, crds: dict[tuple[str, str], Any]
) -> None:
    inputs = releases()["rook-ceph-cluster"]
    values = copy.deepcopy(inputs["values"])
    values["cephClusterSpec"]["mon"]["count"] = "three"
    found = errors(render(helm, inputs, values), crds)
    assert any(e.startswith("CephCluster/") and "spec.mon.count" in e for e in found), found


# --- the refresh fills in what the upstream releases do ------------------------------------


def _git(repo: Path, *args: str, date: str = "2026-01-01T00:00:00Z") -> None:
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org",
        "GIT_AUTHOR_DATE": date,
        "GIT_COMMITTER_DATE": date,
        "HOME": str(repo),
    }
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, env=env)


def _commit_and_tag(repo: Path, tag: str, date: str) -> None:
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "--allow-empty", "-m", tag, date=date)
    _git(repo, "tag", tag)


def test_refresh_fills_in_what_chartpress_does_and_resolves_a_dependency_range(tmp_path: Path) -> None:
    from charts import refresh

    upstream = tmp_path / "upstream"
    chart = upstream / "jupyterhub"
    (chart / "templates").mkdir(parents=True)
    _git(upstream, "init", "-q")
    (upstream / "LICENSE").write_text("licence text\n")
    dep = upstream / "charts" / "exporter"
    dep.mkdir(parents=True)
    for version, date in [("0.12.1", "2026-01-01"), ("0.12.5", "2026-02-01")]:
        (dep / "Chart.yaml").write_text(f"apiVersion: v2\nname: exporter\nversion: {version}\n")
        _commit_and_tag(upstream, f"exporter-{version}", f"{date}T00:00:00Z")
    (chart / "Chart.yaml").write_text(
        "apiVersion: v2\nname: jupyterhub\nversion: 0.0.1-set.by.chartpress\ndependencies:\n"
        "  - name: exporter\n    version: 0.12.*\n    repository: https://charts.example.org\n"
    )
    (chart / "values.yaml").write_text('hub:\n  image:\n    tag: "set-by-chartpress"\n')
    (chart / "values.schema.yaml").write_text(
        "type: object\ndescription: drop\nproperties:\n  hub:\n    type: object\n    description: drop\n"
    )
    _commit_and_tag(upstream, "9.9.9", "2026-03-01T00:00:00Z")
    # Released after the chart: `helm dependency update` could not have chosen it that day.
    (dep / "Chart.yaml").write_text("apiVersion: v2\nname: exporter\nversion: 0.12.9\n")
    _commit_and_tag(upstream, "exporter-0.12.9", "2026-04-01T00:00:00Z")

    refresh.CHART_REPOSITORIES["https://charts.example.org"] = lambda n, v: (
        "up/stream",
        f"{n}-{v}",
        f"charts/{n}",
    )
    refresh.LICENCES["up/stream"] = "BSD-3-Clause"
    try:
        repos = refresh.Repos({"up/stream": upstream / ".git"}, tmp_path / "scratch")
        dest = tmp_path / "out" / "jupyterhub"
        spec = refresh.Chart("jupyterhub", "up/stream", "9.9.9", "jupyterhub", refresh._chartpress_release)
        refresh.vendor(repos, spec, dest, spec.release)
    finally:
        del refresh.CHART_REPOSITORIES["https://charts.example.org"], refresh.LICENCES["up/stream"]

    assert yaml.safe_load((dest / "Chart.yaml").read_text())["version"] == "9.9.9"
    assert yaml.safe_load((dest / "values.yaml").read_text())["hub"]["image"]["tag"] == "9.9.9"
    assert json.loads((dest / "values.schema.json").read_text()) == {
        "type": "object",
        "properties": {"hub": {"type": "object"}},
    }
    assert yaml.safe_load((dest / "charts/exporter/Chart.yaml").read_text())["version"] == "0.12.5"
    source = _source(dest)
    assert source["tag"] == "9.9.9" and source["digest"] == _digest(dest)
    assert (
        (dest / "LICENSE").read_text() == (dest / "charts/exporter/LICENSE").read_text() == "licence text\n"
    )


def test_refresh_keeps_a_packaged_dependency_and_checks_the_release_version(tmp_path: Path) -> None:
    """NVIDIA's chart commits its dependency as a package, from a chart repository the refresh
    has no source for: shipped as it is. Its release version is already in Chart.yaml."""
    from charts import refresh

    upstream = tmp_path / "upstream"
    chart = upstream / "deployments" / "helm" / "plugin"
    (chart / "charts").mkdir(parents=True)
    _git(upstream, "init", "-q")
    (upstream / "LICENSE").write_text("licence text\n")
    (chart / "Chart.yaml").write_text(
        'apiVersion: v2\nname: plugin\nversion: "1.2.3"\nappVersion: "1.2.3"\ndependencies:\n'
        "  - name: discovery\n    version: 0.15.3\n    repository: https://unknown.example.org\n"
    )
    (chart / "charts" / "discovery-chart-0.15.3.tgz").write_bytes(b"packaged")
    _commit_and_tag(upstream, "v1.2.3", "2026-03-01T00:00:00Z")

    repos = refresh.Repos({"NVIDIA/k8s-device-plugin": upstream / ".git"}, tmp_path / "scratch")
    dest = tmp_path / "out" / "plugin"
    spec = refresh.Chart(
        "plugin", "NVIDIA/k8s-device-plugin", "v1.2.3", "deployments/helm/plugin", refresh._nvidia_release
    )
    refresh.vendor(repos, spec, dest, spec.release)

    assert (dest / "charts" / "discovery-chart-0.15.3.tgz").read_bytes() == b"packaged"
    assert not (dest / "charts" / "discovery").exists()
    source = _source(dest)
    assert source["digest"] == _digest(dest) and source["licence"].startswith("Apache-2.0")
    assert any(c.startswith("charts/discovery-chart-0.15.3.tgz: ") for c in source["changes"])
    assert any("nothing filled in" in c for c in source["changes"])
    meta = yaml.safe_load((dest / "Chart.yaml").read_text())
    assert meta["version"] == meta["appVersion"] == "1.2.3"
