"""The resource graph of each component under Pulumi mocks."""

from __future__ import annotations

import ipaddress

import pulumi
import pytest
import yaml

from components import (
    DataVolume,
    HubVM,
    HubVMArgs,
    Ingress,
    JetstreamNetwork,
    JetstreamNetworkArgs,
    JetstreamVM,
    JetstreamVMArgs,
    RoleSecurityGroup,
    RoleSecurityGroupArgs,
)
from components.firewall import ssh_ingress, web_ingress
from planner.mocks import SECRET, UNKNOWN, Registration, placeholder_id, placeholder_image_id
from renderers.boot import boot_commands
from tests.conftest import BASE_CONFIG, by_type, command_named, make_config, one, run_mocked

INSTANCE = "openstack:compute/instance:Instance"
VOLUME = "openstack:blockstorage/volume:Volume"
RULE = "openstack:networking/secGroupRule:SecGroupRule"


def test_existing_network_is_looked_up_not_created() -> None:
    rec = run_mocked(
        lambda: JetstreamNetwork(
            "net",
            JetstreamNetworkArgs(
                "existing", "auto_allocated_network", "auto_allocated_subnet_v4", "10.0.0.0/24"
            ),
        )
    )
    assert not [r for r in rec.registrations if r.type.startswith("openstack:networking/")]
    looked_up = [(i["token"], i["args"].get("name")) for i in rec.invokes]
    assert ("openstack:networking/getNetwork:getNetwork", "auto_allocated_network") in looked_up
    assert ("openstack:networking/getSubnet:getSubnet", "auto_allocated_subnet_v4") in looked_up


def test_created_network_has_subnet_router_and_interface() -> None:
    rec = run_mocked(
        lambda: JetstreamNetwork(
            "net", JetstreamNetworkArgs("create", "hub-net", "hub-subnet", "10.42.0.0/24")
        )
    )
    subnet = one(rec, "openstack:networking/subnet:Subnet")
    assert subnet.inputs["cidr"] == "10.42.0.0/24"
    router = one(rec, "openstack:networking/router:Router")
    assert router.inputs["externalNetworkId"] not in (None, UNKNOWN)
    iface = one(rec, "openstack:networking/routerInterface:RouterInterface")
    assert {router.urn, subnet.urn} <= set(iface.dependency_urns)


def test_security_group_rules_match_ingress_and_stay_off_the_world_except_web() -> None:
    rec = run_mocked(
        lambda: RoleSecurityGroup(
            "hub",
            RoleSecurityGroupArgs(
                "hub",
                web_ingress()
                + ssh_ingress(["203.0.113.7/32", "2001:db8::/48"])
                + [Ingress("cluster", "tcp", 2377, 2377, from_self=True)],
            ),
        )
    )
    rules = by_type(rec, RULE)
    world = [r for r in rules if r.inputs.get("remoteIpPrefix") in ("0.0.0.0/0", "::/0")]
    assert sorted({r.inputs["portRangeMin"] for r in world}) == [80, 443]
    ssh = {
        r.inputs["remoteIpPrefix"]: r.inputs["ethertype"] for r in rules if r.inputs.get("portRangeMin") == 22
    }
    assert ssh == {"203.0.113.7/32": "IPv4", "2001:db8::/48": "IPv6"}
    cluster = next(r for r in rules if r.inputs.get("portRangeMin") == 2377)
    group = one(rec, "openstack:networking/secGroup:SecGroup")
    assert "remoteIpPrefix" not in cluster.inputs and group.urn in cluster.dependency_urns
    assert len({r.name for r in rules}) == len(rules)


def test_ingress_needs_exactly_one_source() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Ingress("bad", "tcp", 1, 1, cidr="10.0.0.0/8", from_self=True)


def _vm(**kw: object) -> JetstreamVM:
    args = dict(
        role="test",
        flavor="m3.small",
        image="Featured-Ubuntu24",
        key_pair="k",
        network_id="net-id",
        subnet_id="subnet-id",
        security_group_ids=["sg"],
        user_data="#cloud-config\n{}\n",
    )
    args.update(kw)
    return JetstreamVM("vm", JetstreamVMArgs(**args))  # type: ignore[arg-type]


def test_data_volumes_are_protected_and_survive_replacement_of_the_server() -> None:
    seen: list[str] = []

    def user_data(volumes: dict[str, pulumi.Output[str]]) -> pulumi.Output[str]:
        def render(volume_id: str) -> str:
            seen.append(volume_id)
            return f"#cloud-config\nbootcmd: [[echo, {volume_id}]]\n"

        return volumes["data"].apply(render)

    rec = run_mocked(lambda: _vm(user_data=user_data, data_volumes=[DataVolume("data", 50, "homes")]))
    assert len(seen) == 1, "the user-data callback must run under mocks"
    volume = one(rec, VOLUME)
    assert volume.protect and volume.retain_on_delete
    assert volume.inputs["size"] == 50
    server = one(rec, INSTANCE)
    assert seen[0] in server.inputs["userData"]
    # A volume attaches to one server at a time: the old server must go first.
    assert server.delete_before_replace
    attach = one(rec, "openstack:compute/volumeAttach:VolumeAttach")
    assert attach.delete_before_replace and not attach.protect
    assert {server.urn, volume.urn} <= set(attach.dependency_urns)


def test_vm_without_floating_ip_has_no_public_address_and_refuses_dns() -> None:
    rec = run_mocked(lambda: _vm())
    assert not by_type(rec, "openstack:networking/floatingIp:FloatingIp")
    port = one(rec, "openstack:networking/port:Port")
    assert port.inputs["securityGroupIds"] == ["sg"]

    from components import DnsRecord

    with pytest.raises(Exception, match="needs a floating IP"):
        run_mocked(lambda: _vm(dns=DnsRecord("z.example.org.", "hub")))


def _hub(**overrides: object) -> None:
    cfg = make_config(**overrides)
    HubVM("hub", HubVMArgs(config=cfg, network_id="n", subnet_id="s", security_group_ids=["sg"]))


def test_hub_vm_wires_dns_floating_ip_and_protected_data_volume() -> None:
    rec = run_mocked(_hub)
    record = one(rec, "openstack:dns/recordSet:RecordSet")
    assert record.inputs["name"] == "hub.cis230000.projects.jetstream-cloud.org."
    fip = one(rec, "openstack:networking/floatingIp:FloatingIp")
    assert fip.inputs["pool"] == "public"
    ipaddress.ip_address(record.inputs["records"][0])
    zone_lookup = [i for i in rec.invokes if i["token"] == "openstack:dns/getDnsZone:getDnsZone"]
    assert zone_lookup[0]["args"]["name"] == "cis230000.projects.jetstream-cloud.org."
    volume = one(rec, VOLUME)
    assert volume.protect and volume.retain_on_delete and volume.inputs["size"] == 100


def test_hub_user_data_is_rendered_and_carries_no_secret() -> None:
    rec = run_mocked(_hub)
    server = one(rec, INSTANCE)
    user_data = server.inputs["userData"]
    assert user_data not in (UNKNOWN, SECRET), "the cloud-init apply must have run"
    assert BASE_CONFIG["oauthClientSecret"] not in user_data
    cloud = yaml.safe_load(user_data)
    volume = one(rec, VOLUME)
    setup = next(f for f in cloud["write_files"] if f["path"] == "/usr/local/sbin/jshub-setup-data-volume")
    volume_id = placeholder_id(VOLUME, volume.name)
    assert f"volume_id={volume_id}" in setup["content"]
    key = one(rec, "tls:index/privateKey:PrivateKey")
    assert key.inputs["algorithm"] == "ED25519"
    assert cloud["ssh_authorized_keys"][0].startswith("ssh-ed25519 ")
    assert "jshub-setup-data-volume" in str(boot_commands(cloud["runcmd"])[0])
    assert setup["permissions"] == "0755"


def test_hub_secrets_travel_over_ssh_on_stdin_never_logged() -> None:
    rec = run_mocked(_hub)
    cmd = command_named(rec, "hub-secrets")
    assert cmd.inputs["stdin"] == SECRET
    assert cmd.inputs["logging"] == "none"
    assert {"stdin", "stdout", "stderr"} <= set(cmd.additional_secret_outputs)
    assert BASE_CONFIG["oauthClientSecret"] not in cmd.inputs["create"]
    conn = cmd.inputs["connection"]
    assert conn == SECRET  # it carries the deploy private key
    server = one(rec, INSTANCE)
    assert server.urn in cmd.dependency_urns
    # The proxy gets its token alone, and restarts before the hub (which adds its routes).
    create = cmd.inputs["create"]
    assert "grep -E '^(CONFIGPROXY_AUTH_TOKEN)=' /etc/jupyterhub/secrets/hub.env" in create
    assert create.index("restart jshub-proxy.service") < create.index("restart jupyterhub.service")
    for r in rec.registrations:
        assert BASE_CONFIG["oauthClientSecret"] not in str(r.inputs), r.name


def _hub_registrations(
    image_ids: dict[str, str] | None = None, **overrides: object
) -> dict[str, Registration]:
    rec = run_mocked(lambda: _hub(**overrides), {**BASE_CONFIG, **overrides}, image_ids)
    return {r.name: r for r in rec.registrations}


@pytest.mark.parametrize(
    "change",
    [
        {"auth": {**BASE_CONFIG["auth"], "admins": ["octocat", "new-admin"]}},
        {"auth": {**BASE_CONFIG["auth"], "allowedUsers": ["alice"]}},
        {"auth": {"type": "cilogon", "clientId": "cilogon:/client_id/1", "admins": ["jdoe"]}},
        {"idleTimeoutMinutes": 30},
        {"userMemoryGb": 0.5, "concurrentUsers": 8},
        {"letsEncryptEmail": "someone@example.org"},
    ],
    ids=["admins", "allowed-users", "auth", "culler", "limits", "email"],
)
def test_a_hub_config_change_rewrites_the_config_in_place_and_leaves_the_server(
    change: dict[str, object],
) -> None:
    before, after = _hub_registrations(), _hub_registrations(**change)
    assert before.keys() == after.keys()
    server_before, server_after = before["hub-vm-server"], after["hub-vm-server"]
    assert server_before.inputs["userData"] not in (UNKNOWN, SECRET), "the cloud-init apply must have run"
    # Every input of the server is the same: no new server, no rebuild, no resize.
    assert server_after.inputs == server_before.inputs
    changed = sorted(name for name in before if before[name].inputs != after[name].inputs)
    assert changed == ["hub-config"], changed
    # hub-config runs again (its trigger is the files' digest) and restarts the hub.
    config_before, config_after = before["hub-config"], after["hub-config"]
    assert config_before.inputs["triggers"][:2] == config_after.inputs["triggers"][:2]
    assert config_before.inputs["triggers"][2] != config_after.inputs["triggers"][2]
    assert "systemctl restart" in config_after.inputs["create"]


ON_ROOT_DISK = ["hub-secrets", "hub-config"]


def test_state_on_the_root_disk_is_put_back_after_a_rebuild_and_not_after_a_resize(next_image: str) -> None:
    base = _hub_registrations()
    server = base["hub-vm-server"]
    for name in ON_ROOT_DISK:
        triggers = base[name].inputs["triggers"]
        # The server's ID (a replacement) and the ID of the image it booted, as the provider
        # reads it back (a rebuild keeps the server's ID): known values, so the applies ran.
        assert triggers[:2] == [
            placeholder_id(INSTANCE, server.name),
            placeholder_image_id(server.inputs["imageName"]),
        ], name
        assert server.inputs["imageName"] not in triggers, name
    rebuilt = _hub_registrations(image=next_image)
    assert rebuilt["hub-vm-server"].inputs["imageName"] == next_image
    assert {n for n in base if base[n].inputs != rebuilt[n].inputs} == {"hub-vm-server", *ON_ROOT_DISK}
    resized = _hub_registrations(hubFlavor="m3.medium")
    assert {n for n in base if base[n].inputs != resized[n].inputs} == {"hub-vm-server"}


def test_a_rebuild_no_config_change_asked_for_puts_the_root_disk_state_back() -> None:
    """Jetstream2 refreshed the image behind the same name; after `pulumi refresh` the provider
    rebuilds the server to it. The config is the same, the server's booted image is not: every
    step that wrote to the root disk runs again."""
    base = _hub_registrations()
    name = base["hub-vm-server"].inputs["imageName"]
    moved = _hub_registrations({name: "00000000-0000-4000-8000-00000000beef"})
    assert moved["hub-vm-server"].inputs == base["hub-vm-server"].inputs
    assert {n for n in base if base[n].inputs != moved[n].inputs} == set(ON_ROOT_DISK)
    for step in ON_ROOT_DISK:
        assert moved[step].inputs["triggers"][1] == "00000000-0000-4000-8000-00000000beef"


def test_hub_config_command_carries_the_config_but_no_secret() -> None:
    rec = run_mocked(_hub)
    cmd = command_named(rec, "hub-config")
    create = cmd.inputs["create"]
    assert '"admin_users": [\n      "octocat"\n    ]' in create
    assert "storage file_system /data/caddy" in create
    assert "jupyterhub==" in create
    assert BASE_CONFIG["oauthClientSecret"] not in create
    assert cmd.inputs["connection"] == SECRET
    assert one(rec, INSTANCE).urn in cmd.dependency_urns


def test_hub_outputs_keep_the_admin_token_secret() -> None:
    from stacks.single import build

    rec = run_mocked(lambda: build(make_config()))
    assert rec.outputs["admin_token"] == SECRET
    assert rec.outputs["url"] == "https://hub.cis230000.projects.jetstream-cloud.org"
