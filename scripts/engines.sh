#!/usr/bin/env bash
# Install (where missing) and start Docker and Podman on a Debian/Ubuntu machine,
# as root. Idempotent: an engine that already answers is left alone.
#
#   scripts/engines.sh [docker] [podman]     (default: both)
#
# Podman gets its own containers.conf (runc, short exit-command delay, ulimits
# this kernel accepts) through CONTAINERS_CONF; the system's file is not edited.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
state=${BOTTLE_ENGINE_STATE:-/var/tmp/bottle-engines}
mkdir -p "$state"
engines=("$@")
[ ${#engines[@]} -gt 0 ] || engines=(docker podman)

need_pkgs=()
command -v socat >/dev/null || need_pkgs+=(socat)
command -v ssh >/dev/null || need_pkgs+=(openssh-client)
command -v sshd >/dev/null || [ -x /usr/sbin/sshd ] || need_pkgs+=(openssh-server)
for e in "${engines[@]}"; do
  case $e in
    docker) [ -x /usr/sbin/dockerd ] || [ -x /usr/bin/dockerd ] || need_pkgs+=(docker.io) ;;
    podman) command -v podman >/dev/null || need_pkgs+=(podman runc) ;;
    *) echo "engines.sh: unknown engine '$e'" >&2; exit 2 ;;
  esac
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "engines.sh: installing ${need_pkgs[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

wait_for_socket() { # socket, seconds, probe command...
  local sock=$1 secs=$2; shift 2
  for _ in $(seq $((secs * 10))); do
    if [ -S "$sock" ] && "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  return 1
}

start_docker() {
  local sock=/var/run/docker.sock
  if [ -S $sock ] && curl -sf --unix-socket $sock http://d/_ping >/dev/null 2>&1; then
    echo "engines.sh: docker already answers at unix://$sock" >&2; return 0
  fi
  # A daemon ended with an earlier session leaves these behind.
  pkill -x dockerd 2>/dev/null || true
  pkill -x containerd 2>/dev/null || true
  rm -f /var/run/docker.pid /var/run/docker/containerd/containerd.pid $sock
  nohup dockerd --bridge=none --iptables=false --ip6tables=false >"$state/dockerd.log" 2>&1 &
  if ! wait_for_socket $sock 60 curl -sf --unix-socket $sock http://d/_ping; then
    echo "engines.sh: dockerd did not come up; log:" >&2; tail -20 "$state/dockerd.log" >&2; return 1
  fi
  echo "engines.sh: docker answers at unix://$sock" >&2
}

start_podman() {
  local sock=/run/podman/podman.sock
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
  pkill -f 'podman system service' 2>/dev/null || true
  rm -f $sock
  mkdir -p /run/podman
  CONTAINERS_CONF="$CONTAINERS_CONF" nohup podman system service --time=0 "unix://$sock" >"$state/podman.log" 2>&1 &
  if ! wait_for_socket $sock 60 curl -sf --unix-socket $sock http://d/_ping; then
    echo "engines.sh: podman service did not come up; log:" >&2; tail -20 "$state/podman.log" >&2; return 1
  fi
  echo "engines.sh: podman answers at unix://$sock" >&2
}

command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl >/dev/null; }
for e in "${engines[@]}"; do
  "start_$e"
done
