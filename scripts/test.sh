#!/bin/sh
# The whole test run, as CI does it, on a fresh Debian/Ubuntu machine (as root):
# installs and starts Docker and Podman where missing, checks formatting and
# lints, then runs every test against every engine in BOTTLE_TEST_RUNTIMES
# (default: docker,podman), and the suites that prove the third engine on
# containerd: conformance, the CLI's provision/verify/deprovision, ssh_e2e,
# sidecar and watch (BOTTLE_TEST_CONTAINERD=0 leaves them out; naming
# containerd in BOTTLE_TEST_RUNTIMES runs the whole matrix on it instead).
set -eu
cd "$(dirname "$0")/.."

state=${BOTTLE_ENGINE_STATE:-/var/tmp/bottle-engines}
export BOTTLE_TEST_RUNTIMES="${BOTTLE_TEST_RUNTIMES:-docker,podman}"
# Engine names: one word each.
engines=$(printf '%s' "$BOTTLE_TEST_RUNTIMES" | tr ',' ' ')
containerd_suites=0
case ",$BOTTLE_TEST_RUNTIMES," in
  *,containerd,*) ;;
  *) if [ "${BOTTLE_TEST_CONTAINERD:-1}" != 0 ]; then containerd_suites=1; engines="$engines containerd"; fi ;;
esac

# A containerd engines.sh starts for this run (none answered) is stopped
# when the run ends, by the pid it recorded and only if that pid still runs
# the containerd of our own config.
rm -f "$state/containerd.started"
stop_started_containerd() {
  pid=$(cat "$state/containerd.started" 2>/dev/null) || return 0
  rm -f "$state/containerd.started"
  case $pid in ''|*[!0-9]*) return 0 ;; esac
  tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q -- "containerd --config $state/containerd/config.toml" || return 0
  echo "== stopping the containerd this run started (pid $pid)" >&2
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
}
trap stop_started_containerd EXIT

# shellcheck disable=SC2086 # one word per engine
scripts/engines.sh $engines
export CONTAINERS_CONF="${CONTAINERS_CONF:-$state/containers.conf}"
# containerd: the socket engines.sh found or started (its own, when none
# answered), unless the caller named one.
if [ -z "${CONTAINERD_ADDRESS:-}" ] && [ -s "$state/containerd.address" ]; then
  CONTAINERD_ADDRESS=$(cat "$state/containerd.address")
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
status=0
# The ssh -G oracle at full strength (its default is quicker for a dev loop).
BOTTLE_ORACLE_CASES=${BOTTLE_ORACLE_CASES:-400} cargo test --workspace --no-fail-fast || status=$?
if [ "$containerd_suites" = 1 ]; then
  # Not the whole matrix (about as long again as one engine's): the suites
  # that prove the engine, each check once, on the debian image. Under
  # CI=true an unreachable containerd fails them.
  # The attacks as the user (guard, hostile_user) run on it too.
  echo "== tests on containerd (conformance, provision/verify/deprovision, ssh_e2e, sidecar, watch, guard, hostile_user)" >&2
  BOTTLE_TEST_RUNTIMES=containerd cargo test -p bottle-integration-tests --no-fail-fast \
    --test conformance --test ssh_e2e --test sidecar --test watch --test guard --test hostile_user \
    -- containerd || status=$?
  # The CLI's provision/verify/deprovision, and containerd's own bad input.
  BOTTLE_TEST_RUNTIMES=containerd cargo test -p bottle-integration-tests --no-fail-fast \
    --test cli_bottlectl --test faults \
    -- containerd::debian::check_provision_verify_deprovision_json containerd_only:: || status=$?
fi
[ "$status" = 0 ] || exit "$status"
echo "== fuzz (manifest parsing, validation, rendering; ${BOTTLE_FUZZ_SECONDS:=60} s)" >&2
BOTTLE_FUZZ_SECONDS=$BOTTLE_FUZZ_SECONDS scripts/fuzz.sh
