#!/usr/bin/env bash
# Measures `kith put`, `kith get` and `kith send` (direct to a friend)
# between five real nodes on 127.0.0.1,
# beside two ceilings taken in the same run on the same file:
#   - the codec alone, in-process (crates/codec/examples/codec_speed.rs):
#     encode with shares discarded, decode from the k data shares with the
#     plaintext discarded; the file is read from the page cache;
#   - a raw loopback TCP copy (python3 socket.sendfile to a receiver on
#     127.0.0.1 that writes the bytes to a file on the same disk and fsyncs it
#     at the end, as `kith get -o` does), timed by the receiver from accept to
#     fsync done.
# Then prints a markdown table, the per-process CPU time during each transfer
# and the machine load.
#
#   bench/put-get.sh [SIZE]...     sizes like 256M, 1G (default: 256M 1G)
#
# Environment: CARGO_TARGET_DIR (default target/), SHARES (3/5),
# QUOTA (per node, default 8G), ANCHORS (1: also Tahoe-LAFS put and get and
# libtorrent 1 → 1 on the same file, installed when missing, and a table of
# ratios and CPU-s per GiB per kind of process; see anchors() below).
#
# Put runs from node 1 (3-of-5, so every node, node 1 included, holds one
# share of every stripe), get from node 3; send goes from node 1 to node 3
# (streamed, hashed and fsynced into node 3's inbox before it answers, so
# the loopback copy to disk is its ceiling too). Each file is random bytes from
# /dev/urandom written to disk first (not timed); put reads it from the page
# cache (the ceilings just read it too), get writes OUT to disk and fsyncs it. MB/s are 10^6 bytes per second
# of file size. Peak RSS is VmHWM, reset before each transfer through
# /proc/PID/clear_refs, for the nodes; /usr/bin/time's maximum RSS for the
# clients (GNU time on Linux reports KiB).
#
# The load average counts this bench's own nodes and clients too; the
# "other processes" CPU column (machine busy time minus ours during each
# transfer) tells whether something else competed for the cores.
#
# Targets from the storage issue (2 cores, all processes share them):
# put ≥ 200 MB/s, get ≥ 250 MB/s, ≤ 200 MiB RSS per process.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."

sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(256M 1G)
shares=${SHARES:-3/5}
quota=${QUOTA:-8G}
nodes=5
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}

work=$(mktemp -d)
# Every process below is a background job of this script (long commands run
# as `cmd & wait $!` so that a signal reaches the trap at once); on exit each
# job is ended with everything it started, children first.
descendants() {
    local child
    for child in $(cat /proc/"$1"/task/*/children 2>/dev/null); do
        descendants "$child"
        echo "$child"
    done
}
cleanup() {
    local pids all="" pid
    pids=$(jobs -p)
    for pid in $pids; do all="$all $(descendants "$pid") $pid"; done
    # shellcheck disable=SC2086
    [ -z "${all// /}" ] || kill $all 2>/dev/null || true
    # shellcheck disable=SC2086
    [ -z "$pids" ] || wait $pids 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
ns_now() { date +%s%N; }
# bytes per nanosecond × 1000 = 10^6 bytes per second
mbps() { awk -v b="$1" -v ns="$2" 'BEGIN { printf "%.0f", b / ns * 1000 }'; }
to_bytes() {
    local n=${1%[KMGkmg]} unit=${1##*[0-9]}
    [[ $n =~ ^[0-9]+$ ]] || { echo "not a size: $1" >&2; return 1; }
    case $unit in
        "") echo "$n" ;;
        K | k) echo $((n << 10)) ;;
        M | m) echo $((n << 20)) ;;
        G | g) echo $((n << 30)) ;;
    esac
}
hwm_kib() { awk '/^VmHWM/ { print $2 }' "/proc/$1/status"; }
# user + system CPU of a process in clock ticks
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# busy ticks of the whole machine (all CPUs): user nice system irq softirq
machine_busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }
hz=$(getconf CLK_TCK)

echo "load average at start: $(loadavg)" >&2
load_start=$(loadavg)

echo "building (release, CARGO_TARGET_DIR=$CARGO_TARGET_DIR)..." >&2
cargo build --release -q -p kith-cli &
wait $!
cargo build --release -q -p kith-codec --example codec_speed &
wait $!
# Others edit the crates meanwhile: say what was built.
built_from="commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(git status --short -- crates 2>/dev/null | grep -c . || true) changed file(s) under crates/ in the working tree"
kith=$CARGO_TARGET_DIR/release/kith
codec=$CARGO_TARGET_DIR/release/examples/codec_speed
for size in "${sizes[@]}"; do to_bytes "$size" >/dev/null; done

# --- five nodes ------------------------------------------------------------
node_pids=()
node_peers=()
bootstrap=()
for i in $(seq 1 "$nodes"); do
    dir="$work/node$i"
    "$kith" --dir "$dir" init >/dev/null 2>&1
    fifo="$work/out$i"
    mkfifo "$fifo"
    "$kith" --dir "$dir" up --no-mdns --listen /ip4/127.0.0.1/tcp/0 \
        --quota "$quota" "${bootstrap[@]}" >"$fifo" 2>"$work/node$i.log" &
    node_pids+=($!)
    # Hold the read end open for the node's whole life (through the cat
    # below): closing it would end the node with a broken pipe at its next
    # line of output.
    exec {fd}<"$fifo"
    peer="" addr="" api=""
    for _ in $(seq 1 20); do
        read -r -t 30 line <&"$fd" || { echo "node $i: no 'api on' line within 30 s" >&2; cat "$work/node$i.log" >&2; exit 1; }
        case "$line" in
            "kith node "*) peer=${line#kith node } ;;
            "listening on "*) [ -n "$addr" ] || addr=${line#listening on } ;;
            "api on "*) api=${line#api on }; break ;;
        esac
    done
    [ -n "$api" ] || { echo "node $i: did not print its api address" >&2; exit 1; }
    cat <&"$fd" >/dev/null &
    exec {fd}<&-
    if [ "$i" -eq 1 ]; then
        case "$addr" in */p2p/*) ;; *) addr="$addr/p2p/$peer" ;; esac
        bootstrap=(--bootstrap "$addr")
    fi
    node_peers+=("$peer")
    echo "node $i: pid ${node_pids[-1]}, $peer, $api" >&2
done

# Every node should see the other four.
t0=$(ns_now)
connected=0
for _ in $(seq 1 600); do
    connected=1
    for i in $(seq 1 "$nodes"); do
        n=$("$kith" --dir "$work/node$i" peers 2>/dev/null | grep -c . || true)
        if [ "$n" -lt $((nodes - 1)) ]; then connected=0; break; fi
    done
    [ "$connected" -eq 0 ] || break
    sleep 0.1
done
if [ "$connected" -eq 0 ]; then
    echo "the nodes did not all see each other within 60 s:" >&2
    for i in $(seq 1 "$nodes"); do
        echo "node $i peers:" >&2; "$kith" --dir "$work/node$i" peers >&2 || true
    done
    exit 1
fi
echo "all $nodes nodes see $((nodes - 1)) peers after $((($(ns_now) - t0) / 1000000)) ms" >&2

# --- the loopback ceiling --------------------------------------------------
cat >"$work/recv.py" <<'EOF'
import os, socket, sys, time
out = sys.argv[1]
with socket.create_server(("127.0.0.1", 0)) as server:
    print(server.getsockname()[1], flush=True)
    conn, _ = server.accept()
    start = time.perf_counter_ns()
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    total = 0
    with conn:
        while True:
            n = conn.recv_into(buf)
            if n == 0:
                break
            done = 0
            while done < n:
                done += os.write(fd, view[done:n])
            total += n
    os.fsync(fd)
    os.close(fd)
    print(total, time.perf_counter_ns() - start, flush=True)
EOF
cat >"$work/send.py" <<'EOF'
import socket, sys
with open(sys.argv[2], "rb") as f, socket.create_connection(("127.0.0.1", int(sys.argv[1]))) as s:
    s.sendfile(f)
EOF
# Sets loop (MB/s); the copy lands in $2, is compared with $1 and removed.
loopback() {
    local file=$1 out=$2 bytes=$3 rfifo="$work/recv.out" port total ns rfd
    rm -f "$rfifo"; mkfifo "$rfifo"
    timeout 600 python3 "$work/recv.py" "$out" >"$rfifo" &
    local rpid=$!
    exec {rfd}<"$rfifo"
    read -r -t 10 port <&"$rfd"
    timeout 600 python3 "$work/send.py" "$port" "$file" &
    wait $!
    read -r -t 600 total ns <&"$rfd"
    exec {rfd}<&-
    wait "$rpid"
    [ "$total" = "$bytes" ] || { echo "loopback: received $total of $bytes bytes" >&2; return 1; }
    cmp "$file" "$out" >&2
    rm -f "$out"
    loop=$(mbps "$bytes" "$ns")
}

# --- one transfer, with CPU accounting -------------------------------------
# run_timed NAME TIMEOUT CMD...: runs CMD under /usr/bin/time, leaves its
# stdout in $work/NAME.out, stderr in $work/NAME.err, and sets: elapsed_ns,
# client_rss_kib, client_cpu (s), node_cpu (array, s), node_rss (array, MiB
# peak during the run), node_rss_max (KiB), other_cpu (s of CPU used by
# processes other than ours during the run), status.
run_timed() {
    local name=$1 limit=$2; shift 2
    local before=() i busy0 busy1 t0 t1 ours=0
    for i in "${!node_pids[@]}"; do before+=("$(cpu_ticks "${node_pids[$i]}")"); done
    reset_hwm
    busy0=$(machine_busy)
    t0=$(ns_now)
    status=0
    /usr/bin/time -o "$work/$name.time" -f '%M %U %S' timeout "$limit" "$@" \
        >"$work/$name.out" 2>"$work/$name.err" &
    wait $! || status=$?
    t1=$(ns_now)
    busy1=$(machine_busy)
    elapsed_ns=$((t1 - t0))
    node_cpu=() node_rss=() node_rss_max=0
    for i in "${!node_pids[@]}"; do
        local hwm
        hwm=$(hwm_kib "${node_pids[$i]}")
        node_rss+=("$((hwm / 1024))")
        [ "$hwm" -le "$node_rss_max" ] || node_rss_max=$hwm
        local d=$(($(cpu_ticks "${node_pids[$i]}") - before[i]))
        ours=$((ours + d))
        node_cpu+=("$(awk -v t="$d" -v hz="$hz" 'BEGIN { printf "%.1f", t / hz }')")
    done
    read -r client_rss_kib cu cs < <(tail -n 1 "$work/$name.time")
    client_cpu=$(awk -v u="$cu" -v s="$cs" 'BEGIN { printf "%.1f", u + s }')
    other_cpu=$(awk -v b="$((busy1 - busy0 - ours))" -v hz="$hz" -v c="$client_cpu" \
        'BEGIN { o = b / hz - c; if (o < 0) o = 0; printf "%.1f", o }')
}

reset_hwm() {
    local pid
    for pid in "${node_pids[@]}"; do echo 5 >"/proc/$pid/clear_refs" 2>/dev/null || true; done
}
mib() { echo $(($1 / 1024)); }
sum() { printf '%s\n' "$@" | awk '{ s += $1 } END { printf "%.1f", s }'; }
per_gib() { awk -v s="$1" -v b="$bytes" 'BEGIN { printf "%.1f", s / (b / 2^30) }'; }

# With ANCHORS=1: the same file through Tahoe-LAFS (bench/tahoe.sh: 5
# storage nodes, 3-of-5, put and get) and libtorrent, one seeder to one
# leecher (the anchor of `kith send`), with kith's nodes idle. Each is
# installed when missing (bench/anchors.sh); a row says why it was not
# measured when it cannot be had.
anchor_rows=()
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b; else printf "–" }'; }
# One figure of bench/tahoe.sh's output, by name.
t() { awk -v k="$1" '$1 == k { print $2 }' "$work/tahoe.out"; }
anchors() {
    local file=$1 size=$2
    [ "${ANCHORS:-0}" = 1 ] || return 0
    echo "anchor: Tahoe-LAFS put and get of the same file (bench/tahoe.sh)..." >&2
    if bench/tahoe.sh "$file" >"$work/tahoe.out" 2>"$work/tahoe.err" & wait $!; then
        local v
        v=$(t tahoe_version)
        anchor_rows+=("| $size put, 3-of-5 on 5 processes | $put MB/s | Tahoe-LAFS $v: $(t tahoe_put_mbps) MB/s | $(ratio "$put" "$(t tahoe_put_mbps)") |")
        anchor_rows+=("| $size get | $get MB/s | Tahoe-LAFS $v: $(t tahoe_get_mbps) MB/s | $(ratio "$get" "$(t tahoe_get_mbps)") |")
        anchor_rows+=("| $size put: CPU-s per GiB, total | $put_total (uploader / other holders / client: $put_kinds) | Tahoe-LAFS: $(sum "$(t tahoe_put_cpu_nodes)" "$(t tahoe_put_cpu_client)") (nodes / client: $(t tahoe_put_cpu_nodes) / $(t tahoe_put_cpu_client)) | – |")
        anchor_rows+=("| $size get: CPU-s per GiB, total | $get_total (fetcher / serving nodes / client: $get_kinds) | Tahoe-LAFS: $(sum "$(t tahoe_get_cpu_nodes)" "$(t tahoe_get_cpu_client)") (nodes / client: $(t tahoe_get_cpu_nodes) / $(t tahoe_get_cpu_client)) | – |")
        anchor_rows+=("| $size peak RSS, any process (put / get) | $(mib "$put_node_rss") / $(mib "$node_rss_max") MiB nodes, $(mib "$put_rss") / $(mib "$get_rss") MiB client | Tahoe-LAFS: $(t tahoe_put_peak_rss_mib) / $(t tahoe_get_peak_rss_mib) MiB | – |")
    else
        # The last line of its own (not Twisted's time-stamped log lines).
        local why
        why=$(grep -v '^20[0-9][0-9]-' "$work/tahoe.err" | tail -n 1)
        echo "Tahoe-LAFS not measured: $why" >&2
        anchor_rows+=("| $size put / get | $put / $get MB/s | Tahoe-LAFS: not measured ($why) | – |")
    fi
    echo "anchor: libtorrent, one seeder to one leecher, the same file..." >&2
    local python lt_s=""
    if python=$(bench/anchors.sh libtorrent 2>"$work/lt.err"); then
        LT_LEECHERS=1 "$python" bench/libtorrent-swarm.py "$file" >"$work/lt.out" 2>>"$work/lt.err" & wait $! || true
        lt_s=$(awk '$1 == "libtorrent_seconds" { print $2 }' "$work/lt.out")
    fi
    if [ -n "$lt_s" ]; then
        local lt_mbps
        lt_mbps=$(awk -v b="$bytes" -v s="$lt_s" 'BEGIN { printf "%.0f", b / s / 1e6 }')
        anchor_rows+=("| $size send to one peer, direct | $send MB/s | libtorrent, 1 seeder → 1 leecher: $lt_mbps MB/s ($lt_s s) | $(ratio "$send" "$lt_mbps") |")
    else
        anchor_rows+=("| $size send to one peer, direct | $send MB/s | libtorrent: not measured ($(tail -n 1 "$work/lt.err")) | – |")
    fi
}

rows=()
cpu_rows=()
for size in "${sizes[@]}"; do
    bytes=$(to_bytes "$size")
    file="$work/file-$size"
    out="$work/got-$size"
    echo "--- $size: writing $bytes random bytes to $file" >&2
    head -c "$bytes" /dev/urandom >"$file" &
    wait $!
    limit=$((120 + bytes / 1000000))   # never slower than 1 MB/s

    echo "codec ceiling..." >&2
    timeout "$limit" "$codec" "$file" "$shares" >"$work/codec.out" &
    wait $!
    codec_out=$(cat "$work/codec.out")
    enc=$(awk '$1 == "encode" { print $2 }' <<<"$codec_out")
    dec=$(awk '$1 == "decode" { print $2 }' <<<"$codec_out")

    echo "loopback ceiling..." >&2
    loopback "$file" "$out" "$bytes"

    echo "put from node 1 (load $(loadavg))..." >&2
    run_timed "put-$size" "$limit" "$kith" --dir "$work/node1" put "$file" --shares "$shares"
    if [ "$status" -ne 0 ]; then
        echo "kith put failed (exit $status) after $((elapsed_ns / 1000000)) ms; its stderr:" >&2
        cat "$work/put-$size.err" >&2
        for i in $(seq 1 "$nodes"); do echo "node $i log (tail):" >&2; tail -n 20 "$work/node$i.log" >&2; done
        rows+=("| $size | failed | – | $enc | $dec | $loop | – | – | $(mib "$node_rss_max") MiB | $(mib "$client_rss_kib") MiB | – | – |")
        rm -f "$file"
        continue
    fi
    cap=$(grep -m1 '^kith:' "$work/put-$size.out")
    put=$(mbps "$bytes" "$elapsed_ns")
    put_rss=$client_rss_kib
    put_node_rss=$node_rss_max
    cpu_rows+=("| $size put ($((elapsed_ns / 1000000)) ms) | ${node_cpu[*]} | $client_cpu | $other_cpu | ${node_rss[*]} |")
    # CPU per GiB by kind of process: the uploading node, the other four
    # holders together, the command line.
    put_kinds="$(per_gib "${node_cpu[0]}") / $(per_gib "$(sum "${node_cpu[@]:1}")") / $(per_gib "$client_cpu")"
    put_total=$(per_gib "$(sum "${node_cpu[@]}" "$client_cpu")")
    tail -n 1 "$work/put-$size.err" >&2

    echo "get from node 3 (load $(loadavg))..." >&2
    run_timed "get-$size" "$limit" "$kith" --dir "$work/node3" get "$cap" -o "$out"
    get="failed"
    if [ "$status" -eq 0 ] && cmp "$file" "$out" >&2; then
        get=$(mbps "$bytes" "$elapsed_ns")
        tail -n 1 "$work/get-$size.err" >&2
    else
        echo "kith get failed (exit $status) after $((elapsed_ns / 1000000)) ms; its stderr:" >&2
        cat "$work/get-$size.err" >&2
        for i in $(seq 1 "$nodes"); do echo "node $i log (tail):" >&2; tail -n 20 "$work/node$i.log" >&2; done
    fi
    cpu_rows+=("| $size get ($((elapsed_ns / 1000000)) ms) | ${node_cpu[*]} | $client_cpu | $other_cpu | ${node_rss[*]} |")
    # The fetching node (3), the four serving nodes together, the command line.
    get_kinds="$(per_gib "${node_cpu[2]}") / $(per_gib "$(sum "${node_cpu[@]:0:2}" "${node_cpu[@]:3}")") / $(per_gib "$client_cpu")"
    get_total=$(per_gib "$(sum "${node_cpu[@]}" "$client_cpu")")
    get_rss=$client_rss_kib

    echo "send from node 1 to node 3 (load $(loadavg))..." >&2
    rm -f "$out"
    run_timed "send-$size" "$limit" "$kith" --dir "$work/node1" send "${node_peers[2]}" "$file"
    received="$work/node3/inbox/$(basename "$file")"
    send="failed"
    if [ "$status" -eq 0 ] && cmp "$file" "$received" >&2; then
        send=$(mbps "$bytes" "$elapsed_ns")
        tail -n 1 "$work/send-$size.out" >&2
    else
        echo "kith send failed (exit $status) after $((elapsed_ns / 1000000)) ms; its stderr:" >&2
        cat "$work/send-$size.err" >&2
    fi
    rm -f "$received"
    anchors "$file" "$size"
    cpu_rows+=("| $size send ($((elapsed_ns / 1000000)) ms) | ${node_cpu[*]} | $client_cpu | $other_cpu | ${node_rss[*]} |")
    send_ratio="–"
    [ "$send" = failed ] || send_ratio=$(awk -v a="$send" -v b="$loop" 'BEGIN { printf "%.0f %%", 100 * a / b }')
    client_rss=$((put_rss > get_rss ? put_rss : get_rss))
    put_ratio=$(awk -v a="$put" -v b="$enc" 'BEGIN { printf "%.0f %%", 100 * a / b }')
    get_ratio="–"
    [ "$get" = failed ] || get_ratio=$(awk -v a="$get" -v b="$loop" 'BEGIN { printf "%.0f %%", 100 * a / b }')
    node_peak=$((put_node_rss > node_rss_max ? put_node_rss : node_rss_max))
    rows+=("| $size | $put | $get | $enc | $dec | $loop | $put_ratio | $get_ratio | $(mib "$node_peak") MiB | $(mib "$put_rss") / $(mib "$get_rss") MiB | $send | $send_ratio |")
    rm -f "$file" "$out"
done
load_end=$(loadavg)

echo
echo "Machine: $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), $(nproc) CPUs, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)"
echo "Built from: $built_from."
echo "Load average: $load_start at start, $load_end at end."
echo
echo "| size | put MB/s | get MB/s | codec encode MB/s | codec decode MB/s | loopback MB/s | put / codec encode | get / loopback | peak RSS, max over nodes | client peak RSS (put / get) | send MB/s | send / loopback |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
echo "| target | ≥ 200 | ≥ 250 | | | | | | ≤ 200 MiB | ≤ 200 MiB | 1 GiB < 5 s (≥ 215) | |"
echo
echo "CPU seconds used during each transfer (user + system), and the nodes' peak RSS during it:"
echo
echo "| transfer | CPU s, nodes 1–$nodes | CPU s, client | CPU s, other processes on the machine | peak RSS MiB, nodes 1–$nodes |"
echo "|---|---|---|---|---|"
printf '%s\n' "${cpu_rows[@]}"
if [ ${#anchor_rows[@]} -gt 0 ]; then
    echo
    echo "Beside the anchors, on the same file in the same run (ratio: kith / anchor; CPU-s per GiB of file):"
    echo
    echo "| figure | kith | anchor | ratio |"
    echo "|---|---|---|---:|"
    printf '%s\n' "${anchor_rows[@]}"
fi
