//! Real `kith up` processes on private networks made of Linux network
//! namespaces: a LAN with no internet where nodes find each other by mDNS,
//! and two nodes that cannot reach each other talking (ping, a message)
//! through a relay.
//!
//! Needs root (or CAP_SYS_ADMIN + CAP_NET_ADMIN) and `ip` from iproute2;
//! without them each test prints "skipping: cannot create network
//! namespaces: <reason>" and passes. CI runs as root, so there they run.
//! No packet leaves the namespaces the tests create (see `netns_support`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod netns_support;

use std::collections::BTreeSet;

use netns_support::{Lab, WAIT, eventually, ids};

/// Three nodes on one Ethernet segment (a bridge), no router, no internet,
/// no bootstrap address: each must find the other two by mDNS alone.
#[test]
fn lan_nodes_find_each_other_by_mdns() {
    let Some(mut lab) = Lab::new("lan") else {
        return;
    };
    let switch = lab.namespace("sw");
    lab.bridge(&switch);
    let mut nodes = Vec::new();
    for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
        let ns = lab.namespace(name);
        lab.attach(
            &ns,
            &format!("10.231.1.{}/24", i + 1),
            &switch,
            &format!("p-{name}"),
        );
        nodes.push((name, ns));
    }
    let started: Vec<usize> = nodes
        .iter()
        .map(|(name, ns)| lab.start(name, ns, &["--listen", "/ip4/0.0.0.0/tcp/0"]))
        .collect();
    let all: BTreeSet<String> = started
        .iter()
        .map(|&i| lab.node(i).peer_id.clone())
        .collect();
    assert_eq!(all.len(), 3, "three distinct peer ids: {all:?}");

    for &i in &started {
        let node = lab.node(i);
        let mut others = all.clone();
        others.remove(&node.peer_id);
        let what = format!("{} lists the other two LAN nodes", node.name);
        eventually(&what, WAIT, || {
            let peers = lab.peers(i)?;
            let listed = ids(&peers);
            if !others.is_subset(&listed) {
                return Err(format!("peers: {peers:?}"));
            }
            // Their LAN addresses are known, not only loopback ones.
            for (id, addrs) in &peers {
                if others.contains(id) && !addrs.iter().any(|a| a.starts_with("/ip4/10.231.1.")) {
                    return Err(format!("no LAN address for {id}: {addrs:?}"));
                }
            }
            Ok(())
        });
    }
}

/// A — B — C: A and C share no network; B is reachable by both and runs a
/// relay. C listens through B's relay; A dials C's relayed address and
/// pings it.
#[test]
fn nodes_without_a_route_talk_through_a_relay() {
    let Some(mut lab) = Lab::new("relay") else {
        return;
    };
    let a = lab.namespace("a");
    let b = lab.namespace("b");
    let c = lab.namespace("c");
    lab.link(&a, "eth0", "10.231.2.2/24", &b, "eth-a", "10.231.2.1/24");
    lab.link(&b, "eth-c", "10.231.3.1/24", &c, "eth0", "10.231.3.2/24");
    // A has no route to C (and B does not forward: a new namespace starts
    // with ip_forward = 0); asking the kernel sends no packet.
    let route = lab.ip(&["-n", &a, "route", "get", "10.231.3.2"]);
    assert!(route.is_err(), "A must not have a route to C: {route:?}");
    let forwarding = lab.ip(&["netns", "exec", &b, "cat", "/proc/sys/net/ipv4/ip_forward"]);
    assert_eq!(forwarding.as_deref().map(str::trim), Ok("0"));

    let relay = lab.start(
        "b",
        &b,
        &[
            "--listen",
            "/ip4/0.0.0.0/tcp/4001",
            "--external",
            "/ip4/10.231.3.1/tcp/4001",
            "--external",
            "/ip4/10.231.2.1/tcp/4001",
            "--no-mdns",
        ],
    );
    let relay_id = lab.node(relay).peer_id.clone();

    let hidden = lab.start(
        "c",
        &c,
        &[
            "--no-mdns",
            "--listen",
            "/ip4/0.0.0.0/tcp/0",
            "--relay",
            &format!("/ip4/10.231.3.1/tcp/4001/p2p/{relay_id}"),
        ],
    );
    let hidden_id = lab.node(hidden).peer_id.clone();
    // The reservation shows as a relayed listen address in `kith id`.
    let circuit = format!("/ip4/10.231.3.1/tcp/4001/p2p/{relay_id}/p2p-circuit");
    eventually("C holds a reservation on B", WAIT, || {
        let id = lab.kith(hidden, &["id"])?;
        if id.lines().any(|line| line.starts_with(&circuit)) {
            Ok(())
        } else {
            Err(format!("`kith id` on C: {id:?}"))
        }
    });

    let dialer = lab.start(
        "a",
        &a,
        &[
            "--no-mdns",
            "--bootstrap",
            &format!("/ip4/10.231.2.1/tcp/4001/p2p/{relay_id}"),
        ],
    );
    let dialer_id = lab.node(dialer).peer_id.clone();

    // C's direct address is out of A's reach: a plain dial (no /p2p, so
    // no existing connection to C can answer for it) fails at once.
    let direct = lab
        .kith(hidden, &["id"])
        .unwrap()
        .lines()
        .find(|line| line.starts_with("/ip4/10.231.3.2/tcp/"))
        .map(|line| line.split("/p2p/").next().unwrap().to_owned())
        .expect("C listens on 10.231.3.2");
    let refused = lab.kith(dialer, &["connect", &direct]);
    assert!(
        refused.as_ref().is_err_and(|e| e.contains("unreachable")),
        "A must not reach C directly: {refused:?}"
    );

    // A reaches B on the A–B link.
    let relayed = format!("/ip4/10.231.2.1/tcp/4001/p2p/{relay_id}/p2p-circuit/p2p/{hidden_id}");
    let connected = eventually("A connects to C through B", WAIT, || {
        lab.kith(dialer, &["connect", &relayed])
    });
    assert_eq!(connected.trim(), hidden_id);

    let on_a = eventually("A lists C among its peers", WAIT, || {
        let peers = lab.peers(dialer)?;
        // C is known by its address through the relay.
        let relayed_known = peers.iter().any(|(id, addrs)| {
            *id == hidden_id && addrs.iter().any(|a| a.contains("/p2p-circuit/"))
        });
        if relayed_known {
            Ok(peers)
        } else {
            Err(format!("peers: {peers:?}"))
        }
    });
    eprintln!("peers on A: {on_a:?}");
    eventually("C lists A among its peers", WAIT, || {
        let peers = lab.peers(hidden)?;
        if ids(&peers).contains(&dialer_id) {
            Ok(())
        } else {
            Err(format!("peers: {peers:?}"))
        }
    });

    let pong = eventually("A pings C through B", WAIT, || {
        lab.kith(dialer, &["ping", &hidden_id])
    });
    let words: Vec<&str> = pong.split_whitespace().collect();
    assert_eq!(words.len(), 3, "{pong:?}");
    assert_eq!(words[0], hidden_id);
    let rtt: f64 = words[1].parse().expect("a round-trip time");
    assert!(rtt >= 0.0, "{pong:?}");
    assert_eq!(words[2], "ms");

    // A message to C goes straight to C's node, through the relay: the
    // relay forwards the Noise connection's ciphertext only.
    let sent = lab
        .kith(dialer, &["msg", &hidden_id, "through the relay"])
        .unwrap();
    assert!(
        sent.contains(&format!("directly through relay {relay_id}")),
        "{sent}"
    );
    let inbox = lab.kith(hidden, &["inbox"]).unwrap();
    assert!(inbox.contains("through the relay"), "{inbox}");

    // A photo-sized file goes the same way, whole: a circuit carries up to
    // 1 GiB (it was 1 MiB, and such a send failed).
    let photo = lab.scratch("out").join("photo.jpg");
    let bytes: Vec<u8> = (0..3u32 << 20).map(|i| (i % 253) as u8).collect();
    std::fs::write(&photo, &bytes).unwrap();
    let sent = lab
        .kith(dialer, &["send", &hidden_id, photo.to_str().unwrap()])
        .unwrap();
    assert!(
        sent.contains(&format!("directly through relay {relay_id}")),
        "{sent}"
    );
    let landed = lab.node(hidden).dir.join("inbox").join("photo.jpg");
    let received = std::fs::read(&landed)
        .unwrap_or_else(|e| panic!("{}: {e}; the send said {sent}", landed.display()));
    assert!(received == bytes, "the file differs after the relay");
}
