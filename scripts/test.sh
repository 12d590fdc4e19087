#!/usr/bin/env bash
# The whole test run, as CI does it, on a fresh Debian/Ubuntu machine (as root):
# installs and starts Docker and Podman where missing, checks formatting and
# lints, then runs every test against every engine in BOTTLE_TEST_RUNTIMES
# (default: docker,podman; containerd is a third one there can name).
set -euo pipefail
cd "$(dirname "$0")/.."

export BOTTLE_TEST_RUNTIMES=${BOTTLE_TEST_RUNTIMES:-docker,podman}
IFS=, read -r -a engines <<<"$BOTTLE_TEST_RUNTIMES"
scripts/engines.sh "${engines[@]}"
export CONTAINERS_CONF=${CONTAINERS_CONF:-/var/tmp/bottle-engines/containers.conf}
# containerd: the socket engines.sh found or started (its own, when none
# answered), unless the caller named one.
if [ -z "${CONTAINERD_ADDRESS:-}" ] && [ -s /var/tmp/bottle-engines/containerd.address ]; then
  CONTAINERD_ADDRESS=$(cat /var/tmp/bottle-engines/containerd.address)
  export CONTAINERD_ADDRESS
fi

echo "== rustfmt" >&2
cargo fmt --all --check
echo "== clippy" >&2
cargo clippy --workspace --all-targets -- -D warnings
echo "== rustdoc" >&2
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
# Examples are built (and so checked) by `cargo test` below.
echo "== tests (engines: $BOTTLE_TEST_RUNTIMES)" >&2
cargo test --workspace --no-fail-fast
echo "== fuzz (manifest parsing, validation, rendering; ${BOTTLE_FUZZ_SECONDS:=60} s)" >&2
BOTTLE_FUZZ_SECONDS=$BOTTLE_FUZZ_SECONDS scripts/fuzz.sh
