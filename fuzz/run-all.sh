#!/usr/bin/env bash
# Run every cargo-fuzz target briefly, starting from the committed seed corpus.
#
#   fuzz/run-all.sh [SECONDS_PER_TARGET]        (default 20; or FUZZ_SECONDS)
#
# Works on the stable toolchain: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z flags. No
# sanitizer by default: the targets are safe Rust over the library, and without one they run
# 5-25 times more executions in the same time (tx_model: ~2,500/s instead of ~100/s);
# FUZZ_SANITIZER=address runs them under the address sanitizer. If cargo-fuzz is missing it is
# installed into the project's own .ci/tools (ignored by git, kept between runs, put first on
# PATH), never into the user's home. New inputs go to a temporary directory, so the repository's
# corpus stays the seeds.
# A target that crashes fails the run; libFuzzer saves the input under fuzz/artifacts/TARGET/.
# Prints one line per target with its execution count, then "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")"

seconds="${1:-${FUZZ_SECONDS:-20}}"
sanitizer="${FUZZ_SANITIZER:-none}"
export RUSTC_BOOTSTRAP=1

tools="$(cd .. && pwd)/.ci/tools"
export PATH="$tools/bin:$PATH"
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz into $tools (once; later runs reuse it)"
    cargo install --root "$tools" cargo-fuzz --locked
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/rvm-fuzz.XXXXXX")"
trap 'rm -rf "$work"' EXIT

cargo fuzz build -O --sanitizer "$sanitizer"

passed=0
failed=0
for target in $(cargo fuzz list); do
    mkdir -p "corpus/$target" "$work/$target"
    log="$work/$target.log"
    if cargo fuzz run -O --sanitizer "$sanitizer" "$target" "$work/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -max_len=8192 -print_final_stats=1 \
        >"$log" 2>&1; then
        runs="$(grep -o 'Done [0-9]* runs' "$log" | tail -1 | grep -o '[0-9]*' || echo '?')"
        echo "fuzz $target: $runs executions in ${seconds}s, no crash"
        passed=$((passed + 1))
    else
        echo "fuzz $target: FAILED (input saved under fuzz/artifacts/$target/)"
        tail -n 60 "$log"
        failed=$((failed + 1))
    fi
done

echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
