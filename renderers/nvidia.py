"""GPUs on Kubernetes: what a k3s GPU node installs (NVIDIA's container toolkit) and the NVIDIA
device plugin that advertises each node's GPU as `nvidia.com/gpu`, as plain Kubernetes objects
(`kubernetes-validate --strict` in the tests). No chart: the plugin is one DaemonSet, pinned here."""

from __future__ import annotations

from typing import Any, Literal

from renderers import render

# NVIDIA's container toolkit, from NVIDIA's apt repository (github.com/NVIDIA/libnvidia-container,
# docs.nvidia.com/datacenter/cloud-native/container-toolkit/latest/install-guide.html); its
# packages share one version, pinned together.
TOOLKIT_VERSION = "1.17.8-1"
TOOLKIT_REPOSITORY = "https://nvidia.github.io/libnvidia-container"
TOOLKIT_KEY_URL = f"{TOOLKIT_REPOSITORY}/gpgkey"
# "NVIDIA CORPORATION (Open Source Projects) <cudatools@nvidia.com>", the repository's signer.
TOOLKIT_KEY_FINGERPRINT = "C95B321B61E88C1809C4F759DDCAE044F796ECB0"
TOOLKIT_KEYRING = "/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg"
TOOLKIT_SOURCES = "/etc/apt/sources.list.d/nvidia-container-toolkit.list"
TOOLKIT_SCRIPT = "/usr/local/sbin/jshub-nvidia-container-toolkit"

# k3s finds nvidia-container-runtime at start and adds the `nvidia` runtime to containerd; since
# k3s-io/k3s#8751 (v1.29, and the pinned v1.33) k3s also installs the `nvidia` RuntimeClass
# itself, so the stack creates none. Pods that use the GPU name it: runc stays the default.
RUNTIME_CLASS = "nvidia"
# The extended resource the device plugin advertises, and the taint that keeps every pod that
# does not tolerate it (every CPU user's server, the placeholders) off the GPU nodes.
GPU_RESOURCE = "nvidia.com/gpu"
GPU_TAINT = {"key": GPU_RESOURCE, "value": "present", "effect": "NoSchedule"}
# The label GPU nodes carry (the name NVIDIA's GPU feature discovery uses for the same fact).
GPU_NODE_LABEL = ("nvidia.com/gpu.present", "true")
# magnum: the OpenStack cloud controller labels each node with its flavor.
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"

DEVICE_PLUGIN_IMAGE = "nvcr.io/nvidia/k8s-device-plugin:v0.17.3"
DEVICE_PLUGIN_NAME = "nvidia-device-plugin"
DEVICE_PLUGIN_NAMESPACE = "kube-system"
# The kubelet's device-plugin socket folder (k3s keeps the kubelet's default root).
DEVICE_PLUGIN_DIR = "/var/lib/kubelet/device-plugins"
LABELS = {
    "app.kubernetes.io/managed-by": "jupyterhub-jetstream",
    "app.kubernetes.io/name": DEVICE_PLUGIN_NAME,
}


def taint_arg() -> str:
    """The taint as k3s's `node-taint` takes it."""
    return f"{GPU_TAINT['key']}={GPU_TAINT['value']}:{GPU_TAINT['effect']}"


def gpu_node_selector(engine: Literal["k3s", "magnum"], flavor: str) -> dict[str, str]:
    """How a pod finds the GPU nodes: k3s labels them itself; magnum's nodes carry their flavor."""
    if engine == "k3s":
        return {GPU_NODE_LABEL[0]: GPU_NODE_LABEL[1]}
    return {INSTANCE_TYPE_LABEL: flavor}


def gpu_toleration() -> dict[str, str]:
    return {
        "key": GPU_TAINT["key"],
        "operator": "Equal",
        "value": GPU_TAINT["value"],
        "effect": GPU_TAINT["effect"],
    }


def render_toolkit_script(keyring: str = TOOLKIT_KEYRING, sources: str = TOOLKIT_SOURCES) -> str:
    """`keyring`, `sources`: where the key and the apt source go (a test runs it elsewhere)."""
    return render(
        "nvidia-container-toolkit.sh.j2",
        keyring=keyring,
        sources=sources,
        key_url=TOOLKIT_KEY_URL,
        fingerprint=TOOLKIT_KEY_FINGERPRINT,
        repository=TOOLKIT_REPOSITORY,
        version=TOOLKIT_VERSION,
    )


def device_plugin_daemonset(engine: Literal["k3s", "magnum"], flavor: str) -> dict[str, Any]:
    """NVIDIA's device plugin on the GPU nodes only, after upstream's static manifest
    (NVIDIA/k8s-device-plugin deployments/static/nvidia-device-plugin.yml). It fails at start
    when it finds no GPU (FAIL_ON_INIT_ERROR), so a node without a working driver shows as a
    crashing pod rather than as a node with no GPUs. On k3s it runs with the nvidia runtime,
    which gives it the driver's libraries."""
    selector = {"app.kubernetes.io/name": DEVICE_PLUGIN_NAME}
    pod: dict[str, Any] = {
        "nodeSelector": gpu_node_selector(engine, flavor),
        "tolerations": [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}],
        "priorityClassName": "system-node-critical",
        "containers": [
            {
                "name": "nvidia-device-plugin-ctr",
                "image": DEVICE_PLUGIN_IMAGE,
                "env": [{"name": "FAIL_ON_INIT_ERROR", "value": "true"}],
                "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                "volumeMounts": [{"name": "device-plugin", "mountPath": DEVICE_PLUGIN_DIR}],
            }
        ],
        "volumes": [{"name": "device-plugin", "hostPath": {"path": DEVICE_PLUGIN_DIR}}],
    }
    if engine == "k3s":
        pod["runtimeClassName"] = RUNTIME_CLASS
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {
            "name": DEVICE_PLUGIN_NAME,
            "namespace": DEVICE_PLUGIN_NAMESPACE,
            "labels": dict(LABELS),
        },
        "spec": {
            "selector": {"matchLabels": selector},
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {"metadata": {"labels": {**LABELS, **selector}}, "spec": pod},
        },
    }
