#!/usr/bin/env bash
# Swarming: one node holds a file and four others fetch it at the same time.
# Prints the time until all four have it (each verified byte-identical), and
# how many bytes the holder served, beside libtorrent doing the same with
# the same file on the same machine in the same run (bench/libtorrent-swarm.py;
# needs Debian's python3-libtorrent, else the row says so) — the issue's bar
# was libtorrent's 17–21 s per GiB on the machine it was written on.
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
# Bytes served: the share bytes H's share server sent during the gets, from
# its counters (`kith status --json`: bytes_served, and the requests it sent
# on to a fetcher that had just got the share, swarm_redirects).
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
# counter NODE NAME: one of NODE's `kith status --json` counters.
counter() {
    "$kith" --dir "$work/$1" status --json | python3 -c "import json, sys; print(json.load(sys.stdin)['$2'])"
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

served_before=$(counter h bytes_served)
redirects_before=$(counter h swarm_redirects)
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
served=$(( $(counter h bytes_served) - served_before ))
redirects=$(( $(counter h swarm_redirects) - redirects_before ))
from_memory=0
for f in 1 2 3 4; do from_memory=$(( from_memory + $(counter "f$f" served_from_memory) )); done

for f in 1 2 3 4; do
    cmp -s "$work/file" "$work/out$f" || { echo "fetcher $f got different bytes" >&2; exit 1; }
done

# The same with libtorrent, on the same file, now that kith's nodes are idle.
lt_s="" lt_bytes=""
if /usr/bin/python3 -c 'import libtorrent' 2>/dev/null; then
    echo "== libtorrent: one seeder, four leechers, the same file" >&2
    lt_out=$(/usr/bin/python3 bench/libtorrent-swarm.py "$work/file")
    lt_s=$(awk '/^libtorrent_seconds/ { print $2 }' <<<"$lt_out")
    lt_bytes=$(awk '/^libtorrent_seeder_bytes/ { print $2 }' <<<"$lt_out")
fi

echo
echo "Machine: $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), $(nproc) CPUs; commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'); load $(cut -d' ' -f1-3 /proc/loadavg)."
echo
echo "| figure | kith | libtorrent, same run | ratio (libtorrent / kith) |"
echo "|---|---:|---:|---:|"
kith_s=$(awk -v ms="$total_ms" 'BEGIN { printf "%.1f", ms / 1000 }')
if [ -n "$lt_s" ]; then
    printf '| 1 holder, 4 fetchers of %s: all four verified | %s s | %s s | %s |\n' \
        "$size" "$kith_s" "$lt_s" "$(awk -v k="$kith_s" -v l="$lt_s" 'BEGIN { printf "%.2f", l / k }')"
else
    printf '| 1 holder, 4 fetchers of %s: all four verified | %s s | not measured (no python3-libtorrent) | – |\n' "$size" "$kith_s"
fi
for f in 1 2 3 4; do
    printf '| fetcher %s done after | %.1f s | – | – |\n' "$f" "$(awk -v ms="$(cat "$work/done$f")" 'BEGIN { print ms / 1000 }')"
done
times() { awk -v b="$1" -v f="$bytes" 'BEGIN { printf "%.2f", b / f }'; }
printf '| bytes the holder served, × the file (1 = perfect swarming, 4 = none) | %s | %s | – |\n' \
    "$(times "$served")" "$([ -n "$lt_bytes" ] && times "$lt_bytes" || echo –)"
printf '| requests the holder sent to a fetcher that had just got the share | %s | – | – |\n' "$redirects"
printf '| shares fetchers passed on from memory | %s | – | – |\n' "$from_memory"
