#!/bin/bash
# Start an sshd on a loopback port as a stand-in for an HPC login node:
#   start-login-node.sh STATE_DIR PORT ACCOUNT
# Only ACCOUNT may log in, with a key (no passwords); the host key is made for this run and
# printed as STATE_DIR/host_key.pub, which the hub pins. Idempotent: a running sshd whose pid
# file is in STATE_DIR is left alone. Needs root and Debian's openssh-server.
set -euo pipefail

state=${1:?state folder}
port=${2:?port}
account=${3:?account that may log in}

pid_file=$state/sshd.pid
if [[ -s $pid_file ]] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
    exit 0
fi
install -d -m 0755 "$state" /run/sshd
[[ -s $state/host_key ]] || ssh-keygen -q -t ed25519 -N '' -C jshub-test-login -f "$state/host_key"
cat >"$state/sshd_config" <<CONF
ListenAddress 127.0.0.1
Port $port
HostKey $state/host_key
PidFile $pid_file
AllowUsers $account
AuthenticationMethods publickey
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
UsePAM no
AllowTcpForwarding local
X11Forwarding no
PrintMotd no
# Many users' queue polls and tunnels at once (the benchmark starts 30 notebooks together).
MaxStartups 200
CONF
/usr/sbin/sshd -t -f "$state/sshd_config"
/usr/sbin/sshd -f "$state/sshd_config" -E "$state/sshd.log"
for _ in $(seq 1 50); do
    [[ -s $pid_file ]] && exit 0
    sleep 0.1
done
echo "start-login-node: sshd did not start; see $state/sshd.log" >&2
exit 1
