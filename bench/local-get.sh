#!/usr/bin/env bash
# A/B of a local get: `kith get CAP -o FILE` (the node writes the file
# itself, POST /v1/save) against `kith get CAP -o - > FILE` (every byte
# copied through the local HTTP API to the CLI), on five `kith up` nodes on
# 127.0.0.1, three rounds each, alternating. Prints wall time and the CPU
# seconds of the fetching node and of the CLI for each.
#
#   bench/local-get.sh [SIZE]     SIZE as head -c takes it (default 512M)
#
# The first round fetches from the holders; the fetching node keeps the
# shares, so later rounds read them from its own store and show the copy's
# cost alone.
set -euo pipefail
cd "$(dirname "$0")/.."
kith=${CARGO_TARGET_DIR:-$PWD/target}/release/kith
[ -x "$kith" ] || cargo build --release -q -p kith-cli
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
boot=()
for i in 1 2 3 4 5; do
  d=$work/n$i; $kith --dir $d init >/dev/null 2>&1
  $kith --dir $d up --no-mdns --listen /ip4/127.0.0.1/tcp/0 --quota 8G "${boot[@]}" >$work/n$i.out 2>$work/n$i.log &
  pids+=($!)
  for t in $(seq 100); do grep -q "^api on" $work/n$i.out 2>/dev/null && break; sleep 0.2; done
  addr=$(grep "^listening on" $work/n$i.out | head -1 | sed 's/listening on //')
  [ $i = 1 ] && boot=(--bootstrap "$addr/p2p/$(sed -n 's/^kith node //p' $work/n1.out)") || true
done
# Until node 1 sees the other four (at most 30 s).
for t in $(seq 150); do [ "$($kith --dir $work/n1 peers 2>/dev/null | wc -l)" -ge 4 ] && break; sleep 0.2; done
head -c "${1:-512M}" /dev/urandom > $work/file
cap=$($kith --dir $work/n1 put $work/file 2>/dev/null)
node3=${pids[2]}
cpu() { awk '{print $14+$15}' /proc/$node3/stat; }
tck=$(getconf CLK_TCK)
for round in 1 2 3; do
  rm -f $work/out*
  c0=$(cpu); s=$(date +%s.%N)
  /usr/bin/time -f "%U %S" -o $work/t.save $kith --dir $work/n3 get "$cap" -o $work/out.save 2>/dev/null
  e=$(date +%s.%N); c1=$(cpu)
  echo "save   round $round: $(echo "$e - $s" | bc) s wall, node $(echo "($c1-$c0)/$tck" | bc -l | cut -c1-5) CPU-s, cli $(awk '{print $1+$2}' $work/t.save) CPU-s"
  rm -f $work/out*
  c0=$(cpu); s=$(date +%s.%N)
  /usr/bin/time -f "%U %S" -o $work/t.stream sh -c "$kith --dir $work/n3 get '$cap' -o - > $work/out.stream && sync $work/out.stream" 2>/dev/null
  e=$(date +%s.%N); c1=$(cpu)
  echo "stream round $round: $(echo "$e - $s" | bc) s wall, node $(echo "($c1-$c0)/$tck" | bc -l | cut -c1-5) CPU-s, cli $(awk '{print $1+$2}' $work/t.stream) CPU-s"
done
cmp $work/file $work/out.stream && echo identical
