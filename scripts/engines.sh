#!/bin/sh
# Install (where missing) and start Docker and Podman on a Debian/Ubuntu machine,
# as root. Idempotent: an engine that already answers is left alone.
#
#   scripts/engines.sh [docker] [podman] [containerd]   (default: docker podman)
#
# Podman gets its own containers.conf (runc, short exit-command delay, ulimits
# this kernel accepts) through CONTAINERS_CONF; the system's file is not edited.
set -eu

state=${BOTTLE_ENGINE_STATE:-/var/tmp/bottle-engines}
mkdir -p "$state"
[ $# -gt 0 ] || set -- docker podman

# Package names: one word each.
need_pkgs=
command -v socat >/dev/null || need_pkgs="$need_pkgs socat"
command -v ssh >/dev/null || need_pkgs="$need_pkgs openssh-client"
command -v sshd >/dev/null || [ -x /usr/sbin/sshd ] || need_pkgs="$need_pkgs openssh-server"
# The integration tests' busybox and sudo test images copy these from the host.
[ -x /bin/busybox ] || need_pkgs="$need_pkgs busybox-static"
[ -x /usr/bin/sudo ] || need_pkgs="$need_pkgs sudo"
# protoc builds the containerd-client crate's bindings (every build of the
# workspace, bottlectl included, whichever engines run).
command -v protoc >/dev/null || need_pkgs="$need_pkgs protobuf-compiler"
command -v git >/dev/null || need_pkgs="$need_pkgs git"  # the test image carries the host's git (signing tests)
# The lint test checks every embedded script with shellcheck.
command -v shellcheck >/dev/null || need_pkgs="$need_pkgs shellcheck"
for e in "$@"; do
  case $e in
    docker) [ -x /usr/sbin/dockerd ] || [ -x /usr/bin/dockerd ] || need_pkgs="$need_pkgs docker.io" ;;
    podman) command -v podman >/dev/null || need_pkgs="$need_pkgs podman runc" ;;
    containerd) command -v containerd >/dev/null || need_pkgs="$need_pkgs containerd runc" ;;
    *) echo "engines.sh: unknown engine '$e'" >&2; exit 2 ;;
  esac
done
if [ -n "$need_pkgs" ]; then
  echo "engines.sh: installing$need_pkgs" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086 # one word per package
  apt-get install -y -qq $need_pkgs >/dev/null
fi

wait_for_socket() { # socket, seconds, probe command...
  ws_sock=$1 ws_secs=$2; shift 2
  for _ in $(seq $((ws_secs * 10))); do
    if [ -S "$ws_sock" ] && "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  return 1
}

# ours NAME: the pid recorded in $state/NAME.pid, if that process still runs
# the program we started (its command line names it); nothing otherwise.
# Only processes this script started are ever stopped, by that pid.
ours() {
  ours_pid=$(cat "$state/$1.pid" 2>/dev/null) || return 1
  case $ours_pid in ''|*[!0-9]*) return 1 ;; esac
  tr '\0' ' ' 2>/dev/null <"/proc/$ours_pid/cmdline" | grep -q -- "$2" || return 1
  echo "$ours_pid"
}

stop_ours() { # NAME NEEDLE
  pid=$(ours "$1" "$2") || return 0
  echo "engines.sh: stopping the $1 this script started (pid $pid), which does not answer" >&2
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$state/$1.pid"
}

start_docker() {
  sock=/var/run/docker.sock
  if [ -S $sock ] && curl -sf --unix-socket $sock http://d/_ping >/dev/null 2>&1; then
    echo "engines.sh: docker already answers at unix://$sock" >&2; return 0
  fi
  stop_ours dockerd dockerd
  if pgrep -x dockerd >/dev/null; then
    echo "engines.sh: a dockerd this script did not start runs but does not answer at unix://$sock; not touching it" >&2
    return 1
  fi
  # No dockerd runs: pid files left by one that ended with an earlier
  # session would make dockerd refuse to start when their pid now names an
  # unrelated process.
  for f in /var/run/docker.pid /var/run/docker/containerd/containerd.pid; do
    pid=$(cat "$f" 2>/dev/null) || continue
    tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q -e dockerd -e containerd || rm -f "$f"
  done
  rm -f $sock
  nohup dockerd --bridge=none --iptables=false --ip6tables=false >"$state/dockerd.log" 2>&1 &
  echo $! >"$state/dockerd.pid"
  if ! wait_for_socket $sock 60 curl -sf --unix-socket $sock http://d/_ping; then
    echo "engines.sh: dockerd did not come up; log:" >&2; tail -20 "$state/dockerd.log" >&2; return 1
  fi
  echo "engines.sh: docker answers at unix://$sock" >&2
}

start_podman() {
  sock=/run/podman/podman.sock
  export CONTAINERS_CONF="$state/containers.conf"
  cat >"$CONTAINERS_CONF" <<'EOF'
[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]

[engine]
runtime = "runc"
exit_command_delay = 5
EOF
  if [ -S $sock ] && curl -sf --unix-socket $sock http://d/_ping >/dev/null 2>&1; then
    echo "engines.sh: podman already answers at unix://$sock" >&2; return 0
  fi
  stop_ours podman "system service"
  rm -f $sock
  mkdir -p /run/podman
  CONTAINERS_CONF="$CONTAINERS_CONF" nohup podman system service --time=0 "unix://$sock" >"$state/podman.log" 2>&1 &
  echo $! >"$state/podman.pid"
  if ! wait_for_socket $sock 60 curl -sf --unix-socket $sock http://d/_ping; then
    echo "engines.sh: podman service did not come up; log:" >&2; tail -20 "$state/podman.log" >&2; return 1
  fi
  echo "engines.sh: podman answers at unix://$sock" >&2
}

# containerd: one that answers at $CONTAINERD_ADDRESS or the default socket is
# used; otherwise one of our own (own config, socket, root and state under
# $state/containerd, so it never meets Docker's containerd). The address in
# use is written to $state/containerd.address for scripts/test.sh, and the
# pid of one this run started to $state/containerd.started, so the caller
# can stop it by that pid (scripts/test.sh does when it ends).
start_containerd() {
  dir="$state/containerd"
  for sock in ${CONTAINERD_ADDRESS:+"${CONTAINERD_ADDRESS#unix://}"} /run/containerd/containerd.sock "$dir/containerd.sock"; do
    if [ -S "$sock" ] && ctr --address "$sock" version >/dev/null 2>&1; then
      echo "engines.sh: containerd already answers at unix://$sock" >&2
      echo "$sock" >"$state/containerd.address"
      return 0
    fi
  done
  stop_ours containerd "containerd --config $dir/config.toml"
  mkdir -p "$dir/root" "$dir/state"
  chmod 700 "$dir"
  sock="$dir/containerd.sock"
  cat >"$dir/config.toml" <<CONF
version = 2
root = "$dir/root"
state = "$dir/state"
# No Kubernetes here: the CRI plugin would want CNI.
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$sock"
[ttrpc]
  address = "$sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
CONF
  rm -f "$sock"
  nohup containerd --config "$dir/config.toml" --root "$dir/root" --state "$dir/state" --address "$sock" >"$state/containerd.log" 2>&1 &
  echo $! >"$state/containerd.pid"
  if ! wait_for_socket "$sock" 60 ctr --address "$sock" version; then
    echo "engines.sh: containerd did not come up; log:" >&2; tail -20 "$state/containerd.log" >&2; return 1
  fi
  echo "$sock" >"$state/containerd.address"
  cp "$state/containerd.pid" "$state/containerd.started"
  echo "engines.sh: containerd answers at unix://$sock" >&2
}

command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl >/dev/null; }
for e in "$@"; do
  "start_$e"
done
