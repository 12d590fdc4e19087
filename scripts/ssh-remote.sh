#!/usr/bin/env bash
# The "remote host" for the ssh:// endpoint tests: this machine's sshd on
# 127.0.0.1:PORT only, with a host key made here, root's login by a client key
# made here (no password, no PAM), and ssh client configs that never read the
# operator's ~/.ssh (own known_hosts, no agent):
#
#   DIR/ssh_config            the client key, the right host key
#   DIR/ssh_config_nokey      a key the server does not authorize (use -i / CONTAINER_SSHKEY)
#   DIR/ssh_config_wronghost  the client key, a known_hosts with another host key
#   DIR/ssh_config_hang       a ProxyCommand that never answers (an interrupted run)
#   DIR/client_key            the authorized client key
#
#   scripts/ssh-remote.sh start DIR PORT   # DIR/env has BOTTLE_SSH_REMOTE=root@127.0.0.1:PORT
#   scripts/ssh-remote.sh stop DIR         # ends only the sshd whose pid it recorded
set -euo pipefail

cmd=${1:?usage: ssh-remote.sh start DIR PORT | stop DIR}
dir=${2:?DIR}

client_config() {
  # $1: file, $2: identity, $3: known_hosts
  cat >"$1" <<EOF
Host *
  BatchMode yes
  IdentityAgent none
  IdentitiesOnly yes
  IdentityFile $2
  UserKnownHostsFile $3
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  UpdateHostKeys no
  LogLevel ERROR
EOF
}

case $cmd in
  start)
    port=${3:?PORT}
    sshd=$(command -v sshd || echo /usr/sbin/sshd)
    [ -x "$sshd" ] || { echo "ssh-remote.sh: no sshd (scripts/engines.sh installs openssh-server)" >&2; exit 1; }
    command -v ssh >/dev/null || { echo "ssh-remote.sh: no ssh client" >&2; exit 1; }
    mkdir -p "$dir"
    chmod 700 "$dir"
    # Privilege separation directory Debian's sshd expects.
    mkdir -p /run/sshd
    rm -f "$dir"/host_key* "$dir"/other_host_key* "$dir"/client_key* "$dir"/unauthorized_key*
    ssh-keygen -q -t ed25519 -N '' -C bottle-remote-host -f "$dir/host_key"
    ssh-keygen -q -t ed25519 -N '' -C bottle-remote-other -f "$dir/other_host_key"
    ssh-keygen -q -t ed25519 -N '' -C bottle-remote-client -f "$dir/client_key"
    ssh-keygen -q -t ed25519 -N '' -C bottle-remote-unauthorized -f "$dir/unauthorized_key"
    cp "$dir/client_key.pub" "$dir/authorized_keys"
    chmod 600 "$dir/authorized_keys"
    printf '[127.0.0.1]:%s %s\n' "$port" "$(cut -d' ' -f1,2 "$dir/host_key.pub")" >"$dir/known_hosts"
    printf '[127.0.0.1]:%s %s\n' "$port" "$(cut -d' ' -f1,2 "$dir/other_host_key.pub")" >"$dir/wrong_known_hosts"
    client_config "$dir/ssh_config" "$dir/client_key" "$dir/known_hosts"
    client_config "$dir/ssh_config_nokey" "$dir/unauthorized_key" "$dir/known_hosts"
    client_config "$dir/ssh_config_wronghost" "$dir/client_key" "$dir/wrong_known_hosts"
    { cat "$dir/ssh_config"; printf '  ProxyCommand sleep 30\n'; } >"$dir/ssh_config_hang"
    cat >"$dir/sshd_config" <<EOF
ListenAddress 127.0.0.1
Port $port
HostKey $dir/host_key
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
UsePAM no
# The keys live under /tmp, whose mode StrictModes refuses.
StrictModes no
AllowStreamLocalForwarding yes
X11Forwarding no
PermitTTY no
MaxStartups 50:30:100
EOF
    # -D: stays in the foreground, so the pid recorded is sshd's own; -e: log to the file.
    nohup "$sshd" -D -e -f "$dir/sshd_config" >"$dir/sshd.log" 2>&1 &
    echo $! >"$dir/started.pid"
    for _ in $(seq 1 100); do
      if ssh -F "$dir/ssh_config" -p "$port" -o ConnectTimeout=2 root@127.0.0.1 true 2>/dev/null; then
        printf 'BOTTLE_SSH_REMOTE=root@127.0.0.1:%s\n' "$port" >"$dir/env"
        exit 0
      fi
      kill -0 "$(cat "$dir/started.pid")" 2>/dev/null || break
      sleep 0.1
    done
    echo "ssh-remote.sh: sshd did not come up; log:" >&2
    tail -20 "$dir/sshd.log" >&2
    "$0" stop "$dir" || true
    exit 1
    ;;
  stop)
    f=$dir/started.pid
    [ -f "$f" ] || exit 0
    pid=$(cat "$f")
    # Only the process this script started, and only while it is still that sshd.
    if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "-f $dir/sshd_config"; then
      kill "$pid"
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    fi
    rm -f "$f"
    ;;
  *) echo "usage: ssh-remote.sh start DIR PORT | stop DIR" >&2; exit 2 ;;
esac
