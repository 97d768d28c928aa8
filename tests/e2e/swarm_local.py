"""A real single-node Docker Swarm running the swarm scenario's hub, for tests and benchmarks.

What runs is what production runs: the hub image built from hub/swarm/Dockerfile, the
jupyterhub_config.py the production renderer writes for a swarm stack, and the hub service
spec the stack hands to pulumi-docker. The only changes are paths (a scratch folder stands in
for the NFS export), ports, and what this kernel lacks (DESIGN.md §4): no IPVS, so services
use DNS round robin and a host-mode published port; no disk quotas, so the home script runs
with quotas off. Everything it creates is removed again; the cached base image stays.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import stackconfig
from renderers.hub_config import HubConfigSpec, SwarmSpawnerSpec, render_jupyterhub_config
from renderers.swarm import (
    HUB_IMAGE_CONTEXT,
    HUB_IMAGE_REPOSITORY,
    NOTEBOOK_LABEL,
    HubServiceSpec,
    hub_image_tag,
    hub_service_spec,
    render_user_home_script,
)
from tests.hubclient import HubClient, free_port

ROOT = Path(__file__).resolve().parent.parent.parent
SERVICES = ROOT / "tests" / "services"
BASE_IMAGE = "jshub-base:bookworm"
SCRATCH_PREFIX = "jshub-swarm-e2e-"
USER_PREFIX = "e2e"  # no hyphen: service names escape it, homes do not
ADMIN = "e2e-admin"
EXTRA_CA_DIR = Path("/usr/local/share/ca-certificates")

# A production-shaped swarm stack; its only local value is the notebook image, which must be
# the locally built one (there is no registry to pull from here).
STACK: dict[str, Any] = {
    "scenario": "swarm",
    "allocation": "cis230000",
    "letsEncryptEmail": "ops@example.org",
    "adminCidrs": ["203.0.113.7/32"],
    "keyPair": "e2e",
    "auth": {"type": "github", "clientId": "e2e-client-id", "admins": [ADMIN]},
    "oauthClientSecret": "e2e-not-a-real-secret",
    "userCpu": 1,
    "userMemoryGb": 1,
    "swarm": {
        "workerCount": 1,
        "homeQuotaGb": 5,
        "userCpuReservation": 0.25,
        "userMemoryReservationGb": 0.25,
    },
}


def run(*args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(args), capture_output=True, text=True, input=input, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def docker(*args: str, input: str | None = None, check: bool = True) -> str:
    return run("docker", *args, input=input, check=check).stdout.strip()


def start_dockerd() -> None:
    run("bash", str(SERVICES / "dockerd.sh"))


def build_images() -> tuple[str, dict[str, float]]:
    """The cached debootstrap base, then the hub image on it. Returns the hub image tag and the
    seconds each step took."""
    timings: dict[str, float] = {}
    start = time.monotonic()
    run("bash", str(SERVICES / "base-image.sh"), BASE_IMAGE)
    timings["base_image_s"] = time.monotonic() - start

    tag = hub_image_tag()
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="jshub-hub-context-") as context:
        shutil.copytree(HUB_IMAGE_CONTEXT, context, dirs_exist_ok=True)
        # This machine reaches PyPI and npm through a TLS-inspecting proxy: trust what apt trusts.
        for cert in EXTRA_CA_DIR.glob("*.crt") if EXTRA_CA_DIR.is_dir() else ():
            shutil.copy(cert, Path(context) / "extra-ca-certificates" / cert.name)
        run(
            "docker",
            "build",
            "--quiet",
            "--force-rm",
            "--network",
            "host",
            "--build-arg",
            f"BASE_IMAGE={BASE_IMAGE}",
            "--tag",
            tag,
            context,
        )
    timings["hub_image_s"] = time.monotonic() - start
    # Older builds of the hub image are not needed any more (the base image is kept).
    for old in docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}", HUB_IMAGE_REPOSITORY).split():
        if old != tag:
            docker("image", "rm", old, check=False)
    return tag, timings


@dataclasses.dataclass
class LocalSwarmHub(HubClient):
    image: str
    root: Path
    port: int
    admin_token: str
    spec: HubConfigSpec
    service: HubServiceSpec
    created_swarm: bool = False
    created_gwbridge: bool = False
    labelled_node: str | None = None
    objects: dict[str, list[str]] = dataclasses.field(
        default_factory=lambda: {"service": [], "config": [], "secret": [], "network": []}
    )

    @property
    def public_url(self) -> str:  # type: ignore[override]
        return f"http://127.0.0.1:{self.port}"

    @property
    def home_root(self) -> Path:
        assert isinstance(self.spec.spawner, SwarmSpawnerSpec)
        return Path(self.spec.spawner.node_home_root)

    # --- setup ------------------------------------------------------------------------------

    @classmethod
    def create(cls, image: str, **stack_overrides: Any) -> LocalSwarmHub:
        root = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX))
        root.chmod(0o755)
        export = root / "export"
        (export / "hub").mkdir(parents=True, mode=0o700)
        (export / "home").mkdir(mode=0o755)
        sbin = root / "sbin"
        sbin.mkdir()
        home_command = sbin / "jshub-user-home"
        # No disk quotas in this kernel: the script runs with them off, otherwise unchanged.
        home_command.write_text(render_user_home_script(str(export), enforce_quota=False))
        home_command.chmod(0o755)

        stack = {**STACK, **stack_overrides}
        cfg = stackconfig.parse(
            {**stack, "swarm": {**stack["swarm"], "allowedImages": [image]}},
            secret_keys=["oauthClientSecret"],
        )
        production = HubConfigSpec.from_config(cfg)
        assert isinstance(production.spawner, SwarmSpawnerSpec) and production.spawner.hub_image == image
        spec = dataclasses.replace(
            production,
            paths=dataclasses.replace(production.paths, data_root=str(export)),
            spawner=dataclasses.replace(
                production.spawner,
                export_root=str(export),
                node_home_root=str(export / "home"),
                home_command=str(home_command),
                enforce_quota=False,
                endpoint_mode="dnsrr",
            ),
        )
        prod_service = hub_service_spec(image)
        service = dataclasses.replace(
            prod_service,
            binds=tuple(
                (str(export / "hub"), str(export / "hub")) if dst.endswith("/hub") else (src, dst)
                for src, dst in prod_service.binds
            ),
            published_port=free_port(),
            publish_mode="host",
            endpoint_mode="dnsrr",
        )
        hub = cls(
            image=image,
            root=root,
            port=service.published_port,
            admin_token=secrets.token_hex(32),
            spec=spec,
            service=service,
        )
        return hub

    def start(self, timeout: float = 120) -> None:
        self.remove_leftovers()
        state = docker("info", "--format", "{{.Swarm.LocalNodeState}}")
        if state != "active":
            had_gwbridge = bool(docker("network", "ls", "--quiet", "--filter", "name=^docker_gwbridge$"))
            docker("swarm", "init", "--advertise-addr", "127.0.0.1")
            self.created_swarm = True
            self.created_gwbridge = not had_gwbridge
        node = docker("node", "inspect", "self", "--format", "{{.ID}}")
        key = NOTEBOOK_LABEL.split("=")[0]
        labels = json.loads(docker("node", "inspect", "self", "--format", "{{json .Spec.Labels}}")) or {}
        if key not in labels:
            docker("node", "update", "--label-add", NOTEBOOK_LABEL, node)
            self.labelled_node = node

        docker("network", "create", "--driver", "overlay", "--attachable", self.service.network)
        self.objects["network"].append(self.service.network)
        config_file = self.root / "jupyterhub_config.py"
        config_file.write_text(render_jupyterhub_config(self.spec))
        config_name = f"jshub-hub-config-{secrets.token_hex(4)}"
        docker("config", "create", config_name, str(config_file))
        self.objects["config"].append(config_name)
        values = {"oauth_client_secret": "e2e-dummy-client-secret", "jshub_admin_token": self.admin_token}
        secret_flags = []
        for name in self.service.secrets:
            secret_name = f"{name}-{secrets.token_hex(4)}"
            docker("secret", "create", secret_name, "-", input=values[name])
            self.objects["secret"].append(secret_name)
            secret_flags += ["--secret", f"source={secret_name},target={name},mode=0400"]

        s = self.service
        args = [
            "service",
            "create",
            "--detach",
            "--no-resolve-image",
            "--name",
            s.name,
            "--network",
            s.network,
            "--endpoint-mode",
            s.endpoint_mode,
            "--restart-condition",
            s.restart_condition,
            "--restart-delay",
            "1s",
            "--publish",
            f"mode={s.publish_mode},target={s.target_port},published={s.published_port}",
            "--config",
            f"source={config_name},target={s.config_target},mode=0444",
            *secret_flags,
        ]
        for constraint in s.constraints:
            args += ["--constraint", constraint]
        for src, dst in s.binds:
            args += ["--mount", f"type=bind,source={src},target={dst}"]
        docker(*args, s.image)
        self.objects["service"].append(s.name)
        self.wait_answering(timeout)

    def wait_answering(self, timeout: float = 120) -> None:
        def answers() -> bool:
            response = self.http.get(f"{self.public_url}/hub/api/", timeout=5)
            return response.status_code == 200 and "version" in response.json()

        self.wait_for(answers, "the hub to answer through the proxy", timeout)

    # --- observation -----------------------------------------------------------------------

    def hub_container(self) -> str | None:
        ids = docker("ps", "--quiet", "--filter", f"label=com.docker.swarm.service.name={self.service.name}")
        return ids.split()[0] if ids else None

    def service_inspect(self, name: str) -> dict[str, Any] | None:
        out = docker("service", "inspect", name, check=False)
        data = json.loads(out) if out.startswith("[") else []
        return data[0] if data else None

    def diagnose(self) -> str:
        parts = []
        for name in [self.service.name, *self.user_services()]:
            parts.append(docker("service", "ps", "--no-trunc", name, check=False))
        container = self.hub_container()
        if container:
            log = run("docker", "logs", "--tail", "200", container, check=False).stderr
        else:
            result = run("docker", "service", "logs", "--tail", "200", self.service.name, check=False)
            log = result.stdout + result.stderr
        # The tests poll the API; those lines say nothing.
        lines = [line for line in log.splitlines() if " 200 GET /hub/api/users/" not in line]
        parts.append("\n".join(lines[-60:]))
        return "\n".join(parts)

    def start_server(
        self,
        user: str,
        options: dict[str, Any] | None = None,
        timeout: float = 180,
        poll_s: float = 0.25,
    ) -> dict[str, Any]:
        server = super().start_server(user, options, timeout, poll_s)
        # With DNS round robin (this kernel has no IPVS for the VIP mode production uses), a
        # server stopped and started again has answered the hub while the proxy still got a
        # 503 for a moment (seen once here: the removed task's address, most likely). Wait
        # until the server answers through the proxy, as a browser retries.
        self.wait_for(
            lambda: self.user_api(user, "GET", "/status").status_code == 200,
            f"{user}'s server to answer through the proxy",
            60,
            poll_s,
        )
        return server

    # --- teardown ---------------------------------------------------------------------------

    def remove_leftovers(self) -> None:
        """Services of an earlier run that crashed, by this fixture's names only."""
        names = docker("service", "ls", "--format", "{{.Name}}", check=False).split()
        stale = [n for n in names if n == self.service.name or n.startswith(f"jupyter-{USER_PREFIX}")]
        if stale:
            docker("service", "rm", *stale, check=False)
            self.wait_gone(stale)
        if docker("network", "ls", "--quiet", "--filter", f"name=^{self.service.network}$", check=False):
            docker("network", "rm", self.service.network, check=False)

    def wait_gone(self, services: list[str], timeout: float = 60) -> None:
        # A removed service's containers go away a moment later; the network needs them gone.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            left = [
                c
                for name in services
                for c in docker(
                    "ps", "-aq", "--filter", f"label=com.docker.swarm.service.name={name}"
                ).split()
            ]
            if not left:
                return
            time.sleep(0.5)

    def user_services(self) -> list[str]:
        names = docker("service", "ls", "--format", "{{.Name}}", check=False).split()
        return [n for n in names if n.startswith(f"jupyter-{USER_PREFIX}")]

    def close(self) -> None:
        self.http.close()
        services = self.objects["service"] + self.user_services()
        if services:
            docker("service", "rm", *services, check=False)
            self.wait_gone(services)
        # The one-shot containers that made homes remove themselves; be sure anyway.
        for container in docker("ps", "-aq", "--filter", "label=jshub.role=user-home", check=False).split():
            docker("rm", "--force", container, check=False)
        for kind in ("config", "secret"):
            if self.objects[kind]:
                docker(kind, "rm", *self.objects[kind], check=False)
        for network in self.objects["network"]:
            for _ in range(20):
                if run("docker", "network", "rm", network, check=False).returncode == 0:
                    break
                time.sleep(0.5)
        if self.labelled_node:
            docker(
                "node", "update", "--label-rm", NOTEBOOK_LABEL.split("=")[0], self.labelled_node, check=False
            )
        if self.created_swarm:
            docker("swarm", "leave", "--force", check=False)
        if self.created_gwbridge:
            docker("network", "rm", "docker_gwbridge", check=False)
        # Homes were written by the notebook user (UID 1000) inside containers; root removes them.
        shutil.rmtree(self.root, ignore_errors=True)


def random_user() -> str:
    return USER_PREFIX + "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(6))


def environment_ready() -> str | None:
    """Why the local swarm cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root: dockerd and debootstrap run as root"
    for tool in ("docker", "dockerd", "debootstrap"):
        if shutil.which(tool) is None:
            return f"{tool!r} is not installed (make system-deps installs docker.io and debootstrap)"
    return None
