#!/bin/sh
# Fuzz manifest parsing + validation + rendering for a bounded time.
#   BOTTLE_FUZZ_SECONDS  total fuzzing time (default 120)
# Installs cargo-fuzz when missing; runs on the stable toolchain. Afterwards every corpus
# entry that validates is judged by the real `ssh -G` (a sample of up to
# BOTTLE_FUZZ_SSH_SAMPLES, default 200) through the oracle test.
set -eu
root="$(cd "$(dirname "$0")/.." && pwd)"
seconds="${BOTTLE_FUZZ_SECONDS:-120}"
cd "$root/fuzz"

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
ssh-keygen -q -t ed25519 -N '' -C fuzz -f "$work/id_ed25519"
export BOTTLE_FUZZ_KEY="$work/id_ed25519"

# The toolchain every machine has (stable) with RUSTC_BOOTSTRAP=1 for
# cargo-fuzz's -Z flags, so a fresh machine needs no nightly. No sanitizer:
# the code under test has no `unsafe`; what we look for is panics and oracle
# failures, which libFuzzer reports without one.
export RUSTC_BOOTSTRAP=1
# A private copy of the seed corpus, so runs do not grow the checkout.
mkdir -p "$work/corpus"
cp "$root/fuzz/corpus/manifest/"* "$work/corpus/"
cargo fuzz run --sanitizer none manifest "$work/corpus" -- \
  -max_total_time="$seconds" -max_len=4096 -timeout=10 -print_final_stats=1

# The real OpenSSH client on a sample of what the fuzzer found.
export BOTTLE_ORACLE_CORPUS="$work/corpus"
export BOTTLE_ORACLE_CASES="${BOTTLE_ORACLE_CASES:-50}"
cd "$root"
cargo test -q -p bottle-ssh --test oracle
echo "fuzz: ${seconds}s of fuzzing, no crash; corpus judged by ssh -G"
