#!/bin/bash
# Start dockerd if no daemon answers, and wait until it does. Idempotent; needs root.
# CI machines have no systemd as PID 1, so the daemon is started directly.
set -euo pipefail

log=${JSHUB_DOCKERD_LOG:-/var/log/jshub-dockerd.log}
wait_s=${JSHUB_DOCKERD_WAIT_S:-60}

if docker info >/dev/null 2>&1; then
    exit 0
fi
if ! command -v dockerd >/dev/null; then
    echo "dockerd is not installed: run make system-deps (Debian package docker.io)" >&2
    exit 1
fi
if ! pgrep -x dockerd >/dev/null; then
    # setsid: the daemon outlives the shell (and the test process) that started it.
    setsid dockerd >>"$log" 2>&1 </dev/null &
fi
for ((waited = 0; waited < wait_s; waited++)); do
    if docker info >/dev/null 2>&1; then
        exit 0
    fi
    sleep 1
done
echo "dockerd did not answer after ${wait_s}s; see $log" >&2
tail -n 20 "$log" >&2 || true
exit 1
