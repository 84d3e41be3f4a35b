#!/usr/bin/env bash
# Measures `kith up`: time from process start to its first "listening on"
# line, and its resident memory once idle. Prints a table.
#
#   bench/up.sh [RUNS]        (builds kith in release first)
#
# Targets from the network issue: listening within 200 ms, idle RSS ≤ 40 MiB.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
cargo build --release -q -p kith-cli
kith=${CARGO_TARGET_DIR:-target}/release/kith
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

ms_now() { echo $(( $(date +%s%N) / 1000000 )); }

starts=()
rss=()
for i in $(seq 1 "$runs"); do
    dir="$work/node$i"
    "$kith" --dir "$dir" init >/dev/null 2>&1   # identity creation is not start-up
    fifo="$work/out$i"
    mkfifo "$fifo"
    t0=$(ms_now)
    "$kith" --dir "$dir" up --no-mdns --listen /ip4/127.0.0.1/tcp/0 >"$fifo" 2>/dev/null &
    pid=$!
    # Hold the read end open for the node's whole life: closing it would end
    # the node with a broken pipe at its next line of output.
    exec 3<"$fifo"
    while read -r line <&3; do
        case "$line" in "listening on"*) break ;; esac
    done
    t1=$(ms_now)
    starts+=($((t1 - t0)))
    cat <&3 >/dev/null &
    # Idle: let start-up work settle, then read the resident set.
    for _ in $(seq 1 30); do sleep 0.1; done
    rss+=($(awk '/VmRSS/ { print $2 }' "/proc/$pid/status"))
    kill "$pid"; wait "$pid" 2>/dev/null || true
    exec 3<&-
done

sorted_starts=$(printf '%s\n' "${starts[@]}" | sort -n)
sorted_rss=$(printf '%s\n' "${rss[@]}" | sort -n)
median() { awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
printf '| figure | median | all runs | target |\n|---|---|---|---|\n'
printf '| kith up: start to listening | %s ms | %s | ≤ 200 ms |\n' \
    "$(median <<<"$sorted_starts")" "$(echo $sorted_starts | tr ' ' ',')"
printf '| kith up: idle RSS | %s MiB | %s KiB | ≤ 40 MiB |\n' \
    "$(( $(median <<<"$sorted_rss") / 1024 ))" "$(echo $sorted_rss | tr ' ' ',')"
