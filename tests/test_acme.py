"""A certificate authority other than Let's Encrypt production: `acmeDirectory` (Let's Encrypt
staging for a trial, or a private ACME server) and `acmeRootCertificate` (that server's root).
Checked by Caddy itself (`caddy adapt`, `caddy validate`), the Z2JH chart's schema, and the
stack under mocks; the boot harness runs the real issuance against a local ACME server."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from planner.plan import plan_stack
from renderers.hub_config import HubConfigSpec, acme_root_path, hub_vm_files
from renderers.swarm_manager import render_caddyfile as render_manager_caddyfile
from renderers.z2jh import Z2JHSpec, z2jh_values
from tests.builders import problems
from tests.conftest import make_config, require_tool
from tests.upstream_schemas import z2jh_errors

STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"


@pytest.fixture(scope="module")
def root_pem(tmp_path_factory: pytest.TempPathFactory) -> str:
    openssl = require_tool("openssl", "makes a CA certificate for the tests")
    folder = tmp_path_factory.mktemp("ca")
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"),
            *("-keyout", str(folder / "key.pem"), "-out", str(folder / "root.pem"), "-days", "2"),
            *("-subj", "/CN=jshub test ACME root"),
        ],
        check=True,
        capture_output=True,
    )
    return (folder / "root.pem").read_text()


def adapt(caddy: str, path: Path) -> dict[str, Any]:
    result = subprocess.run(
        [caddy, "adapt", "--adapter", "caddyfile", "--config", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def issuers(config: dict[str, Any]) -> list[dict[str, Any]]:
    return config["apps"]["tls"]["automation"]["policies"][0]["issuers"]  # type: ignore[no-any-return]


def test_a_bad_directory_or_root_is_refused_by_key_and_value(root_pem: str) -> None:
    [bad_url] = problems(acmeDirectory="http://ca.example.org/directory")
    assert bad_url.startswith("acmeDirectory") and "http://ca.example.org/directory" in bad_url
    assert "https://" in bad_url
    [bad_pem] = problems(acmeDirectory=STAGING, acmeRootCertificate="not a certificate")
    assert bad_pem.startswith("acmeRootCertificate") and "PEM certificate" in bad_pem
    [two] = problems(acmeDirectory=STAGING, acmeRootCertificate=root_pem + root_pem)
    assert "exactly one" in two
    [no_directory] = problems(acmeRootCertificate=root_pem)
    assert no_directory.startswith("acmeRootCertificate") and "acmeDirectory" in no_directory
    [wrong_scenario] = problems(
        scenario="swarm", swarm={"workerCount": 1}, acmeDirectory=STAGING, acmeRootCertificate=root_pem
    )
    assert wrong_scenario.startswith(
        "acmeRootCertificate: not a key of scenario swarm, only of single and hpc"
    )
    assert "BEGIN CERTIFICATE" not in wrong_scenario


def test_the_default_is_lets_encrypt_production(tmp_path: Path) -> None:
    caddy = require_tool("caddy", "checks the reverse proxy's configuration")
    cfg = make_config()
    files = {f.path: f for f in hub_vm_files(HubConfigSpec.from_config(cfg), cfg.hub_fqdn, "ops@example.org")}
    path = tmp_path / "Caddyfile"
    path.write_text(files["/etc/caddy/Caddyfile"].content)
    # Caddy's defaults: Let's Encrypt, then ZeroSSL; no CA named, no extra root.
    assert {i["module"] for i in issuers(adapt(caddy, path))} == {"acme", "zerossl"}
    assert all("ca" not in i and "trusted_roots_pem_files" not in i for i in issuers(adapt(caddy, path)))
    assert not any(f.endswith(".pem") for f in files)


def test_the_hub_caddy_asks_the_named_server_and_trusts_its_root(tmp_path: Path, root_pem: str) -> None:
    caddy = require_tool("caddy", "checks the reverse proxy's configuration")
    cfg = make_config(
        acmeDirectory="https://ca.example.org:8443/acme/local/directory", acmeRootCertificate=root_pem
    )
    spec = HubConfigSpec.from_config(cfg)
    files = hub_vm_files(
        spec, cfg.hub_fqdn, cfg.lets_encrypt_email, cfg.acme_directory, cfg.acme_root_certificate
    )
    paths = [f.path for f in files]
    root = acme_root_path(spec.paths)
    # The root is written before the Caddyfile that names it, and reloads Caddy.
    assert paths.index(root) < paths.index("/etc/caddy/Caddyfile")
    root_file = next(f for f in files if f.path == root)
    assert root_file.content == root_pem and root_file.service == "caddy.service"
    # Checked where it will live, with the path changed to the test's copy.
    (tmp_path / "root.pem").write_text(root_pem)
    caddyfile = next(f for f in files if f.path == "/etc/caddy/Caddyfile").content
    path = tmp_path / "Caddyfile"
    path.write_text(caddyfile.replace(root, str(tmp_path / "root.pem")))
    config = adapt(caddy, path)
    [issuer] = issuers(config)
    assert issuer["module"] == "acme" and issuer["ca"] == cfg.acme_directory
    assert issuer["trusted_roots_pem_files"] == [str(tmp_path / "root.pem")]
    assert issuer["email"] == cfg.lets_encrypt_email
    validated = subprocess.run(
        [caddy, "validate", "--adapter", "caddyfile", "--config", str(path)], capture_output=True, text=True
    )
    assert validated.returncode == 0, validated.stderr
    formatted = subprocess.run([caddy, "fmt", str(path)], capture_output=True, text=True, check=True)
    assert formatted.stdout == path.read_text()


def test_the_swarm_manager_and_the_k8s_proxy_ask_the_named_server(tmp_path: Path) -> None:
    caddy = require_tool("caddy", "checks the reverse proxy's configuration")
    path = tmp_path / "Caddyfile"
    path.write_text(render_manager_caddyfile("hub.example.org", "ops@example.org", acme_directory=STAGING))
    [issuer] = issuers(adapt(caddy, path))
    assert issuer["ca"] == STAGING

    cfg = make_config(scenario="k8s", concurrentUsers=20, k8s={"cephVolumeGb": 500}, acmeDirectory=STAGING)
    values = z2jh_values(Z2JHSpec.from_config(cfg))
    assert values["proxy"]["https"]["letsencrypt"]["acmeServer"] == STAGING
    assert z2jh_errors(values) == []


def test_changing_the_authority_rewrites_caddy_and_replaces_nothing(root_pem: str) -> None:
    from planner.diff import dangerous, diff_plans, reruns

    before = plan_stack("dev")
    after = plan_stack("dev", overrides={"acmeDirectory": STAGING})
    diff = diff_plans(before, after)
    assert [c.name for c in diff.changes] == ["hub-config"] and reruns(diff) == ["hub-config"]
    assert not dangerous(diff)
    assert (
        f"acme_ca {STAGING}"
        in next(r for r in after["resources"] if r["name"] == "hub-config")["inputs"]["create"]
    )

    swarm_before = plan_stack("persistent-swarm")
    swarm_after = plan_stack("persistent-swarm", overrides={"acmeDirectory": STAGING})
    swarm_diff = diff_plans(swarm_before, swarm_after)
    # The manager's first-boot user data changes too, which its server ignores (first boot only).
    assert reruns(swarm_diff) == ["swarm-caddy"] and not dangerous(swarm_diff)
