"""Pulumi mocks that stand in for the cloud, and a monitor that records every registration.

Mock IDs, addresses and keys are placeholders (documentation ranges, deterministic UUIDs),
never real values; the planner says so in its output."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from pulumi.runtime import mocks, rpc

from stacks.deployed import READ_TOKEN, DeployedResource

SECRET = "[secret]"
UNKNOWN = "[unknown]"
_NAMESPACE = uuid.UUID("6f1c3a52-2d0e-4f55-9a4f-3b7e0f6c1d20")


def placeholder_id(kind: str, name: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{kind}/{name}"))


# The allocation's existing subnet as the plan assumes it.
PLACEHOLDER_SUBNET = "10.0.0.0/24"


def placeholder_image_id(image_name: str) -> str:
    """The ID the plan assumes the cloud's image catalog gives `image_name`."""
    return placeholder_id("image", image_name)


def _placeholder_ip(prefix: str, name: str) -> str:
    return f"{prefix}.{uuid.uuid5(_NAMESPACE, name).int % 250 + 2}"


# What `k3s` writes to /etc/rancher/k3s/k3s.yaml and Magnum returns as raw_config, with
# placeholder credentials; the k8s components rewrite and pass it to the kubernetes provider.
PLACEHOLDER_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: default
  cluster:
    certificate-authority-data: cGxhY2Vob2xkZXI=
    server: https://127.0.0.1:6443
contexts:
- name: default
  context:
    cluster: default
    user: default
current-context: default
users:
- name: default
  user:
    client-certificate-data: cGxhY2Vob2xkZXI=
    client-key-data: cGxhY2Vob2xkZXI=
"""


# Outputs the providers compute, by type token; camelCase keys as the engine returns them.
# `image_ids`: image name -> the ID the cloud's catalog resolves it to, where it differs from
# the placeholder (a test moves an image behind an unchanged name).
def _computed(args: mocks.MockResourceArgs, image_ids: Mapping[str, str]) -> dict[str, Any]:
    name = args.name
    match args.typ:
        case "openstack:networking/port:Port":
            return {"allFixedIps": [_placeholder_ip("10.0.0", name)]}
        case "openstack:networking/floatingIp:FloatingIp":
            return {"address": _placeholder_ip("203.0.113", name)}  # TEST-NET-3
        case "openstack:compute/instance:Instance":
            # The provider reads back the ID of the image the server booted: the one given, or
            # what the name resolved to when the server was created or rebuilt.
            image_name = str(args.inputs.get("imageName", ""))
            booted = (
                args.inputs.get("imageId") or image_ids.get(image_name) or placeholder_image_id(image_name)
            )
            return {"accessIpV4": _placeholder_ip("10.0.0", name), "imageId": booted}
        case "tls:index/privateKey:PrivateKey":
            return {
                "publicKeyOpenssh": f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5placeholder{name} jshub-deploy\n",
                "privateKeyOpenssh": "-----BEGIN OPENSSH PRIVATE KEY-----\nplaceholder\n-----END OPENSSH PRIVATE KEY-----\n",
            }
        case "random:index/randomPassword:RandomPassword":
            return {"result": "placeholder" + "0" * 37}
        case "command:remote:Command":
            create = str(args.inputs.get("create", ""))
            stdout = PLACEHOLDER_KUBECONFIG if "/etc/rancher/k3s/k3s.yaml" in create else ""
            return {"stdout": stdout, "stderr": ""}
        case "openstack:identity/ec2CredentialV3:Ec2CredentialV3":
            return {
                "access": uuid.uuid5(_NAMESPACE, f"access/{name}").hex,
                "secret": "placeholder" + "1" * 21,
            }
        case "openstack:containerinfra/cluster:Cluster":
            return {"kubeconfig": {"raw_config": PLACEHOLDER_KUBECONFIG, "host": "https://203.0.113.20:6443"}}
    return {}


# What the mocked backend says when a plan models a failed read of the stack's state.
READ_FAILURE = "the plan models a backend that cannot be read"


def stack_resource_outputs(stack_name: str, deployed: Iterable[DeployedResource]) -> dict[str, Any]:
    """The engine's answer to readStackResourceOutputs for a stack that holds `deployed`: URN ->
    type and outputs (the outputs left empty: the program reads only which resources exist). The
    URNs leave out the parent types the engine puts in them; the name is the part after the last
    `::` either way."""
    _, project, stack = stack_name.split("/")
    return {
        "name": stack_name,
        "outputs": {
            f"urn:pulumi:{stack}::{project}::{kind}::{name}": {"type": kind, "outputs": {}}
            for kind, name in sorted(set(deployed))
        },
    }


class Stored(Protocol):
    """What a deployed stack's state holds for a resource (planner.state.StoredResource)."""

    id: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    secret_outputs: frozenset[str]


# Outputs the provider reads again when these inputs change without a replacement: a rebuilt
# server reports the image it now runs.
FOLLOWS: dict[str, dict[str, tuple[str, ...]]] = {
    "openstack:compute/instance:Instance": {"imageId": ("imageName", "imageId")},
}


class PlanMocks(mocks.Mocks):
    """`deployed`: the (type, name) of every resource the stack already holds, as its last
    checkpoint would say (empty: a stack never deployed; None: the read fails). `stored`: that
    checkpoint's IDs and outputs by (type, name), when it was read from a `pulumi stack export`:
    a resource the state holds keeps its ID and its computed outputs (secret ones excepted), as
    in `pulumi preview`, except those FOLLOWS says change with its inputs."""

    def __init__(
        self,
        image_ids: Mapping[str, str] | None = None,
        deployed: Iterable[DeployedResource] | None = (),
        stored: Mapping[tuple[str, str], Stored] | None = None,
    ) -> None:
        self.image_ids: Mapping[str, str] = dict(image_ids or {})
        self.deployed = None if deployed is None else frozenset(deployed)
        self.stored: Mapping[tuple[str, str], Stored] = stored or {}

    def new_resource(self, args: mocks.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        computed = _computed(args, self.image_ids)
        found = self.stored.get((args.typ, args.name))
        if found is None:
            return placeholder_id(args.typ, args.name), {**args.inputs, **computed}
        follows = FOLLOWS.get(args.typ, {})
        kept = {
            k: v
            for k, v in found.outputs.items()
            if k not in found.secret_outputs
            and not any(args.inputs.get(i) != found.inputs.get(i) for i in follows.get(k, ()))
        }
        fresh = {k: v for k, v in computed.items() if k not in kept}
        return found.id or placeholder_id(args.typ, args.name), {**kept, **args.inputs, **fresh}

    def call(self, args: mocks.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        if args.token == READ_TOKEN:
            if self.deployed is None:
                return {}, [("stackName", READ_FAILURE)]
            return stack_resource_outputs(str(args.args["stackName"]), self.deployed), []
        name = str(args.args.get("name", ""))
        result = {**args.args, "id": placeholder_id(args.token, name)}
        if args.token == "openstack:networking/getSubnet:getSubnet":
            result["cidr"] = PLACEHOLDER_SUBNET  # where the placeholder addresses below lie
        return result, []


@dataclass
class Registration:
    type: str
    name: str
    urn: str
    parent_urn: str
    custom: bool
    inputs: dict[str, Any]
    protect: bool
    retain_on_delete: bool
    delete_before_replace: bool
    dependency_urns: list[str]
    # input name -> URNs its value came from (the data dependencies); the rest of
    # dependency_urns were added by depends_on.
    property_dependency_urns: dict[str, list[str]]
    additional_secret_outputs: list[str]
    secret_inputs: list[str] = field(default_factory=list)
    # Input path -> SHA-256 of the secret's plaintext there (secret_digest), never the value.
    secret_digests: dict[str, str] = field(default_factory=dict)
    deleted_with_urn: str = ""
    ignore_changes: list[str] = field(default_factory=list)
    replace_on_changes: list[str] = field(default_factory=list)
    # The explicit provider it is created through (its URN), if any: the resource waits for it,
    # and so for the provider's own inputs (a kubeconfig the cluster hands out, say).
    provider_urn: str = ""
    # What the (mocked) cloud answered: the ID and the outputs (secrets scrubbed), and the
    # SHA-256 of each secret output (an additional secret output, or a secret input passed on).
    id: str = ""
    # Whether the program gave it aliases (earlier URNs the engine then takes as this one).
    aliased: bool = False
    outputs: dict[str, Any] = field(default_factory=dict)
    output_secret_digests: dict[str, str] = field(default_factory=dict)


def secret_digest(plaintext: Any) -> str:
    """SHA-256 of a secret's value in a canonical JSON form: what `make diff --state` compares
    secrets by. The plan's secrets are placeholders (planner.stackfile, the mocks), so their
    digests reveal nothing of a real stack's."""
    canonical = json.dumps(plaintext, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def scrub(
    value: Any,
    path: str = "",
    secret_paths: list[str] | None = None,
    digests: dict[str, str] | None = None,
) -> Any:
    """Replace secrets by "[secret]" and unknowns by "[unknown]", recording secret paths (and,
    into `digests`, each secret's secret_digest)."""
    if rpc.is_rpc_secret(value):
        if secret_paths is not None:
            secret_paths.append(path)
        if digests is not None:
            digests[path] = secret_digest(_plain(rpc.unwrap_rpc_secret(value)))
        return SECRET
    if value == rpc.UNKNOWN:
        return UNKNOWN
    if isinstance(value, dict):
        return {k: scrub(v, f"{path}.{k}".lstrip("."), secret_paths, digests) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, f"{path}[{i}]", secret_paths, digests) for i, v in enumerate(value)]
    return value


def _plain(value: Any) -> Any:
    """A value with nested secrets unwrapped (the digest covers what the secret holds)."""
    if rpc.is_rpc_secret(value):
        return _plain(rpc.unwrap_rpc_secret(value))
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


class RecordingMonitor(mocks.MockMonitor):
    def __init__(self, mock: mocks.Mocks) -> None:
        super().__init__(mock)
        self.registrations: list[Registration] = []
        self.invokes: list[dict[str, Any]] = []

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (gRPC name)
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            secret_paths: list[str] = []
            digests: dict[str, str] = {}
            inputs = scrub(
                rpc.deserialize_properties(request.object, keep_unknowns=True), "", secret_paths, digests
            )
            raw_outputs = rpc.deserialize_properties(response.object, keep_unknowns=True)
            output_digests: dict[str, str] = {}
            for key in request.additionalSecretOutputs:
                if key in raw_outputs and not rpc.is_rpc_secret(raw_outputs[key]):
                    output_digests[key] = secret_digest(_plain(raw_outputs[key]))
                    raw_outputs[key] = rpc.wrap_rpc_secret(raw_outputs[key])
            outputs = scrub(raw_outputs, "", None, output_digests)
            self.registrations.append(
                Registration(
                    type=request.type,
                    name=request.name,
                    urn=response.urn,
                    parent_urn=request.parent,
                    custom=bool(request.custom),
                    inputs=inputs,
                    protect=bool(request.protect),
                    retain_on_delete=bool(request.retainOnDelete),
                    delete_before_replace=bool(request.deleteBeforeReplace),
                    dependency_urns=list(request.dependencies),
                    property_dependency_urns={
                        key: list(deps.urns) for key, deps in request.propertyDependencies.items()
                    },
                    additional_secret_outputs=list(request.additionalSecretOutputs),
                    secret_inputs=secret_paths,
                    secret_digests=digests,
                    deleted_with_urn=str(getattr(request, "deletedWith", "") or ""),
                    ignore_changes=list(request.ignoreChanges),
                    replace_on_changes=list(request.replaceOnChanges),
                    # A provider reference is "<urn>::<id>".
                    provider_urn=str(request.provider or "").rsplit("::", 1)[0],
                    id=str(response.id),
                    aliased=bool(len(request.aliases) or len(request.aliasURNs)),
                    outputs=outputs,
                    output_secret_digests=output_digests,
                )
            )
        return response

    def Invoke(self, request: Any) -> Any:  # noqa: N802 (gRPC name)
        self.invokes.append({"token": request.tok, "args": scrub(rpc.deserialize_properties(request.args))})
        return super().Invoke(request)
