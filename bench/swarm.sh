#!/usr/bin/env bash
# Swarming: one node holds a file and four others fetch it at the same time.
# Prints the time until all four have it (each verified byte-identical), and
# how many bytes the holder served, beside libtorrent's 17–21 s for 1 GiB
# from one seeder to four leechers on this machine (the issue's bar).
#
#   bench/swarm.sh [SIZE]     default 1G
#
# How "one holder" is made with kith's placement (n shares on n distinct
# peers): the holder H and a helper X are the whole network; H puts the file
# as 1-of-2, so every stripe has one share on each, and either share alone
# rebuilds it. X is then stopped, so H holds the only copy of everything.
# H runs with `repair = false`, so that it serves the fetchers instead of
# rebuilding X's shares on them. Four fetchers join through H and all run
# `kith get` at once; each caches what it fetched and announces itself as a
# provider, so later fetchers may draw from earlier ones.
#
# Bytes served: what H's TCP sockets sent during the gets — the sum of
# `bytes_acked` (from `ss -tinp`) over H's connections at the end, less the
# same sum at the start (the fetchers' connections to H stay open, idle
# ones close only after 60 s). Shares, plus a little control traffic.
#
# Environment: CARGO_TARGET_DIR (default target/).
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
size=${1:-1G}
cargo build --release -q -p kith-cli
kith=$CARGO_TARGET_DIR/release/kith
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME [ARGS...]: runs `kith up` in $work/NAME, waits for its API,
# records its pid in $work/NAME.pid.
start() {
    local name=$1
    shift
    mkdir -p "$work/$name"
    "$kith" --dir "$work/$name" up --no-mdns --listen /ip4/127.0.0.1/tcp/0 "$@" \
        >"$work/$name.out" 2>"$work/$name.log" &
    pids+=($!)
    echo $! >"$work/$name.pid"
    local waited=0
    until grep -q '^api on ' "$work/$name.out" 2>/dev/null; do
        sleep 0.1
        waited=$((waited + 1))
        [ "$waited" -lt 300 ] || { echo "kith up $name did not start" >&2; exit 1; }
    done
}
# sent_by PID: bytes acknowledged on PID's established TCP connections.
sent_by() {
    ss -tinpH state established 2>/dev/null | awk -v pid="pid=$1," '
        index($0, pid) { mine = 1; next }
        mine { if (match($0, /bytes_acked:[0-9]+/)) sum += substr($0, RSTART + 12, RLENGTH - 12); mine = 0 }
        END { printf "%.0f\n", sum }'
}
addr() { grep -m1 '^listening on ' "$work/$1.out" | cut -d' ' -f3; }
peers() { "$kith" --dir "$work/$1" peers | wc -l; }
wait_peers() {
    local waited=0
    until [ "$(peers "$1")" -ge "$2" ]; do
        sleep 0.2
        waited=$((waited + 1))
        [ "$waited" -lt 300 ] || { echo "$1 did not find $2 peers" >&2; exit 1; }
    done
}

echo "== making a $size file" >&2
head -c "$size" /dev/urandom >"$work/file"
bytes=$(stat -c %s "$work/file")

mkdir -p "$work/h"
echo 'repair = false' >"$work/h/config.toml"
start h
start x --bootstrap "$(addr h)"
wait_peers h 1
echo "== H puts it as 1-of-2 (one share of every stripe on H, one on X)" >&2
cap=$("$kith" --dir "$work/h" put --shares 1/2 "$work/file" 2>/dev/null)
kill "$(cat "$work/x.pid")"
wait "$(cat "$work/x.pid")" 2>/dev/null || true

for f in 1 2 3 4; do start "f$f" --bootstrap "$(addr h)"; done
for f in 1 2 3 4; do wait_peers "f$f" 1; done
wait_peers h 4

h_pid=$(cat "$work/h.pid")
served_before=$(sent_by "$h_pid")
echo "== four fetchers get it at once" >&2
start_ns=$(date +%s%N)
gets=()
for f in 1 2 3 4; do
    (
        "$kith" --dir "$work/f$f" get "$cap" -o "$work/out$f" 2>"$work/get$f.err"
        echo $(( ($(date +%s%N) - start_ns) / 1000000 )) >"$work/done$f"
    ) &
    gets+=($!)
done
for g in "${gets[@]}"; do wait "$g"; done
total_ms=$(( ($(date +%s%N) - start_ns) / 1000000 ))
served=$(( $(sent_by "$h_pid") - served_before ))

for f in 1 2 3 4; do
    cmp -s "$work/file" "$work/out$f" || { echo "fetcher $f got different bytes" >&2; exit 1; }
done

echo
echo "Machine: $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), $(nproc) CPUs; commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'); load $(cut -d' ' -f1-3 /proc/loadavg)."
echo
echo "| figure | value | bar | ratio |"
echo "|---|---:|---|---:|"
# The bar: libtorrent's 17–21 s per GiB, its middle scaled to this size.
bar_s=$(awk -v b="$bytes" 'BEGIN { printf "%.1f", 19 * b / 2^30 }')
printf '| 1 holder, 4 fetchers of %s: all four verified | %.1f s | libtorrent 17–21 s per GiB: %s s | %s |\n' \
    "$size" "$(awk -v ms="$total_ms" 'BEGIN { print ms / 1000 }')" "$bar_s" \
    "$(awk -v ms="$total_ms" -v bar="$bar_s" 'BEGIN { printf "%.2f", bar * 1000 / ms }')"
for f in 1 2 3 4; do
    printf '| fetcher %s done after | %.1f s | – | – |\n' "$f" "$(awk -v ms="$(cat "$work/done$f")" 'BEGIN { print ms / 1000 }')"
done
printf '| bytes the holder served | %.2f GiB = %.2f × the file | 1 × the file (perfect swarming); 4 × (none) | – |\n' \
    "$(awk -v b="$served" 'BEGIN { print b / 2^30 }')" \
    "$(awk -v b="$served" -v f="$bytes" 'BEGIN { print b / f }')"
