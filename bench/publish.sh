#!/usr/bin/env bash
# Measures publishing on five real nodes on 127.0.0.1, each beside a
# ceiling taken in the same run:
#   - `kith put DIR` of FILES small files (default 10,000 of 4 KiB) in files
#     per second, beside `tar` of the same folder to a file on the same disk;
#   - the gateway: a SIZE file (default 1G) read through another node's
#     gateway with curl (`/k/<cap>/file`), beside `kith get` of the same
#     file on the same node, and the gateway's time to first byte.
# Prints a markdown table.
#
#   bench/publish.sh [SIZE]      e.g. 256M (default 1G)
#
# Environment: CARGO_TARGET_DIR (default target/), FILES (10000),
# FILE_SIZE (4096 bytes each).
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
size=${1:-1G}
files=${FILES:-10000}
file_size=${FILE_SIZE:-4096}
nodes=5
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
command -v curl >/dev/null || { echo "bench/publish.sh needs curl" >&2; exit 1; }

work=$(mktemp -d)
cleanup() {
    local pids
    pids=$(jobs -p)
    # shellcheck disable=SC2086
    [ -z "$pids" ] || kill $pids 2>/dev/null || true
    # shellcheck disable=SC2086
    [ -z "$pids" ] || wait $pids 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ns_now() { date +%s%N; }
mbps() { awk -v b="$1" -v ns="$2" 'BEGIN { printf "%.0f", b / ns * 1000 }'; }
per_s() { awk -v n="$1" -v ns="$2" 'BEGIN { printf "%.0f", n / ns * 1e9 }'; }

cargo build --release -q -p kith-cli &
wait $!
kith=$CARGO_TARGET_DIR/release/kith

# --- five nodes, each waiting for its 'api on' line -------------------------
bootstrap=()
for i in $(seq 1 "$nodes"); do
    dir="$work/node$i"
    "$kith" --dir "$dir" up --no-mdns --listen /ip4/127.0.0.1/tcp/0 --quota 8G \
        "${bootstrap[@]}" >"$work/out$i" 2>"$work/node$i.log" &
    for _ in $(seq 1 300); do
        grep -q '^api on ' "$work/out$i" 2>/dev/null && break
        sleep 0.1
    done
    grep -q '^api on ' "$work/out$i" || { cat "$work/node$i.log" >&2; exit 1; }
    if [ "$i" -eq 1 ]; then
        peer=$(sed -n 's/^kith node //p' "$work/out1")
        addr=$(grep -m1 '^listening on /ip4/127.0.0.1/tcp/' "$work/out1" | cut -d' ' -f3)
        case "$addr" in */p2p/*) ;; *) addr="$addr/p2p/$peer" ;; esac
        bootstrap=(--bootstrap "$addr")
    fi
done
for _ in $(seq 1 600); do
    ready=1
    for i in $(seq 1 "$nodes"); do
        n=$("$kith" --dir "$work/node$i" peers 2>/dev/null | grep -c . || true)
        [ "$n" -ge $((nodes - 1)) ] || { ready=0; break; }
    done
    [ "$ready" -eq 0 ] || break
    sleep 0.1
done
[ "$ready" -eq 1 ] || { echo "the nodes did not all see each other" >&2; exit 1; }

# --- a folder of small files -----------------------------------------------
site="$work/site"
mkdir -p "$site"
python3 - "$site" "$files" "$file_size" <<'EOF'
import os, sys
root, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(count):
    folder = os.path.join(root, f"d{i // 1000:03}")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, f"f{i:06}.bin"), "wb") as out:
        out.write(os.urandom(size))
EOF
sync
t0=$(ns_now)
tar -cf "$work/site.tar" -C "$site" .
sync "$work/site.tar"
tar_ns=$(($(ns_now) - t0))
t0=$(ns_now)
folder_cap=$("$kith" --dir "$work/node1" put "$site" 2>"$work/put.err")
put_ns=$(($(ns_now) - t0))
[ -n "$folder_cap" ] || { cat "$work/put.err" >&2; exit 1; }

# --- one big file through the gateway and through kith get ------------------
head -c "$size" /dev/urandom >"$work/big.bin"
bytes=$(stat -c %s "$work/big.bin")
mkdir -p "$work/one"
cp "$work/big.bin" "$work/one/big.bin"
cap=$("$kith" --dir "$work/node1" put "$work/one" 2>/dev/null)
gateway=$("$kith" --dir "$work/node3" gateway)
# A first get, not timed: both timed reads below find the same shares
# cached on node 3.
"$kith" --dir "$work/node3" get "$cap/big.bin" -o "$work/by-get.bin" 2>/dev/null
t0=$(ns_now)
"$kith" --dir "$work/node3" get "$cap/big.bin" -o "$work/by-get.bin" 2>/dev/null
get_ns=$(($(ns_now) - t0))
t0=$(ns_now)
ttfb=$(curl -s -o "$work/by-gateway.bin" -w '%{time_starttransfer}' "${gateway}k/$cap/big.bin")
gateway_ns=$(($(ns_now) - t0))
cmp -s "$work/big.bin" "$work/by-gateway.bin" || { echo "the gateway's bytes differ" >&2; exit 1; }
cmp -s "$work/big.bin" "$work/by-get.bin" || { echo "kith get's bytes differ" >&2; exit 1; }

put_rate=$(per_s "$files" "$put_ns")
tar_rate=$(per_s "$files" "$tar_ns")
get_mbps=$(mbps "$bytes" "$get_ns")
gateway_mbps=$(mbps "$bytes" "$gateway_ns")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "–" }'; }
echo "| figure | value | ceiling (same run) | ratio |"
echo "|---|---:|---|---:|"
echo "| kith put DIR: $files files of $file_size B in $((files / 1000 + (files % 1000 > 0))) folders | $put_rate files/s ($(awk -v ns="$put_ns" 'BEGIN { printf "%.1f", ns / 1e9 }') s) | tar of the same folder: $tar_rate files/s | $(ratio "$put_rate" "$tar_rate") |"
echo "| gateway /k/ of a $size file (curl, to disk) | $gateway_mbps MB/s | kith get of the same file, same node: $get_mbps MB/s | $(ratio "$gateway_mbps" "$get_mbps") |"
echo "| gateway time to first byte of that file | $(awk -v s="$ttfb" 'BEGIN { printf "%.0f", s * 1000 }') ms | – | – |"
