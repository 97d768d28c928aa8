"""The project's security and data-safety rules as pure functions.

Each rule is `(resource_type, props, meta) -> list[str]`: the violation messages for one
resource, given its inputs as the engine sees them (camelCase keys) and a `ResourceMeta`.
The policy pack (`policy/policies.py`) and the offline planner (`check_plan`) both call them,
so a stack is judged the same way at `make plan` and at `pulumi preview --policy-pack policy`.

Two markers stand for values a rule cannot read: `SECRET` ("[secret]") and `UNKNOWN`
("[unknown]", a value only known after something else is created). Rules never report a
violation that depends on an unknown value; the engine runs the pack again at `pulumi up`,
when the value is known.

No `pulumi_policy` import here: the planner imports this module, and it must stay cheap."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from catalog.jetstream2 import FEATURED_IMAGES

SECRET = "[secret]"
UNKNOWN = "[unknown]"
MANDATORY = "mandatory"

SEC_GROUP_RULE = "openstack:networking/secGroupRule:SecGroupRule"
VOLUME = "openstack:blockstorage/volume:Volume"
OBJECT_CONTAINER = "openstack:objectstorage/container:Container"
INSTANCE = "openstack:compute/instance:Instance"
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
PVC = "kubernetes:core/v1:PersistentVolumeClaim"
STORAGE_CLASS = "kubernetes:storage.k8s.io/v1:StorageClass"
CEPH_CLUSTER = "kubernetes:ceph.rook.io/v1:CephCluster"
CEPH_FILESYSTEM = "kubernetes:ceph.rook.io/v1:CephFilesystem"

# Kubernetes objects that do not hold user data can say so; everything else is assumed to.
NOT_USER_DATA_ANNOTATION = "jupyterhub-jetstream/user-data"

ALLOWED_IMAGES: tuple[str, ...] = FEATURED_IMAGES


@dataclass(frozen=True)
class ResourceMeta:
    """What a rule knows about a resource besides its inputs.

    `secret_paths` lists the input paths that are secrets, in the planner's notation
    (`connection`, `values.hub.cookieSecret`, `env[0].value`); everything under a listed
    path is secret too. `allow_world_ssh` is the stack's `allowSshFromAnywhere`."""

    name: str
    protect: bool = False
    retain_on_delete: bool = False
    secret_paths: frozenset[str] = frozenset()
    allow_world_ssh: bool = False

    def is_secret(self, path: str) -> bool:
        while path:
            if path in self.secret_paths:
                return True
            parent = _PARENT.sub("", path)
            if parent == path:
                return False
            path = parent
        return False


_PARENT = re.compile(r"(\.[^.\[]*|\[\d+\])$")


@dataclass(frozen=True)
class Violation:
    rule: str
    resource: str
    message: str
    enforcement: str = MANDATORY

    def __str__(self) -> str:
        return f"{self.enforcement}: {self.rule}: {self.resource}: {self.message}"


Rule = Callable[[str, Mapping[str, Any], ResourceMeta], list[str]]


@dataclass(frozen=True)
class RuleSpec:
    name: str
    description: str
    check: Rule = field(repr=False)


def _known(value: Any) -> bool:
    return value not in (UNKNOWN, SECRET)


def _get(props: Mapping[str, Any], dotted: str, default: Any = None) -> Any:
    value: Any = props
    for key in dotted.split("."):
        if not isinstance(value, Mapping) or key not in value:
            return default
        value = value[key]
    return default if value is None else value


# --- security groups -------------------------------------------------------------------------

# Ports that must only be reachable from the cluster's own members (a remote group) or an
# operator-configured CIDR, never from the whole internet. Ranges, inclusive.
PROTECTED_PORTS: tuple[tuple[int, int, str], ...] = (
    (22, 22, "SSH"),
    (2049, 2049, "NFS"),
    (2377, 2377, "Docker Swarm management"),
    (2379, 2380, "etcd"),
    (3300, 3300, "Ceph monitor (msgr2)"),
    (4789, 4789, "Docker Swarm overlay VXLAN"),
    (6443, 6443, "Kubernetes API server"),
    (6789, 6789, "Ceph monitor"),
    (6800, 7300, "Ceph OSD/MGR/MDS"),
    (7946, 7946, "Docker Swarm gossip"),
    (8000, 8000, "JupyterHub proxy (plain HTTP)"),
    (8001, 8001, "configurable-http-proxy API"),
    (8081, 8081, "JupyterHub hub API"),
    (8472, 8472, "Flannel VXLAN"),
    (10250, 10250, "kubelet API"),
)
WEB_PORTS = (80, 443)
_PROTOCOL_ALIASES = {"6": "tcp", "17": "udp", "1": "icmp", "58": "ipv6-icmp", "icmpv6": "ipv6-icmp"}
_ICMP = ("icmp", "ipv6-icmp")
_PORTED = ("tcp", "udp", "sctp")


def _port_range(protocol: str, props: Mapping[str, Any]) -> tuple[int, int] | None:
    """The inclusive port range a rule opens; OpenStack reads a missing range (or a rule with
    no protocol) as every port. None when the range is unknown."""
    if protocol not in _PORTED:
        return (1, 65535)
    low: Any = props.get("portRangeMin")
    high: Any = props.get("portRangeMax")
    if not _known(low) or not _known(high):
        return None
    if not low and not high:
        return (1, 65535)
    return (int(low or high), int(high or low))


def _describe_ports(low: int, high: int) -> str:
    return str(low) if low == high else f"{low}-{high}"


def security_group_ingress(resource_type: str, props: Mapping[str, Any], meta: ResourceMeta) -> list[str]:
    """Ingress from the whole internet (a /0 prefix, or no remote at all, which OpenStack reads
    as any address) opens only 80/443, and 22 when the stack sets allowSshFromAnywhere.
    Cluster, NFS, hub-API and Kubernetes ports come only from a remote group or a non-world
    CIDR. ICMP from anywhere is accepted: path-MTU discovery needs it and it opens no service."""
    if resource_type != SEC_GROUP_RULE:
        return []
    direction = props.get("direction")
    if direction != "ingress":
        return []
    prefix, group = props.get("remoteIpPrefix"), props.get("remoteGroupId")
    if not _known(prefix):
        return []
    if prefix:
        try:
            network = ipaddress.ip_network(str(prefix), strict=False)
        except ValueError:
            return [f"remoteIpPrefix {prefix!r} is not a CIDR"]
        if network.prefixlen != 0:
            return []
        source = str(network)
    elif group:
        return []
    else:
        source = f"any {props.get('ethertype') or 'IPv4'} address (no remoteIpPrefix or remoteGroupId)"

    raw_protocol = props.get("protocol")
    if not _known(raw_protocol):
        return []
    protocol = _PROTOCOL_ALIASES.get(str(raw_protocol or "").lower(), str(raw_protocol or "").lower())
    if protocol in _ICMP:
        return []
    ports = _port_range(protocol, props)
    if ports is None:
        return []
    low, high = ports
    if protocol in ("tcp", "udp") and low == high and low in WEB_PORTS:
        return []
    if protocol == "tcp" and low == high == 22 and meta.allow_world_ssh:
        return []

    what = f"{protocol or 'every protocol'} port {_describe_ports(low, high)}"
    exposed = [
        f"{_describe_ports(max(lo, low), min(hi, high))} ({label})"
        for lo, hi, label in PROTECTED_PORTS
        if lo <= high and low <= hi and not (lo == 22 and meta.allow_world_ssh and protocol == "tcp")
    ]
    message = f"ingress {what} from {source}: only ports 80 and 443 may be open to the world"
    if exposed:
        message += (
            f"; this exposes {', '.join(exposed)}, which must be reached only from the cluster's own "
            "security group (remoteGroupId) or a configured CIDR"
        )
    if low <= 22 <= high and not meta.allow_world_ssh:
        message += "; SSH from anywhere needs allowSshFromAnywhere: true in the stack"
    return [message]


# --- data ------------------------------------------------------------------------------------


def _exempt_from_data_rules(props: Mapping[str, Any]) -> bool:
    annotations = _get(props, "metadata.annotations", {})
    return isinstance(annotations, Mapping) and str(annotations.get(NOT_USER_DATA_ANNOTATION)) == "false"


def _fs_list(values: Mapping[str, Any], key: str) -> Iterator[tuple[int, Mapping[str, Any]]]:
    items = values.get(key)
    if isinstance(items, Sequence) and not isinstance(items, str):
        for i, item in enumerate(items):
            if isinstance(item, Mapping):
                yield i, item


def _chart_name(props: Mapping[str, Any]) -> str:
    chart = props.get("chart")
    return str(chart).rstrip("/").rsplit("/", 1)[-1] if isinstance(chart, str) else ""


def data_is_kept(resource_type: str, props: Mapping[str, Any], meta: ResourceMeta) -> list[str]:
    """Storage that holds homes, hub state or Ceph data survives `pulumi destroy` and replacement:
    - every Cinder volume is protected or retained on delete (the program only makes data
      volumes; root disks are the instance's own);
    - a PersistentVolumeClaim is protected or retained on delete, and a StorageClass uses
      reclaimPolicy Retain, unless annotated `jupyterhub-jetstream/user-data: "false"`;
    - Rook never wipes disks on uninstall (cleanupPolicy.confirmation empty), a CephFilesystem
      keeps its pools (preserveFilesystemOnDelete not false), and the rook-ceph-cluster chart's
      storage classes use reclaimPolicy Retain (the chart's default is Delete);
    - an object-storage container (it holds the backups) is protected or retained on delete and
      never force-destroyed (emptied so that it can be deleted)."""
    kept = meta.protect or meta.retain_on_delete
    if resource_type == OBJECT_CONTAINER:
        found = []
        if not kept:
            found.append(
                "object-storage container is neither protected nor retained on delete: deleting it deletes "
                "the backups it holds; set protect=True and retain_on_delete=True"
            )
        if props.get("forceDestroy") is True:
            found.append("forceDestroy empties the container to delete it: every backup in it would be lost")
        return found
    if resource_type == VOLUME:
        if not kept:
            return [
                "data volume is neither protected nor retained on delete: set protect=True and retain_on_delete=True"
            ]
        return []
    if resource_type == PVC:
        if not kept and not _exempt_from_data_rules(props):
            return [
                "PersistentVolumeClaim is neither protected nor retained on delete (annotate "
                f'{NOT_USER_DATA_ANNOTATION}: "false" if it holds no user data)'
            ]
        return []
    if resource_type == STORAGE_CLASS:
        policy = props.get("reclaimPolicy") or "Delete"
        if _known(policy) and policy != "Retain" and not _exempt_from_data_rules(props):
            return [
                f"StorageClass reclaimPolicy is {policy}: deleting a claim would delete its data; use Retain "
                f'(or annotate {NOT_USER_DATA_ANNOTATION}: "false" if it holds no user data)'
            ]
        return []
    problems: list[str] = []
    if resource_type == CEPH_CLUSTER:
        confirmation = _get(props, "spec.cleanupPolicy.confirmation", "")
        if confirmation and _known(confirmation):
            problems.append(
                "CephCluster spec.cleanupPolicy.confirmation is set: Rook would wipe every OSD disk"
            )
    if resource_type == CEPH_FILESYSTEM and _get(props, "spec.preserveFilesystemOnDelete") is False:
        problems.append(
            "CephFilesystem spec.preserveFilesystemOnDelete is false: deleting it drops its pools"
        )
    if resource_type == HELM_RELEASE and _chart_name(props) == "rook-ceph-cluster":
        values = props.get("values")
        values = values if isinstance(values, Mapping) else {}
        confirmation = _get(values, "cephClusterSpec.cleanupPolicy.confirmation", "")
        if confirmation and _known(confirmation):
            problems.append(
                "values.cephClusterSpec.cleanupPolicy.confirmation is set: Rook would wipe every OSD disk"
            )
        for key in ("cephBlockPools", "cephFileSystems"):
            if key not in values:
                problems.append(
                    f"values.{key} is not set: the chart's default storage classes use reclaimPolicy Delete; "
                    f"list {key} with storageClass.reclaimPolicy: Retain (or an empty list)"
                )
                continue
            for i, item in _fs_list(values, key):
                storage_class = item.get("storageClass")
                storage_class = storage_class if isinstance(storage_class, Mapping) else {}
                policy = storage_class.get("reclaimPolicy") or "Delete"
                if storage_class.get("enabled", True) is not False and _known(policy) and policy != "Retain":
                    problems.append(f"values.{key}[{i}].storageClass.reclaimPolicy is {policy}: use Retain")
                if key == "cephFileSystems" and _get(item, "spec.preserveFilesystemOnDelete") is False:
                    problems.append(f"values.{key}[{i}].spec.preserveFilesystemOnDelete is false")
    return problems


# --- secrets ---------------------------------------------------------------------------------

_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
# A key names a secret when its last word (after dropping encoding words such as `pem` or
# `data`) is one of these, or its last two words are one of the pairs. Whole words only, so
# `tokenTtl`, `secretName`, `passwordLength`, `publicKey`, `keyPair` and `bypass` are not secrets.
_SECRET_WORDS = frozenset(
    {"password", "passwd", "passphrase", "pass", "secret", "token", "jwt", "credentials", "kubeconfig"}
)
_SECRET_PAIRS = frozenset(
    {
        ("private", "key"),
        ("api", "key"),
        ("secret", "key"),
        ("crypt", "key"),
        ("signing", "key"),
        ("encryption", "key"),
    }
)
# Keys that by their API's convention hold the name of a Kubernetes Secret, not its content
# (prometheus-operator's `configSecret`, many charts' `existingSecret`), like `secretName`.
_SECRET_NAME_KEYS = frozenset({"configSecret", "existingSecret"})
_ENCODING_WORDS = frozenset({"pem", "openssh", "data", "b64", "base64", "pkcs8", "value"})
_ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.DOTALL)
_PRIVATE_KEY_PEM = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY")
# Inputs that carry secrets whatever their name: a remote command's standard input is how the
# program hands it secrets, off the command line.
_SECRET_INPUTS_BY_TYPE = {"command:remote:Command": ("stdin",), "command:local:Command": ("stdin",)}


def secret_key(key: str) -> bool:
    if key in _SECRET_NAME_KEYS:
        return False
    words = [w.lower() for w in _WORDS.findall(key)]
    while len(words) > 1 and words[-1] in _ENCODING_WORDS:
        words.pop()
    if not words:
        return False
    return words[-1] in _SECRET_WORDS or tuple(words[-2:]) in _SECRET_PAIRS


def _walk(value: Any, path: str) -> Iterator[tuple[str, str, Any]]:
    """Every (path, key, value) below `value`. For Kubernetes-style `{name, value}` pairs the key
    is the pair's name; a `NAME=value` string in a list is also seen as key NAME."""
    if isinstance(value, Mapping):
        name = value.get("name")
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            if key == "value" and isinstance(name, str) and "value" in value:
                yield child, name, item
            else:
                yield child, str(key), item
            yield from _walk(item, child)
    elif isinstance(value, Sequence) and not isinstance(value, str):
        for i, item in enumerate(value):
            child = f"{path}[{i}]"
            if isinstance(item, str):
                # Docker-style environment lists: "NAME=value".
                assignment = _ASSIGNMENT.match(item)
                yield (child, assignment.group(1), assignment.group(2)) if assignment else (child, "", item)
            else:
                yield from _walk(item, child)


def no_plaintext_secrets(resource_type: str, props: Mapping[str, Any], meta: ResourceMeta) -> list[str]:
    """No password, token, private key or cookie secret in plain text in any input: a value
    whose key names a secret must be a Pulumi secret (or unknown until deploy time), and no
    plain-text string may contain a PEM private key. Messages name the path, never the value."""
    problems: list[str] = []
    always_secret = _SECRET_INPUTS_BY_TYPE.get(resource_type, ())
    for path, key, value in _walk(props, ""):
        if meta.is_secret(path) or not isinstance(value, str) or not _known(value) or not value:
            continue
        if secret_key(key) or path in always_secret:
            problems.append(
                f"input {path} holds a secret in plain text: pass it as a Pulumi secret "
                "(pulumi.Output.secret or `pulumi config set --secret`)"
            )
        elif _PRIVATE_KEY_PEM.search(value):
            problems.append(f"input {path} contains a private key in plain text: pass it as a Pulumi secret")
    return problems


# --- Zero to JupyterHub ----------------------------------------------------------------------


def _strings(value: Any) -> list[str]:
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [v for v in value if isinstance(v, str) and v and _known(v)]
    return []


def z2jh_hardening(resource_type: str, props: Mapping[str, Any], meta: ResourceMeta) -> list[str]:
    """The jupyterhub chart keeps user pods away from the cluster and the cloud: network policy
    on, the cloud metadata server (169.254.169.254: instance credentials) blocked, and HTTPS on
    with its hosts whenever the hub has a DNS name. The chart defaults both singleuser settings
    to true (z2jh 4.4.0 values.yaml), so only an explicit false is a violation. The hub has a DNS
    name when values list proxy.https.hosts or ingress hosts."""
    if resource_type != HELM_RELEASE or _chart_name(props) != "jupyterhub":
        return []
    raw_values = props.get("values")
    values: Mapping[str, Any] = raw_values if isinstance(raw_values, Mapping) else {}
    problems = []
    if _get(values, "singleuser.networkPolicy.enabled") is False:
        problems.append(
            "values.singleuser.networkPolicy.enabled is false: user pods could reach the whole cluster"
        )
    if _get(values, "singleuser.cloudMetadata.blockWithIptables") is False:
        problems.append(
            "values.singleuser.cloudMetadata.blockWithIptables is false: user pods could read the "
            "cloud metadata server"
        )
    https_hosts = _strings(_get(values, "proxy.https.hosts", []))
    ingress_hosts = (
        _strings(_get(values, "ingress.hosts", [])) if _get(values, "ingress.enabled") is True else []
    )
    names = [*https_hosts, *ingress_hosts]
    if names:
        enabled = _get(values, "proxy.https.enabled")
        if enabled is not True and _known(enabled):
            problems.append(f"values.proxy.https.enabled is not true although the hub is named {names[0]}")
        if not https_hosts:
            problems.append(f"values.proxy.https.hosts is empty although the hub is named {names[0]}")
    return problems


# --- instances -------------------------------------------------------------------------------

_SSH_PASSWORD_AUTH = re.compile(r"^\s*ssh_pwauth\s*:\s*['\"]?(true|yes|on|1)\b", re.IGNORECASE | re.MULTILINE)


def instance_login(resource_type: str, props: Mapping[str, Any], meta: ResourceMeta) -> list[str]:
    """Servers are reached with the operator's key pair only: no admin password (secret or not),
    no SSH password login in cloud-init, a key pair set, and an image from the allowed list
    (Jetstream2's featured images, which get security updates)."""
    if resource_type != INSTANCE:
        return []
    problems = []
    if props.get("adminPass"):
        problems.append("adminPass is set: servers must not have a password login; use keyPair")
    user_data = props.get("userData")
    if isinstance(user_data, str) and _known(user_data) and _SSH_PASSWORD_AUTH.search(user_data):
        problems.append("userData enables ssh_pwauth: SSH password login must stay off")
    if not props.get("keyPair"):
        problems.append("keyPair is not set: the operator could not log in with a key")
    image = props.get("imageName")
    allowed = ", ".join(ALLOWED_IMAGES)
    if not image:
        problems.append(f"imageName is not set: boot one of the allowed images by name ({allowed})")
    elif _known(image) and image not in ALLOWED_IMAGES:
        problems.append(f"imageName {image!r} is not an allowed image ({allowed})")
    return problems


RULES: tuple[RuleSpec, ...] = (
    RuleSpec(
        "security-group-ingress",
        "Only 80/443 (and 22 when allowed) open to the world; cluster ports only from members or a CIDR.",
        security_group_ingress,
    ),
    RuleSpec(
        "data-kept",
        "Volumes, claims, Ceph storage and backup containers holding user data are protected or retained on delete.",
        data_is_kept,
    ),
    RuleSpec(
        "no-plaintext-secrets",
        "No password, token, private key or cookie secret in plain text in any resource input.",
        no_plaintext_secrets,
    ),
    RuleSpec(
        "z2jh-hardening",
        "JupyterHub chart: network policy on, cloud metadata blocked, HTTPS on when the hub has a DNS name.",
        z2jh_hardening,
    ),
    RuleSpec(
        "instance-login",
        "Servers: no password login, a key pair set, and an image from the allowed list.",
        instance_login,
    ),
)


def meta_from_plan(resource: Mapping[str, Any], allow_world_ssh: bool = False) -> ResourceMeta:
    return ResourceMeta(
        name=str(resource["name"]),
        protect=bool(resource.get("protect")),
        retain_on_delete=bool(resource.get("retain_on_delete")),
        secret_paths=frozenset(resource.get("secret_inputs") or ()),
        allow_world_ssh=allow_world_ssh,
    )


def check_resource(resource_type: str, props: Mapping[str, Any], meta: ResourceMeta) -> list[Violation]:
    return [
        Violation(spec.name, meta.name, message)
        for spec in RULES
        for message in spec.check(resource_type, props, meta)
    ]


def check_plan(resources: list[dict[str, Any]], allow_world_ssh: bool = False) -> list[Violation]:
    """Every rule on every resource of a plan (the planner's JSON `resources`): the same checks
    the policy pack makes at `pulumi preview`, all mandatory."""
    violations: list[Violation] = []
    for resource in resources:
        meta = meta_from_plan(resource, allow_world_ssh)
        violations.extend(check_resource(resource["type"], resource.get("inputs") or {}, meta))
    return violations
