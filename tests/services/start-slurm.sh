#!/bin/bash
# Start a single-node SLURM cluster on this machine (munge, slurmctld, slurmd on localhost),
# as a stand-in for an HPC site's login and compute nodes. Idempotent: running it again while
# the daemons answer changes nothing. Needs root and Debian's slurm-wlm and munge.
#
# It writes /etc/slurm/slurm.conf only when that file is absent or was written by this script:
# a machine with a real SLURM configuration is left alone (the script then refuses to run).
# When the configuration it would write differs from the one SLURM runs with (other partitions,
# a version of this script without GPUs), it writes the new one and restarts the daemons with
# `scontrol shutdown`; running jobs keep running and SLURM takes them back from its saved state.
#
# The node has JSHUB_SLURM_GPUS GPUs as GRES (`--gres=gpu:N`): stand-in character devices with
# /dev/null's numbers under $state/gpu, since SLURM's gres.conf File= must name character or
# block devices (it stats them for their numbers) and no GPU is here to detect (AutoDetect=off).
set -euo pipefail

conf=/etc/slurm/slurm.conf
gres_conf="$(dirname "$conf")/gres.conf"
marker="# written by tests/services/start-slurm.sh"
state=/var/spool/jshub-slurm
cpus=${JSHUB_SLURM_CPUS:-64}
memory_mb=${JSHUB_SLURM_MEMORY_MB:-64000}
# How long the node may take to register (a node booting under emulation needs longer).
wait_s=${JSHUB_SLURM_WAIT_S:-20}
# The partitions, all on the one node; the first is the default.
read -r -a partitions <<<"${JSHUB_SLURM_PARTITIONS:-debug compute gpu}"
gpus=${JSHUB_SLURM_GPUS:-2}
# How long a configuration change waits for running jobs to end before it restarts SLURM.
busy_s=${JSHUB_SLURM_BUSY_WAIT_S:-120}

if [[ -e $conf ]] && ! grep -qxF "$marker" "$conf"; then
    echo "start-slurm: $conf exists and was not written by this script; not touching it" >&2
    exit 1
fi

answers() {
    timeout 5 sinfo -h -n localhost -o '%t' 2>/dev/null | grep -Eq '^(idle|mix|alloc)'
}
running() {
    pgrep -x slurmctld >/dev/null && pgrep -x slurmd >/dev/null
}

install -d -m 0755 /etc/slurm "$state" "$state/ctld" "$state/d" /var/log/slurm
# One run at a time: two runs writing and restarting at once would undo each other. The lock is
# this script's file descriptor 9; every daemon it starts gets that descriptor closed (`9>&-`),
# or the daemon would hold the lock for as long as it runs and the next run would wait forever.
lock_s=${JSHUB_SLURM_LOCK_WAIT_S:-300}
exec 9>>"$conf.lock"
if ! flock -w "$lock_s" 9; then
    echo "start-slurm: another run has held $conf.lock for ${lock_s} s; its holders:" >&2
    for fd in /proc/[0-9]*/fd/*; do
        if [[ $(readlink "$fd" 2>/dev/null) == "$conf.lock" ]]; then
            pid=${fd#/proc/}
            pid=${pid%%/*}
            [[ $pid == "$$" ]] && continue
            echo "  pid $pid: $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" >&2
        fi
    done
    exit 1
fi
# The node is declared larger than the machine (config_overrides) so that a benchmark's 30
# concurrent single-core notebooks all run at once instead of queueing.
cat >"$conf.tmp" <<CONF
$marker
ClusterName=jshub-test
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
ReturnToService=2
MailProg=/bin/true
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/d
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SchedulerType=sched/backfill
MinJobAge=300
KillWait=5
CONF
if ((gpus > 0)); then
    echo "GresTypes=gpu"
    echo "NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory_mb Gres=gpu:$gpus State=UNKNOWN"
    echo "AutoDetect=off" >"$gres_conf.tmp"
    echo "NodeName=localhost Name=gpu File=$state/gpu/nvidia[0-$((gpus - 1))]" >>"$gres_conf.tmp"
else
    echo "NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory_mb State=UNKNOWN"
    : >"$gres_conf.tmp"
fi >>"$conf.tmp"
default=YES
for partition in "${partitions[@]}"; do
    echo "PartitionName=$partition Nodes=localhost Default=$default MaxTime=INFINITE State=UP"
    default=NO
done >>"$conf.tmp"
devices_ready() {
    for ((i = 0; i < gpus; i++)); do
        [[ -c $state/gpu/nvidia$i ]] || return 1
    done
}
if cmp -s "$conf.tmp" "$conf" && cmp -s "$gres_conf.tmp" "$gres_conf" && devices_ready && running && answers; then
    rm -f "$conf.tmp" "$gres_conf.tmp"
    exit 0
fi
changed=no
cmp -s "$conf.tmp" "$conf" && cmp -s "$gres_conf.tmp" "$gres_conf" || changed=yes
mv "$conf.tmp" "$conf"
chmod 0644 "$conf"
mv "$gres_conf.tmp" "$gres_conf"
chmod 0644 "$gres_conf"

# The GPUs' stand-ins: character devices with /dev/null's major and minor numbers.
install -d -m 0755 "$state/gpu"
read -r major minor < <(stat -c '%t %T' /dev/null)
for ((i = 0; i < gpus; i++)); do
    if [[ ! -c $state/gpu/nvidia$i ]]; then
        rm -f "$state/gpu/nvidia$i"
        mknod -m 0666 "$state/gpu/nvidia$i" c "$((16#$major))" "$((16#$minor))"
    fi
done

# munge: its socket folder must be traversable by every user that runs sbatch or squeue.
install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
if [[ ! -s /etc/munge/munge.key ]]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
fi
if ! pgrep -x munged >/dev/null; then
    runuser -u munge -- /usr/sbin/munged 9>&-
fi

# A new node or GRES definition needs both daemons restarted (scontrol reconfigure is not enough).
# Jobs survive a restart, but a test that is changing a partition's state would not: wait a while
# for the queue to empty first (the machine's SLURM is shared by every local test run).
if [[ $changed == yes ]] && pgrep -x slurmctld >/dev/null; then
    deadline=$((SECONDS + busy_s))
    while ((SECONDS < deadline)); do
        [[ -z $(timeout 5 squeue -h 2>/dev/null) ]] && break
        sleep 0.2
    done
    timeout 10 scontrol shutdown >/dev/null 2>&1 || true
    # slurmd can take most of a minute to finish shutting down.
    deadline=$((SECONDS + 120))
    while ((SECONDS < deadline)); do
        pgrep -x slurmctld >/dev/null || pgrep -x slurmd >/dev/null || break
        sleep 0.2
    done
fi

pgrep -x slurmctld >/dev/null || slurmctld 9>&-
pgrep -x slurmd >/dev/null || slurmd -N localhost 9>&-

# The waits are bounded by the clock, not by a count of tries: one try can take seconds when
# the controller is slow to answer.
deadline=$((SECONDS + wait_s))
while ((SECONDS < deadline)); do
    if answers; then
        exit 0
    fi
    if ! pgrep -x slurmctld >/dev/null; then
        echo "start-slurm: slurmctld exited; the end of its log:" >&2
        tail -n 5 /var/log/slurm/slurmctld.log >&2 || true
        exit 1
    fi
    # A node that was down when slurmctld started comes back with an explicit resume.
    timeout 5 scontrol update nodename=localhost state=resume >/dev/null 2>&1 || true
    sleep 0.2
done
echo "start-slurm: the node did not become idle in ${wait_s} s; see /var/log/slurm/" >&2
timeout 5 sinfo >&2 || true
tail -n 5 /var/log/slurm/slurmd.log >&2 || true
exit 1
