#!/usr/bin/env bash
# The storage anchor: Tahoe-LAFS doing what `kith put` / `kith get` do in
# bench/put-get.sh, on the same file, on the same machine — five storage
# nodes on 127.0.0.1, each a process of its own, 3-of-5 erasure coding
# (shares.needed = 3, shares.happy = shares.total = 5), plus an introducer.
# Node 1 is the client: `tahoe put FILE` through it, then `tahoe get CAP OUT`
# and an fsync of OUT (as `kith get -o` syncs its file).
#
#   bench/tahoe.sh FILE
#
# Prints lines that bench/run reads (MB/s are 10^6 bytes per second of file
# size; CPU in CPU-seconds per GiB of file, summed over the processes of a
# kind; peak RSS the largest VmHWM among the node processes, reset before
# each transfer, and GNU time's maximum RSS for the command line):
#
#   tahoe_version 1.20.0
#   tahoe_put_mbps 42.7
#   tahoe_get_mbps 39.0
#   tahoe_put_cpu_nodes 14.2   tahoe_put_cpu_client 0.9
#   tahoe_get_cpu_nodes 9.1    tahoe_get_cpu_client 1.2
#   tahoe_put_peak_rss_mib 95  tahoe_get_peak_rss_mib 80
#
# Tahoe-LAFS comes from a virtualenv; bench/anchors.sh installs it (from
# PyPI) when missing. Environment: TAHOE (the `tahoe` program; default the
# one bench/anchors.sh installs).
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."

file=$(realpath "${1:?usage: bench/tahoe.sh FILE}")
tahoe=${TAHOE:-$(bench/anchors.sh tahoe)}
bytes=$(stat -c %s "$file")
nodes=5
work=$(mktemp -d)
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
ns_now() { date +%s%N; }
hz=$(getconf CLK_TCK)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
hwm_kib() { awk '/^VmHWM/ { print $2 }' "/proc/$1/status"; }
# Waits up to $2 seconds for command $1 to succeed.
wait_for() {
    local deadline=$(($(date +%s) + $2))
    until eval "$1" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$deadline" ] || return 1
        sleep 0.2
    done
}

version=$("$tahoe" --version 2>/dev/null | head -n 1 || true)
case $version in tahoe-lafs/*) ;; *)
    echo "$tahoe is not Tahoe-LAFS (its --version says ${version:-nothing})" >&2
    exit 1
    ;;
esac
echo "tahoe: $version" >&2
port=$(free_port)
"$tahoe" create-introducer --listen=tcp --port="tcp:$port:interface=127.0.0.1" \
    --location="tcp:127.0.0.1:$port" "$work/introducer" >/dev/null
"$tahoe" run --allow-stdin-close "$work/introducer" >"$work/introducer.log" 2>&1 &
pids+=($!)
wait_for "test -s $work/introducer/private/introducer.furl" 60 || {
    echo "the Tahoe introducer did not start within 60 s:" >&2
    cat "$work/introducer.log" >&2
    exit 1
}
furl=$(cat "$work/introducer/private/introducer.furl")

node_pids=()
for i in $(seq 1 "$nodes"); do
    port=$(free_port) web=$(free_port)
    "$tahoe" create-node --listen=tcp --port="tcp:$port:interface=127.0.0.1" \
        --location="tcp:127.0.0.1:$port" --webport="tcp:$web:interface=127.0.0.1" \
        --introducer="$furl" --nickname="node$i" \
        --shares-needed=3 --shares-happy=$nodes --shares-total=$nodes "$work/node$i" >/dev/null
    "$tahoe" run --allow-stdin-close "$work/node$i" >"$work/node$i.log" 2>&1 &
    pids+=($!) node_pids+=($!)
done
client=$work/node1
# The client is ready when it is connected to all five storage servers.
connected() {
    curl -sf "$(cat "$client/node.url")?t=json" |
        python3 -c 'import json, sys; s = json.load(sys.stdin)["servers"]; sys.exit(sum(1 for x in s if x["connection_status"].lower().startswith("connected")) < int(sys.argv[1]))' "$nodes"
}
wait_for "test -s $client/node.url" 60 && wait_for connected 120 || {
    echo "the Tahoe client did not connect to $nodes storage servers within 120 s:" >&2
    tail -n 20 "$work/node1.log" >&2
    exit 1
}
echo "tahoe: $nodes storage nodes up, the client sees them all" >&2

# Runs one transfer ($1: put or get; the rest is the command), then prints
# its figures.
measure() {
    local name=$1
    shift
    local pid before=() t0 t1 node_ticks=0 peak=0
    for pid in "${node_pids[@]}"; do
        echo 5 >"/proc/$pid/clear_refs" 2>/dev/null || true
        before+=("$(cpu_ticks "$pid")")
    done
    t0=$(ns_now)
    /usr/bin/time -f '%M %U %S' -o "$work/$name.time" "$@" >"$work/$name.out" 2>"$work/$name.err" || {
        echo "tahoe $name failed:" >&2
        cat "$work/$name.err" >&2
        tail -n 20 "$work/node1.log" >&2
        exit 1
    }
    t1=$(ns_now)
    for i in "${!node_pids[@]}"; do
        node_ticks=$((node_ticks + $(cpu_ticks "${node_pids[$i]}") - before[i]))
        local hwm
        hwm=$(hwm_kib "${node_pids[$i]}")
        [ "$hwm" -le "$peak" ] || peak=$hwm
    done
    local client_rss cu cs
    read -r client_rss cu cs < <(tail -n 1 "$work/$name.time")
    [ "$client_rss" -le "$peak" ] || peak=$client_rss
    awk -v b="$bytes" -v ns="$((t1 - t0))" -v t="$node_ticks" -v hz="$hz" -v cu="$cu" -v cs="$cs" \
        -v peak="$peak" -v name="$name" 'BEGIN {
        gib = b / 2^30
        printf "tahoe_%s_mbps %.1f\n", name, b / ns * 1000
        printf "tahoe_%s_seconds %.2f\n", name, ns / 1e9
        printf "tahoe_%s_cpu_nodes %.1f\n", name, t / hz / gib
        printf "tahoe_%s_cpu_client %.1f\n", name, (cu + cs) / gib
        printf "tahoe_%s_peak_rss_mib %d\n", name, peak / 1024 }'
}

echo "tahoe_version ${version#tahoe-lafs/}"
echo "tahoe: put of $bytes bytes" >&2
measure put "$tahoe" -d "$client" put "$file"
cap=$(tail -n 1 "$work/put.out")
case $cap in URI:*) ;; *)
    echo "tahoe put printed no capability: $cap" >&2
    exit 1
    ;;
esac
echo "tahoe: get" >&2
measure get bash -c '"$1" -d "$2" get "$3" "$4" && python3 -c "import os, sys; os.fsync(os.open(sys.argv[1], os.O_RDONLY))" "$4"' \
    get "$tahoe" "$client" "$cap" "$work/got"
cmp -s "$file" "$work/got" || {
    echo "tahoe get returned different bytes" >&2
    exit 1
}
