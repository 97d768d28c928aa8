"""GPUs on Kubernetes: what a k3s GPU node installs (NVIDIA's container toolkit) and the NVIDIA
device plugin that advertises each node's GPU as `nvidia.com/gpu`: NVIDIA's own chart, vendored
in charts/nvidia-device-plugin at the version pinned here, and the values that keep it on the GPU
nodes (rendered by a real `helm template` and validated strictly in tests/test_charts.py)."""

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

# NVIDIA/k8s-device-plugin's chart (deployments/helm/nvidia-device-plugin at tag v<version>),
# vendored by charts/refresh.py; its image is the release's own.
DEVICE_PLUGIN_VERSION = "0.17.3"
DEVICE_PLUGIN_CHART = "nvidia-device-plugin"
DEVICE_PLUGIN_CHART_PATH = f"./charts/{DEVICE_PLUGIN_CHART}"
DEVICE_PLUGIN_REPOSITORY = "nvcr.io/nvidia/k8s-device-plugin"
DEVICE_PLUGIN_IMAGE = f"{DEVICE_PLUGIN_REPOSITORY}:v{DEVICE_PLUGIN_VERSION}"
# The release's name, which the chart's objects take (the name contains the chart's).
DEVICE_PLUGIN_NAME = "nvidia-device-plugin"
DEVICE_PLUGIN_NAMESPACE = "kube-system"


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


def device_plugin_values(engine: Literal["k3s", "magnum"], flavor: str) -> dict[str, Any]:
    """Values for NVIDIA's chart: the plugin's DaemonSet on the GPU nodes only. The chart's
    default affinity (labels of NVIDIA's node feature discovery, which the stack does not run) is
    replaced by the stack's own GPU node selection: Helm replaces a list, so the one term given
    here is the only one. Only the GPU taint is tolerated (the chart's default also tolerates
    CriticalAddonsOnly). The plugin fails at start when it finds no GPU (failOnInitError), so a
    node without a working driver shows as a crashing pod rather than as a node with no GPUs.
    On k3s it runs with the nvidia runtime, which gives it the driver's libraries. Neither GPU
    feature discovery nor node feature discovery is installed (the chart's defaults)."""
    expressions = [
        {"key": key, "operator": "In", "values": [value]}
        for key, value in gpu_node_selector(engine, flavor).items()
    ]
    values: dict[str, Any] = {
        "image": {"repository": DEVICE_PLUGIN_REPOSITORY, "tag": f"v{DEVICE_PLUGIN_VERSION}"},
        "failOnInitError": True,
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": expressions}]
                }
            }
        },
        "tolerations": [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}],
        "priorityClassName": "system-node-critical",
        "devicePlugin": {"enabled": True},
        "gfd": {"enabled": False},
    }
    if engine == "k3s":
        values["runtimeClassName"] = RUNTIME_CLASS
    return values
