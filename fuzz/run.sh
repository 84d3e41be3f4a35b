#!/usr/bin/env bash
# Builds and runs every fuzz target for SECONDS each; fails on any crash.
#
#   bash fuzz/run.sh SECONDS [TARGET...]   run all (or the named) targets
#   bash fuzz/run.sh --seeds               rewrite corpus/<target>/ seeds
#
# Works on the stable toolchain. With `cargo fuzz` installed it builds with
# `RUSTC_BOOTSTRAP=1 cargo fuzz build`; otherwise (what CI does: nothing to
# install) plain cargo with the flags cargo-fuzz sets: SanitizerCoverage
# (inline 8-bit counters, PC table, compare tracing), --cfg fuzzing, debug
# assertions and overflow checks (from Cargo.toml's profile, off for the
# crypto crates: see there), release, and --target so build scripts stay
# uninstrumented.
# Set KITH_FUZZ_CARGO_FUZZ=1 to prefer cargo-fuzz when it is installed.
#
# Each target runs on a scratch copy of its checked-in seeds (corpus/<t>/),
# so the repository's corpora stay small; crashes land in artifacts/<t>/.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
triple="$(rustc -vV | sed -n 's/^host: //p')"
targets_all=$(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v -e '^kith-fuzz$' -e '^write_seeds$')

build() {
    if [[ "${KITH_FUZZ_CARGO_FUZZ:-0}" == 1 ]] && cargo fuzz --version >/dev/null 2>&1; then
        RUSTC_BOOTSTRAP=1 cargo fuzz build -O --debug-assertions
        bin_dir="$here/target/$triple/release"
    else
        RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing" \
            cargo build --release --locked --target "$triple" --bins
        bin_dir="$here/target/$triple/release"
    fi
}

if [[ "${1:-}" == "--seeds" ]]; then
    build
    "$bin_dir/write_seeds" -runs=1 -artifact_prefix="$(mktemp -d)/" >/dev/null 2>&1
    du -sh corpus/*
    exit 0
fi

seconds="${1:?usage: run.sh SECONDS [TARGET...] | run.sh --seeds}"
shift
targets="${*:-$targets_all}"

start=$(date +%s)
build
echo "built in $(($(date +%s) - start)) s"

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
failed=0
table="$(printf '%-18s %12s %8s %8s %8s  %s' target execs exec/s cov ft result)"
for target in $targets; do
    mkdir -p "$scratch/$target" "artifacts/$target" "corpus/$target"
    log="$scratch/$target.log"
    status=0
    "$bin_dir/$target" "$scratch/$target" "corpus/$target" \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
        -artifact_prefix="artifacts/$target/" -print_final_stats=1 \
        >"$log" 2>&1 || status=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    if [[ $status -eq 0 ]]; then
        result=ok
    else
        result="CRASH (exit $status, see artifacts/$target/)"
        failed=1
        tail -40 "$log" >&2
    fi
    table+=$'\n'"$(printf '%-18s %12s %8s %8s %8s  %s' "$target" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$result")"
done
echo "$table"
echo "total $(($(date +%s) - start)) s"
exit $failed
