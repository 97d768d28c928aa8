"""Config validation: bad input fails before any resource exists, naming key, value and what
is allowed."""

from __future__ import annotations

from typing import Any

import pytest

from catalog import FLAVORS
from stackconfig import ConfigError, parse
from tests.conftest import BASE_CONFIG, SECRET_KEYS, as_pulumi_config, make_config


def problems(**overrides: Any) -> list[str]:
    values = {**BASE_CONFIG, **overrides}
    values = {k: v for k, v in values.items() if v is not None}
    with pytest.raises(ConfigError) as exc:
        parse(as_pulumi_config(values), secret_keys=SECRET_KEYS)
    return [str(p) for p in exc.value.problems]


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
