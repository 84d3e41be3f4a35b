#!/usr/bin/env bash
# Limits per peer under load: one server with low caps (its own process;
# quota 1 GiB, quota_per_peer 1 %, 16 letters / 256 KiB of mail per sender,
# 8 MiB/s each way per peer, 2 connections per peer) is hammered for SECS
# seconds by PEERS greedy peers, each storing 256 KiB shares straight on it
# (past placement) in two loops, fetching them back in a third and leaving
# 16 KiB letters in its mailbox in a fourth, as fast as the server answers.
# A polite peer stores and fetches 8 shares one at a time, first alone and
# then under the crowd. Prints a Markdown table: the polite peer's latency
# and throughput alone and under load, what the greedy peers got and were
# refused, and the server's figures from its /v1/metrics (refusals by
# reason, the most bytes held for one peer against the cap) and its memory.
#
#   bench/greedy.sh [PEERS] [SECS]        default 50 peers, 40 s; 127.0.0.1 only
#   PROFILE=dev bench/greedy.sh           the dev build (no release build)
#
# Every loop stops by itself at the deadline; the whole run takes about a
# minute after the build (`kith-testnet greedy`, crates/testnet/src/greedy.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
peers=${1:-50}
secs=${2:-40}
profile=${PROFILE:-release}
if [ "$profile" = release ]; then
    cargo build --release -q -p kith-testnet
    bin=${CARGO_TARGET_DIR:-target}/release/kith-testnet
else
    cargo build -q -p kith-testnet
    bin=${CARGO_TARGET_DIR:-target}/debug/kith-testnet
fi
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs);" \
    "commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates || echo ' + local changes');" \
    "profile $profile; load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
timeout 600 "$bin" greedy --peers "$peers" --secs "$secs"
