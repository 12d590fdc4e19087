#!/usr/bin/env bash
# Fuzz manifest parsing + validation + rendering for a bounded time.
#   BOTTLE_FUZZ_SECONDS  total fuzzing time (default 120)
# Needs cargo-fuzz and a nightly toolchain (`cargo +nightly fuzz`); without a
# nightly it retries with RUSTC_BOOTSTRAP=1 on stable. Afterwards every corpus
# entry that validates is judged by the real `ssh -G` (a sample of up to
# BOTTLE_FUZZ_SSH_SAMPLES, default 200) through the oracle test.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
seconds="${BOTTLE_FUZZ_SECONDS:-120}"
cd "$root/fuzz"

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
ssh-keygen -q -t ed25519 -N '' -C fuzz -f "$work/id_ed25519"
export BOTTLE_FUZZ_KEY="$work/id_ed25519"

if rustup toolchain list | grep -q '^nightly'; then
  fuzz=(cargo +nightly fuzz)
else
  export RUSTC_BOOTSTRAP=1
  fuzz=(cargo fuzz)
fi

# A private copy of the seed corpus, so runs do not grow the checkout.
mkdir -p "$work/corpus"
cp "$root/fuzz/corpus/manifest/"* "$work/corpus/"
"${fuzz[@]}" run manifest "$work/corpus" -- \
  -max_total_time="$seconds" -max_len=4096 -timeout=10 -print_final_stats=1

# The real OpenSSH client on a sample of what the fuzzer found.
export BOTTLE_ORACLE_CORPUS="$work/corpus"
export BOTTLE_ORACLE_CASES="${BOTTLE_ORACLE_CASES:-50}"
cd "$root"
cargo test -q -p bottle-ssh --test oracle
echo "fuzz: ${seconds}s of fuzzing, no crash; corpus judged by ssh -G"
