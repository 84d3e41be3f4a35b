#!/usr/bin/env bash
# The chaos test (crates/cli/tests/chaos.rs) at full size, in release: 12
# `kith up` processes in network namespaces on one bridge with impaired
# links, 20 files up to 64 MiB + 1, three waves of SIGKILLs each followed by
# automatic repair, a partition and its healing, restarts, and every file
# fetched back and compared. Prints the test's table (files, nodes killed,
# shares repaired, MiB moved by repair, time back to full health per wave).
#
#   bench/chaos.sh                          # full size, release
#   KITH_CHAOS_SCALE=ci bench/chaos.sh      # the CI size, in release
#   KITH_CHAOS_NO_REPAIR=1 bench/chaos.sh   # the harness alone, for nodes
#                                           # without automatic repair
#
# Needs root (network namespaces) and iproute2; nftables is used for packet
# loss where the kernel has no netem. Every namespace the test makes is
# deleted when it ends, also when it fails; a run killed outright is cleaned
# up by the next one. Environment: CARGO_TARGET_DIR (default target/).
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
export KITH_CHAOS_SCALE=${KITH_CHAOS_SCALE:-full}

if [ "$(id -u)" != 0 ]; then
    echo "bench/chaos.sh: needs root to create network namespaces" >&2
    exit 1
fi

# Namespaces of chaos runs whose test process is gone (a run killed outright
# or interrupted, which skips the test's own clean-up): stop what still runs
# in them (by process id) and delete them. Another run's are left alone.
remove_stale() {
    local ns pid dir
    for ns in $(ip netns list | awk '{ print $1 }' | grep -E '^kithns[0-9]+-chaos-' || true); do
        pid=${ns#kithns}
        pid=${pid%%-*}
        if ! kill -0 "$pid" 2>/dev/null; then
            for stray in $(ip netns pids "$ns" 2>/dev/null || true); do
                kill -KILL "$stray" 2>/dev/null || true
            done
            ip netns del "$ns" && echo "bench/chaos.sh: removed stale namespace $ns" >&2
        fi
    done
    # Their data folders (the test's temporary folder, named the same way).
    for dir in "${TMPDIR:-/tmp}"/kithns*-chaos-*; do
        [ -d "$dir" ] || continue
        pid=${dir##*/kithns}
        pid=${pid%%-*}
        kill -0 "$pid" 2>/dev/null || rm -rf "$dir"
    done
}
trap remove_stale EXIT
trap 'exit 130' INT TERM

echo "== chaos: KITH_CHAOS_SCALE=$KITH_CHAOS_SCALE${KITH_CHAOS_NO_REPAIR:+ KITH_CHAOS_NO_REPAIR=$KITH_CHAOS_NO_REPAIR} (release)" >&2
cargo test --release -p kith-cli --test chaos -- --nocapture
