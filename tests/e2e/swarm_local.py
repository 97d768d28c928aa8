"""A real single-node Docker Swarm running the swarm scenario's hub, for tests and benchmarks.

What runs is what production runs: the hub image built from hub/swarm/Dockerfile, the
jupyterhub_config.py the production renderer writes for a swarm stack, the node firewall and
notebook isolation agent the nodes' cloud-init installs, and the hub's network and service
exactly as components/swarm_hub.py declares them to pulumi-docker: the SwarmHub component is
run under the planner's Pulumi mocks, and its recorded Network and Service inputs are
translated into `docker network create` / `docker service create` (`production_service_args`
refuses any field it does not know, so a new production field cannot be silently dropped).

Local stand-ins, each for something this machine lacks (DESIGN.md §4), listed in
`LocalOverrides` and the spawner spec: host paths (a scratch folder stands in for the /export
volume and the NFS mount), the published port, DNS round robin endpoints and a host-mode
published port (no IPVS here), and the home script's quota step: no disk quotas and no
privileged containers here, so the one-shot container is unprivileged and a stand-in for
xfs_quota, bind-mounted over the real one, records each call's arguments one per line.
Everything it creates is removed again; the cached base image stays.

A machine has one Docker daemon, one swarm, one node firewall: a test run takes its turn with
the local swarm under a lock that another run (of another clone) on the same machine waits for.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType
from typing import Any

import stackconfig
from components.swarm_hub import config_part
from planner.harness import Recording
from planner.mocks import placeholder_id
from renderers.hub_config import HubConfigSpec, SwarmSpawnerSpec, hub_config_files
from renderers.swarm import (
    HUB_CONFIG_DIR,
    HUB_IMAGE_CONTEXT,
    HUB_IMAGE_REPOSITORY,
    NOTEBOOK_LABEL,
    hub_image_tag,
    render_node_firewall_script,
    render_notebook_isolation_script,
    render_user_home_script,
)
from tests.conftest import run_account, run_mocked
from tests.hubclient import HubClient, free_port

ROOT = Path(__file__).resolve().parent.parent.parent
SERVICES = ROOT / "tests" / "services"
BASE_IMAGE = "jshub-base:bookworm"
SCRATCH_PREFIX = "jshub-swarm-e2e-"
USER_PREFIX = "e2e"  # no hyphen: service names escape it, homes do not
ADMIN = run_account("e2e-admin")
EXTRA_CA_DIR = Path("/usr/local/share/ca-certificates")
# Held from a hub's start to its close: the swarm, its node label, the firewall and the hub's
# network and service names are the machine's, not the run's.
SWARM_LOCK = Path(tempfile.gettempdir()) / "jshub-local-swarm.lock"

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


# --- the production spec, recorded under mocks and translated for the docker CLI -------------

NETWORK = "docker:index/network:Network"
SERVICE = "docker:index/service:Service"
SERVICE_CONFIG = "docker:index/serviceConfig:ServiceConfig"
SECRET = "docker:index/secret:Secret"


@dataclasses.dataclass(frozen=True)
class ProductionHub:
    """The SwarmHub component's docker resources as `pulumi up` would create them."""

    network: dict[str, Any]
    network_id: str
    service: dict[str, Any]
    # the target path in the hub's container of each docker config -> its recorded ID
    config_ids: dict[str, str]
    # recorded secret name -> the value this run gave it
    secret_values: dict[str, str]
    secret_ids: dict[str, str]


def record_production_hub(cfg: stackconfig.StackConfig, admin_token: str) -> ProductionHub:
    """Run components/swarm_hub.py's SwarmHub under the planner's mocks and keep what it
    registers."""
    from components.swarm_hub import SwarmHub, SwarmHubArgs

    def program() -> None:
        SwarmHub("hub", SwarmHubArgs(config=cfg, manager_public_ip="203.0.113.10", admin_token=admin_token))

    recording: Recording = run_mocked(program)

    def one(kind: str) -> Any:
        found = [r for r in recording.registrations if r.type == kind]
        assert len(found) == 1, f"SwarmHub registered {len(found)} {kind}"
        return found[0]

    # The mocks hand back placeholder IDs; the Service refers to its network, config and
    # secrets by those.
    network, service = one(NETWORK), one(SERVICE)
    configs = {
        placeholder_id(SERVICE_CONFIG, r.name) for r in recording.registrations if r.type == SERVICE_CONFIG
    }
    secrets_by_name = {r.inputs["name"]: r for r in recording.registrations if r.type == SECRET}
    known = {
        "oauth_client_secret": cfg.oauth_client_secret.get_secret_value(),
        "jshub_admin_token": admin_token,
    }
    values = {}
    for name in secrets_by_name:
        base = name.rsplit("-", 1)[0]
        values[name] = known[base]
    return ProductionHub(
        network=network.inputs,
        network_id=placeholder_id(NETWORK, network.name),
        service=service.inputs,
        config_ids={
            c["fileName"]: c["configId"]
            for c in service.inputs["taskSpec"]["containerSpec"]["configs"]
            if c["configId"] in configs
        },
        secret_values=values,
        secret_ids={placeholder_id(SECRET, r.name): name for name, r in secrets_by_name.items()},
    )


class UnsupportedSpecError(AssertionError):
    """A production field the local translation does not know: it would be dropped silently."""


class _Fields:
    """A dict read field by field; `done()` fails on anything left unread."""

    def __init__(self, data: Any, path: str) -> None:
        if not isinstance(data, dict):
            raise UnsupportedSpecError(f"{path}: expected an object, got {data!r}")
        self.data, self.path = dict(data), path

    def take(self, key: str, default: Any = None) -> Any:
        return self.data.pop(key, default)

    def sub(self, key: str) -> _Fields:
        return _Fields(self.data.pop(key, {}), f"{self.path}.{key}")

    def items(self, key: str) -> Iterator[_Fields]:
        for index, item in enumerate(self.data.pop(key, []) or []):
            yield _Fields(item, f"{self.path}.{key}[{index}]")

    def done(self) -> None:
        if self.data:
            raise UnsupportedSpecError(f"{self.path}: {sorted(self.data)} not translated to the docker CLI")


@dataclasses.dataclass(frozen=True)
class LocalOverrides:
    """Everything the local run changes in the production service, and why (DESIGN.md §4)."""

    # host paths of bind mounts: the scratch folder stands in for the /export volume
    bind_sources: dict[str, str]
    published_port: int
    # no IPVS in this kernel: no VIP endpoints and no routing mesh
    endpoint_mode: str = "dnsrr"
    publish_mode: str = "host"


def _label_args(spec: _Fields) -> list[str]:
    """`--label k=v` for each recorded label (the swarm's ID the hub's objects carry)."""
    args: list[str] = []
    for label in spec.items("labels"):
        args += ["--label", f"{label.take('label')}={label.take('value')}"]
        label.done()
    return args


def production_network_args(network: dict[str, Any]) -> list[str]:
    spec = _Fields(network, "Network")
    args = ["network", "create", "--driver", spec.take("driver")]
    if spec.take("attachable"):
        args.append("--attachable")
    args += _label_args(spec)
    for key, value in (spec.take("options") or {}).items():
        args += ["--opt", f"{key}={value}"]
    name = spec.take("name")
    spec.done()
    return [*args, name]


def production_service_args(
    service: dict[str, Any],
    *,
    networks: dict[str, str],
    configs: dict[str, str],
    secrets: dict[str, str],
    overrides: LocalOverrides,
) -> list[str]:
    """`docker service create` arguments for the recorded pulumi-docker Service inputs.
    `networks`, `configs` and `secrets` map the recorded IDs to the local objects' names."""
    spec = _Fields(service, "Service")
    args = ["service", "create", "--detach", "--no-resolve-image", "--name", spec.take("name")]
    args += _label_args(spec)

    task = spec.sub("taskSpec")
    container = task.sub("containerSpec")
    image = container.take("image")
    for config in container.items("configs"):
        name = configs[config.take("configId")]
        config.take("configName")
        args += [
            "--config",
            f"source={name},target={config.take('fileName')},mode=0{int(config.take('fileMode')):o}",
        ]
        config.done()
    for secret in container.items("secrets"):
        name = secrets[secret.take("secretId")]
        assert secret.take("secretName") == name
        args += [
            "--secret",
            f"source={name},target={secret.take('fileName')},mode=0{int(secret.take('fileMode')):o}",
        ]
        secret.done()
    for mount in container.items("mounts"):
        kind = mount.take("type")
        if kind != "bind":
            raise UnsupportedSpecError(f"{mount.path}: mount type {kind}")
        source = mount.take("source")
        source = overrides.bind_sources.get(source, source)
        option = f"type=bind,source={source},target={mount.take('target')}"
        if mount.take("readOnly"):
            option += ",readonly"
        args += ["--mount", option]
        mount.done()
    container.done()

    placement = task.sub("placement")
    for constraint in placement.take("constraints") or []:
        args += ["--constraint", constraint]
    placement.done()
    for network in task.items("networksAdvanceds"):
        args += ["--network", networks[network.take("id")]]
        network.done()
    restart = task.sub("restartPolicy")
    args += ["--restart-condition", restart.take("condition"), "--restart-delay", restart.take("delay")]
    restart.done()
    task.done()

    mode = spec.sub("mode")
    replicated = mode.sub("replicated")
    args += ["--replicas", str(int(replicated.take("replicas")))]
    replicated.done()
    mode.done()

    endpoint = spec.sub("endpointSpec")
    endpoint.take("mode")  # production: vip
    args += ["--endpoint-mode", overrides.endpoint_mode]
    for port in endpoint.items("ports"):
        port.take("publishedPort")
        port.take("publishMode")  # production: ingress
        args += [
            "--publish",
            f"mode={overrides.publish_mode},target={int(port.take('targetPort'))},"
            f"published={overrides.published_port},protocol={port.take('protocol')}",
        ]
        port.done()
    endpoint.done()
    spec.done()
    return [*args, image]


# --- stand-ins for what the nodes have and this machine lacks -------------------------------


class PortListener:
    """A TCP listener standing in for the NFS server on the node's address (no kernel NFS
    here): the isolation test needs something that answers when the path is open."""

    def __init__(self, address: str, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((address, port))
        self.sock.listen(16)
        self.accepted = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        # shutdown first: close() alone leaves the socket listening while the thread is in
        # accept(), and the port taken until the process ends (another test run's listener
        # on the same port then fails with "Address already in use").
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.thread.join(5)


def node_address() -> str:
    """The node's own address on its network (the source of its default route)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(("192.0.2.250", 9))  # no packet is sent for a UDP connect
        return str(sock.getsockname()[0])


@dataclasses.dataclass
class LocalSwarmHub(HubClient):
    image: str
    root: Path
    port: int
    admin_token: str
    spec: HubConfigSpec
    production: ProductionHub
    overrides: LocalOverrides
    # a user with a homeQuotaOverrides entry in the stack
    quota_user: str
    created_swarm: bool = False
    created_gwbridge: bool = False
    labelled_node: str | None = None
    firewall_started: bool = False
    isolation: subprocess.Popen[bytes] | None = None
    turn: Any = None  # the open SWARM_LOCK while this hub holds the local swarm
    objects: dict[str, list[str]] = dataclasses.field(
        default_factory=lambda: {"service": [], "config": [], "secret": [], "network": []}
    )

    @property
    def public_url(self) -> str:  # type: ignore[override]
        return f"http://127.0.0.1:{self.port}"

    @property
    def service_name(self) -> str:
        return str(self.production.service["name"])

    @property
    def network_name(self) -> str:
        return str(self.production.network["name"])

    @property
    def home_root(self) -> Path:
        assert isinstance(self.spec.spawner, SwarmSpawnerSpec)
        return Path(self.spec.spawner.node_home_root)

    @property
    def export(self) -> Path:
        return self.root / "export"

    @property
    def quota_log(self) -> Path:
        return self.export / ".xfs_quota-calls"

    @property
    def firewall(self) -> Path:
        return self.root / "sbin" / "jshub-node-firewall"

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
        # The production script, quotas on; xfs_quota is the recording stand-in below.
        home_command.write_text(render_user_home_script(str(export)))
        home_command.chmod(0o755)
        stub = sbin / "xfs_quota"
        log = export / ".xfs_quota-calls"
        stub.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" '#end' >>{log}\n")
        stub.chmod(0o755)
        (sbin / "jshub-node-firewall").write_text(render_node_firewall_script())
        (sbin / "jshub-notebook-isolation").write_text(render_notebook_isolation_script())

        quota_user = random_user()
        stack = {**STACK, **stack_overrides}
        swarm = {**stack["swarm"], "allowedImages": [image]}
        swarm["homeQuotaOverrides"] = {**swarm.get("homeQuotaOverrides", {}), quota_user: 42}
        cfg = stackconfig.parse({**stack, "swarm": swarm}, secret_keys=["oauthClientSecret"])
        admin_token = secrets.token_hex(32)
        production_hub = record_production_hub(cfg, admin_token)

        production = HubConfigSpec.from_config(cfg)
        assert isinstance(production.spawner, SwarmSpawnerSpec) and production.spawner.hub_image == image
        spec = dataclasses.replace(
            production,
            # The hub's state stays at /export/hub inside its container, as in production;
            # only the host side of that bind mount is the scratch folder (LocalOverrides).
            spawner=dataclasses.replace(
                production.spawner,
                export_root=str(export),
                node_home_root=str(export / "home"),
                home_command=str(home_command),
                # No privileged containers in this sandbox: the quota step records instead.
                enforce_quota=False,
                home_stand_ins=MappingProxyType({str(stub): "/usr/sbin/xfs_quota"}),
                endpoint_mode="dnsrr",
            ),
        )
        overrides = LocalOverrides(
            bind_sources={
                f"{production.spawner.export_root}/hub": str(export / "hub"),
            },
            published_port=free_port(),
        )
        return cls(
            image=image,
            root=root,
            port=overrides.published_port,
            admin_token=admin_token,
            spec=spec,
            production=production_hub,
            overrides=overrides,
            quota_user=quota_user,
        )

    def take_turn(self) -> None:
        """Wait until no other test run on this machine uses the local swarm, then hold it."""
        self.turn = SWARM_LOCK.open("a+")
        try:
            fcntl.flock(self.turn, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"\n[swarm] another test run holds the local swarm ({SWARM_LOCK}); waiting", flush=True)
            fcntl.flock(self.turn, fcntl.LOCK_EX)

    def start(self, timeout: float = 120) -> None:
        self.take_turn()
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

        # What every node's cloud-init starts: the firewall, then the isolation agent.
        run("bash", str(self.firewall), "start")
        self.firewall_started = True
        self.isolation = subprocess.Popen(
            ["bash", str(self.root / "sbin" / "jshub-notebook-isolation")],
            stdout=(self.root / "isolation.log").open("ab"),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            process_group=0,
        )

        docker(*production_network_args(self.production.network))
        self.objects["network"].append(self.network_name)
        # The hub's static config, modules and settings, each a docker config named by content
        # as in production; the settings have this run's scratch paths.
        configs = {}
        for file_name, text in hub_config_files(self.spec).items():
            path = self.root / "hub-config" / file_name
            path.parent.mkdir(exist_ok=True)
            path.write_text(text)
            config_name = (
                f"jshub-hub-{config_part(file_name)}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"
            )
            docker("config", "create", config_name, str(path))
            self.objects["config"].append(config_name)
            configs[self.production.config_ids[f"{HUB_CONFIG_DIR}/{file_name}"]] = config_name
        for name, value in self.production.secret_values.items():
            docker("secret", "create", name, "-", input=value)
            self.objects["secret"].append(name)

        docker(
            *production_service_args(
                self.production.service,
                networks={self.production.network_id: self.network_name},
                configs=configs,
                secrets=self.production.secret_ids,
                overrides=self.overrides,
            )
        )
        self.objects["service"].append(self.service_name)
        self.wait_answering(timeout)

    def wait_answering(self, timeout: float = 120) -> None:
        def answers() -> bool:
            response = self.http.get(f"{self.public_url}/hub/api/", timeout=5)
            return response.status_code == 200 and "version" in response.json()

        self.wait_for(answers, "the hub to answer through the proxy", timeout)

    # --- observation -----------------------------------------------------------------------

    def containers_of(self, service: str) -> list[str]:
        return docker("ps", "--quiet", "--filter", f"label=com.docker.swarm.service.name={service}").split()

    def hub_container(self) -> str | None:
        ids = self.containers_of(self.service_name)
        return ids[0] if ids else None

    def notebook_container(self, user: str) -> str:
        ids = self.containers_of(f"jupyter-{user}")
        assert len(ids) == 1, f"expected one container for {user}'s notebook, got {ids}\n{self.diagnose()}"
        return ids[0]

    def exec_python(self, container: str, code: str) -> str:
        """Run Python in a container as its own user (the notebook's UID, for a notebook)."""
        return docker("exec", container, "python3", "-c", code)

    def connects(self, container: str, host: str, port: int) -> str:
        """'open', or the error a connection from inside `container` meets."""
        code = (
            "import socket\n"
            "try:\n"
            f"    socket.create_connection(({host!r}, {port}), timeout=5).close()\n"
            "    print('open')\n"
            "except OSError as exc:\n"
            "    print(type(exc).__name__)\n"
        )
        return self.exec_python(container, code)

    def run_firewall(self, action: str) -> None:
        run("bash", str(self.firewall), action)

    def quota_calls(self) -> list[list[str]]:
        calls: list[list[str]] = [[]]
        text = self.quota_log.read_text() if self.quota_log.exists() else ""
        for line in text.splitlines():
            if line == "#end":
                calls.append([])
            else:
                calls[-1].append(line)
        return calls[:-1]

    def service_inspect(self, name: str) -> dict[str, Any] | None:
        out = docker("service", "inspect", name, check=False)
        data = json.loads(out) if out.startswith("[") else []
        return data[0] if data else None

    def diagnose(self) -> str:
        parts = []
        for name in [self.service_name, *self.user_services()]:
            parts.append(docker("service", "ps", "--no-trunc", name, check=False))
        container = self.hub_container()
        if container:
            log = run("docker", "logs", "--tail", "200", container, check=False).stderr
        else:
            result = run("docker", "service", "logs", "--tail", "200", self.service_name, check=False)
            log = result.stdout + result.stderr
        # The tests poll the API; those lines say nothing.
        lines = [line for line in log.splitlines() if " 200 GET /hub/api/users/" not in line]
        parts.append("\n".join(lines[-60:]))
        isolation_log = self.root / "isolation.log"
        if isolation_log.exists():
            parts.append("isolation agent:\n" + isolation_log.read_text()[-2000:])
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
        """Objects of an earlier run that crashed, by this fixture's names only."""
        names = docker("service", "ls", "--format", "{{.Name}}", check=False).split()
        stale = [n for n in names if n == self.service_name or n.startswith(f"jupyter-{USER_PREFIX}")]
        if stale:
            docker("service", "rm", *stale, check=False)
            self.wait_gone(stale)
        if docker("network", "ls", "--quiet", "--filter", f"name=^{self.network_name}$", check=False):
            docker("network", "rm", self.network_name, check=False)
        for name in self.production.secret_values:
            docker("secret", "rm", name, check=False)

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
        if self.isolation is not None and self.isolation.poll() is None:
            # The agent and its `docker events` pipe: the process group it was started in.
            os.killpg(self.isolation.pid, signal.SIGTERM)
            self.isolation.wait(10)
        if self.firewall_started:
            run("bash", str(self.firewall), "stop", check=False)
        if self.labelled_node:
            docker(
                "node", "update", "--label-rm", NOTEBOOK_LABEL.split("=")[0], self.labelled_node, check=False
            )
        if self.created_swarm:
            docker("swarm", "leave", "--force", check=False)
        if self.created_gwbridge:
            docker("network", "rm", "docker_gwbridge", check=False)
        # Homes were written by the users' UIDs inside containers; root removes them.
        shutil.rmtree(self.root, ignore_errors=True)
        if self.turn is not None:
            self.turn.close()  # releases the lock: the next run's turn


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
