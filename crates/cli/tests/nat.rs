//! Real `kith up` processes behind real NATs (issue 21, "Reach peers behind
//! NAT"), in Linux network namespaces:
//!
//! ```text
//!                     internet bridge 10.233.0.0/24
//!          ┌──────────────────────┼───────────────────────┐
//!   P 10.233.0.1         ra 10.233.0.2 (NAT)      rb 10.233.0.3 (NAT)
//!   (public node)                 │                       │
//!                        a1 10.233.1.2            b1 10.233.2.2
//! ```
//!
//! Each home router masquerades its host's connections as its own WAN
//! address and drops whatever arrives from the internet unsolicited, as a
//! home router's firewall does (see `Lab::home`). The hosts know only P.
//! Every node has `autonat_private_addresses = true` in its `config.toml`,
//! since the whole lab lives in 10.0.0.0/8.
//!
//! The tests check first that the NAT is real (a1 reaches P; P has no
//! route to a1; an unsolicited connection to a router's WAN address gets no
//! answer at all; P sees a1's connection come from router A), then that
//! the nodes find out by themselves that they are private (AutoNAT), pick
//! P as their relay, find each other by peer id alone, and move a 100 MB
//! file: through a hole punched in cone NATs, or through the relay when
//! both NATs are symmetric. A third lab adds a second public node P2
//! (10.233.0.4) and kills the relay that carries a transfer part way.
//!
//! Each test prints its timings as `figure: nat=… key=value …` lines,
//! which `bench/nat` collects over many runs.
//!
//! Needs root and iproute2 like `netns.rs`, plus nftables (`nft`) and
//! bash; where namespaces cannot be created each test says so and passes.
//! No packet leaves the namespaces the tests create (see `netns_support`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod netns_support;

use std::collections::BTreeSet;
use std::io::{Read as _, Write as _};
use std::path::Path;
use std::time::{Duration, Instant};

use netns_support::{Home, Lab, Nat, Probe, eventually};

/// The internet's subnet; P is `.1`, router A `.2`, router B `.3`.
const INTERNET: &str = "10.233.0";
/// P's address.
const P_ADDR: &str = "10.233.0.1";
/// The address of P2, the second public node of the labs that have one.
const P2_ADDR: &str = "10.233.0.4";
/// The port every node listens on, TCP and QUIC.
const PORT: u16 = 4001;
/// How long a node may take to learn that it is private (AutoNAT probes
/// first 15 s after start, then every 90 s until it has a verdict).
const VERDICT: Duration = Duration::from_secs(120);
/// How long the other steps (relay reservation, lookup by id, hole
/// punching) may take each.
const STEP: Duration = Duration::from_secs(60);
/// The size of the file sent from b1 to a1.
const FILE_SIZE: u64 = 100_000_000;
/// The settings every node of the lab gets.
const CONFIG: &str = "autonat_private_addresses = true\n";

/// P public; a1 and b1 behind cone NATs, each knowing only P. They learn
/// that they are private, listen through P, b1 reaches a1 by peer id, a
/// hole is punched through both NATs, and 100 MB go from b1 to a1 over the
/// direct connection, byte-identical.
#[test]
fn two_homes_behind_cone_nats_find_each_other_relay_and_punch_through() {
    let Some(mut lab) = Lab::new("cone") else {
        return;
    };
    let world = World::build(&mut lab, Nat::Cone);
    let met = world.meet(&lab);
    met.figure("cone");

    let direct = eventually("b1 and a1 hole-punch a direct connection", STEP, || {
        let on_b = connections(&lab, world.b1, &world.a1_id)?;
        let on_a = connections(&lab, world.a1, &world.b1_id)?;
        match (direct_of(&on_b), direct_of(&on_a)) {
            (Some(b_side), Some(a_side)) => Ok((b_side, a_side)),
            _ => Err(format!("connections on b1: {on_b:?}; on a1: {on_a:?}")),
        }
    });
    let to_direct = world.started.elapsed();
    eprintln!("figure: nat=cone direct_s={:.1}", to_direct.as_secs_f64());
    eprintln!(
        "direct connection: b1 sees a1 at {}, a1 sees b1 at {}",
        direct.0, direct.1
    );
    // The hole is in the routers: each side dialled the other's WAN
    // address, never a private one (they have no route to those).
    assert!(
        direct
            .0
            .starts_with(&format!("/ip4/{}/", world.home_a.wan_addr)),
        "b1's direct connection to a1 must go to router A: {}",
        direct.0
    );
    assert!(
        direct
            .1
            .starts_with(&format!("/ip4/{}/", world.home_b.wan_addr)),
        "a1's direct connection to b1 must come from router B: {}",
        direct.1
    );

    // It is a hole punched by DCUtR (the routers drop every connection
    // that the internet starts): one side's punch succeeded.
    let punched = eventually("DCUtR reports the punch", STEP, || {
        let lines: Vec<String> = [world.a1, world.b1]
            .into_iter()
            .flat_map(|node| punch_lines(&lab, node))
            .collect();
        lines
            .iter()
            .find(|line| line.contains("result: Ok("))
            .cloned()
            .ok_or_else(|| format!("hole punching so far: {lines:?}"))
    });
    eprintln!("{punched}");

    let sent = world.send_file(&lab);
    send_figure("cone", sent);
    let after = connections(&lab, world.b1, &world.a1_id).unwrap();
    assert!(
        direct_of(&after).is_some(),
        "the direct connection must outlive the send: {after:?}"
    );
    eprintln!(
        "timings since a1 and b1 started (cone NATs): private verdict {:.1} s, relayed address {:.1} s, \
         b1 reaches a1 {:.1} s, direct connection {:.1} s, 100 MB in {:.1} s = {:.1} MB/s",
        met.to_private.as_secs_f64(),
        met.to_relayed.as_secs_f64(),
        met.to_reached.as_secs_f64(),
        to_direct.as_secs_f64(),
        sent.as_secs_f64(),
        FILE_SIZE as f64 / 1e6 / sent.as_secs_f64(),
    );
    // Last, so that the figures above are printed whatever it finds: by
    // now a1 and b1 have been private for a while (since `met.to_private`).
    world.check_dht_roles(&lab, &met);
}

/// Both homes behind symmetric NATs: every connection leaves by another
/// port, so the address P sees is of no use to anyone else and hole
/// punching has nothing to aim at. The nodes still find each other by
/// peer id, and 100 MB arrive byte-identical through P's relay.
#[test]
fn a_symmetric_nat_still_gets_files_through_the_relay() {
    let Some(mut lab) = Lab::new("symmetric") else {
        return;
    };
    let world = World::build(&mut lab, Nat::Symmetric);
    let met = world.meet(&lab);
    met.figure("symmetric");

    let direct = |lab: &Lab| -> Result<Option<String>, String> {
        let on_b = connections(lab, world.b1, &world.a1_id)?;
        if on_b.is_empty() {
            return Err("b1 has no connection to a1".to_owned());
        }
        Ok(direct_of(&on_b))
    };
    let sent = world.send_file(&lab);
    send_figure("symmetric", sent);
    let after = direct(&lab).unwrap();
    eprintln!("direct connection between b1 and a1 right after the send: {after:?}");
    // DCUtR tries three times (about 10 s each here), then the side that
    // started it (a1, which b1 reached through the relay) reports that it
    // gave up; only then is "no direct connection" the final word.
    let gave_up = eventually("DCUtR gives up between a1 and b1", 3 * STEP, || {
        let lines: Vec<String> = [(world.a1, &world.b1_id), (world.b1, &world.a1_id)]
            .into_iter()
            .flat_map(|(node, other)| {
                punch_lines(&lab, node)
                    .into_iter()
                    .filter(move |line| line.contains(other.as_str()))
            })
            .collect();
        lines
            .iter()
            .find(|line| line.contains("AttemptsExceeded"))
            .cloned()
            .ok_or_else(|| format!("hole punching so far: {lines:?}"))
    });
    eprintln!("{gave_up}");
    let punched: Vec<String> = [world.a1, world.b1]
        .into_iter()
        .flat_map(|node| punch_lines(&lab, node))
        .filter(|line| line.contains("result: Ok("))
        .collect();
    assert!(
        punched.is_empty(),
        "no hole can be punched through two symmetric NATs, yet: {punched:?}"
    );
    let last = direct(&lab).unwrap();
    assert_eq!(
        last, None,
        "b1 and a1 must still talk through the relay only behind symmetric NATs"
    );
    eprintln!(
        "timings since a1 and b1 started (symmetric NATs): private verdict {:.1} s, relayed address {:.1} s, \
         b1 reaches a1 {:.1} s, 100 MB through the relay in {:.1} s = {:.1} MB/s",
        met.to_private.as_secs_f64(),
        met.to_relayed.as_secs_f64(),
        met.to_reached.as_secs_f64(),
        sent.as_secs_f64(),
        FILE_SIZE as f64 / 1e6 / sent.as_secs_f64(),
    );
}

/// Two public nodes P and P2 on the internet, both homes behind symmetric
/// NATs: no hole can be punched, so a1 and b1 talk through a relay only,
/// and a1 listens through both P and P2 (`auto_relays` is 2). b1, capped
/// at 10 MiB/s so that 100 MB take about 10 s, sends a1 a file; as soon as
/// it starts landing in a1's inbox, the relay that carries it is killed.
/// The send breaks off, says so, and is sent again the usual way — through
/// a1's other relay, else a direct connection, else a1's mailbox — and the
/// file is in a1's inbox once, byte-identical, with nothing partial left.
/// The lab has four nodes, fewer than the five distinct peers a file in a
/// mailbox needs (3-of-5 shares): here only the other relay (or a direct
/// connection) can deliver it, and a fall back to the mailbox fails with
/// the node's own sentence saying so.
///
/// P2 bootstraps to P, and a1 and b1 to both: relays are picked among the
/// peers a node is connected to, so a1 has both from the start, without
/// depending on a DHT query that happens to connect it to P2 and on that
/// connection staying open; and whichever public node dies, b1 still knows
/// the other one to look a1 up through.
#[test]
fn a_relay_killed_during_a_transfer_is_replaced_and_the_file_arrives_once() {
    let Some(mut lab) = Lab::new("relaykill") else {
        return;
    };
    let setup = Setup {
        second_public: true,
        b1_flags: &["--max-upload", "10MiB"],
    };
    let world = World::build_with(&mut lab, Nat::Symmetric, &setup);
    let met = world.meet(&lab);
    met.figure("relaykill");
    let publics = world.publics();
    let public_ids: BTreeSet<String> = publics.iter().map(|(_, id)| id.clone()).collect();
    eventually("a1 holds reservations on both relays", STEP, || {
        let held = relays(&lab, world.a1)?;
        if held == public_ids {
            Ok(())
        } else {
            Err(format!("a1's relays: {held:?}, wanted {public_ids:?}"))
        }
    });
    let to_two_relays = world.started.elapsed();

    let file = lab.scratch("out").join("big.bin");
    let sent_hash = write_pseudo_random(&file, FILE_SIZE);
    let logs = lab.scratch("send");
    let (out_path, err_path) = (logs.join("stdout"), logs.join("stderr"));
    let start = Instant::now();
    let mut send = lab
        .kith_command(world.b1, &["send", &world.a1_id, file.to_str().unwrap()])
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("`kith send` starts");
    let said = || {
        format!(
            "stdout: {}\nstderr: {}",
            std::fs::read_to_string(&out_path)
                .unwrap_or_default()
                .trim(),
            std::fs::read_to_string(&err_path)
                .unwrap_or_default()
                .trim()
        )
    };
    let inbox = lab.node(world.a1).dir.join("inbox");
    let landing = eventually("the file starts landing in a1's inbox", STEP, || {
        if let Ok(Some(status)) = send.try_wait() {
            panic!(
                "the send ended ({status}) before the relay was killed; {}",
                said()
            );
        }
        let landed: u64 = partial_sizes(&inbox).iter().sum();
        if landed > 0 {
            Ok(landed)
        } else {
            Err(format!("a1's inbox: {:?}", inbox_names(&inbox)))
        }
    });

    // Where the others would dial a1: their routing tables' addresses
    // for it (a1 is a DHT client; see `check_dht_roles`).
    for (node, _) in &publics {
        eprintln!(
            "{}'s routing table has a1 at {:?}",
            lab.node(*node).name,
            routing_addrs(&lab, *node, &world.a1_id)
        );
    }
    eprintln!(
        "b1's routing table has a1 at {:?}",
        routing_addrs(&lab, world.b1, &world.a1_id)
    );

    // The relay that carries the transfer: b1's connection to a1 names it
    // (the first one, as the node's own delivery report takes it).
    let on_b = connections(&lab, world.b1, &world.a1_id).unwrap();
    eprintln!("b1's connections to a1 during the send: {on_b:?}");
    assert_eq!(
        direct_of(&on_b),
        None,
        "behind symmetric NATs b1 must reach a1 through a relay only"
    );
    let carrier = on_b
        .iter()
        .find_map(|addr| relay_in(addr))
        .unwrap_or_else(|| panic!("no relayed connection from b1 to a1: {on_b:?}"))
        .to_owned();
    let &(victim, _) = publics
        .iter()
        .find(|(_, id)| *id == carrier)
        .unwrap_or_else(|| panic!("b1 reaches a1 through {carrier}, not a public node of the lab"));
    let (_, survivor) = publics
        .iter()
        .find(|(_, id)| *id != carrier)
        .expect("two public nodes");
    let victim_name = lab.node(victim).name.clone();
    eprintln!(
        "{landing} bytes landed in a1's inbox after {:.1} s; killing {victim_name} ({carrier}), \
         the relay that carries them",
        start.elapsed().as_secs_f64()
    );
    lab.kill(victim);
    let killed = Instant::now();

    let status = eventually("the send ends", 4 * STEP, || {
        send.try_wait()
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "still sending".to_owned())
    });
    let (after_kill, took) = (killed.elapsed(), start.elapsed());
    let stdout = std::fs::read_to_string(&out_path).unwrap();
    let stderr = std::fs::read_to_string(&err_path).unwrap();
    eprintln!(
        "the send, {status}:\nstdout: {}\nstderr: {}",
        stdout.trim(),
        stderr.trim()
    );
    // The mailbox needs peers to hold the file's sealed shares: if that is
    // the way it went and it failed, stderr says so.
    assert!(
        status.success(),
        "the send must get through after its relay died; {}",
        said()
    );
    assert!(
        stderr.contains(&format!(
            "sending it again: another way to {}, else its mailbox",
            world.a1_id
        )),
        "the send must say that it broke off and was sent again: {stderr}"
    );
    let (way, tag) = if stdout.contains("waits in its mailbox") {
        ("the mailbox".to_owned(), "mailbox")
    } else if stdout.contains(&format!("directly through relay {survivor}")) {
        (format!("the other relay ({survivor})"), "other_relay")
    } else if stdout.contains("directly through relay") {
        (
            format!(
                "a relay other than the surviving public node: {}",
                stdout.trim()
            ),
            "unknown_relay",
        )
    } else {
        ("a direct connection".to_owned(), "direct")
    };
    let again = if stderr.contains("sending it to the mailbox of") {
        "; the second try broke off too, the third went to the mailbox"
    } else {
        ""
    };

    // One copy, whole: no partial file, no second entry.
    let landed = inbox.join("big.bin");
    eventually("big.bin alone in a1's inbox", 3 * STEP, || {
        let names = inbox_names(&inbox);
        let size = std::fs::metadata(&landed).map(|meta| meta.len()).ok();
        if names == ["big.bin"] && size == Some(FILE_SIZE) {
            Ok(())
        } else {
            Err(format!("a1's inbox: {names:?}; big.bin is {size:?} bytes"))
        }
    });
    let received_hash = hash_file(&landed).unwrap();
    assert!(
        received_hash == sent_hash,
        "the file differs on arrival (blake3 {} sent, {} received)",
        sent_hash.to_hex(),
        received_hash.to_hex()
    );
    let listing = lab.kith(world.a1, &["inbox"]).unwrap();
    assert_eq!(
        listing
            .lines()
            .filter(|line| line.contains("file big.bin"))
            .count(),
        1,
        "a1's inbox must list the file once: {listing}"
    );
    let _ = std::fs::remove_file(&landed);
    let _ = std::fs::remove_file(&file);

    eprintln!(
        "a1's relays after {victim_name} died: {:?}; b1's connections to a1: {:?}",
        relays(&lab, world.a1),
        connections(&lab, world.b1, &world.a1_id)
    );
    eprintln!(
        "relay {victim_name} killed {:.1} s into the send: sent again through {way}{again}; \
         the send ended {:.1} s after the kill, {:.1} s after it began \
         (a1 private after {:.1} s, on two relays after {:.1} s)",
        (took - after_kill).as_secs_f64(),
        after_kill.as_secs_f64(),
        took.as_secs_f64(),
        met.to_private.as_secs_f64(),
        to_two_relays.as_secs_f64(),
    );
    eprintln!(
        "figure: nat=relaykill killed={victim_name} way={tag} after_kill_s={:.1} send_s={:.1}",
        after_kill.as_secs_f64(),
        took.as_secs_f64(),
    );
}

/// The lab of the tests: P (and P2) on the internet, a1 and b1 in their
/// homes.
struct World {
    home_a: Home,
    home_b: Home,
    p: usize,
    /// The second public node, when [`Setup::second_public`] asked for one.
    p2: Option<usize>,
    a1: usize,
    b1: usize,
    p_id: String,
    p2_id: Option<String>,
    a1_id: String,
    b1_id: String,
    /// When a1 and b1 were started.
    started: Instant,
}

/// How long [`World::meet`]'s steps took, from [`World::started`].
struct Met {
    /// Until both homes' nodes said `reachability: private`.
    to_private: Duration,
    /// Until both listened through a relay.
    to_relayed: Duration,
    /// Until b1 pinged a1 by peer id.
    to_reached: Duration,
}

impl Met {
    /// Prints the timings as a `figure:` line for `bench/nat`.
    fn figure(&self, nat: &str) {
        eprintln!(
            "figure: nat={nat} private_s={:.1} relayed_s={:.1} reached_s={:.1}",
            self.to_private.as_secs_f64(),
            self.to_relayed.as_secs_f64(),
            self.to_reached.as_secs_f64(),
        );
    }
}

/// Prints how long the 100 MB send took as a `figure:` line for
/// `bench/nat`.
fn send_figure(nat: &str, took: Duration) {
    eprintln!(
        "figure: nat={nat} send_s={:.2} send_mb_s={:.1}",
        took.as_secs_f64(),
        FILE_SIZE as f64 / 1e6 / took.as_secs_f64()
    );
}

/// What sets a lab apart from the plain one (P, a1, b1).
#[derive(Default)]
struct Setup<'a> {
    /// A second public node P2 at [`P2_ADDR`], which bootstraps to P; a1
    /// and b1 then bootstrap to both.
    second_public: bool,
    /// Flags added to b1's `kith up`.
    b1_flags: &'a [&'a str],
}

impl World {
    /// Builds the network, checks that its NATs are real, and starts the
    /// three nodes.
    fn build(lab: &mut Lab, nat: Nat) -> Self {
        Self::build_with(lab, nat, &Setup::default())
    }

    /// [`World::build`], with what `setup` adds.
    fn build_with(lab: &mut Lab, nat: Nat, setup: &Setup<'_>) -> Self {
        let internet = lab.namespace("net");
        lab.bridge(&internet);
        let p_ns = lab.namespace("p");
        lab.attach(&p_ns, &format!("{P_ADDR}/24"), &internet, "p-p");
        let home_a = lab.home(
            "a",
            &internet,
            &format!("{INTERNET}.2/24"),
            "10.233.1.0/24",
            nat,
        );
        let home_b = lab.home(
            "b",
            &internet,
            &format!("{INTERNET}.3/24"),
            "10.233.2.0/24",
            nat,
        );

        // P has no route into the homes: their addresses are private.
        for home in [&home_a, &home_b] {
            let route = lab.ip(&["-n", &p_ns, "route", "get", &home.host_addr]);
            assert!(
                route.is_err(),
                "P must have no route to {}: {route:?}",
                home.host_addr
            );
        }

        for name in ["p", "p2", "a1", "b1"] {
            lab.write_config(name, CONFIG);
        }
        let listen = [
            "--no-mdns",
            "--listen",
            &format!("/ip4/0.0.0.0/tcp/{PORT}"),
            "--listen",
            &format!("/ip4/0.0.0.0/udp/{PORT}/quic-v1"),
        ];
        let p = lab.start("p", &p_ns, &listen);
        let p_id = lab.node(p).peer_id.clone();
        let mut bootstraps = vec![format!("/ip4/{P_ADDR}/tcp/{PORT}/p2p/{p_id}")];
        let (p2, p2_id) = if setup.second_public {
            let p2_ns = lab.namespace("p2");
            lab.attach(&p2_ns, &format!("{P2_ADDR}/24"), &internet, "p-p2");
            let mut args = listen.to_vec();
            args.extend(["--bootstrap", &bootstraps[0]]);
            let p2 = lab.start("p2", &p2_ns, &args);
            let p2_id = lab.node(p2).peer_id.clone();
            bootstraps.push(format!("/ip4/{P2_ADDR}/tcp/{PORT}/p2p/{p2_id}"));
            (Some(p2), Some(p2_id))
        } else {
            (None, None)
        };

        // The homes reach the internet through their routers: P's port
        // answers a1 and b1.
        for home in [&home_a, &home_b] {
            let probe = lab.probe_tcp(&home.host_ns, P_ADDR, PORT, Duration::from_secs(5));
            assert_eq!(probe, Probe::Connected, "{} must reach P", home.host_ns);
        }

        let mut args = listen.to_vec();
        for bootstrap in &bootstraps {
            args.extend(["--bootstrap", bootstrap]);
        }
        let started = Instant::now();
        let a1 = lab.start("a1", &home_a.host_ns, &args);
        args.extend(setup.b1_flags);
        let b1 = lab.start("b1", &home_b.host_ns, &args);
        let a1_id = lab.node(a1).peer_id.clone();
        let b1_id = lab.node(b1).peer_id.clone();

        let world = Self {
            home_a,
            home_b,
            p,
            p2,
            a1,
            b1,
            p_id,
            p2_id,
            a1_id,
            b1_id,
            started,
        };
        world.check_nat(lab, nat);
        world
    }

    /// P sees each home's node come from its router's WAN address (from
    /// the port its node used, behind a cone NAT; from another one behind
    /// a symmetric NAT), and nothing answers a connection P starts towards
    /// a router, even on the port the home's node listens on.
    fn check_nat(&self, lab: &Lab, nat: Nat) {
        for (home, id) in [(&self.home_a, &self.a1_id), (&self.home_b, &self.b1_id)] {
            let wan_tcp = format!("/ip4/{}/tcp/", home.wan_addr);
            let (seen, local_ports) =
                eventually(&format!("P sees {} over TCP", home.host_ns), STEP, || {
                    let seen = connections(lab, self.p, id)?;
                    let Some(seen) = seen.iter().find(|addr| addr.contains("/tcp/")) else {
                        return Err(format!("no TCP connection: {seen:?}"));
                    };
                    let port = seen
                        .strip_prefix(&wan_tcp)
                        .and_then(|rest| rest.split('/').next())
                        .and_then(|port| port.parse::<u16>().ok())
                        .ok_or_else(|| {
                            format!(
                                "P must see {} at its router's address {}, not {seen}",
                                home.host_ns, home.wan_addr
                            )
                        })?;
                    let local_ports = tcp_ports_to(lab, &home.host_ns, P_ADDR)?;
                    if nat == Nat::Cone && !local_ports.contains(&port) {
                        return Err(format!(
                            "a cone NAT keeps the port: P sees {seen}, the host's own \
                             connections to P leave from ports {local_ports:?}"
                        ));
                    }
                    Ok((seen.clone(), local_ports))
                });
            eprintln!(
                "{nat:?} NAT: P sees {} at {seen}; its connections to P leave from ports \
                 {local_ports:?}",
                home.host_ns
            );
            let probe = lab.probe_tcp(
                &lab.node(self.p).ns,
                &home.wan_addr,
                PORT,
                Duration::from_secs(3),
            );
            assert_eq!(
                probe,
                Probe::Silence,
                "an unsolicited connection to {} must get no answer",
                home.wan_addr
            );
        }
    }

    /// The public nodes, P then P2 if there is one, with their peer ids.
    fn publics(&self) -> Vec<(usize, String)> {
        let mut publics = vec![(self.p, self.p_id.clone())];
        if let (Some(p2), Some(p2_id)) = (self.p2, &self.p2_id) {
            publics.push((p2, p2_id.clone()));
        }
        publics
    }

    /// Waits until a1 and b1 are private and listen through a public node
    /// (P, in the labs with P alone), then until
    /// b1 reaches a1 knowing only its peer id (a ping), and sends it a
    /// message.
    fn meet(&self, lab: &Lab) -> Met {
        for node in [self.a1, self.b1] {
            let name = &lab.node(node).name;
            eventually(&format!("{name} finds it is private"), VERDICT, || {
                let line = reachability(lab, node)?;
                if line.starts_with("reachability: private") {
                    Ok(())
                } else {
                    Err(line)
                }
            });
        }
        let to_private = self.started.elapsed();
        eprintln!(
            "P: {}",
            reachability(lab, self.p).unwrap_or_else(|e| e.to_string())
        );

        for node in [self.a1, self.b1] {
            let name = &lab.node(node).name;
            let circuit = eventually(&format!("{name} listens through a relay"), STEP, || {
                let id = lab.kith(node, &["id"])?;
                id.lines()
                    .find(|line| line.contains("/p2p-circuit"))
                    .map(str::to_owned)
                    .ok_or(id)
            });
            eprintln!("{name}: relayed at {circuit}");
            assert!(
                self.publics()
                    .iter()
                    .any(|(_, id)| circuit.contains(&format!("/p2p/{id}/p2p-circuit"))),
                "{name} must listen through the lab's public node(s): {circuit}"
            );
        }
        let to_relayed = self.started.elapsed();

        // b1 knows a1's peer id only; the lookup goes through P's DHT.
        let pong = eventually("b1 pings a1 by peer id", STEP, || {
            lab.kith(self.b1, &["ping", &self.a1_id])
        });
        eprintln!("b1 pings a1: {}", pong.trim());
        assert!(pong.starts_with(&self.a1_id), "{pong}");
        let to_reached = self.started.elapsed();
        let text = "from one home to another";
        let said = lab
            .kith(self.b1, &["msg", &self.a1_id, text])
            .unwrap_or_else(|e| panic!("b1 cannot message a1: {e}"));
        eprintln!("b1 messages a1: {}", said.trim());
        let inbox = lab.kith(self.a1, &["inbox"]).unwrap();
        assert!(inbox.contains(text), "a1's inbox: {inbox}");
        let on_b = connections(lab, self.b1, &self.a1_id).unwrap();
        eprintln!("b1's connections to a1 after the ping: {on_b:?}");
        Met {
            to_private,
            to_relayed,
            to_reached,
        }
    }

    /// Only reachable nodes serve the DHT: P says `DHT server`, a1 and b1
    /// (private) `DHT client`; P is connected to a1 and b1 but has neither
    /// in its routing table (empty `addrs` in `kith peers --json`), while
    /// a1's routing table has P.
    fn check_dht_roles(&self, lab: &Lab, met: &Met) {
        let on_p = reachability(lab, self.p).unwrap();
        assert!(
            on_p.contains("; DHT server"),
            "P is public and must serve the DHT: {on_p}"
        );
        for node in [self.a1, self.b1] {
            let line = reachability(lab, node).unwrap();
            assert!(
                line.contains("; DHT client"),
                "{} is private and must be a DHT client: {line}",
                lab.node(node).name
            );
        }
        // Given a minute: a DHT client that was briefly a server (before
        // its verdict) may take a while to be dropped.
        eventually("P's routing table holds neither a1 nor b1", STEP, || {
            let p_peers = peer_list(lab, self.p)?;
            let mut held = Vec::new();
            for (name, id) in [("a1", &self.a1_id), ("b1", &self.b1_id)] {
                let entry = p_peers
                    .iter()
                    .find(|peer| peer.peer_id == *id)
                    .ok_or_else(|| format!("P is not connected to {name}: {p_peers:?}"))?;
                if !entry.addrs.is_empty() {
                    held.push(format!(
                        "{name} at {:?} (connections {:?})",
                        entry.addrs, entry.connections
                    ));
                }
            }
            if held.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "DHT clients, private for {:.0} s, are in P's routing table: {}",
                    self.started
                        .elapsed()
                        .saturating_sub(met.to_private)
                        .as_secs_f64(),
                    held.join("; ")
                ))
            }
        });
        let a_peers = peer_list(lab, self.a1).unwrap();
        let p_on_a = a_peers
            .iter()
            .find(|peer| peer.peer_id == self.p_id)
            .unwrap_or_else(|| panic!("a1 must be connected to P: {a_peers:?}"));
        assert!(
            !p_on_a.addrs.is_empty(),
            "P serves the DHT and must be in a1's routing table: {p_on_a:?}"
        );
        eprintln!(
            "DHT roles: P a server, a1 and b1 clients; P's routing table has neither, a1's has \
             P at {:?}",
            p_on_a.addrs
        );
    }

    /// Sends a file of [`FILE_SIZE`] pseudo-random bytes from b1 to a1 by
    /// peer id, checks that it arrived byte-identical and returns how long
    /// the send took.
    fn send_file(&self, lab: &Lab) -> Duration {
        let file = lab.scratch("out").join("big.bin");
        let sent_hash = write_pseudo_random(&file, FILE_SIZE);
        let start = Instant::now();
        let said = lab
            .kith(self.b1, &["send", &self.a1_id, file.to_str().unwrap()])
            .unwrap_or_else(|e| panic!("b1 cannot send to a1: {e}"));
        let took = start.elapsed();
        eprintln!("b1 sends 100 MB to a1: {}", said.trim());
        let on_b = connections(lab, self.b1, &self.a1_id).unwrap_or_default();
        eprintln!("b1's connections to a1 after the send: {on_b:?}");
        let landed = lab.node(self.a1).dir.join("inbox").join("big.bin");
        let received_hash = hash_file(&landed)
            .unwrap_or_else(|e| panic!("{}: {e}; the send said {said}", landed.display()));
        assert!(
            received_hash == sent_hash,
            "the file differs on arrival (blake3 {} sent, {} received)",
            sent_hash.to_hex(),
            received_hash.to_hex()
        );
        // The file is compared; free the disk early.
        let _ = std::fs::remove_file(&landed);
        let _ = std::fs::remove_file(&file);
        took
    }
}

/// The `reachability:` line of `kith id` on node `index`.
fn reachability(lab: &Lab, index: usize) -> Result<String, String> {
    let id = lab.kith(index, &["id"])?;
    id.lines()
        .find(|line| line.starts_with("reachability:"))
        .map(str::to_owned)
        .ok_or_else(|| format!("no reachability line in `kith id`: {id:?}"))
}

/// The local ports of the established TCP connections from namespace
/// `ns` to `addr` (`ss`, from iproute2).
fn tcp_ports_to(lab: &Lab, ns: &str, addr: &str) -> Result<Vec<u16>, String> {
    let out = lab.ip(&[
        "netns",
        "exec",
        ns,
        "ss",
        "-Htn",
        "state",
        "established",
        "dst",
        addr,
    ])?;
    // `Recv-Q Send-Q Local:Port Peer:Port` (no State column when filtered).
    Ok(out
        .lines()
        .filter_map(|line| {
            line.split_whitespace()
                .nth(2)?
                .rsplit(':')
                .next()?
                .parse()
                .ok()
        })
        .collect())
}

/// The relays node `index` holds reservations on (the `relays:` part of
/// `kith id`'s last line).
fn relays(lab: &Lab, index: usize) -> Result<BTreeSet<String>, String> {
    let line = reachability(lab, index)?;
    Ok(line
        .split("; ")
        .find_map(|part| part.strip_prefix("relays: "))
        .map(|ids| ids.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default())
}

/// The peers node `index` is connected to (`kith peers --json`).
fn peer_list(lab: &Lab, index: usize) -> Result<Vec<kith_api::types::Peer>, String> {
    let json = lab.kith(index, &["peers", "--json"])?;
    let peers: kith_api::types::Peers =
        serde_json::from_str(&json).map_err(|e| format!("{e}: {json}"))?;
    Ok(peers.peers)
}

/// The addresses node `index`'s routing table has for `peer` (`addrs` in
/// `kith peers --json`; empty when `peer` is not in it or not connected).
fn routing_addrs(lab: &Lab, index: usize, peer: &str) -> Result<Vec<String>, String> {
    Ok(peer_list(lab, index)?
        .into_iter()
        .find(|listed| listed.peer_id == peer)
        .map(|listed| listed.addrs)
        .unwrap_or_default())
}

/// The remote address of each open connection node `index` has to `peer`
/// (`kith peers --json`).
fn connections(lab: &Lab, index: usize, peer: &str) -> Result<Vec<String>, String> {
    Ok(peer_list(lab, index)?
        .into_iter()
        .find(|listed| listed.peer_id == peer)
        .map(|listed| listed.connections)
        .unwrap_or_default())
}

/// The relay a relayed address goes through: the peer id before
/// `/p2p-circuit`.
fn relay_in(addr: &str) -> Option<&str> {
    let (before, _) = addr.split_once("/p2p-circuit")?;
    before.rsplit_once("/p2p/").map(|(_, relay)| relay)
}

/// The names in an inbox folder, sorted.
fn inbox_names(inbox: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(inbox)
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The sizes of the partial files (`.kith-partial*`) in an inbox folder.
fn partial_sizes(inbox: &Path) -> Vec<u64> {
    std::fs::read_dir(inbox)
        .map(|entries| {
            entries
                .flatten()
                .filter(|entry| {
                    entry
                        .file_name()
                        .to_string_lossy()
                        .starts_with(".kith-partial")
                })
                .filter_map(|entry| entry.metadata().ok().map(|meta| meta.len()))
                .collect()
        })
        .unwrap_or_default()
}

/// The first direct (not relayed) one of `connections`.
fn direct_of(connections: &[String]) -> Option<String> {
    connections
        .iter()
        .find(|addr| !addr.contains("/p2p-circuit"))
        .cloned()
}

/// Writes `size` pseudo-random bytes (xorshift, incompressible enough) to
/// `path` a MiB at a time and returns their BLAKE3 hash.
fn write_pseudo_random(path: &Path, size: u64) -> blake3::Hash {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut hasher = blake3::Hasher::new();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut chunk = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let len = usize::try_from(left.min(chunk.len() as u64)).unwrap();
        for word in chunk[..len].chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes()[..word.len()]);
        }
        hasher.update(&chunk[..len]);
        out.write_all(&chunk[..len]).unwrap();
        left -= len as u64;
    }
    out.flush().unwrap();
    hasher.finalize()
}

/// The BLAKE3 hash of the file at `path`, read a MiB at a time.
fn hash_file(path: &Path) -> std::io::Result<blake3::Hash> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = blake3::Hasher::new();
    let mut chunk = vec![0u8; 1 << 20];
    loop {
        let read = file.read(&mut chunk)?;
        if read == 0 {
            return Ok(hasher.finalize());
        }
        hasher.update(&chunk[..read]);
    }
}

/// The lines of node `index`'s log about hole punching (DCUtR events).
fn punch_lines(lab: &Lab, index: usize) -> Vec<String> {
    lab.log(index)
        .lines()
        .filter(|line| line.contains("hole punching"))
        .map(str::to_owned)
        .collect()
}
