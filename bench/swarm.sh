#!/usr/bin/env bash
# Swarming: one node holds a file and four others fetch it at the same time.
# Prints the time until all four have it (each verified byte-identical), and
# how many bytes the holder served, beside libtorrent doing the same with
# the same file on the same machine in the same run (bench/libtorrent-swarm.py;
# bench/anchors.sh installs libtorrent's Python binding when missing, else
# the row says so) — the issue's bar
# was libtorrent's 17–21 s per GiB on the machine it was written on.
#
#   bench/swarm.sh [SIZE]                  default 1G, all on 127.0.0.1
#   UPLINK=200mbit bench/swarm.sh 256M     the holder's uplink limited (root)
#
# With UPLINK, every node (and every libtorrent session) runs in a network
# namespace of its own on a bridge (10.77.0.0/24), and the holder's egress
# is shaped to UPLINK by a token bucket (tc tbf), set after the put: the
# case swarming is for, where the holder's uplink and not the CPU is the
# limit. Without swarming the four fetchers need 4 × SIZE through it.
#
# How "one holder" is made with kith's placement (n shares on n distinct
# peers): the holder H and a helper X are the whole network; H puts the file
# as 1-of-2, so every stripe has one share on each, and either share alone
# rebuilds it. X is then stopped, so H holds the only copy of everything.
# H runs with `repair = false`, so that it serves the fetchers instead of
# rebuilding X's shares on them. Four fetchers join through H and all run
# `kith get` at once; each caches what it fetched and announces itself as a
# provider, so later fetchers may draw from earlier ones. That takes two
# rounds, each with four fresh fetchers, H restarted in between: first
# `kith get --no-cache` (the fetchers serve each other from memory while
# they download but keep nothing: each writes every byte once, as
# libtorrent's leechers do), then a plain `kith get` (each byte written
# twice: the output, and the shares the fetcher keeps to serve later
# downloaders). The main row is the plain one.
#
# Memory: this VM hands memory freed by the guest back to its host
# (virtio-balloon free page reporting), and a process that writes into
# pages the host took back runs up to twice as slow as one that reuses
# pages freed moments ago: libtorrent's swarm of 1 GiB took 14.0 s after
# 8 GiB of fresh page cache had been taken, 7.0 s right after 8 GiB were
# freed. Whoever ran after another contender deleted its copies had the
# edge. So each contender starts the same way: PRIME bytes (default 8 ×
# SIZE, at most half the memory available and half the free disk;
# PRIME=0 for none, PRIME=4G for 4 GiB) are written
# to a file and deleted just before its timer starts.
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
uplink=${UPLINK:-}
hosts=(h x u1 u2 u3 u4 f1 f2 f3 f4)
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ -n "$uplink" ]; then
        for host in sw "${hosts[@]}"; do ip netns del "ksw-$host" 2>/dev/null || true; done
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ip_of NAME: the address host NAME listens on.
ip_of() {
    if [ -z "$uplink" ]; then echo 127.0.0.1; return; fi
    local i
    for i in "${!hosts[@]}"; do
        if [ "${hosts[$i]}" = "$1" ]; then echo "10.77.0.$((i + 1))"; return; fi
    done
}
# on NAME CMD...: runs CMD on host NAME (in its namespace with UPLINK).
on() {
    local name=$1
    shift
    if [ -n "$uplink" ]; then ip netns exec "ksw-$name" "$@"; else "$@"; fi
}
if [ -n "$uplink" ]; then
    [ "$(id -u)" = 0 ] || { echo "UPLINK needs root (network namespaces)" >&2; exit 1; }
    ip netns add ksw-sw
    ip -n ksw-sw link add br0 type bridge
    ip -n ksw-sw link set br0 up
    for i in "${!hosts[@]}"; do
        host=${hosts[$i]}
        ip netns add "ksw-$host"
        ip -n "ksw-$host" link set lo up
        ip link add "ksw-$host" netns ksw-sw type veth peer name eth0 netns "ksw-$host"
        ip -n ksw-sw link set "ksw-$host" master br0 up
        ip -n "ksw-$host" addr add "10.77.0.$((i + 1))/24" dev eth0
        ip -n "ksw-$host" link set eth0 up
    done
fi

# start NAME [ARGS...]: runs `kith up` in $work/NAME, waits for its API,
# records its pid in $work/NAME.pid.
start() {
    local name=$1
    shift
    mkdir -p "$work/$name"
    # Not through `on`: a function run with & is a subshell, and $! would
    # be its pid, not the node's.
    local netns=()
    [ -z "$uplink" ] || netns=(ip netns exec "ksw-$name")
    "${netns[@]}" "$kith" --dir "$work/$name" up --no-mdns --listen "/ip4/$(ip_of "$name")/tcp/0" "$@" \
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
    on "$1" "$kith" --dir "$work/$1" status --json | python3 -c "import json, sys; print(json.load(sys.stdin)['$2'])"
}
addr() { grep -m1 '^listening on ' "$work/$1.out" | cut -d' ' -f3; }
peers() { on "$1" "$kith" --dir "$work/$1" peers | wc -l; }
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
available=$(awk '/^MemAvailable/ { printf "%d", $2 * 1024 }' /proc/meminfo)
# Within half the free disk too (the prime file is written next to the
# fetchers' copies, which need 8 × SIZE at most, and removed at once).
disk_free=$(df --output=avail -B1 "$work" | tail -1)
prime_bytes=$(( bytes * 8 ))
[ "$prime_bytes" -lt $(( available / 2 )) ] || prime_bytes=$(( available / 2 ))
[ "$prime_bytes" -lt $(( disk_free / 2 - bytes * 8 )) ] || prime_bytes=$(( disk_free / 2 - bytes * 8 ))
[ "$prime_bytes" -gt 0 ] || prime_bytes=0
[ -z "${PRIME:-}" ] || prime_bytes=$(numfmt --from=iec "$PRIME")
# prime: writes prime_bytes to a file and deletes it (see "Memory" above).
prime() {
    [ "$prime_bytes" -gt 0 ] || return 0
    head -c "$prime_bytes" /dev/zero >"$work/prime"
    rm -f "$work/prime"
}

mkdir -p "$work/h"
echo 'repair = false' >"$work/h/config.toml"
start h
start x --bootstrap "$(addr h)"
wait_peers h 1
echo "== H puts it as 1-of-2 (one share of every stripe on H, one on X)" >&2
cap=$(on h "$kith" --dir "$work/h" put --shares 1/2 "$work/file" 2>/dev/null)
kill "$(cat "$work/x.pid")"
wait "$(cat "$work/x.pid")" 2>/dev/null || true
[ "$(peers h)" -eq 0 ] || { echo "the helper is still up" >&2; exit 1; }

if [ -n "$uplink" ]; then
    echo "== the holder's uplink: $uplink" >&2
    tc -n ksw-h qdisc add dev eth0 root tbf rate "$uplink" burst 256kb latency 100ms
fi
# stop NAME: stops node NAME (already gone is fine) and waits for it.
stop() {
    kill "$(cat "$work/$1.pid")" 2>/dev/null || true
    wait "$(cat "$work/$1.pid")" 2>/dev/null || true
}

# round PREFIX [GET FLAGS...]: H is restarted (so that every round starts
# from one holder that remembers no recipients and no peers), then four
# fresh fetchers PREFIX1..PREFIX4 join through H and all run `kith get` at
# once, and are stopped. Sets ms, served, redirects, from_memory, in_vain
# and done_ms (per fetcher) for the round.
round() {
    local prefix=$1 f g
    shift
    stop h
    rm -f "$work/h.out" "$work/h/peers"
    start h
    for f in 1 2 3 4; do start "$prefix$f" --bootstrap "$(addr h)"; done
    for f in 1 2 3 4; do wait_peers "$prefix$f" 1; done
    wait_peers h 4
    local served_before redirects_before start_ns gets=()
    served_before=$(counter h bytes_served)
    redirects_before=$(counter h swarm_redirects)
    echo "== four fetchers get it at once${*:+ ($*)}" >&2
    prime
    start_ns=$(date +%s%N)
    for f in 1 2 3 4; do
        (
            on "$prefix$f" "$kith" --dir "$work/$prefix$f" get "$@" "$cap" -o "$work/$prefix-out$f" \
                2>"$work/$prefix-get$f.err"
            echo $(( ($(date +%s%N) - start_ns) / 1000000 )) >"$work/$prefix-done$f"
        ) &
        gets+=($!)
    done
    for g in "${gets[@]}"; do wait "$g"; done
    ms=$(( ($(date +%s%N) - start_ns) / 1000000 ))
    served=$(( $(counter h bytes_served) - served_before ))
    redirects=$(( $(counter h swarm_redirects) - redirects_before ))
    from_memory=0 in_vain=0 done_ms=()
    for f in 1 2 3 4; do
        from_memory=$(( from_memory + $(counter "$prefix$f" served_from_memory) ))
        in_vain=$(( in_vain + $(counter "$prefix$f" swarm_redirects_failed) ))
        done_ms+=("$(cat "$work/$prefix-done$f")")
        cmp -s "$work/file" "$work/$prefix-out$f" \
            || { echo "fetcher $prefix$f got different bytes" >&2; exit 1; }
        rm -f "$work/$prefix-out$f"
        stop "$prefix$f"
    done
}

# First with --no-cache (nothing kept, nothing announced: the second round
# finds no provider records left by the first), then as a user runs it.
round u --no-cache
nocache_ms=$ms nocache_served=$served
round f
total_ms=$ms

# The same with libtorrent, on the same file, now that kith's nodes are idle.
lt_s="" lt_bytes=""
# bench/anchors.sh finds a python3 with libtorrent's binding, or installs one.
if lt_python=$(bench/anchors.sh libtorrent); then
    echo "== libtorrent: one seeder, four leechers, the same file" >&2
    lt_hosts=()
    if [ -n "$uplink" ]; then
        for host in h f1 f2 f3 f4; do lt_hosts+=("ksw-$host:$(ip_of "$host")"); done
    fi
    lt_out=$(LT_HOSTS="${lt_hosts[*]}" LT_PRIME_BYTES=$prime_bytes "$lt_python" bench/libtorrent-swarm.py "$work/file")
    lt_s=$(awk '/^libtorrent_seconds/ { print $2 }' <<<"$lt_out")
    lt_bytes=$(awk '/^libtorrent_seeder_bytes/ { print $2 }' <<<"$lt_out")
fi

echo
echo "Machine: $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), $(nproc) CPUs; commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'); load $(cut -d' ' -f1-3 /proc/loadavg)."
[ -z "$uplink" ] || echo "The holder's uplink: $uplink (tc tbf); every node in a network namespace of its own."
echo
echo "| figure | kith | libtorrent, same run | ratio (libtorrent / kith) |"
echo "|---|---:|---:|---:|"
kith_s=$(awk -v ms="$total_ms" 'BEGIN { printf "%.1f", ms / 1000 }')
if [ -n "$lt_s" ]; then
    printf '| 1 holder, 4 fetchers of %s: all four verified | %s s | %s s | %s |\n' \
        "$size" "$kith_s" "$lt_s" "$(awk -v k="$kith_s" -v l="$lt_s" 'BEGIN { printf "%.2f", l / k }')"
else
    printf '| 1 holder, 4 fetchers of %s: all four verified | %s s | not measured (no libtorrent binding: bench/anchors.sh libtorrent) | – |\n' "$size" "$kith_s"
fi
for f in 1 2 3 4; do
    printf '| fetcher %s done after | %.1f s | – | – |\n' "$f" "$(awk -v ms="${done_ms[$((f - 1))]}" 'BEGIN { print ms / 1000 }')"
done
times() { awk -v b="$1" -v f="$bytes" 'BEGIN { printf "%.2f", b / f }'; }
printf '| bytes the holder served, × the file (1 = perfect swarming, 4 = none) | %s | %s | – |\n' \
    "$(times "$served")" "$([ -n "$lt_bytes" ] && times "$lt_bytes" || echo –)"
nocache_s=$(awk -v ms="$nocache_ms" 'BEGIN { printf "%.1f", ms / 1000 }')
printf '| the same with `kith get --no-cache` (each byte written once, as libtorrent does; holder served %s ×) | %s s | %s | %s |\n' \
    "$(times "$nocache_served")" "$nocache_s" "$([ -n "$lt_s" ] && echo "$lt_s s" || echo –)" \
    "$([ -n "$lt_s" ] && awk -v k="$nocache_s" -v l="$lt_s" 'BEGIN { printf "%.2f", l / k }' || echo –)"
printf '| requests the holder sent to a fetcher that had just got the share | %s | – | – |\n' "$redirects"
printf '| shares fetchers passed on from memory | %s | – | – |\n' "$from_memory"
printf '| redirects that led nowhere (the fetcher asked the holder again) | %s | – | – |\n' "$in_vain"
