"""The upstream schemas the tests carry in `tests/fixtures/upstream/` (the Z2JH chart's values
schema and defaults, Rook's CRDs and chart defaults), and the checks that apply them the way
Helm and the Kubernetes API server do. `tests/fixtures/upstream/README.md` says where each file
comes from and how to refresh it for a new pin."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jsonschema
import yaml

# Helm's merge of release values over chart defaults, as the program applies k8s.helmValues.
from stackconfig.extras import deep_merge

UPSTREAM = Path(__file__).resolve().parent / "fixtures" / "upstream"
Z2JH = UPSTREAM / "z2jh"
ROOK = UPSTREAM / "rook"
# Rook's CRDs are 17,000 lines: libyaml reads them ten times faster when it is there.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _load(path: Path) -> Any:
    return yaml.load(path.read_text(), Loader=_Loader)


@functools.cache
def z2jh_defaults() -> dict[str, Any]:
    return _load(Z2JH / "values.yaml")


@functools.cache
def z2jh_schema() -> dict[str, Any]:
    return _load(Z2JH / "values.schema.yaml")


def z2jh_errors(values: dict[str, Any]) -> list[str]:
    merged = deep_merge(z2jh_defaults(), values)
    validator = jsonschema.Draft7Validator(z2jh_schema())
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(merged)]


@functools.cache
def rook_cluster_defaults() -> dict[str, Any]:
    return _load(ROOK / "rook-ceph-cluster.values.yaml")


@functools.cache
def rook_operator_defaults() -> dict[str, Any]:
    return _load(ROOK / "rook-ceph.values.yaml")


def unknown_keys(values: Any, defaults: Any, path: str = "") -> list[str]:
    """Keys in `values` that the chart's defaults do not have. Rook's charts ship no values
    schema, and Helm ignores unknown keys silently; where a default is an empty map or null
    (free-form), anything goes."""
    if not (isinstance(values, dict) and isinstance(defaults, dict) and defaults):
        return []
    found = []
    for key, value in values.items():
        here = f"{path}.{key}".lstrip(".")
        if key not in defaults:
            found.append(here)
        else:
            found += unknown_keys(value, defaults[key], here)
    return found


def _strict(schema: Any) -> Any:
    """The API server prunes unknown fields silently; `kubectl apply --validate=strict` refuses
    them. Close every object schema that does not preserve unknown fields, so a misspelt key
    fails here instead of vanishing in the cluster."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@functools.cache
def rook_crd_schemas() -> dict[str, dict[str, Any]]:
    docs = [d for d in yaml.load_all((ROOK / "crds.yaml").read_text(), Loader=_Loader) if d]
    schemas = {}
    for crd in docs:
        version = next(v for v in crd["spec"]["versions"] if v.get("storage"))
        schemas[crd["spec"]["names"]["kind"]] = _strict(version["schema"]["openAPIV3Schema"])
    return schemas


def rook_errors(kind: str, spec: dict[str, Any]) -> list[str]:
    """Errors of a Rook custom resource with this spec, against its CRD (made strict)."""
    resource = {
        "apiVersion": "ceph.rook.io/v1",
        "kind": kind,
        "metadata": {"name": "check", "namespace": "rook-ceph"},
        "spec": spec,
    }
    validator = jsonschema.Draft7Validator(rook_crd_schemas()[kind])
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(resource)]


KUBE_PROMETHEUS = UPSTREAM / "kube-prometheus-stack"


@functools.cache
def kube_prometheus_defaults() -> dict[str, Any]:
    return _load(KUBE_PROMETHEUS / "values.yaml")


@functools.cache
def prometheus_operator_schemas() -> dict[str, dict[str, Any]]:
    """prometheus-operator's CRDs the project creates objects of (PrometheusRule, ServiceMonitor),
    made strict as Rook's are."""
    schemas = {}
    for name in ("crd-prometheusrules.yaml", "crd-servicemonitors.yaml"):
        crd = _load(KUBE_PROMETHEUS / name)
        version = next(v for v in crd["spec"]["versions"] if v.get("storage"))
        schemas[crd["spec"]["names"]["kind"]] = _strict(version["schema"]["openAPIV3Schema"])
    return schemas


def prometheus_operator_errors(obj: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(prometheus_operator_schemas()[obj["kind"]])
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj)]
