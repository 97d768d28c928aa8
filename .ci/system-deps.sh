#!/bin/bash
# System packages and tools the tests drive for real. Idempotent; needs root (CI runs as root).
set -euo pipefail

packages=(
    cloud-init      # `cloud-init schema` validates every rendered user data
    caddy           # `caddy validate` checks the rendered Caddyfile
    systemd         # `systemd-analyze verify` checks the hub VM's rendered units
    adduser sudo    # the hub creates Unix accounts for its users
    prometheus prometheus-node-exporter  # monitoring: promtool checks config and rules; a real Prometheus scrapes the hub
    prometheus-alertmanager  # monitoring: amtool check-config checks the rendered Alertmanager config
    slurm-wlm munge # scenario hpc: a single-node SLURM cluster (tests/services/start-slurm.sh)
    openssh-server openssh-client   # scenario hpc: the hub reaches the login node over SSH
    docker.io       # the swarm scenario's hub runs on a local single-node swarm
    iptables iproute2 util-linux  # the nodes' firewall and metadata block, applied in a namespace
    debootstrap     # base image for local Docker images: there is no Docker Hub here
    restic          # the hub's backups: tests back up and restore a home against a local S3 (moto)
    jq              # the k8s backup script reads kubectl's JSON with jq (tests/test_k8s_backup_restore.py)
    git             # nbgitpuller pulls a course repository into a home (tests/e2e/test_course_material_hub.py)
    chromium chromium-driver  # a participant's first minute in a real browser (tests/e2e/test_participant_browser.py)
    systemd         # systemd-analyze: the backup schedule grammar and timer units checked by systemd
    qemu-system-x86 qemu-utils  # boot/: real VMs boot the rendered user data (TCG emulation)
    cloud-image-utils           # boot/: cloud-localds writes the NoCloud seed
    squashfs-tools              # boot/: host folders reach a guest as a squashfs disk
    e2fsprogs                   # boot/: mkfs.ext4 -d builds the guest image without loop mounts
)
# configurable-http-proxy needs Node.js and npm; a machine may already have both from
# another source (whose nodejs package bundles npm and conflicts with Debian's npm).
command -v npm >/dev/null || packages+=(nodejs npm)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The version the hub VMs install (renderers/cloud_init.py).
chp_version=5.1.0
if [[ "$(configurable-http-proxy --version 2>/dev/null || true)" != "$chp_version" ]]; then
    npm install --global --no-audit --no-fund --loglevel=error "configurable-http-proxy@$chp_version"
fi

# Helm renders the vendored charts (tests/test_charts.py); pinned by package and checksum.
bash "$(dirname "$0")/install-helm.sh"
