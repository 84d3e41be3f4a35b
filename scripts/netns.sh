#!/usr/bin/env bash
# Private test networks of Linux network namespaces for running real `kith`
# nodes by hand (the same shapes as crates/cli/tests/netns.rs). Needs root
# and iproute2. Nothing touches the host's network: every interface is
# created inside the script's namespaces, there is no default route and no
# NAT, and addresses are in 10.231.0.0/16.
#
#   scripts/netns.sh lan [N]   N nodes (default 3) on one bridge, no internet:
#                              namespaces kithlan-sw (the bridge) and
#                              kithlan-1..N with 10.231.1.1..N/24
#   scripts/netns.sh relay     A — B — C: kithrly-a 10.231.2.2 ↔ 10.231.2.1
#                              kithrly-b 10.231.3.1 ↔ 10.231.3.2 kithrly-c;
#                              A and C have no route to each other
#   scripts/netns.sh down      deletes every namespace this script made
#                              (stop the nodes in them first)
#
# Then run nodes inside, each with its own data folder, e.g.
#   ip netns exec kithlan-1 kith --dir /tmp/k1 up --listen /ip4/0.0.0.0/tcp/0
#   ip netns exec kithlan-1 kith --dir /tmp/k1 peers
# (`kith` commands talk to their node's API on 127.0.0.1 *inside* the
# namespace, so run them with the same `ip netns exec`.)

set -euo pipefail

netns_add() {
    ip netns add "$1"
    ip -n "$1" link set lo up
}

# veth NS_A IF_A ADDR_A NS_B IF_B [ADDR_B]: a link whose two ends are
# created directly inside their namespaces.
veth() {
    ip link add name "$2" netns "$1" type veth peer name "$5" netns "$4"
    ip -n "$1" link set "$2" multicast on
    ip -n "$1" addr add "$3" dev "$2"
    ip -n "$1" link set "$2" up
    if [ -n "${6:-}" ]; then
        ip -n "$4" addr add "$6" dev "$5"
    fi
    ip -n "$4" link set "$5" up
}

lan() {
    local n=${1:-3}
    netns_add kithlan-sw
    # Snooping off: the bridge floods multicast (mDNS) to every port.
    ip -n kithlan-sw link add br0 type bridge mcast_snooping 0
    ip -n kithlan-sw link set br0 up
    for i in $(seq 1 "$n"); do
        netns_add "kithlan-$i"
        veth "kithlan-$i" eth0 "10.231.1.$i/24" kithlan-sw "p$i"
        ip -n kithlan-sw link set "p$i" master br0
        # mDNS (224.0.0.251) leaves through the LAN; there is no default route.
        ip -n "kithlan-$i" route add 224.0.0.0/4 dev eth0
    done
    echo "LAN ready: namespaces kithlan-1..$n, addresses 10.231.1.1..$n"
}

relay() {
    netns_add kithrly-a
    netns_add kithrly-b
    netns_add kithrly-c
    veth kithrly-a eth0 10.231.2.2/24 kithrly-b eth-a 10.231.2.1/24
    veth kithrly-c eth0 10.231.3.2/24 kithrly-b eth-c 10.231.3.1/24
    echo "relay network ready: kithrly-a (10.231.2.2) — kithrly-b (10.231.2.1, 10.231.3.1) — kithrly-c (10.231.3.2)"
}

down() {
    local ns
    for ns in $(ip netns list | awk '{print $1}' | grep -E '^(kithlan|kithrly)-' || true); do
        ip netns del "$ns"
    done
}

case "${1:-}" in
    lan) lan "${2:-3}" ;;
    relay) relay ;;
    down) down ;;
    *)
        sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'
        exit 2
        ;;
esac
