"""What the k8s scenario renders, checked by the upstream validators: the Z2JH chart schema,
Rook's CRDs, kubernetes-validate, cloud-init and shellcheck."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from renderers import k3s, k8s_objects, rook
from renderers.boot import boot_commands
from renderers.hub_config import HUB_DIR, JUPYTERLAB_OVERRIDES
from renderers.z2jh import SHARED_DATA_CLAIM, Z2JHSpec, z2jh_values
from tests.builders import workshop
from tests.conftest import require_tool
from tests.stubs import stub
from tests.upstream_schemas import (
    deep_merge,
    rook_cluster_defaults,
    rook_errors,
    rook_operator_defaults,
    unknown_keys,
    z2jh_defaults,
    z2jh_errors,
)

sys.path.insert(0, str(HUB_DIR))
import jshub_kube

KUBERNETES_VERSION = "1.33.0"


PROFILES = [
    {"displayName": "Python", "default": True},
    {
        "displayName": "R, more memory",
        "image": "quay.io/jupyter/r-notebook:2025-03-17",
        "memoryGuaranteeGb": 3,
        "memoryLimitGb": 6,
        "cpuLimit": 4,
    },
]


# --- Zero to JupyterHub -------------------------------------------------------------------


@pytest.mark.parametrize("engine", ["k3s", "magnum"])
@pytest.mark.parametrize("auth", ["github", "cilogon"])
def test_z2jh_values_merged_over_chart_defaults_validate(engine: str, auth: str) -> None:
    cfg = workshop(engine=engine, profiles=PROFILES)
    if auth == "cilogon":
        cfg = cfg.model_copy(update={"auth": cfg.auth.model_copy(update={"type": "cilogon"})})
    values = z2jh_values(
        Z2JHSpec.from_config(cfg, load_balancer_ip="203.0.113.9" if engine == "magnum" else None)
    )
    assert z2jh_errors(values) == []


def test_z2jh_schema_check_catches_a_misspelt_value() -> None:
    values = z2jh_values(Z2JHSpec.from_config(workshop()))
    values["singleuser"]["cloudMetadata"]["blockWithIptable"] = True
    assert any("blockWithIptable" in e for e in z2jh_errors(values))


def test_hub_database_upgrades_on_start_with_a_key_the_chart_knows() -> None:
    values = z2jh_values(Z2JHSpec.from_config(workshop()))
    assert values["hub"]["db"]["upgrade"] is True
    assert "upgrade" in z2jh_defaults()["hub"]["db"]
    # The schema types the key: a wrong type is refused, so a schema that dropped or renamed
    # it would show here rather than be ignored by Helm.
    values["hub"]["db"]["upgrade"] = "yes"
    assert any(e.startswith("hub.db.upgrade:") for e in z2jh_errors(values))


def test_z2jh_values_carry_the_workshop_policy() -> None:
    cfg = workshop(profiles=PROFILES)
    values = z2jh_values(Z2JHSpec.from_config(cfg))
    single = values["singleuser"]
    assert single["networkPolicy"] == {"enabled": True}
    assert single["cloudMetadata"] == {"blockWithIptables": True}
    assert single["startTimeout"] >= 600
    assert single["cpu"] == {"guarantee": 0.5, "limit": 2.0}
    assert single["memory"] == {"guarantee": "2048Mi", "limit": "4096Mi"}
    assert single["storage"]["capacity"] == "5Gi"
    assert single["storage"]["dynamic"]["storageClass"] == rook.BLOCK_CLASS
    mount = single["storage"]["extraVolumeMounts"][0]
    assert mount == {"name": SHARED_DATA_CLAIM, "mountPath": "/home/jovyan/shared", "readOnly": True}
    assert [p["display_name"] for p in single["profileList"]] == ["Python", "R, more memory"]
    assert single["profileList"][1]["kubespawner_override"] == {
        "image": "quay.io/jupyter/r-notebook:2025-03-17",
        "cpu_limit": 4.0,
        "mem_guarantee": "3072Mi",
        "mem_limit": "6144Mi",
    }
    assert values["cull"] == {"enabled": True, "users": False, "timeout": 1800, "every": 360}
    assert values["scheduling"]["userScheduler"]["enabled"] is True
    assert values["scheduling"]["userPlaceholder"] == {"enabled": True, "replicas": 10}
    assert values["scheduling"]["userPods"]["nodeAffinity"]["matchNodePurpose"] == "require"
    assert values["prePuller"]["hook"]["enabled"] and values["prePuller"]["continuous"]["enabled"]
    https = values["proxy"]["https"]
    assert https["hosts"] == ["hub.cis230000.projects.jetstream-cloud.org"] and https["type"] == "letsencrypt"
    assert values["hub"]["db"]["pvc"]["storageClassName"] == rook.BLOCK_CLASS
    assert values["hub"]["db"]["upgrade"] is True
    assert values["hub"]["config"]["GitHubOAuthenticator"]["oauth_callback_url"] == (
        "https://hub.cis230000.projects.jetstream-cloud.org/hub/oauth_callback"
    )
    # The client secret stays in the hub's environment: the settings name it only.
    assert values["hub"]["config"]["OAuthenticator"] == {"client_secret": {"$env": "OAUTH_CLIENT_SECRET"}}
    assert "not-a-real-secret" not in yaml.safe_dump(values)


def test_z2jh_values_carry_the_login_announcement_and_jupyterlab_defaults() -> None:
    cfg = workshop()
    cfg = cfg.model_copy(
        update={"auth": cfg.auth.model_copy(update={"login_announcement": "Ask us for the <password>."})}
    )
    values = z2jh_values(Z2JHSpec.from_config(cfg))
    # The chart applies hub.config to JupyterHub as it is: the login page's template variable.
    assert values["hub"]["config"]["JupyterHub"]["template_vars"] == {
        "announcement_login": "Ask us for the &lt;password&gt;."
    }
    # JupyterLab's settings overrides, where the docker-stacks images' JupyterLab reads them.
    overrides = values["singleuser"]["extraFiles"]["jupyterlab-overrides"]
    assert overrides["mountPath"] == "/opt/conda/share/jupyter/lab/settings/overrides.json"
    assert json.loads(overrides["stringData"]) == JUPYTERLAB_OVERRIDES
    assert z2jh_errors(values) == []


def test_admin_hook_compiles_and_makes_only_the_shared_mount_writable_for_admins() -> None:
    hub = z2jh_values(Z2JHSpec.from_config(workshop()))["hub"]
    named = hub["config"]["KubeSpawner"]["pre_spawn_hook"]
    assert named == {
        "$call": "jshub_kube.shared_data_writable_for_admins",
        "kwargs": {"claim": SHARED_DATA_CLAIM},
    }
    # The module the hook is in reaches the hub through hub.extraFiles, beside the settings' loader.
    mounted = {Path(f["mountPath"]).name: f["stringData"] for f in hub["extraFiles"].values()}
    assert mounted == {f"{m}.py": (HUB_DIR / f"{m}.py").read_text() for m in ("jshub_settings", "jshub_kube")}
    hook = jshub_kube.shared_data_writable_for_admins(SHARED_DATA_CLAIM)
    mounts = [{"name": SHARED_DATA_CLAIM, "readOnly": True}, {"name": "home", "readOnly": False}]

    class Spawner:
        def __init__(self, admin: bool) -> None:
            self.user = type("User", (), {"admin": admin})()
            self.volume_mounts = mounts

    admin, user = Spawner(True), Spawner(False)
    hook(admin)
    hook(user)
    assert admin.volume_mounts[0]["readOnly"] is False
    assert user.volume_mounts[0]["readOnly"] is True
    assert mounts[0]["readOnly"] is True, "the shared configuration must not change for later spawns"


# --- Rook ---------------------------------------------------------------------------------

K3S_NODES = tuple(
    rook.StorageNode(f"k8s-cp-{i}", f"0f2c9a4e-{i}1b2-4c3d-9e8f-0123456789ab") for i in range(3)
)
SPECS = {
    "k3s": rook.RookSpec(
        "k3s", mons=3, replicas=3, storage_nodes=K3S_NODES, node_label=(k3s.NODE_PURPOSE, "core")
    ),
    "k3s-dev": rook.RookSpec("k3s", mons=1, replicas=1, storage_nodes=K3S_NODES[:1]),
    "magnum": rook.RookSpec("magnum", mons=3, replicas=3, osd_size_gb=500, osd_storage_class="default"),
}


@pytest.mark.parametrize("name", sorted(SPECS))
def test_rook_custom_resources_validate_against_the_crds(name: str) -> None:
    values = rook.cluster_values(SPECS[name])
    # The chart deep-merges cephClusterSpec over its defaults and renders the CephCluster.
    cluster = deep_merge(rook_cluster_defaults()["cephClusterSpec"], values["cephClusterSpec"])
    assert rook_errors("CephCluster", cluster) == []
    for pool in values["cephBlockPools"]:
        assert rook_errors("CephBlockPool", pool["spec"]) == []
    for fs in values["cephFileSystems"]:
        assert rook_errors("CephFilesystem", fs["spec"]) == []


@pytest.mark.parametrize("name", sorted(SPECS))
def test_rook_chart_values_use_only_keys_the_charts_know(name: str) -> None:
    assert unknown_keys(rook.operator_values(), rook_operator_defaults()) == []
    values = rook.cluster_values(SPECS[name])
    # cephClusterSpec is checked against the CephCluster CRD above; the rest against the chart.
    rest = {k: v for k, v in values.items() if k != "cephClusterSpec"}
    assert unknown_keys(rest, rook_cluster_defaults()) == []
    # Each pool's and filesystem's `spec` is checked against its CRD above.
    for pool in values["cephBlockPools"]:
        assert (
            unknown_keys(
                {k: v for k, v in pool.items() if k != "spec"}, rook_cluster_defaults()["cephBlockPools"][0]
            )
            == []
        )
    for fs in values["cephFileSystems"]:
        assert (
            unknown_keys(
                {k: v for k, v in fs.items() if k != "spec"}, rook_cluster_defaults()["cephFileSystems"][0]
            )
            == []
        )
    assert unknown_keys({"csi": {"enableRbdDriver": True}}, rook_operator_defaults()) == [
        "csi.enableRbdDriver"
    ]


def test_rook_crd_check_catches_a_misspelt_field() -> None:
    spec = rook.ceph_cluster_spec(SPECS["k3s"])
    spec["mon"]["cout"] = 3
    assert any("cout" in e for e in rook_errors("CephCluster", spec))
    pool = rook.block_pool_spec(SPECS["k3s"])
    pool["failureDomain"] = 3
    assert rook_errors("CephBlockPool", pool)


def test_rook_ha_layout() -> None:
    values = rook.cluster_values(SPECS["k3s"])
    cluster = values["cephClusterSpec"]
    assert cluster["mon"] == {"count": 3, "allowMultiplePerNode": False}
    assert cluster["storage"]["nodes"][0] == {
        "name": "k8s-cp-0",
        "devicePathFilter": "^/dev/disk/by-id/.*0f2c9a4e-01b2-4c3d-9",
    }
    assert cluster["storage"]["useAllDevices"] is False and cluster["storage"]["useAllNodes"] is False
    (pool,) = values["cephBlockPools"]
    assert pool["spec"] == {
        "failureDomain": "host",
        "replicated": {"size": 3, "requireSafeReplicaSize": True},
    }
    assert pool["storageClass"]["isDefault"] is True and pool["storageClass"]["name"] == rook.BLOCK_CLASS
    (fs,) = values["cephFileSystems"]
    assert fs["storageClass"]["name"] == rook.FILESYSTEM_CLASS and fs["storageClass"]["isDefault"] is False
    assert fs["spec"]["dataPools"][0]["replicated"]["size"] == 3
    magnum = rook.cluster_values(SPECS["magnum"])["cephClusterSpec"]
    (device_set,) = magnum["storage"]["storageClassDeviceSets"]
    assert device_set["count"] == 3
    claim = device_set["volumeClaimTemplates"][0]["spec"]
    assert claim["volumeMode"] == "Block" and claim["resources"]["requests"]["storage"] == "500Gi"
    assert "nodes" not in magnum["storage"]


# --- Plain Kubernetes objects -------------------------------------------------------------


@pytest.mark.parametrize(
    "obj",
    [
        k8s_objects.namespace("jupyterhub"),
        k8s_objects.oauth_secret("jupyterhub", "placeholder"),
        k8s_objects.shared_data_claim("jupyterhub", 50),
        k8s_objects.storage_ready_job("jupyterhub"),
    ],
    ids=lambda o: o["kind"],
)
def test_plain_objects_validate_strictly(obj: dict[str, Any]) -> None:
    kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_kubernetes_validate_is_strict_about_unknown_fields() -> None:
    job = k8s_objects.storage_ready_job("jupyterhub")
    job["spec"]["template"]["spec"]["restartPolicyy"] = "Never"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, KUBERNETES_VERSION, strict=True)


# --- k3s nodes ------------------------------------------------------------------------------


def _node_specs() -> list[k3s.K3sNodeSpec]:
    common = {"version": "v1.33.5+k3s1", "deploy_public_key": "ssh-ed25519 AAAAC3Nza placeholder\n"}
    first = k3s.K3sNodeSpec(
        "k8s-cp-0",
        "server",
        tls_sans=("hub.cis230000.projects.jetstream-cloud.org",),
        labels={"a": "b"},
        state_volume_id="0f7c2b9e-3d41-4c55-9a8e-6b1d2c3e4f50",
        **common,
    )
    server = k3s.K3sNodeSpec(
        "k8s-cp-1",
        "server",
        server_url="https://10.0.0.5:6443",
        state_volume_id="1a2b3c4d-5e6f-4a1b-8c2d-3e4f5a6b7c8d",
        **common,
    )
    worker = k3s.K3sNodeSpec(
        "k8s-worker-0",
        "worker",
        server_url="https://10.0.0.5:6443",
        labels={k3s.NODE_PURPOSE: "user"},
        **common,
    )
    return [first, server, worker]


@pytest.mark.parametrize("spec", _node_specs(), ids=lambda s: s.node_name)
def test_each_node_cloud_init_passes_cloud_init_schema(spec: k3s.K3sNodeSpec, tmp_path: Path) -> None:
    tool = require_tool("cloud-init", "validates rendered user data")
    path = tmp_path / "user-data.yaml"
    path.write_text(k3s.render_k3s_cloud_init(spec))
    result = subprocess.run([tool, "schema", "--config-file", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_k3s_config_per_role_and_no_token_in_user_data() -> None:
    first, server, worker_spec = _node_specs()
    cfg = k3s.k3s_config(first)
    assert cfg["cluster-init"] is True and "server" not in cfg
    assert cfg["tls-san"] == ["hub.cis230000.projects.jetstream-cloud.org"]
    assert cfg["token-file"] == k3s.TOKEN_FILE and "token" not in cfg
    joined = k3s.k3s_config(server)
    assert joined["server"] == "https://10.0.0.5:6443" and "cluster-init" not in joined
    worker = k3s.k3s_config(worker_spec)
    assert worker["node-label"] == ["hub.jupyter.org/node-purpose=user"]
    assert "tls-san" not in worker and "cluster-init" not in worker
    user_data = yaml.safe_load(k3s.render_k3s_cloud_init(worker_spec))
    assert boot_commands(user_data["runcmd"]) == [[k3s.INSTALL_SCRIPT]]
    install = next(f for f in user_data["write_files"] if f["path"] == k3s.INSTALL_SCRIPT)
    # The installer joins a node as a worker when K3S_URL is set and no command is given.
    assert (
        "K3S_URL=https://10.0.0.5:6443" in install["content"] and "INSTALL_K3S_EXEC" not in install["content"]
    )
    assert 'K3S_TOKEN_FILE="$token_file"' in install["content"]
    # The version comes from the stack at install time, not from the user data.
    assert (
        "v1.33.5+k3s1" not in install["content"] and f"version_file={k3s.VERSION_FILE}" in install["content"]
    )
    server_install = k3s.render_k3s_install_script(server)
    assert "INSTALL_K3S_EXEC=server" in server_install and "K3S_URL" not in server_install
    with pytest.raises(ValueError, match="needs the URL of a server"):
        k3s.render_k3s_install_script(k3s.K3sNodeSpec("w", "worker", "v1.33.5+k3s1", "ssh-ed25519 A"))


def _scripts() -> dict[str, str]:
    first, server, worker = _node_specs()
    user_data = yaml.safe_load(k3s.render_k3s_cloud_init(server))
    files = {f["path"]: f["content"] for f in user_data["write_files"]}
    return {
        "install-server": k3s.render_k3s_install_script(first),
        "install-worker": k3s.render_k3s_install_script(worker),
        "upgrade-server": k3s.render_k3s_upgrade_script(server),
        "upgrade-worker": k3s.render_k3s_upgrade_script(worker),
        "ready-storage-node": k3s.render_node_ready_script("k8s-cp-1", "v1.33.5+k3s1", storage=True),
        "ready-worker": k3s.render_node_ready_script("k8s-worker-0", "v1.33.5+k3s1", storage=False),
        "state-volume": files[k3s.STATE_VOLUME_SCRIPT],
        "state-binds": files[k3s.STATE_BIND_SCRIPT],
        "install-token": k3s.render_install_token_script(),
        "fetch-kubeconfig": k3s.render_fetch_kubeconfig_script(3),
        "wait-for-workers": k3s.render_wait_for_nodes_script("hub.jupyter.org/node-purpose=user", 300),
    }


@pytest.mark.parametrize("name", sorted(_scripts()))
def test_node_scripts_pass_shellcheck(name: str, tmp_path: Path) -> None:
    tool = require_tool("shellcheck", "lints the rendered shell scripts")
    path = tmp_path / f"{name}.sh"
    path.write_text(_scripts()[name])
    result = subprocess.run([tool, "--severity=style", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_token_script_reads_the_token_from_stdin_only() -> None:
    script = k3s.render_install_token_script()
    assert "tee /etc/rancher/k3s/secret/token" in script and "umask 077" in script
    # The node password is written only where none is: a running node keeps the one the
    # cluster knows; the token goes last, as the installer waits for it.
    assert "if ! sudo test -s /etc/rancher/node/password" in script
    assert script.index("/etc/rancher/node/password >/dev/null") < script.index(
        "tee /etc/rancher/k3s/secret/token"
    )


@pytest.mark.parametrize(("installed", "runs_installer"), [("v1.33.5+k3s1", False), ("v1.32.9+k3s1", True)])
def test_upgrade_script_records_the_version_and_upgrades_only_an_older_k3s(
    installed: str, runs_installer: bool, tmp_path: Path
) -> None:
    """Run the script for real with stand-ins for sudo, cloud-init, k3s and curl (the fake
    installer logs the environment it is run with)."""
    bash = require_tool("bash", "runs the rendered upgrade script")
    _, server, _ = _node_specs()
    script = k3s.render_k3s_upgrade_script(server).replace("/etc/rancher", str(tmp_path / "etc"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "installer.log"
    stub(bin_dir, "sudo", 'exec "$@"\n')
    stub(bin_dir, "cloud-init", "exit 0\n")
    stub(bin_dir, "k3s", f'echo "k3s version {installed} (0123abcd)"\n')
    stub(
        bin_dir,
        "curl",
        'out=""; while (($#)); do [[ "$1" == --output ]] && out=$2; shift; done\n'
        f'printf \'echo "$INSTALL_K3S_VERSION $INSTALL_K3S_EXEC" >>{log}\\n\' >"$out"\n',
    )
    result = subprocess.run(
        [bash, "-c", script], capture_output=True, text=True, env={"PATH": f"{bin_dir}:/usr/bin:/bin"}
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "etc/k3s/jshub-version").read_text() == "v1.33.5+k3s1\n"
    if runs_installer:
        assert log.read_text() == "v1.33.5+k3s1 server\n"
    else:
        assert not log.exists() and "k3s v1.33.5+k3s1 is installed" in result.stdout


def test_first_boot_installer_takes_the_version_the_stack_delivered(tmp_path: Path) -> None:
    bash = require_tool("bash", "runs the rendered install script")
    first, _, _ = _node_specs()
    script = k3s.render_k3s_install_script(first).replace("/etc/rancher", str(tmp_path / "etc"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "installer.log"
    stub(bin_dir, "sudo", 'exec "$@"\n')
    stub(
        bin_dir,
        "curl",
        'out=""; url=""; while (($#)); do [[ "$1" == --output ]] && out=$2; url=$1; shift; done\n'
        f'echo "$url" >>{log}\n'
        f'printf \'echo "$INSTALL_K3S_VERSION $INSTALL_K3S_EXEC" >>{log}\\n\' >"$out"\n',
    )
    (tmp_path / "etc/k3s/secret").mkdir(parents=True)
    (tmp_path / "etc/k3s/secret/token").write_text("tok\n")
    # The user data was written for v1.33.5; the stack now wants v1.34.1.
    (tmp_path / "etc/k3s/jshub-version").write_text("v1.34.1+k3s1\n")
    result = subprocess.run(
        [bash, "-c", script], capture_output=True, text=True, env={"PATH": f"{bin_dir}:/usr/bin:/bin"}
    )
    assert result.returncode == 0, result.stderr
    assert log.read_text().splitlines() == [
        "https://raw.githubusercontent.com/k3s-io/k3s/v1.34.1%2Bk3s1/install.sh",
        "v1.34.1+k3s1 server",
    ]


def test_token_script_stores_both_lines_it_is_given(tmp_path: Path) -> None:
    """Run the script for real, with sudo and the paths redirected into a scratch folder."""
    bash = require_tool("bash", "runs the rendered token script")
    script = k3s.render_install_token_script().replace("/etc/rancher", str(tmp_path / "etc"))
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "sudo").write_text('#!/bin/sh\nexec "$@"\n')
    (shim / "sudo").chmod(0o755)
    env = {"PATH": f"{shim}:/usr/bin:/bin"}
    for stdin in ("tok-1\npw-1\n", "tok-2\npw-2\n"):
        result = subprocess.run([bash, "-c", script], input=stdin, capture_output=True, text=True, env=env)
        assert result.returncode == 0, result.stderr
    assert (tmp_path / "etc/k3s/secret/token").read_text() == "tok-2\n"
    # The second run (a token rotation) leaves the node's password alone.
    assert (tmp_path / "etc/node/password").read_text() == "pw-1\n"
    assert oct((tmp_path / "etc/node/password").stat().st_mode & 0o777) == "0o600"


def test_control_plane_user_data_mounts_the_state_volume_before_installing_k3s() -> None:
    first, _, worker = _node_specs()
    user_data = yaml.safe_load(k3s.render_k3s_cloud_init(first))
    assert boot_commands(user_data["runcmd"]) == [
        [k3s.STATE_VOLUME_SCRIPT],
        [k3s.STATE_BIND_SCRIPT],
        [k3s.INSTALL_SCRIPT],
    ]
    files = {f["path"]: f["content"] for f in user_data["write_files"]}
    volume = files[k3s.STATE_VOLUME_SCRIPT]
    assert "volume_id=0f7c2b9e-3d41-4c55-9a8e-6b1d2c3e4f50" in volume and "mkfs.ext4" in volume
    binds = files[k3s.STATE_BIND_SCRIPT]
    # k3s refuses to start without the bind mounts, rather than start an empty cluster.
    assert "RequiresMountsFor=/var/lib/rancher/k3s/server /var/lib/rook" in binds
    assert k3s.STATE_VOLUME_SCRIPT not in str(yaml.safe_load(k3s.render_k3s_cloud_init(worker)))


def _run_readiness(
    tmp_path: Path, *, kubelet: str, health: str, checks: str, pods: str
) -> subprocess.CompletedProcess:
    """The readiness script against a stand-in `k3s kubectl` that answers as a cluster would."""
    bash = require_tool("bash", "runs the rendered readiness script")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    stub(bin_dir, "sudo", 'exec "$@"\n')
    stub(bin_dir, "sleep", "exit 0\n")
    stub(
        bin_dir,
        "k3s",
        'args="$*"\n'
        'case "$args" in\n'
        '  *"get node"*Ready*) echo True ;;\n'
        f'  *"get node"*kubeletVersion*) echo {kubelet} ;;\n'
        '  *"get cephcluster --no-headers"*) echo "rook-ceph /var/lib/rook 3 10d Ready" ;;\n'
        f'  *"get pods"*) printf "%b" "{pods}" ;;\n'
        f'  *"status.ceph.health"*) echo "{health}" ;;\n'
        f'  *"status.ceph.details"*) echo "{checks}" ;;\n'
        "esac\n",
    )
    script = k3s.render_node_ready_script("k8s-cp-1", "v1.33.5+k3s1", storage=True, wait_s=20)
    return subprocess.run(
        [bash, "-c", script], capture_output=True, text=True, env={"PATH": f"{bin_dir}:/usr/bin:/bin"}
    )


RUNNING = "rook-ceph-mon-b-1 1/1 Running 0 1m\\nrook-ceph-osd-1-2 1/1 Running 0 1m\\nprepare-x 0/1 Completed 0 1m\\n"


NOW = "2999-01-01T00:00:00Z"


@pytest.mark.parametrize(
    ("kubelet", "health", "checks", "pods", "failure"),
    [
        ("v1.33.5+k3s1", f"HEALTH_OK {NOW}", "", RUNNING, None),
        # A one-copy dev pool warns for ever; that does not hold the roll-out back.
        ("v1.33.5+k3s1", f"HEALTH_WARN {NOW}", "POOL_NO_REDUNDANCY ", RUNNING, None),
        ("v1.33.5+k3s1", f"HEALTH_WARN {NOW}", "PG_DEGRADED OSD_DOWN ", RUNNING, "Ceph is not healthy"),
        (
            "v1.33.5+k3s1",
            f"HEALTH_OK {NOW}",
            "",
            "rook-ceph-osd-1-2 0/1 Running 0 1m\\n",
            "rook-ceph-osd-1-2",
        ),
        # A report from before the node went away is not trusted.
        ("v1.33.5+k3s1", "HEALTH_OK 2000-01-01T00:00:00Z", "", RUNNING, "Ceph is not healthy"),
        # Ready, but still at the old version: the upgrade did not take.
        ("v1.32.9+k3s1", f"HEALTH_OK {NOW}", "", RUNNING, "kubelet: v1.32.9+k3s1"),
    ],
)
def test_readiness_script_against_a_stand_in_cluster(
    kubelet: str, health: str, checks: str, pods: str, failure: str | None, tmp_path: Path
) -> None:
    result = _run_readiness(tmp_path, kubelet=kubelet, health=health, checks=checks, pods=pods)
    if failure is None:
        assert result.returncode == 0, result.stdout + result.stderr
    else:
        assert result.returncode == 1 and failure in result.stderr, result.stdout + result.stderr


def test_readiness_waits_for_a_fresh_ceph_report_and_only_unsafe_checks() -> None:
    script = k3s.render_node_ready_script("k8s-cp-1", "v1.33.5+k3s1", storage=True)
    assert '--field-selector "spec.nodeName=$node"' in script
    assert '"$checked" < "$started"' in script
    assert "unsafe='^(PG_|OSD_|MON_DOWN|MGR_DOWN|MDS_|FS_|SLOW_OPS|OBJECT_)'" in script
    assert "get cephcluster" not in k3s.render_node_ready_script("w", "v1.33.5+k3s1", storage=False)


def test_kubeconfig_is_rewritten_to_the_floating_ip_and_checked_against_the_hub_name() -> None:
    original = yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "default",
                    "cluster": {"server": "https://127.0.0.1:6443", "certificate-authority-data": "Q0E="},
                }
            ],
            "users": [{"name": "default", "user": {"client-key-data": "S0VZ"}}],
            "contexts": [{"name": "default", "context": {"cluster": "default", "user": "default"}}],
            "current-context": "default",
        }
    )
    rewritten = yaml.safe_load(k3s.rewrite_kubeconfig(original, "203.0.113.10"))
    cluster = rewritten["clusters"][0]["cluster"]
    assert cluster["server"] == "https://203.0.113.10:6443"
    # A name in every k3s server's certificate, whatever tls-san says and whatever the hub is called.
    assert cluster["tls-server-name"] == "kubernetes.default.svc"
    named = yaml.safe_load(k3s.rewrite_kubeconfig(original, "203.0.113.10", "hub.example.org"))
    assert named["clusters"][0]["cluster"]["tls-server-name"] == "hub.example.org"
    assert cluster["certificate-authority-data"] == "Q0E="
    with pytest.raises(ValueError, match="no cluster"):
        k3s.rewrite_kubeconfig("apiVersion: v1\nclusters: []\n", "203.0.113.10", "x")


def test_a_joining_node_waits_for_the_first_server_then_starts_k3s_without_waiting(tmp_path: Path) -> None:
    """Run the install script of a joining server for real: the first server answers its /ping
    only on the third try; the installer runs after that, told not to start k3s, and the unit is
    started without waiting (systemd restarts it until it joins)."""
    bash = require_tool("bash", "runs the rendered install script")
    _, server, _ = _node_specs()
    script = k3s.render_k3s_install_script(server).replace("/etc/rancher", str(tmp_path / "etc"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    pings = tmp_path / "pings"
    stub(bin_dir, "sudo", 'exec "$@"\n')
    stub(bin_dir, "sleep", "exit 0\n")
    stub(bin_dir, "systemctl", f'echo "systemctl $*" >>{log}\n')
    stub(
        bin_dir,
        "curl",
        'out=""; url=""; while (($#)); do [[ "$1" == --output ]] && out=$2; url=$1; shift; done\n'
        f'if [[ "$url" == */ping ]]; then echo x >>{pings}; (($(wc -l <{pings}) >= 3)); exit; fi\n'
        f'echo "ping answered $(wc -l <{pings}) times before $url" >>{log}\n'
        f'printf \'echo "installer $INSTALL_K3S_EXEC $INSTALL_K3S_SKIP_START" >>{log}\\n\' >"$out"\n',
    )
    (tmp_path / "etc/k3s/secret").mkdir(parents=True)
    (tmp_path / "etc/k3s/secret/token").write_text("tok\n")
    (tmp_path / "etc/k3s/jshub-version").write_text("v1.33.5+k3s1\n")
    result = subprocess.run(
        [bash, "-c", script], capture_output=True, text=True, env={"PATH": f"{bin_dir}:/usr/bin:/bin"}
    )
    assert result.returncode == 0, result.stderr
    calls = log.read_text().splitlines()
    assert calls[0].startswith("ping answered 4 times before https://raw.githubusercontent.com/"), calls
    assert calls[1:] == ["installer server true", "systemctl start --no-block k3s"]
    # The first server initialises the cluster: nothing to wait for, and its start is waited for.
    first, _, _ = _node_specs()
    first_install = k3s.render_k3s_install_script(first)
    assert "/ping" not in first_install and "INSTALL_K3S_SKIP_START" not in first_install
    assert "systemctl" not in first_install
