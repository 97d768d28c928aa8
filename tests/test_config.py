"""Config validation: bad input fails before any resource exists, naming key, value and what
is allowed."""

from __future__ import annotations

import typing
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, Field

from catalog import FLAVORS
from planner.plan import PROJECT_DIR
from planner.stackfile import load
from stackconfig import PROJECT, ConfigError, StackConfig, parse
from stackconfig.model import Scenario
from stackconfig.scenarios import SCENARIOS, foreign_keys, keys_of, only, words
from tests.builders import problems
from tests.conftest import BASE_CONFIG, SECRET_KEYS, as_pulumi_config, make_config


def test_valid_config_gives_typed_values_and_derived_names() -> None:
    cfg = make_config(concurrentUsers="4", userMemoryGb="1.25")
    assert cfg.concurrent_users == 4 and cfg.user_memory_gb == 1.25
    assert cfg.zone == "cis230000.projects.jetstream-cloud.org."
    assert cfg.hub_url == "https://hub.cis230000.projects.jetstream-cloud.org"
    assert cfg.oauth_client_secret.get_secret_value() == BASE_CONFIG["oauthClientSecret"]
    assert "not-a-real-secret" not in repr(cfg)


def test_provider_config_of_other_namespaces_is_ignored() -> None:
    raw = {**as_pulumi_config(BASE_CONFIG), "openstack:region": "IU"}
    assert parse(raw, secret_keys=SECRET_KEYS).scenario == "single"


# The breadth of invalid input (over 60 stacks) lives in tests/corpus/bad_stacks.yaml.


def test_unknown_key_suggests_the_closest_known_key() -> None:
    found = problems(hubFlavour="m3.small")
    assert found == [f for f in found if f.startswith("hubFlavour: unknown key; did you mean 'hubFlavor'?")]
    nested = problems(auth={"type": "github", "clientId": "x", "admins": ["a"], "alowedUsers": ["b"]})
    assert any("auth.alowedUsers: unknown key; did you mean 'allowedUsers'?" in p for p in nested)


def test_all_problems_are_reported_at_once() -> None:
    assert len(problems(hubFlavor="nope", image="nope", concurrentUsers=0)) == 3


def test_secret_given_in_plain_text_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"oauthClientSecret: .*pulumi config set --secret"):
        parse(as_pulumi_config(BASE_CONFIG), secret_keys=[])


def test_memory_sizing_shows_the_arithmetic_and_the_flavor_that_fits() -> None:
    (message,) = problems(concurrentUsers=20, userMemoryGb=2)
    assert "concurrentUsers 20 × userMemoryGb 2 + 1 GB for the hub = 41 GB" in message
    assert "m3.small has 6 GB" in message and "smallest flavor that fits is m3.large" in message
    needed = 20 * 2 + 1
    assert FLAVORS["m3.large"].ram_gb >= needed > FLAVORS["m3.medium"].ram_gb


def test_sizing_that_fits_is_accepted_at_the_boundary() -> None:
    # m3.small has 6 GB: 5 users × 1 GB + 1 GB for the hub fits exactly.
    assert make_config(concurrentUsers=5, userMemoryGb=1).hub_flavor == "m3.small"
    assert problems(concurrentUsers=6, userMemoryGb=1)


def test_ssh_from_anywhere_only_when_explicitly_allowed() -> None:
    cfg = make_config(adminCidrs=["0.0.0.0/0"], allowSshFromAnywhere=True)
    assert cfg.admin_cidrs == ["0.0.0.0/0"]


def test_a_custom_zone_replaces_the_allocation_zone() -> None:
    cfg = make_config(dnsZone="jupyter.example.org", hubHostname="class")
    assert cfg.zone == "jupyter.example.org." and cfg.hub_fqdn == "class.jupyter.example.org"
    assert make_config(dnsZone="").zone == "cis230000.projects.jetstream-cloud.org."


# The keys of each scenario (stackconfig/scenarios.py). More refusals, through the real program,
# are in tests/corpus/bad_stacks.yaml.
HPC = yaml.safe_load((PROJECT_DIR / "Pulumi.gateway-hpc.yaml").read_text())["config"][f"{PROJECT}:hpc"]
FOREIGN = [
    ("single", {}, "swarm", {"workerCount": 2}, "remove it, or set scenario: swarm"),
    ("single", {}, "hpcSshPrivateKey", "not-a-real-key", "remove it, or set scenario: hpc"),
    ("hpc", {"hpc": HPC}, "userCpu", 4, "a notebook job asks SLURM for hpc.defaultCores"),
    ("hpc", {"hpc": HPC}, "homeQuotaGb", 5, "homes are on the HPC system"),
    ("swarm", {"swarm": {"workerCount": 2}}, "hubFlavor", "m3.2xl", "set swarm.managerFlavor"),
    ("swarm", {"swarm": {"workerCount": 2}}, "hubDataVolumeGb", 900, "set swarm.nfsVolumeGb"),
    ("k8s", {"k8s": {"engine": "k3s"}}, "hubFlavor", "m3.xl", "its hub runs in the cluster"),
    ("k8s", {"k8s": {"engine": "k3s"}}, "serverStartTimeoutSeconds", 300, "900 s to start"),
]


@pytest.mark.parametrize(("scenario", "section", "key", "value", "instead"), FOREIGN)
def test_a_key_of_another_scenario_is_refused_by_name(
    scenario: str, section: dict[str, Any], key: str, value: Any, instead: str
) -> None:
    found = problems(scenario=scenario, **section, **{key: value})
    owners = [s for s in SCENARIOS if key in keys_of(StackConfig, s)]
    (message,) = [p for p in found if p.startswith(key) and "not a key" in p]
    assert f"not a key of scenario {scenario}, only of {words(owners)} (" in message
    assert instead in message
    assert f"; keys of scenario {scenario}: {', '.join(keys_of(StackConfig, scenario))}" in message
    assert scenario in SCENARIOS and key not in keys_of(StackConfig, scenario)


def test_a_refused_key_shows_its_value_unless_secret_or_a_section() -> None:
    (flavor,) = problems(scenario="swarm", swarm={"workerCount": 2}, hubFlavor="m3.2xl")
    assert flavor.startswith("hubFlavor = 'm3.2xl': not a key of scenario swarm")
    (section,) = problems(swarm={"workerCount": 2})
    assert section.startswith("swarm: not a key") and "workerCount" not in section.split(";")[0]
    found = problems(hpcSshPrivateKey="-----BEGIN OPENSSH PRIVATE KEY----- secret-body")
    assert found and not any("secret-body" in p for p in found)


def test_an_explicit_default_of_another_scenario_is_refused_too() -> None:
    # Pulumi.yaml declares such keys unset (""), so a value there is the stack file's own.
    (message,) = problems(scenario="swarm", swarm={"workerCount": 2}, hubFlavor="m3.small")
    assert message.startswith("hubFlavor = 'm3.small': not a key of scenario swarm")


def test_unset_keys_of_other_scenarios_are_accepted_and_defaults_stay() -> None:
    # Every stack receives Pulumi.yaml's defaults: "" or {} for a key of some scenarios only.
    unset = {"hubFlavor": "", "hubDataVolumeGb": {}, "userCpu": {}, "hpc": {}, "k8s": {}, "homeQuotaGb": {}}
    cfg = make_config(scenario="swarm", swarm={"workerCount": 2}, **unset)
    assert (cfg.hub_flavor, cfg.hub_data_volume_gb, cfg.user_cpu, cfg.hpc, cfg.k8s) == (
        "m3.small",
        100,
        1.0,
        None,
        None,
    )
    single = make_config(hubFlavor="", hubDataVolumeGb={}, userMemoryGb={})
    assert (single.hub_flavor, single.hub_data_volume_gb, single.user_memory_gb) == ("m3.small", 100, 1.0)


def test_a_nested_key_of_another_scenario_names_the_section() -> None:
    """No section has such a key today; the rule stays for the next one."""

    class Section(BaseModel):
        enabled: bool = True
        retention_days: int = Field(default=1, alias="retentionDays")
        gpu_only: str | None = Field(
            default=None, alias="gpuOnly", json_schema_extra=only("single", k8s="use X")
        )

    class Top(BaseModel):
        section: Section = Field(default_factory=Section)

    kept, found = foreign_keys({"section": {"enabled": True, "gpuOnly": "a"}}, Top, "k8s")
    assert kept == {"section": {"enabled": True}}
    assert [str(p) for p in found] == [
        "section.gpuOnly = 'a': not a key of scenario k8s, only of single (use X); keys of section on "
        "scenario k8s: enabled, retentionDays"
    ]


def test_each_scenario_needs_its_section() -> None:
    assert problems(scenario="hpc")[0].startswith("hpc: scenario hpc needs the hpc section")
    assert problems(scenario="swarm")[0].startswith("swarm: scenario swarm needs a swarm section")
    assert problems(scenario="k8s", k8s={})[0].startswith("k8s: scenario k8s needs a k8s section")


def test_an_unknown_scenario_is_named_without_a_shape_check() -> None:
    (message,) = problems(scenario="mainframe", hubFlavor="")
    assert message.startswith("scenario = 'mainframe'")


def test_the_scenario_names_are_declared_once() -> None:
    assert typing.get_args(Scenario) == SCENARIOS
    union = set().union(*(keys_of(StackConfig, s) for s in SCENARIOS))
    assert union == {f.alias or n for n, f in StackConfig.model_fields.items()}
    with pytest.raises(ValueError, match="name scenarios of"):
        only("single", "cloud")
    with pytest.raises(ValueError, match="each once"):
        only("single", single="set it")


@pytest.mark.parametrize("stack", ["dev", "gateway-hpc", "persistent-swarm", "workshop-k8s"])
def test_every_example_stack_is_accepted_and_sets_only_its_scenarios_keys(stack: str) -> None:
    data = load(PROJECT_DIR, stack)
    cfg = parse(data.config, secret_keys=data.secret_keys, namespace=data.project)
    text = yaml.safe_load((PROJECT_DIR / f"Pulumi.{stack}.yaml").read_text())
    keys = {k.rpartition(":")[2] for k in text["config"] if k.startswith(f"{PROJECT}:")}
    assert keys <= set(keys_of(StackConfig, cfg.scenario))


def test_pulumi_yaml_names_the_scenarios_of_a_key_and_leaves_it_unset() -> None:
    declared = yaml.safe_load((PROJECT_DIR / "Pulumi.yaml").read_text())["config"]
    assert declared["hubFlavor"]["default"] == ""
    assert (
        declared["hubFlavor"]["description"]
        == "Flavor of the hub VM; default m3.small. Scenarios: single, hpc."
    )
    assert declared["swarm"]["description"].endswith("Scenarios: swarm.")
    assert "Scenarios" not in declared["concurrentUsers"]["description"]
