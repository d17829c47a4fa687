#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/) on stable Rust and runs each for SECONDS.
#
#   scripts/fuzz.sh SECONDS [TARGET...]     (no TARGET: every target in fuzz/fuzz_targets/)
#
# No cargo-fuzz and no nightly: libfuzzer-sys needs only sanitizer-coverage instrumentation,
# which stable rustc emits with the flags below (cargo-fuzz's, less its -Zsanitizer=address;
# Rust code is memory-safe without it, and overflow checks and debug assertions are on).
# libFuzzer itself is C++, compiled by libfuzzer-sys's build script: a C++ compiler is needed.
#
# Each target starts from fuzz/seeds/<t>, fuzz/regressions/<t> and fuzz/corpus/<t> (new
# units go there; git-ignored). A crash stops that target and fails the run: its input is
# written to fuzz/artifacts/<t>/ and printed here in base64, so a CI log is enough to
# reproduce it (`base64 -d > crash; fuzz/target/<triple>/release/<t> crash`). Once fixed,
# the input goes to fuzz/regressions/<t>/, which `cargo test --test fuzz_corpus` replays.
# FUZZ_ARGS adds libFuzzer flags (after ours, so they win), e.g. FUZZ_ARGS=-max_len=65536.
# The build uses its own target directory, fuzz/target (git-ignored; about 2 GB).
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:?usage: scripts/fuzz.sh SECONDS [TARGET...]}
shift
if [ $# -gt 0 ]; then
    targets=("$@")
else
    targets=()
    for f in fuzz/fuzz_targets/*.rs; do targets+=("$(basename "$f" .rs)"); done
fi

missing=()
command -v cargo >/dev/null || missing+=("cargo (Rust)")
command -v "${CXX:-c++}" >/dev/null || missing+=("a C++ compiler (${CXX:-c++}; libfuzzer-sys compiles libFuzzer: apt-get install g++)")
command -v base64 >/dev/null || missing+=("base64 (coreutils)")
if [ ${#missing[@]} -gt 0 ]; then
    printf 'fuzz: missing: %s\n' "${missing[@]}" >&2
    exit 2
fi

triple=$(rustc -vV | sed -n 's/^host: //p')
# --target keeps these flags off build scripts and proc macros (as cargo-fuzz does).
export RUSTFLAGS="-Cpasses=sancov-module \
-Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares \
-Cllvm-args=-sanitizer-coverage-stack-depth \
-Cllvm-args=-simplifycfg-branch-fold-threshold=0 \
--cfg fuzzing -Cdebug-assertions -Coverflow-checks"
export CARGO_TARGET_DIR=fuzz/target

start=$(date +%s)
cargo build --release --manifest-path fuzz/Cargo.toml --target "$triple" --bins
echo "fuzz: build took $(($(date +%s) - start)) s"

failed=()
total=0
for t in "${targets[@]}"; do
    bin=fuzz/target/$triple/release/$t
    [ -x "$bin" ] || { echo "fuzz: no binary for target '$t'" >&2; exit 2; }
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    dirs=("fuzz/corpus/$t" "fuzz/seeds/$t")
    [ -d "fuzz/regressions/$t" ] && dirs+=("fuzz/regressions/$t")
    log=fuzz/target/$t.log
    rc=0
    "$bin" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        -artifact_prefix="fuzz/artifacts/$t/" ${FUZZ_ARGS:-} "${dirs[@]}" >"$log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]* ft: [0-9]* corp: [0-9]*/[^ ]*' "$log" | tail -1 || true)
    total=$((total + ${execs:-0}))
    printf 'fuzz: %-14s %12s execs %8s/s  %s\n' "$t" "${execs:-?}" "${rate:-?}" "${cov:-no coverage line}"
    if [ "$rc" -ne 0 ]; then
        failed+=("$t")
        echo "---- $t failed (exit $rc); the end of its log ($log):"
        grep -v -e '^#[0-9]' -e 'NEW_FUNC' "$log" | tail -40
        for a in $(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log"); do
            echo "---- crashing input: $a ($(wc -c <"$a") bytes), base64:"
            base64 -w0 "$a"
            echo
        done
    elif ! [[ "$cov" =~ cov:\ [1-9] ]]; then
        # No coverage means no instrumentation: libFuzzer would just be random testing.
        failed+=("$t")
        echo "---- $t reported no coverage: the sanitizer-coverage flags did not take effect"
        tail -20 "$log"
    fi
done
echo "fuzz: ${#targets[@]} targets, $total executions in total, $secs s each"
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: FAILED: ${failed[*]}" >&2
    exit 1
fi
