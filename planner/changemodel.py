"""What a change of each input does to a resource, read from the pinned provider SDKs.

`python -m planner.changemodel --write` regenerates `planner/change_model.json` from the
installed pulumi_openstack, pulumi_command, pulumi_docker, pulumi_kubernetes, pulumi_tls and
pulumi_random packages; a test regenerates it and fails when the checked-in table differs, so a
provider bump cannot silently change what `make diff` means.

Each input's verb comes from the sentence its SDK docstring says about a change:
- "Changing this creates a new server" → replace (a new resource, a new ID);
- "Changing this rebuilds the existing server" → rebuild (same ID, root disk re-imaged);
- "Changing this resizes the existing server" → resize (same ID, reboot);
- "Changing this updates ..." and the like → update (in place);
- command's `triggers`: "updated (or replaced) ... If the `update` command was provided the
  resource will be updated, otherwise it will be replaced" → replace unless `update` is set.
An input whose docstring says nothing is updated in place (Pulumi's default) and the table marks
it undocumented. Where a provider decides at run time and its SDK is silent (pulumi-kubernetes,
pulumi-docker's secrets, random and tls), `SILENT` below says what happens and on what basis;
those rules are copied into the table, marked as such."""

from __future__ import annotations

import argparse
import ast
import importlib
import json
import re
import sys
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

TABLE = Path(__file__).with_name("change_model.json")

# Ordered by how much of the resource survives: each is worse than the one before.
VERBS = ("update", "resize", "rebuild", "replace")

# Every resource type the program creates (the four example stacks, the magnum engine, a
# created network, the Octavia entry point of k3s), and Magnum's node groups.
TYPES = (
    "command:remote:Command",
    "docker:index/image:Image",
    "docker:index/network:Network",
    "docker:index/secret:Secret",
    "docker:index/service:Service",
    "docker:index/serviceConfig:ServiceConfig",
    "kubernetes:batch/v1:CronJob",
    "kubernetes:batch/v1:Job",
    "kubernetes:core/v1:ConfigMap",
    "kubernetes:core/v1:Namespace",
    "kubernetes:core/v1:PersistentVolumeClaim",
    "kubernetes:core/v1:Secret",
    "kubernetes:core/v1:ServiceAccount",
    "kubernetes:helm.sh/v3:Release",
    "kubernetes:rbac.authorization.k8s.io/v1:Role",
    "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding",
    "openstack:blockstorage/volume:Volume",
    "openstack:compute/instance:Instance",
    "openstack:compute/volumeAttach:VolumeAttach",
    "openstack:containerinfra/cluster:Cluster",
    "openstack:containerinfra/nodeGroup:NodeGroup",
    "openstack:dns/recordSet:RecordSet",
    "openstack:identity/ec2CredentialV3:Ec2CredentialV3",
    "openstack:loadbalancer/listener:Listener",
    "openstack:loadbalancer/loadBalancer:LoadBalancer",
    "openstack:loadbalancer/member:Member",
    "openstack:loadbalancer/members:Members",
    "openstack:loadbalancer/monitor:Monitor",
    "openstack:loadbalancer/pool:Pool",
    "openstack:networking/floatingIp:FloatingIp",
    "openstack:networking/network:Network",
    "openstack:networking/port:Port",
    "openstack:networking/router:Router",
    "openstack:networking/routerInterface:RouterInterface",
    "openstack:networking/secGroup:SecGroup",
    "openstack:networking/secGroupRule:SecGroupRule",
    "openstack:networking/subnet:Subnet",
    "openstack:objectstorage/container:Container",
    "random:index/randomPassword:RandomPassword",
    "tls:index/privateKey:PrivateKey",
)

PACKAGES = {
    "openstack": "pulumi_openstack",
    "command": "pulumi_command",
    "docker": "pulumi_docker",
    "kubernetes": "pulumi_kubernetes",
    "tls": "pulumi_tls",
    "random": "pulumi_random",
}

# The sentences a docstring says about a change, and the verb each means. Wording the table
# does not know stops the generation: a human reads it first.
_CHANGING = re.compile(r"Changing this ([^.]*)\.", re.IGNORECASE)
_SENTENCE_VERBS = (
    (re.compile(r"^((creates|will create) a new|(value )?forces a new)\b", re.I), "replace"),
    (re.compile(r"^rebuilds the existing\b", re.I), "rebuild"),
    (re.compile(r"^resizes the existing\b", re.I), "resize"),
    (
        re.compile(
            r"^(value )?(updates?|changes|results in adding/removing|will attempt an in-place)\b", re.I
        ),
        "update",
    ),
    # "Changing this value enables or disables the DHCP capabilities of the existing subnet."
    (re.compile(r"\bof the existing\b", re.I), "update"),
)
_RECREATION = re.compile(r"when changed, will trigger recreation of resource", re.I)
_TRIGGERS = re.compile(
    r"will be updated \(or replaced\) if any of these values change.*?"
    r"If the `update` command was provided the resource will be updated, otherwise it will be replaced",
    re.I | re.S,
)
_WHOLE_RESOURCE_REPLACED = re.compile(r"will destroy the existing resource and create a replacement", re.I)
_CREATE_RERUNS = re.compile(
    r"If an `update` command isn't provided, then `create` will also be run when the resource's inputs are modified",
    re.I,
)

_K8S_BASIS = (
    "pulumi-kubernetes decides at run time (provider/pkg/provider/diff.go, forceNewProperties): "
    "a change of metadata.name or metadata.namespace replaces the object"
)
# Where the SDK says nothing and the provider still replaces: the rule and where it is written.
# `path` is a dotted path into the inputs; `except` lists paths under it that update in place.
SILENT: dict[str, list[dict[str, Any]]] = {
    **{
        token: [
            {"path": "metadata.name", "verb": "replace", "basis": _K8S_BASIS},
            {"path": "metadata.namespace", "verb": "replace", "basis": _K8S_BASIS},
        ]
        for token in (
            "kubernetes:batch/v1:CronJob",
            "kubernetes:core/v1:ConfigMap",
            "kubernetes:core/v1:Namespace",
            "kubernetes:core/v1:Secret",
            "kubernetes:core/v1:ServiceAccount",
            "kubernetes:rbac.authorization.k8s.io/v1:Role",
            "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding",
        )
    },
    "openstack:compute/volumeAttach:VolumeAttach": [
        {
            "path": path,
            "verb": "replace",
            "basis": "an attachment joins one server and one volume and has no update: "
            "terraform-provider-openstack's compute_volume_attach_v2 marks its arguments ForceNew; the "
            "SDK's note on `device`: a new device 'will cause the volume to be detached and reattached'",
        }
        for path in ("instanceId", "volumeId", "device", "multiattach")
    ],
    "openstack:networking/subnet:Subnet": [
        {
            "path": "cidr",
            "verb": "replace",
            "basis": "Neutron cannot change a subnet's range: terraform-provider-openstack's "
            "networking_subnet_v2 marks `cidr` ForceNew (the SDK says so only of network_id and "
            "ip_version)",
        }
    ],
    "kubernetes:batch/v1:Job": [
        {"path": "metadata.name", "verb": "replace", "basis": _K8S_BASIS},
        {"path": "metadata.namespace", "verb": "replace", "basis": _K8S_BASIS},
        {
            "path": "spec.template",
            "verb": "replace",
            "basis": "a Job's pod template is immutable once created (Kubernetes API); pulumi-kubernetes "
            "lists it among the Job's forceNew fields and replaces the Job",
        },
        {
            "path": "spec.selector",
            "verb": "replace",
            "basis": "a Job's selector is immutable (Kubernetes API); pulumi-kubernetes replaces the Job",
        },
    ],
    "kubernetes:core/v1:PersistentVolumeClaim": [
        {"path": "metadata.name", "verb": "replace", "basis": _K8S_BASIS},
        {"path": "metadata.namespace", "verb": "replace", "basis": _K8S_BASIS},
        {
            "path": "spec",
            "except": ["spec.resources.requests.storage"],
            "verb": "replace",
            "basis": "a bound claim's spec is immutable except resources.requests.storage (Kubernetes "
            "API: 'spec is immutable after creation except resources.requests'); pulumi-kubernetes "
            "replaces the claim, and with it the volume's data unless the PV is retained",
        },
    ],
    "kubernetes:helm.sh/v3:Release": [
        {
            "path": "name",
            "verb": "replace",
            "basis": "pulumi-kubernetes provider/pkg/provider/helm_release.go, Diff: "
            'forceNewFields := []string{".name", ".namespace"}',
        },
        {
            "path": "namespace",
            "verb": "replace",
            "basis": "pulumi-kubernetes provider/pkg/provider/helm_release.go, Diff: "
            'forceNewFields := []string{".name", ".namespace"}',
        },
    ],
    "docker:index/secret:Secret": [
        {
            "path": "*",
            "verb": "replace",
            "basis": "a swarm secret cannot be updated (Docker: 'docker secret' has create and rm, no "
            "update); terraform-provider-docker's docker_secret marks every argument ForceNew",
        }
    ],
    "random:index/randomPassword:RandomPassword": [
        {
            "path": "*",
            "verb": "replace",
            "basis": "the password is generated once at create; terraform-provider-random marks every "
            "argument RequiresReplace (the SDK says so only of keepers)",
        }
    ],
    "tls:index/privateKey:PrivateKey": [
        {
            "path": "*",
            "verb": "replace",
            "basis": "the key is generated once at create; terraform-provider-tls marks algorithm, "
            "rsa_bits and ecdsa_curve RequiresReplace (the SDK is silent)",
        }
    ],
}


@dataclass(frozen=True)
class Source:
    package: str
    path: Path  # the module that defines the resource
    cls: str  # the resource's class name


def _package_dir(package: str) -> Path:
    module = importlib.import_module(package)
    return Path(str(module.__file__)).parent


@cache
def _token_files(package: str) -> dict[str, Path]:
    """Each resource token of a package → the module whose resource class registers it."""
    found: dict[str, Path] = {}
    pattern = re.compile(r"super\(\w+, __self__\).__init__\(\s*'([^']+)'")
    for path in sorted(_package_dir(package).rglob("*.py")):
        text = path.read_text()
        for match in pattern.finditer(text):
            found.setdefault(match.group(1), path)
    return found


def source(token: str) -> Source:
    package = PACKAGES[token.split(":", 1)[0]]
    path = _token_files(package).get(token)
    if path is None:
        raise LookupError(f"{token}: no resource class in {package} registers this type")
    return Source(package, path, token.rsplit(":", 1)[1])


def _getter_name(node: ast.FunctionDef) -> str | None:
    for deco in node.decorator_list:
        call = deco if isinstance(deco, ast.Call) else None
        target = call.func if call else deco
        if isinstance(target, ast.Attribute) and target.attr == "getter":
            if call:
                for kw in call.keywords:
                    if kw.arg == "name" and isinstance(kw.value, ast.Constant):
                        return str(kw.value.value)
            return node.name
    return None


def input_docs(src: Source) -> tuple[dict[str, str], str]:
    """The docstring of each input (by its engine name, camelCase) and the resource's own."""
    tree = ast.parse(src.path.read_text())
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    # pulumi-kubernetes names the class `<Kind>InitArgs` where `<Kind>Args` is a nested type.
    args = classes.get(f"{src.cls}Args") or classes.get(f"{src.cls}InitArgs")
    if args is None:
        raise LookupError(f"{src.path}: no class {src.cls}Args")
    docs: dict[str, str] = {}
    for node in args.body:
        if isinstance(node, ast.FunctionDef):
            name = _getter_name(node)
            doc = ast.get_docstring(node)
            if name and doc:
                docs[name] = " ".join(doc.split())
    resource_doc = ""
    resource = classes.get(src.cls)
    if resource is not None:
        for node in resource.body:
            if isinstance(node, ast.FunctionDef) and node.name == "__init__":
                resource_doc = " ".join((ast.get_docstring(node) or "").split())
                if resource_doc:
                    break
    return docs, resource_doc


def _verb_of(sentence: str) -> str:
    for pattern, verb in _SENTENCE_VERBS:
        if pattern.search(sentence):
            return verb
    raise ValueError(f"unknown wording: 'Changing this {sentence}.'")


def _worst(verbs: list[str]) -> str:
    return max(verbs, key=VERBS.index)


def derive(token: str) -> dict[str, Any]:
    src = source(token)
    docs, resource_doc = input_docs(src)
    inputs: dict[str, dict[str, Any]] = {}
    for name, doc in sorted(docs.items()):
        sentences = [m.group(1).strip() for m in _CHANGING.finditer(doc)]
        if sentences:
            try:
                verbs = [_verb_of(s) for s in sentences]
            except ValueError as exc:
                raise ValueError(f"{token}.{name}: {exc}") from None
            worst = _worst(verbs)
            said = next(s for s, v in zip(sentences, verbs, strict=True) if v == worst)
            inputs[name] = {"verb": worst, "says": f"Changing this {said}."}
        elif _RECREATION.search(doc):
            inputs[name] = {"verb": "replace", "says": _RECREATION.search(doc).group(0)}  # type: ignore[union-attr]
        elif token == "command:remote:Command" and name == "triggers" and _TRIGGERS.search(doc):
            inputs[name] = {
                "verb": "replace",
                "unless_set": {"update": "update"},
                "says": " ".join(_TRIGGERS.search(doc).group(0).split()),  # type: ignore[union-attr]
            }
    entry: dict[str, Any] = {
        "source": f"{src.package}/{src.path.relative_to(_package_dir(src.package)).as_posix()}",
        "inputs": inputs,
        "undocumented": sorted(set(docs) - set(inputs)),
    }
    whole = _WHOLE_RESOURCE_REPLACED.search(resource_doc)
    if whole:
        entry["every_input"] = {"verb": "replace", "says": whole.group(0)}
    reruns = _CREATE_RERUNS.search(docs.get("create", ""))
    if token == "command:remote:Command" and reruns:
        entry["reruns_on_any_change"] = reruns.group(0)
    if token in SILENT:
        entry["silent"] = SILENT[token]
    return entry


def build() -> dict[str, Any]:
    return {
        "generated_by": "python -m planner.changemodel --write",
        "sdks": {pkg: metadata.version(pkg.replace("_", "-")) for pkg in sorted(PACKAGES.values())},
        "verbs": list(VERBS),
        "types": {token: derive(token) for token in TYPES},
    }


def render(table: dict[str, Any]) -> str:
    return json.dumps(table, indent=1, sort_keys=True) + "\n"


@cache
def load() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(TABLE.read_text())
    return data


# --- using the table -------------------------------------------------------------------------


@dataclass(frozen=True)
class InputEffect:
    verb: str
    # The provider's own words, or the basis of a rule the SDK does not state.
    says: str
    documented: bool


def _leaves(value: Any, path: str) -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_leaves(v, f"{path}.{k}"))
        return out or {path: {}}
    return {path: value}


def _changed_paths(key: str, old: Any, new: Any) -> set[str]:
    a, b = _leaves(old, key), _leaves(new, key)
    return {p for p in a.keys() | b.keys() if a.get(p) != b.get(p)}


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + ".") or path.startswith(prefix + "[")


def effect(token: str, key: str, old: Any, new: Any, inputs: dict[str, Any]) -> InputEffect:
    """What changing input `key` from `old` to `new` does to a resource of type `token` whose new
    inputs are `inputs`."""
    entry = load()["types"].get(token)
    if entry is None:
        return InputEffect("update", "type not in planner/change_model.json: assumed in place", False)
    for rule in entry.get("silent", []):
        if rule["path"] == "*":
            return InputEffect(rule["verb"], rule["basis"], False)
        if not _under(rule["path"], key) and not _under(key, rule["path"]):
            continue
        for path in _changed_paths(key, old, new):
            if _under(path, rule["path"]) and not any(_under(path, e) for e in rule.get("except", [])):
                where = "" if path == key else f"{path}: "
                return InputEffect(rule["verb"], where + rule["basis"], False)
    if "every_input" in entry:
        return InputEffect(entry["every_input"]["verb"], entry["every_input"]["says"], True)
    known = entry["inputs"].get(key)
    if known is None:
        return InputEffect("update", "the SDK says nothing about a change of it: in place", False)
    for other, verb in known.get("unless_set", {}).items():
        if inputs.get(other):
            return InputEffect(verb, known["says"], True)
    return InputEffect(known["verb"], known["says"], True)


def reruns(token: str) -> bool:
    """Whether any change of the resource runs it again (remote commands)."""
    entry = load()["types"].get(token, {})
    return bool(entry.get("reruns_on_any_change"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m planner.changemodel", description=__doc__)
    parser.add_argument("--write", action="store_true", help=f"write {TABLE.name}")
    args = parser.parse_args(argv)
    text = render(build())
    if args.write:
        TABLE.write_text(text)
        print(f"wrote {TABLE}")
        return 0
    current = TABLE.read_text() if TABLE.exists() else ""
    if current != text:
        print(f"{TABLE.name} differs from the installed SDKs: run with --write", file=sys.stderr)
        return 1
    print(f"{TABLE.name} matches the installed SDKs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
