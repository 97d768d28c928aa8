"""The escape hatches (hubExtraConfig, k8s.helmValues) and the server options (maximum age,
culling users, named servers, sharing): refused by key when they name what does not exist or
what the stack owns, and otherwise carried into what the hubs run, checked by the real
JupyterHub classes, the real idle culler and the Z2JH chart's schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from jupyterhub_idle_culler import IdleCuller
from traitlets.config import Config

from renderers import z2jh
from renderers.hub_config import HubConfigSpec
from renderers.hub_settings import hub_settings
from renderers.z2jh import Z2JHSpec, z2jh_values
from stackconfig import ConfigError, hub_traits
from stackconfig.extras import HELM_OWNED, Z2JH_DIR
from tests.builders import HPC
from tests.conftest import make_config
from tests.upstream_schemas import Z2JH, z2jh_errors

sys_path_hub = str(Path(__file__).resolve().parent.parent / "hub")

OPTIONS = {
    "maxServerAgeHours": 8,
    "cullIdleUsers": True,
    "namedServersPerUser": 2,
    "sharing": True,
    "hubExtraConfig": {"Spawner": {"environment": {"COURSE": "bio101"}, "default_url": "/tree"}},
}


def k8s(**section: Any) -> dict[str, Any]:
    return {"scenario": "k8s", "k8s": {"workerFlavor": "m3.medium", **section}}


def problems(**config: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        make_config(**config)
    return [str(p) for p in caught.value.problems]


# --- what the checks know comes from the packages and the chart ---------------------------------


def test_trait_catalog_is_what_the_hubs_pinned_packages_define() -> None:
    """A bump of hub/requirements.txt that adds, removes or moves a trait fails here:
    `python -m stackconfig.hub_traits --write` brings the catalog up to date."""
    assert hub_traits.generate() == hub_traits.catalog()


@pytest.mark.parametrize("owned", sorted(hub_traits.OWNED))
def test_each_owned_trait_exists_where_it_is_named(owned: str) -> None:
    cls, _, trait = owned.partition(".")
    assert hub_traits.catalog()[cls]["traits"].get(trait) == cls, f"{owned} is not defined by {cls}"


def test_the_programs_chart_schema_is_the_chart_the_tests_carry() -> None:
    for name in ("values.schema.yaml", "values.yaml", "LICENSE"):
        assert (Z2JH_DIR / name).read_bytes() == (Z2JH / name).read_bytes(), name


# --- hubExtraConfig -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            {"Spawnr": {"environment": {}}},
            "hubExtraConfig.Spawnr: not a class the stack's hubs configure; did you mean 'Spawner'?",
        ),
        (
            {"Spawner": {"enviroment": {}}},
            "hubExtraConfig.Spawner.enviroment: not a configurable trait of Spawner; did you mean 'environment'?",
        ),
        # A secret, set on a subclass of the class that defines it.
        (
            {"GitHubOAuthenticator": {"client_secret": "x"}},
            "hubExtraConfig.GitHubOAuthenticator.client_secret: owned by the stack: a secret: set oauthClientSecret",
        ),
        (
            {"ConfigurableHTTPProxy": {"auth_token": "x"}},
            "hubExtraConfig.ConfigurableHTTPProxy.auth_token: owned by the stack: the proxy token",
        ),
        ({"JupyterHub": {"services": []}}, "hubExtraConfig.JupyterHub.services: owned by the stack"),
        ({"JupyterHub": {"load_roles": []}}, "hubExtraConfig.JupyterHub.load_roles: owned by the stack"),
        (
            {"SystemdSpawner": {"mem_limit": "9G"}},
            "hubExtraConfig.SystemdSpawner.mem_limit: owned by the stack: set userMemoryGb",
        ),
        (
            {"Spawner": {"args": [{"$env": "JSHUB_ADMIN_TOKEN"}]}},
            "hubExtraConfig.Spawner.args: keys starting with '$'",
        ),
        (
            {"SlurmSpawner": {"req_qos": "x"}},
            "hubExtraConfig.SlurmSpawner: scenario single does not run SlurmSpawner",
        ),
        (
            {"NativeAuthenticator": {"open_signup": True}},
            "hubExtraConfig.NativeAuthenticator: auth.type github does not use",
        ),
    ],
)
def test_hub_extra_config_refused_by_key(extra: dict[str, Any], expected: str) -> None:
    found = problems(hubExtraConfig=extra)
    assert any(p.startswith(expected) for p in found), found


def test_options_reach_the_vm_hubs_settings_and_load_into_jupyterhubs_classes() -> None:
    import sys

    sys.path.insert(0, sys_path_hub)
    import jshub_settings
    from jupyterhub.app import JupyterHub
    from jupyterhub.spawner import LocalProcessSpawner

    settings = hub_settings(HubConfigSpec.from_config(make_config(**OPTIONS)))
    hub = settings["JupyterHub"]
    assert (hub["allow_named_servers"], hub["named_server_limit_per_user"]) == (True, 2)
    user_role = [r for r in hub["load_roles"] if r.get("name") == "user"]
    assert user_role == [
        {"name": "user", "scopes": ["self", "shares!user", "read:users:name", "read:groups:name"]}
    ]
    assert settings["Spawner"]["environment"] == {"COURSE": "bio101"}
    # The stack's own Spawner settings stay beside the added ones.
    assert settings["Spawner"]["default_url"] == "/tree" and settings["Spawner"]["notebook_dir"] == "~"

    # JupyterHub's own classes take them (traitlets validates each value's type).
    c = Config()
    env = {"JSHUB_ADMIN_TOKEN": "t", "OAUTH_CLIENT_SECRET": "s"}
    jshub_settings.apply_settings(
        c, {k: v for k, v in settings.items() if k in ("JupyterHub", "Spawner")}, env
    )
    app = JupyterHub(config=c)
    assert app.allow_named_servers and app.named_server_limit_per_user == 2
    spawner = LocalProcessSpawner(config=c, _deprecated_db_session=None)
    assert spawner.environment["COURSE"] == "bio101" and spawner.default_url == "/tree"


def test_a_trait_reaches_the_more_specific_class_the_stack_set_it_on() -> None:
    """JupyterHub prefers `SwarmSpawner.x` to `Spawner.x`: a stack file's Spawner value must
    reach the class the stack configured, and a map merges into the stack's map."""

    swarm = make_config(
        scenario="swarm",
        swarm={"workerCount": 2},
        hubExtraConfig={"Spawner": {"environment": {"COURSE": "bio101"}}},
    )
    settings = hub_settings(HubConfigSpec.from_config(swarm))
    assert settings["SwarmSpawner"]["environment"] == {"HOME": "/home/jovyan", "COURSE": "bio101"}
    assert settings["Spawner"]["environment"] == {"COURSE": "bio101"}

    hpc = make_config(scenario="hpc", hpc=HPC, hubExtraConfig={"Spawner": {"poll_interval": 60}})
    settings = hub_settings(HubConfigSpec.from_config(hpc))
    assert settings["JetstreamSlurmSpawner"]["poll_interval"] == 60


def test_culler_runs_with_the_options_as_the_real_culler_reads_them() -> None:
    settings = hub_settings(HubConfigSpec.from_config(make_config(**OPTIONS)))
    (culler,) = [s for s in settings["JupyterHub"]["services"] if s.get("name") == "idle-culler"]
    argv = culler["command"]
    assert argv[1:3] == ["-m", "jupyterhub_idle_culler"]
    app = IdleCuller()
    app.parse_command_line(argv[3:])
    assert (app.timeout, app.max_age) == (3600, 8 * 3600)
    assert app.cull_users and not app.cull_admin_users
    assert app.remove_named_servers
    (role,) = [r for r in settings["JupyterHub"]["load_roles"] if r.get("name") == "idle-culler"]
    assert "admin:users" in role["scopes"]


def test_without_options_the_culler_and_roles_are_as_before() -> None:
    settings = hub_settings(HubConfigSpec.from_config(make_config()))
    (culler,) = [s for s in settings["JupyterHub"]["services"] if s.get("name") == "idle-culler"]
    app = IdleCuller()
    app.parse_command_line(culler["command"][3:])
    assert (app.max_age, app.cull_users, app.remove_named_servers) == (0, False, False)
    assert "allow_named_servers" not in settings["JupyterHub"]
    assert not [r for r in settings["JupyterHub"]["load_roles"] if r.get("name") == "user"]


# --- k8s --------------------------------------------------------------------------------------


def test_k8s_release_carries_the_options_through_the_chart() -> None:
    cfg = make_config(**k8s(helmValues={"singleuser": {"startTimeout": 600}}), **OPTIONS)
    values = z2jh_values(Z2JHSpec.from_config(cfg))
    assert z2jh_errors(values) == []
    cull = {"maxAge": 8 * 3600, "users": True, "adminUsers": False, "removeNamedServers": True}
    assert {key: values["cull"][key] for key in cull} == cull
    assert (values["hub"]["allowNamedServers"], values["hub"]["namedServerLimitPerUser"]) == (True, 2)
    assert values["hub"]["loadRoles"]["user"]["scopes"][1] == "shares!user"
    # The chart sets KubeSpawner's traits, which JupyterHub prefers: a Spawner trait goes there.
    assert values["hub"]["config"]["KubeSpawner"]["environment"] == {"COURSE": "bio101"}
    assert "pre_spawn_hook" in values["hub"]["config"]["KubeSpawner"]
    # helmValues merged last; the stack's other singleuser values stay.
    assert values["singleuser"]["startTimeout"] == 600
    assert values["singleuser"]["networkPolicy"] == {"enabled": True}


def test_k8s_without_options_renders_the_values_it_rendered_before() -> None:
    values = z2jh_values(Z2JHSpec.from_config(make_config(**k8s())))
    assert set(values["cull"]) == {"enabled", "users", "timeout", "every"}
    assert "allowNamedServers" not in values["hub"] and "user" not in values["hub"]["loadRoles"]


@pytest.mark.parametrize(
    ("helm", "expected"),
    [
        (
            {"hub": {"notAKey": 1}},
            "k8s.helmValues.hub.notAKey: not a key of the Zero to JupyterHub chart's values",
        ),
        (
            {"singleuser": {"imag": {}}},
            "k8s.helmValues.singleuser.imag: not a key of the Zero to JupyterHub chart's values here; did you mean 'image'?",
        ),
        (
            {"singleuser": {"startTimeout": "soon"}},
            "k8s.helmValues.singleuser.startTimeout = 'soon': the chart's values schema refuses it",
        ),
        ({"proxy": {"secretToken": "x"}}, "k8s.helmValues.proxy.secretToken: owned by the stack"),
        (
            {"hub": {"services": {"jshub-admin": {"admin": False}}}},
            "k8s.helmValues.hub.services.jshub-admin: owned by the stack",
        ),
        (
            {"hub": {"extraEnv": {"JSHUB_ADMIN_TOKEN": "x"}}},
            "k8s.helmValues.hub.extraEnv.JSHUB_ADMIN_TOKEN: owned by the stack",
        ),
        (
            {"hub": {"config": {"JupyterHub": {}}}},
            "k8s.helmValues.hub.config: owned by the stack: set hubExtraConfig",
        ),
        (
            {"hub": {"extraConfig": {"x": "c.JupyterHub.services = []"}}},
            "k8s.helmValues.hub.extraConfig: owned by the stack",
        ),
        ({"cull": {"maxAge": 5}}, "k8s.helmValues.cull: owned by the stack: set idleTimeoutMinutes"),
    ],
)
def test_helm_values_refused_by_key(helm: dict[str, Any], expected: str) -> None:
    found = problems(**k8s(helmValues=helm))
    assert any(p.startswith(expected) for p in found), found


def test_every_owned_helm_path_is_a_key_the_chart_knows() -> None:
    """Each path the stack owns is one the chart's schema accepts (an entry of a map of free
    names, such as hub.services.jshub-admin, included): no owned path is a typo."""
    from stackconfig.extras import _schema_problems

    for path in HELM_OWNED:
        values: dict[str, Any] = {}
        for part in reversed(path.split(".")):
            values = {part: values} if values else {part: {}}
        assert not [p for p in _schema_problems(values) if "not a key" in str(p)], path


def test_helm_values_bars_under_the_planner() -> None:
    """Bars of issue 25: workshop-k8s refuses a key the chart does not have, and carries a key it
    has into the Release's values (the Release's values are an apply's result: it ran)."""
    from planner.plan import PlanError, plan_stack

    with pytest.raises(PlanError, match=r"k8s\.helmValues\.hub\.notAKey: not a key"):
        plan_stack("workshop-k8s", overrides={"k8s.helmValues": {"hub": {"notAKey": 1}}})
    plan = plan_stack("workshop-k8s", overrides={"k8s.helmValues": {"singleuser": {"startTimeout": 600}}})
    (release,) = [
        r
        for r in plan["resources"]
        if r["type"] == "kubernetes:helm.sh/v3:Release" and r["inputs"]["chart"] == z2jh.CHART_PATH
    ]
    assert release["inputs"]["values"]["singleuser"]["startTimeout"] == 600
    assert z2jh_errors(release["inputs"]["values"]) == []


def test_subclasses_are_what_the_installed_classes_say() -> None:
    """Each listed subclass that is installed here inherits from its class (the swarm's and
    k8s' spawners are installed in their images only)."""
    import importlib
    import sys

    sys.path.insert(0, sys_path_hub)
    where = {**hub_traits.CLASSES, "JetstreamSlurmSpawner": "jshub_slurm.JetstreamSlurmSpawner"}

    def load(name: str) -> type:
        module, _, attr = where[name].rpartition(".")
        cls: type = getattr(importlib.import_module(module), attr)
        return cls

    checked = 0
    for base, subclasses in hub_traits.SUBCLASSES.items():
        for sub in subclasses:
            if sub in where:
                assert issubclass(load(sub), load(base)), f"{sub} is not a {base}"
                checked += 1
    assert checked >= 10
