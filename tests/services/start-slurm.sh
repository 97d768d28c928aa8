#!/bin/bash
# Start a single-node SLURM cluster on this machine (munge, slurmctld, slurmd on localhost),
# as a stand-in for an HPC site's login and compute nodes. Idempotent: running it again while
# the daemons answer changes nothing. Needs root and Debian's slurm-wlm and munge.
#
# It writes /etc/slurm/slurm.conf only when that file is absent or was written by this script:
# a machine with a real SLURM configuration is left alone (the script then refuses to run).
set -euo pipefail

conf=/etc/slurm/slurm.conf
marker="# written by tests/services/start-slurm.sh"
state=/var/spool/jshub-slurm
cpus=${JSHUB_SLURM_CPUS:-64}
memory_mb=${JSHUB_SLURM_MEMORY_MB:-64000}
# How long the node may take to register (a node booting under emulation needs longer).
wait_s=${JSHUB_SLURM_WAIT_S:-20}
# The partitions, all on the one node; the first is the default.
read -r -a partitions <<<"${JSHUB_SLURM_PARTITIONS:-debug compute}"

if [[ -e $conf ]] && ! grep -qxF "$marker" "$conf"; then
    echo "start-slurm: $conf exists and was not written by this script; not touching it" >&2
    exit 1
fi

answers() {
    timeout 5 sinfo -h -n localhost -o '%t' 2>/dev/null | grep -Eq '^(idle|mix|alloc)'
}
if [[ -e $conf ]] && pgrep -x slurmctld >/dev/null && pgrep -x slurmd >/dev/null && answers; then
    exit 0
fi

install -d -m 0755 /etc/slurm "$state" "$state/ctld" "$state/d" /var/log/slurm
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
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory_mb State=UNKNOWN
CONF
default=YES
for partition in "${partitions[@]}"; do
    echo "PartitionName=$partition Nodes=localhost Default=$default MaxTime=INFINITE State=UP"
    default=NO
done >>"$conf.tmp"
mv "$conf.tmp" "$conf"
chmod 0644 "$conf"

# munge: its socket folder must be traversable by every user that runs sbatch or squeue.
install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
if [[ ! -s /etc/munge/munge.key ]]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
fi
if ! pgrep -x munged >/dev/null; then
    runuser -u munge -- /usr/sbin/munged
fi

pgrep -x slurmctld >/dev/null || slurmctld
pgrep -x slurmd >/dev/null || slurmd -N localhost

for _ in $(seq 1 $((wait_s * 5))); do
    if answers; then
        exit 0
    fi
    # A node that was down when slurmctld started comes back with an explicit resume.
    scontrol update nodename=localhost state=resume >/dev/null 2>&1 || true
    sleep 0.2
done
echo "start-slurm: the node did not become idle; see /var/log/slurm/" >&2
sinfo >&2 || true
exit 1
