#!/usr/bin/env bash
# A second dockerd beside the first, for the TLS endpoint tests: its own
# data-root, exec-root, pidfile and Unix socket, plus tcp://127.0.0.1:PORT with
# --tlsverify and certificates made here (a CA, a server certificate for
# 127.0.0.1, a client certificate; a second, unrelated CA for the wrong-CA test).
#
#   scripts/tls-dockerd.sh start DIR PORT   # prints nothing; DIR/env has the addresses
#   scripts/tls-dockerd.sh stop DIR         # ends only the dockerd whose pid it recorded
set -euo pipefail

cmd=${1:?usage: tls-dockerd.sh start DIR PORT | stop DIR}
dir=${2:?DIR}

certs() {
  local c=$dir/certs
  mkdir -p "$c" "$c/wrong"
  cd "$c"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=bottle-test-ca \
    -keyout ca-key.pem -out ca.pem 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 \
    -keyout server-key.pem -out server.csr 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >server.ext
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial \
    -days 2 -extfile server.ext -out server-cert.pem 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj /CN=bottle-test-client \
    -keyout key.pem -out client.csr 2>/dev/null
  printf 'extendedKeyUsage=clientAuth\n' >client.ext
  openssl x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial \
    -days 2 -extfile client.ext -out cert.pem 2>/dev/null
  # A CA that signed nothing here: the client must refuse the server with it.
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=bottle-wrong-ca \
    -keyout wrong/ca-key.pem -out wrong/ca.pem 2>/dev/null
  cp cert.pem key.pem wrong/
  chmod 600 ./*key.pem wrong/*key.pem
  cd - >/dev/null
}

case $cmd in
  start)
    port=${3:?PORT}
    command -v dockerd >/dev/null || { echo "tls-dockerd.sh: no dockerd (scripts/engines.sh docker installs it)" >&2; exit 1; }
    # A fresh machine may lack openssl; install it the way engines.sh installs its packages.
    if ! command -v openssl >/dev/null; then
      if ! command -v apt-get >/dev/null || [ "$(id -u)" != 0 ]; then
        echo "tls-dockerd.sh: openssl is not installed" >&2; exit 1
      fi
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q openssl >/dev/null ||
        { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q openssl >/dev/null; }
    fi
    mkdir -p "$dir"
    certs
    # Short paths: exec-root holds containerd's socket (108-byte sun_path limit).
    exec_root=$dir/x
    mkdir -p "$dir/data" "$exec_root"
    nohup dockerd \
      --data-root "$dir/data" --exec-root "$exec_root" --pidfile "$dir/dockerd.pid" \
      -H "unix://$dir/docker.sock" -H "tcp://127.0.0.1:$port" \
      --tlsverify --tlscacert "$dir/certs/ca.pem" \
      --tlscert "$dir/certs/server-cert.pem" --tlskey "$dir/certs/server-key.pem" \
      --bridge=none --iptables=false --ip6tables=false \
      >"$dir/dockerd.log" 2>&1 &
    echo $! >"$dir/started.pid"
    # Ready once it serves the TLS port (dockerd logs it after initialising).
    for _ in $(seq 1 300); do
      if grep -q "API listen on 127.0.0.1:$port" "$dir/dockerd.log" 2>/dev/null && [ -S "$dir/docker.sock" ]; then
        printf 'BOTTLE_TLS_DOCKER_HOST=tcp://127.0.0.1:%s\nBOTTLE_TLS_DOCKER_CERTS=%s\n' \
          "$port" "$dir/certs" >"$dir/env"
        exit 0
      fi
      if ! kill -0 "$(cat "$dir/started.pid")" 2>/dev/null; then break; fi
      sleep 0.2
    done
    echo "tls-dockerd.sh: the second dockerd did not come up; log:" >&2
    tail -20 "$dir/dockerd.log" >&2
    "$0" stop "$dir" || true
    exit 1
    ;;
  stop)
    f=$dir/started.pid
    [ -f "$f" ] || exit 0
    pid=$(cat "$f")
    # Only the process this script started, and only while it is still dockerd.
    if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "dockerd --data-root $dir/data"; then
      kill "$pid"
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    fi
    rm -f "$f"
    ;;
  *) echo "usage: tls-dockerd.sh start DIR PORT | stop DIR" >&2; exit 2 ;;
esac
