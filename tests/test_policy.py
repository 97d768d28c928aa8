"""The policy pack: each rule with a passing and a failing resource, called as pure functions
and through the pack's `validate` callbacks; the dev stack's plan checked by the same rules;
and the pack's entry module answering the engine's Analyze calls in a child process.

`policy/__main__.py` is never imported here: constructing `PolicyPack` blocks forever."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pulumi_policy import PolicyCustomTimeouts, PolicyResourceOptions, ResourceValidationArgs, Secret
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

from planner.__main__ import PROJECT_DIR
from planner.__main__ import main as plan_main
from policy import rules
from policy.policies import BY_NAME, POLICIES
from policy.rules import ResourceMeta, Violation, check_plan

META = ResourceMeta(name="r")
PEM = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"


def sg_rule(port_min: int | None, port_max: int | None = None, **extra: Any) -> dict[str, Any]:
    props: dict[str, Any] = {
        "direction": "ingress",
        "ethertype": "IPv4",
        "protocol": "tcp",
        "portRangeMin": port_min,
        "portRangeMax": port_max if port_max is not None else port_min,
        "remoteIpPrefix": "0.0.0.0/0",
        "securityGroupId": "sg-1",
    }
    props.update(extra)
    return {k: v for k, v in props.items() if v is not None}


def instance(**extra: Any) -> dict[str, Any]:
    return {
        "flavorName": "m3.small",
        "imageName": "Featured-Ubuntu24",
        "keyPair": "ops-key",
        "userData": "#cloud-config\nssh_pwauth: false\n",
        **extra,
    }


def z2jh(values: dict[str, Any], chart: str = "jupyterhub") -> dict[str, Any]:
    return {"chart": chart, "version": "4.4.0", "values": values}


HTTPS_ON = {"proxy": {"https": {"enabled": True, "hosts": ["hub.example.org"]}}}


# --- security groups ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "props",
    [
        sg_rule(443),
        sg_rule(80, remoteIpPrefix="::/0", ethertype="IPv6"),
        sg_rule(443, protocol="udp"),  # HTTP/3
        sg_rule(2377, remoteIpPrefix=None, remoteGroupId="sg-members"),
        sg_rule(6800, 7300, remoteIpPrefix=None, remoteGroupId="sg-members"),
        sg_rule(6443, remoteIpPrefix="10.0.0.0/24"),
        sg_rule(22, remoteIpPrefix="203.0.113.7/32"),
        sg_rule(None, protocol="icmp"),
        sg_rule(8081, direction="egress"),
    ],
)
def test_security_group_rule_passes(props: dict[str, Any]) -> None:
    assert rules.security_group_ingress(rules.SEC_GROUP_RULE, props, META) == []


@pytest.mark.parametrize(
    ("props", "expected"),
    [
        (sg_rule(8081), ["port 8081", "8081 (JupyterHub hub API)", "0.0.0.0/0"]),
        (sg_rule(8000, 8100, remoteIpPrefix="::/0"), ["8000 (JupyterHub proxy", "8081 (JupyterHub hub API)"]),
        (sg_rule(7000, 8000, protocol="udp"), ["7000-7300 (Ceph", "7946 (Docker Swarm gossip)"]),
        (sg_rule(4789, protocol="udp", remoteIpPrefix="0.0.0.0/00"), ["4789 (Docker Swarm overlay"]),
        (sg_rule(2049, remoteIpPrefix=None), ["2049 (NFS)", "no remoteIpPrefix or remoteGroupId"]),
        (sg_rule(None, protocol=None), ["every protocol port 1-65535", "6443 (Kubernetes API server)"]),
        (sg_rule(80, 443), ["port 80-443"]),
        (sg_rule(5432), ["port 5432", "only ports 80 and 443"]),
        (sg_rule(22), ["22 (SSH)", "allowSshFromAnywhere"]),
    ],
)
def test_security_group_rule_fails_naming_port_and_service(
    props: dict[str, Any], expected: list[str]
) -> None:
    messages = rules.security_group_ingress(rules.SEC_GROUP_RULE, props, META)
    assert len(messages) == 1, messages
    for text in expected:
        assert text in messages[0]


def test_world_ssh_needs_the_stack_option() -> None:
    allowed = ResourceMeta(name="r", allow_world_ssh=True)
    check = rules.security_group_ingress
    assert check(rules.SEC_GROUP_RULE, sg_rule(22), META)
    assert check(rules.SEC_GROUP_RULE, sg_rule(22), allowed) == []
    assert check(rules.SEC_GROUP_RULE, sg_rule(22, remoteIpPrefix="::/0"), allowed) == []
    # The option opens SSH only, not a range around it.
    [message] = check(rules.SEC_GROUP_RULE, sg_rule(22, 2049), allowed)
    assert "2049 (NFS)" in message and "SSH" not in message


def test_unknown_source_is_left_for_deploy_time() -> None:
    props = sg_rule(8081, remoteIpPrefix=rules.UNKNOWN)
    assert rules.security_group_ingress(rules.SEC_GROUP_RULE, props, META) == []


# --- data ----------------------------------------------------------------------------------

VOLUME_PROPS = {"name": "hub-vm-data", "size": 100}


@pytest.mark.parametrize(
    ("meta", "ok"),
    [
        (ResourceMeta("v", protect=True, retain_on_delete=True), True),
        (ResourceMeta("v", protect=True), True),
        (ResourceMeta("v", retain_on_delete=True), True),
        (ResourceMeta("v"), False),
    ],
)
def test_volume_must_be_protected_or_retained(meta: ResourceMeta, ok: bool) -> None:
    messages = rules.data_is_kept(rules.VOLUME, VOLUME_PROPS, meta)
    assert (messages == []) is ok, messages


def test_claim_must_be_protected_unless_marked_as_not_user_data() -> None:
    claim = {"metadata": {"name": "hub-db-dir"}, "spec": {"storageClassName": "cephfs"}}
    scratch = {"metadata": {"name": "tmp", "annotations": {rules.NOT_USER_DATA_ANNOTATION: "false"}}}
    assert rules.data_is_kept(rules.PVC, claim, ResourceMeta("c"))
    assert rules.data_is_kept(rules.PVC, claim, ResourceMeta("c", protect=True)) == []
    assert rules.data_is_kept(rules.PVC, scratch, ResourceMeta("c")) == []


def test_storage_class_must_retain() -> None:
    base = {"metadata": {"name": "homes"}, "provisioner": "rook-ceph.cephfs.csi.ceph.com"}
    assert rules.data_is_kept(rules.STORAGE_CLASS, {**base, "reclaimPolicy": "Retain"}, META) == []
    [message] = rules.data_is_kept(rules.STORAGE_CLASS, base, META)  # Kubernetes default: Delete
    assert "reclaimPolicy is Delete" in message


def test_rook_never_wipes_disks_and_keeps_claims() -> None:
    retain = {"storageClass": {"enabled": True, "reclaimPolicy": "Retain"}}
    good = {"cephBlockPools": [], "cephFileSystems": [{"name": "homes", **retain}]}
    assert rules.data_is_kept(rules.HELM_RELEASE, z2jh(good, "rook-ceph-cluster"), META) == []

    wipe = {**good, "cephClusterSpec": {"cleanupPolicy": {"confirmation": "yes-really-destroy-data"}}}
    assert any(
        "cleanupPolicy" in m
        for m in rules.data_is_kept(rules.HELM_RELEASE, z2jh(wipe, "rook-ceph-cluster"), META)
    )
    deleting = {"cephBlockPools": [], "cephFileSystems": [{"name": "homes"}]}
    [message] = rules.data_is_kept(rules.HELM_RELEASE, z2jh(deleting, "rook-ceph-cluster"), META)
    assert "cephFileSystems[0].storageClass.reclaimPolicy is Delete" in message
    defaults = rules.data_is_kept(rules.HELM_RELEASE, z2jh({}, "rook/rook-ceph-cluster"), META)
    assert len(defaults) == 2 and all("default storage classes" in m for m in defaults)
    cluster = {"spec": {"cleanupPolicy": {"confirmation": "yes-really-destroy-data"}}}
    assert rules.data_is_kept(rules.CEPH_CLUSTER, cluster, META)
    assert (
        rules.data_is_kept(rules.CEPH_CLUSTER, {"spec": {"cleanupPolicy": {"confirmation": ""}}}, META) == []
    )


# --- secrets -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "adminPass",
        "cookieSecret",
        "secretToken",
        "apiToken",
        "client_secret",
        "privateKey",
        "privateKeyPem",
        "apiKey",
        "JSHUB_ADMIN_TOKEN",
        "POSTGRES_PASSWORD",
        "kubeconfig",
        "cryptKey",
    ],
)
def test_secret_key_names(key: str) -> None:
    assert rules.secret_key(key)


@pytest.mark.parametrize(
    "key",
    [
        "tokenTtl",
        "secretName",
        "passwordLength",
        "publicKey",
        "keyPair",
        "bypass",
        "key",
        "secretId",
        "name",
        "cookieName",
        "passwordAuthentication",
        "configSecret",
        "existingSecret",
    ],
)
def test_names_that_only_mention_a_secret_are_not_secrets(key: str) -> None:
    assert not rules.secret_key(key)


def test_plaintext_secret_is_reported_by_path_without_its_value() -> None:
    props = {"values": {"hub": {"cookieSecret": "0123abcd"}, "singleuser": {"tokenTtl": "3600"}}}
    [message] = rules.no_plaintext_secrets(rules.HELM_RELEASE, props, META)
    assert "values.hub.cookieSecret" in message and "0123abcd" not in message


@pytest.mark.parametrize(
    ("props", "meta"),
    [
        (
            {"values": {"hub": {"cookieSecret": "0123abcd"}}},
            ResourceMeta("r", secret_paths=frozenset({"values"})),
        ),
        (
            {"values": {"hub": {"cookieSecret": "0123abcd"}}},
            ResourceMeta("r", secret_paths=frozenset({"values.hub.cookieSecret"})),
        ),
        ({"values": {"hub": {"cookieSecret": rules.SECRET}}}, META),
        ({"password": rules.UNKNOWN}, META),
        ({"password": ""}, META),
        ({"proxy": {"https": {"secret": {"name": "tls"}}}}, META),
        ({"spec": {"automountServiceAccountToken": False, "tokenLength": 48}}, META),
        ({"stdin": "[secret]", "connection": "[secret]", "create": "sudo tee /etc/x"}, META),
    ],
)
def test_secret_or_unknown_values_pass(props: dict[str, Any], meta: ResourceMeta) -> None:
    assert rules.no_plaintext_secrets("command:remote:Command", props, meta) == []


def test_remote_command_stdin_must_be_secret() -> None:
    props = {"create": "sudo tee /etc/jupyterhub/secrets/hub.env", "stdin": "OAUTH_CLIENT_SECRET=abc\n"}
    [message] = rules.no_plaintext_secrets("command:remote:Command", props, META)
    assert "input stdin" in message
    assert (
        rules.no_plaintext_secrets(
            "command:remote:Command", props, ResourceMeta("c", secret_paths=frozenset({"stdin"}))
        )
        == []
    )


def test_private_key_in_any_text_is_reported() -> None:
    [message] = rules.no_plaintext_secrets(rules.INSTANCE, instance(userData="#cloud-config\n" + PEM), META)
    assert "input userData contains a private key" in message
    [message] = rules.no_plaintext_secrets("command:local:Command", {"triggers": ["a", PEM]}, META)
    assert "input triggers[1] contains a private key" in message


def test_kubernetes_env_pairs_are_checked_by_name() -> None:
    container = {
        "spec": {
            "containers": [
                {"env": [{"name": "DB_PASSWORD", "value": "hunter2"}, {"name": "MODE", "value": "x"}]}
            ]
        }
    }
    [message] = rules.no_plaintext_secrets("kubernetes:core/v1:Pod", container, META)
    assert "spec.containers[0].env[0].value" in message


def test_docker_env_assignments_are_checked_by_name() -> None:
    props = {"envs": ["MODE=single", "JUPYTERHUB_CRYPT_KEY=0f3a", "PATH=/usr/bin"]}
    [message] = rules.no_plaintext_secrets("docker:index/container:Container", props, META)
    assert "input envs[1]" in message and "0f3a" not in message
    assert (
        rules.no_plaintext_secrets("docker:index/container:Container", {"envs": ["MODE=single"]}, META) == []
    )


# --- Zero to JupyterHub --------------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        {},  # chart defaults: network policy and metadata blocking on, no DNS name
        {"singleuser": {"networkPolicy": {"enabled": True}, "cloudMetadata": {"blockWithIptables": True}}},
        HTTPS_ON,
    ],
)
def test_z2jh_passes(values: dict[str, Any]) -> None:
    assert rules.z2jh_hardening(rules.HELM_RELEASE, z2jh(values), META) == []


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"singleuser": {"networkPolicy": {"enabled": False}}}, "networkPolicy.enabled is false"),
        ({"singleuser": {"cloudMetadata": {"blockWithIptables": False}}}, "blockWithIptables is false"),
        ({"proxy": {"https": {"hosts": ["hub.example.org"]}}}, "proxy.https.enabled is not true"),
        ({"ingress": {"enabled": True, "hosts": ["hub.example.org"]}}, "proxy.https.hosts is empty"),
    ],
)
def test_z2jh_fails(values: dict[str, Any], expected: str) -> None:
    messages = rules.z2jh_hardening(rules.HELM_RELEASE, z2jh(values, "jupyterhub/jupyterhub"), META)
    assert any(expected in m for m in messages), messages


def test_z2jh_rule_ignores_other_charts() -> None:
    values = {"singleuser": {"networkPolicy": {"enabled": False}}}
    assert rules.z2jh_hardening(rules.HELM_RELEASE, z2jh(values, "rook-ceph"), META) == []


# --- instances -----------------------------------------------------------------------------


def test_instance_passes() -> None:
    assert rules.instance_login(rules.INSTANCE, instance(), META) == []


@pytest.mark.parametrize(
    ("props", "expected"),
    [
        (instance(adminPass="hunter2"), "adminPass is set"),
        (instance(adminPass=rules.SECRET), "adminPass is set"),
        (instance(keyPair=None), "keyPair is not set"),
        (instance(imageName="Ubuntu-Custom"), "'Ubuntu-Custom' is not an allowed image"),
        (instance(imageName=None, imageId="a2c1-uuid"), "imageName is not set"),
        (instance(userData="#cloud-config\nssh_pwauth: true\n"), "ssh_pwauth"),
    ],
)
def test_instance_fails(props: dict[str, Any], expected: str) -> None:
    messages = rules.instance_login(rules.INSTANCE, props, META)
    assert any(expected in m for m in messages), messages


# --- the pack's validate callbacks ---------------------------------------------------------


def args_for(
    resource_type: str,
    props: dict[str, Any],
    *,
    protect: bool = False,
    secret_outputs: list[str] | None = None,
    config: dict[str, Any] | None = None,
) -> ResourceValidationArgs:
    """Arguments as the engine builds them: props behind pulumi_policy's unknown-checking proxy."""
    opts = PolicyResourceOptions(protect, [], None, [], PolicyCustomTimeouts(0, 0, 0), secret_outputs or [])
    urn = f"urn:pulumi:dev::jupyterhub-jetstream::{resource_type}::r"
    return ResourceValidationArgs(resource_type, unknown_checking_proxy(props), urn, "r", opts, None, config)


def run_policy(name: str, args: ResourceValidationArgs) -> list[str]:
    reported: list[str] = []

    def report_violation(message: str, urn: str | None = None) -> None:
        reported.append(message)

    assert BY_NAME[name].validate(args, report_violation) is None
    return reported


def test_every_rule_is_a_mandatory_policy() -> None:
    from pulumi_policy import EnforcementLevel

    assert [p.name for p in POLICIES] == [spec.name for spec in rules.RULES]
    assert all(p.enforcement_level is EnforcementLevel.MANDATORY for p in POLICIES)
    schema = BY_NAME["security-group-ingress"].config_schema
    assert schema is not None and schema.properties["allowSshFromAnywhere"]["default"] is False


def test_pack_security_group_policy() -> None:
    [message] = run_policy("security-group-ingress", args_for(rules.SEC_GROUP_RULE, sg_rule(8081)))
    assert message.startswith("r: ") and "8081 (JupyterHub hub API)" in message
    assert run_policy("security-group-ingress", args_for(rules.SEC_GROUP_RULE, sg_rule(443))) == []
    # The group's ID is unknown at preview; reading it must not abort the policy.
    members = sg_rule(2377, remoteIpPrefix=None, remoteGroupId=UNKNOWN_STRING_VALUE)
    assert run_policy("security-group-ingress", args_for(rules.SEC_GROUP_RULE, members)) == []
    unknown_source = sg_rule(8081, remoteIpPrefix=UNKNOWN_STRING_VALUE)
    assert run_policy("security-group-ingress", args_for(rules.SEC_GROUP_RULE, unknown_source)) == []


def test_pack_reads_allow_ssh_from_its_config() -> None:
    ssh = sg_rule(22)
    assert run_policy("security-group-ingress", args_for(rules.SEC_GROUP_RULE, ssh))
    allowed = args_for(rules.SEC_GROUP_RULE, ssh, config={"allowSshFromAnywhere": True})
    assert run_policy("security-group-ingress", allowed) == []


def test_pack_data_policy() -> None:
    assert run_policy("data-kept", args_for(rules.VOLUME, VOLUME_PROPS, protect=True)) == []
    [message] = run_policy("data-kept", args_for(rules.VOLUME, VOLUME_PROPS))
    assert "protected" in message


def test_pack_secrets_policy() -> None:
    plain = {"create": "install", "stdin": "OAUTH_CLIENT_SECRET=abc\n", "connection": {"privateKey": PEM}}
    messages = run_policy("no-plaintext-secrets", args_for("command:remote:Command", plain))
    assert len(messages) == 2 and any("input stdin" in m for m in messages)
    assert any("connection.privateKey" in m for m in messages)
    # Secrets reach packs decrypted; the SDK and the program list them as secret outputs.
    declared = args_for("command:remote:Command", plain, secret_outputs=["stdin", "stdout", "connection"])
    assert run_policy("no-plaintext-secrets", declared) == []
    wrapped = {"create": "install", "stdin": Secret("OAUTH_CLIENT_SECRET=abc\n")}
    assert run_policy("no-plaintext-secrets", args_for("command:remote:Command", wrapped)) == []


def test_pack_z2jh_policy() -> None:
    assert run_policy("z2jh-hardening", args_for(rules.HELM_RELEASE, z2jh(HTTPS_ON))) == []
    off = z2jh({"singleuser": {"cloudMetadata": {"blockWithIptables": False}}})
    [message] = run_policy("z2jh-hardening", args_for(rules.HELM_RELEASE, off))
    assert "blockWithIptables" in message


def test_pack_instance_policy() -> None:
    assert (
        run_policy("instance-login", args_for(rules.INSTANCE, instance(keyPair=UNKNOWN_STRING_VALUE))) == []
    )
    messages = run_policy("instance-login", args_for(rules.INSTANCE, instance(adminPass="x", keyPair="")))
    assert len(messages) == 2


def test_rules_module_stays_cheap_and_policies_module_does_not_block() -> None:
    code = (
        "import sys, policy.rules\n"
        "heavy = {'pulumi', 'pulumi_policy', 'pydantic', 'yaml', 'jinja2'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
        "import policy.policies\n"
        "print(len(policy.policies.POLICIES))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_DIR, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(len(rules.RULES))


# --- the plan ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dev_resources(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    folder = tmp_path_factory.mktemp("policy-plan")
    out = folder / "plan.json"
    assert plan_main(["--stack", "dev", "--json", str(out), "--out", str(folder / "files")]) == 0
    resources: list[dict[str, Any]] = json.loads(out.read_text())["resources"]
    return resources


def test_dev_plan_has_no_mandatory_violation(dev_resources: list[dict[str, Any]]) -> None:
    types = {r["type"] for r in dev_resources}
    # The rules had something to judge: rules, a data volume, an instance, a secret-carrying command.
    assert {rules.SEC_GROUP_RULE, rules.VOLUME, rules.INSTANCE, "command:remote:Command"} <= types
    assert check_plan(dev_resources) == []


def test_dev_plan_passes_the_pack_too(dev_resources: list[dict[str, Any]]) -> None:
    for r in dev_resources:
        secret_outputs = sorted({p.split(".")[0].split("[")[0] for p in r["secret_inputs"]})
        args = args_for(r["type"], r["inputs"], protect=r["protect"], secret_outputs=secret_outputs)
        for policy in POLICIES:
            assert run_policy(policy.name, args) == [], (policy.name, r["name"])


def test_opening_the_hub_api_to_the_world_is_a_mandatory_violation(
    dev_resources: list[dict[str, Any]],
) -> None:
    resources = copy.deepcopy(dev_resources)
    https = next(r for r in resources if r["name"] == "dev-hub-tcp-443-anywhere-ipv4")
    opened = copy.deepcopy(https)
    opened["name"] = "dev-hub-tcp-8081-anywhere-ipv4"
    opened["inputs"].update(portRangeMin=8081.0, portRangeMax=8081.0, description="hub api")
    resources.append(opened)
    [violation] = check_plan(resources)
    assert violation == Violation(
        "security-group-ingress", "dev-hub-tcp-8081-anywhere-ipv4", violation.message, "mandatory"
    )
    assert "8081 (JupyterHub hub API)" in violation.message
    assert str(violation).startswith(
        "mandatory: security-group-ingress: dev-hub-tcp-8081-anywhere-ipv4: ingress tcp"
    )


def test_plan_with_an_unprotected_volume_or_plaintext_secret_fails(
    dev_resources: list[dict[str, Any]],
) -> None:
    resources = copy.deepcopy(dev_resources)
    volume = next(r for r in resources if r["type"] == rules.VOLUME)
    volume.update(protect=False, retain_on_delete=False)
    command = next(r for r in resources if r["type"] == "command:remote:Command")
    command["inputs"]["stdin"] = "OAUTH_CLIENT_SECRET=abc\n"
    command["secret_inputs"] = ["connection"]
    found = {(v.rule, v.resource) for v in check_plan(resources)}
    assert found == {("data-kept", volume["name"]), ("no-plaintext-secrets", command["name"])}


# --- the pack's entry module, in a child process --------------------------------------------


@pytest.fixture
def pack_address() -> Iterator[str]:
    """Start `policy/__main__.py` as the engine does; it prints its gRPC port and serves."""
    proc = subprocess.Popen(
        [sys.executable, str(PROJECT_DIR / "policy" / "__main__.py")],
        cwd=PROJECT_DIR / "policy",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline() if proc.stdout else ""))
    reader.start()
    reader.join(timeout=60)
    try:
        assert line and line[0].strip().isdigit(), f"pack did not start: {proc.poll()} {line}"
        yield f"127.0.0.1:{line[0].strip()}"
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_entry_module_serves_the_rules_over_the_analyzer_protocol(pack_address: str) -> None:
    import grpc
    from google.protobuf import struct_pb2
    from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

    def analyze(stub: Any, props: dict[str, Any], name: str) -> list[Any]:
        properties = struct_pb2.Struct()
        properties.update(props)
        request = analyzer_pb2.AnalyzeRequest(
            type=rules.SEC_GROUP_RULE,
            properties=properties,
            urn=f"urn:pulumi:dev::jupyterhub-jetstream::{rules.SEC_GROUP_RULE}::{name}",
            name=name,
            options=analyzer_pb2.AnalyzerResourceOptions(),
        )
        return list(stub.Analyze(request, timeout=30).diagnostics)

    with grpc.insecure_channel(pack_address) as channel:
        stub = analyzer_pb2_grpc.AnalyzerStub(channel)
        [diagnostic] = analyze(stub, sg_rule(8081), "hub-api")
        assert diagnostic.policyName == "security-group-ingress"
        assert diagnostic.enforcementLevel == analyzer_pb2.MANDATORY
        assert "8081 (JupyterHub hub API)" in diagnostic.message
        assert analyze(stub, sg_rule(443), "https") == []
        assert len(analyze(stub, sg_rule(22), "ssh")) == 1

        config = struct_pb2.Struct()
        config.update({"allowSshFromAnywhere": True})
        stub.Configure(
            analyzer_pb2.ConfigureAnalyzerRequest(
                policyConfig={
                    "security-group-ingress": analyzer_pb2.PolicyConfig(
                        enforcementLevel=analyzer_pb2.MANDATORY, properties=config
                    )
                }
            ),
            timeout=30,
        )
        assert analyze(stub, sg_rule(22), "ssh") == []


def test_pack_folder_pins_its_own_requirements() -> None:
    text = (PROJECT_DIR / "policy" / "requirements.txt").read_text()
    assert "pulumi-policy==1.21.0" in text and "pulumi==3.272.0" in text
    import yaml

    project = yaml.safe_load((PROJECT_DIR / "policy" / "PulumiPolicy.yaml").read_text())
    assert project["runtime"]["name"] == "python"
    assert Path(PROJECT_DIR / "policy" / "__main__.py").exists()
