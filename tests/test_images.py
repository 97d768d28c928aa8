"""Every allowed image provides every package the rendered cloud-init installs, at versions the
software on top accepts, or the config refuses the image naming the key, the value and what
is allowed. Judged on the user data the real program renders for each example stack."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from catalog import FEATURED_IMAGES
from catalog.images import IMAGE_PACKAGES, at_least, version_tuple
from planner import stackfile
from planner.harness import main_program, run_program
from renderers.cloud_init import CONFIGURABLE_HTTP_PROXY
from stackconfig import ConfigError, parse
from stackconfig.images import MIN_VERSIONS, SCENARIO_PACKAGES, images_for
from tests.conftest import require, require_tool

PROJECT_DIR = Path(__file__).resolve().parent.parent
STACKS = {"dev": "single", "gateway-hpc": "hpc", "persistent-swarm": "swarm", "workshop-k8s": "k8s"}
INSTANCE = "openstack:compute/instance:Instance"


def rendered_packages(stack: str, image: str) -> set[str]:
    """The `packages:` of every VM the real program renders for the stack on this image."""
    sf = stackfile.load(PROJECT_DIR, stack, overrides={"image": image})
    rec = run_program(main_program(PROJECT_DIR), sf.project, stack, sf.config, sf.secret_keys)
    packages: set[str] = set()
    servers = [r for r in rec.registrations if r.type == INSTANCE]
    assert servers, f"{stack}: no VM registered"
    for server in servers:
        assert server.inputs["imageName"] == image
        packages |= set(yaml.safe_load(server.inputs["userData"]).get("packages") or [])
    return packages


def test_every_featured_image_has_a_package_table() -> None:
    assert set(IMAGE_PACKAGES) == set(FEATURED_IMAGES)
    for image, table in IMAGE_PACKAGES.items():
        assert table.image == image and table.source.startswith("https://packages.ubuntu.com/")


@pytest.mark.parametrize("image", FEATURED_IMAGES)
@pytest.mark.parametrize("stack", sorted(STACKS))
def test_each_image_provides_what_each_scenario_installs_or_is_refused(stack: str, image: str) -> None:
    scenario = STACKS[stack]
    sf = stackfile.load(PROJECT_DIR, stack, overrides={"image": image})
    try:
        parse(sf.config, secret_keys=sf.secret_keys)
    except ConfigError as exc:
        (problem,) = [p for p in exc.problems if p.key == "image"]
        text = str(problem)
        assert text.startswith(f"image = {image!r}: cannot boot scenario {scenario}: it lacks ")
        assert f"allowed for {scenario}: {', '.join(images_for(scenario))}" in text
        # Refused only for a reason the table gives.
        table = IMAGE_PACKAGES[image].packages
        lacking = [
            p
            for p in SCENARIO_PACKAGES[scenario]
            if p not in table or (p in MIN_VERSIONS and not at_least(table[p], MIN_VERSIONS[p]))
        ]
        assert lacking and all(p in text for p in lacking)
        return
    table = IMAGE_PACKAGES[image].packages
    installed = rendered_packages(stack, image)
    assert installed, stack
    for package in sorted(installed):
        assert package in table, f"{image} ({IMAGE_PACKAGES[image].release}) has no {package}"
        if package in MIN_VERSIONS:
            assert at_least(table[package], MIN_VERSIONS[package]), (package, table[package])


@pytest.mark.parametrize("stack", sorted(STACKS))
def test_the_rules_package_lists_are_what_the_renderers_install(stack: str) -> None:
    """The config rule judges images by SCENARIO_PACKAGES: it must not drift from the renderers."""
    assert rendered_packages(stack, "Featured-Ubuntu24") == SCENARIO_PACKAGES[STACKS[stack]]


def test_ubuntu22_is_refused_for_the_hubs_that_need_caddy_and_a_recent_node() -> None:
    assert images_for("single") == images_for("hpc") == images_for("swarm") == ["Featured-Ubuntu24"]
    assert images_for("k8s") == ["Featured-Ubuntu24", "Featured-Ubuntu22"]


def test_the_planner_fails_naming_the_image_for_a_ubuntu22_hub() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "planner.diff",
            "--stack",
            "dev",
            "--set",
            "image=Featured-Ubuntu22",
        ],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "image = 'Featured-Ubuntu22': cannot boot scenario single" in result.stdout + result.stderr


def test_versions_compare_by_their_numeric_parts() -> None:
    assert version_tuple("18.19.1+dfsg-6ubuntu5") == (18, 19, 1)
    assert at_least("18.19.1", "18") and not at_least("12.22.9", "18") and at_least("20.0", "18.19")


# --- the Node.js that configurable-http-proxy needs ------------------------------------------------

# The pin MIN_VERSIONS was checked for: npm's metadata for it and for every package it installs
# (engines.node) asked for at most Node 18; 5.2.0 and later ask for >= 20.
CHECKED_PIN = "configurable-http-proxy@5.1.0"


def test_the_node_minimum_was_checked_for_the_pinned_proxy() -> None:
    assert CONFIGURABLE_HTTP_PROXY == CHECKED_PIN, (
        "configurable-http-proxy's pin changed: check its engines.node (and its dependencies') "
        "against MIN_VERSIONS['nodejs'] and each image's nodejs, then update CHECKED_PIN"
    )


def test_npm_says_the_pinned_proxy_runs_on_the_minimum_node() -> None:
    npm = require_tool("npm", "reads configurable-http-proxy's declared Node.js version")
    result = subprocess.run(
        [npm, "view", CONFIGURABLE_HTTP_PROXY, "engines", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    require(result.returncode == 0, f"the npm registry did not answer: {result.stderr.strip()[:200]}")
    engines = json.loads(result.stdout)
    declared = re.fullmatch(r">=\s*([0-9.]+)", engines["node"].strip())
    assert declared, engines
    assert at_least(MIN_VERSIONS["nodejs"], declared.group(1))
