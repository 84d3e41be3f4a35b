//! Files on the network, end to end with real `kith up` processes on
//! 127.0.0.1: `kith put`, `kith get` and `kith stat` across ten nodes, with
//! the uploader stopped, nodes killed and shares damaged on disk; and every
//! way a put or get must fail clearly and leave nothing behind.
//!
//! Each test starts its own nodes on free ports with mDNS off.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

/// Writes `len` random bytes to `path`.
/// `kith put`: the capability, or the failed output.
fn put(node: &Daemon, file: &Path, extra: &[&str]) -> String {
    let output = kith_command(&node.dir)
        .arg("put")
        .arg(file)
        .args(extra)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "put {} failed: {}",
        file.display(),
        text(&output.stderr)
    );
    let stdout = text(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "put printed more than a capability: {stdout}"
    );
    assert!(lines[0].starts_with("kith:"), "{stdout}");
    lines[0].to_owned()
}

/// `kith get CAP -o OUT`; returns stderr. Panics with stderr on failure.
fn get(node: &Daemon, cap: &str, out: &Path) -> String {
    let output = kith_command(&node.dir)
        .args(["get", cap, "-o"])
        .arg(out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "get on {} failed: {}\nthe node's log ends:\n{}",
        node.dir.display(),
        text(&output.stderr),
        log_tail(node)
    );
    text(&output.stderr)
}

/// Node `i` of a network where some nodes were stopped.
fn node(nodes: &[Option<Daemon>], i: usize) -> &Daemon {
    nodes[i].as_ref().expect("that node was stopped")
}

/// The last lines a daemon logged.
fn log_tail(node: &Daemon) -> String {
    let log = node.stderr.lock().unwrap();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

fn assert_same(original: &Path, copy: &Path) {
    let (a, b) = (fs::read(original).unwrap(), fs::read(copy).unwrap());
    assert!(
        a == b,
        "{} differs from {} ({} vs {} bytes)",
        copy.display(),
        original.display(),
        b.len(),
        a.len()
    );
}

/// `kith stat CAP` lines.
fn stat(node: &Daemon, cap: &str) -> Vec<String> {
    let output = kith(&node.dir, &["stat", cap]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    text(&output.stdout).lines().map(str::to_owned).collect()
}

/// From `kith stat` lines: the holders of share `index` of stripe `stripe`.
fn holders_of(stat: &[String], stripe: usize, index: u8) -> Vec<String> {
    let prefix = format!("stripe {stripe} ");
    let line = stat
        .iter()
        .find(|line| line.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} in {stat:?}"));
    line.split_whitespace()
        .filter_map(|word| word.split_once(':'))
        .filter(|(at, _)| at.parse::<u8>() == Ok(index))
        .map(|(_, peer)| peer.to_owned())
        .collect()
}

/// Flips one byte in every share file under a node's store.
fn damage_every_share(node: &Daemon) -> usize {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).unwrap().map(Result::unwrap) {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, found);
            } else {
                found.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&node.dir.join("store").join("shares"), &mut files);
    for file in &files {
        let len = fs::metadata(file).unwrap().len();
        let mut handle = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(file)
            .unwrap();
        let at = len / 2;
        let mut byte = [0u8];
        handle.seek(SeekFrom::Start(at)).unwrap();
        handle.read_exact(&mut byte).unwrap();
        handle.seek(SeekFrom::Start(at)).unwrap();
        handle.write_all(&[byte[0] ^ 0x40]).unwrap();
    }
    files.len()
}

#[test]
fn ten_nodes_keep_files_through_stops_kills_and_damaged_disks() {
    let temp = tempfile::tempdir().unwrap();
    let files = temp.path().join("files");
    fs::create_dir(&files).unwrap();
    let mut nodes: Vec<Option<Daemon>> = start_network(temp.path(), 10, 6, |_| Vec::new())
        .into_iter()
        .map(Some)
        .collect();

    // Four sizes, put from node 1, each fetched by a different node.
    let sizes = [0, 1, (1 << 20) + 1, 20 << 20];
    let mut caps = Vec::new();
    for (at, size) in sizes.iter().enumerate() {
        let original = files.join(format!("file{at}"));
        random_file(&original, *size);
        let cap = put(node(&nodes, 1), &original, &[]);
        let copy = files.join(format!("file{at}.from-node{}", 2 + at));
        get(node(&nodes, 2 + at), &cap, &copy);
        assert_same(&original, &copy);
        caps.push((original, cap));
    }

    // Every stripe of the 20 MiB file is fully placed.
    let big = stat(node(&nodes, 0), &caps[3].1);
    let summary = big.last().unwrap();
    assert!(
        summary.contains("20 stripes: 20 healthy, 0 degraded, 0 lost"),
        "{summary}"
    );

    // The uploader goes away; another node still gets every file.
    nodes[1].take().unwrap().terminate();
    for (at, (original, cap)) in caps.iter().enumerate() {
        let copy = files.join(format!("file{at}.after-stop"));
        get(node(&nodes, 6), cap, &copy);
        assert_same(original, &copy);
    }

    // The uploader comes back; then two nodes are killed outright. A file
    // put just before comes back, and so do the earlier ones. (With the
    // uploader still away that would be three nodes down, more than the
    // n − k = 2 losses 3-of-5 is built to survive.)
    let back = Daemon::start(
        &temp.path().join("n1"),
        &["--bootstrap", node(&nodes, 0).addr()],
    );
    wait_until_peers(&back, 6);
    nodes[1] = Some(back);
    let fresh = files.join("fresh");
    random_file(&fresh, 5 << 20);
    let fresh_cap = put(node(&nodes, 0), &fresh, &[]);
    nodes[7].take().unwrap().kill();
    nodes[8].take().unwrap().kill();
    let copy = files.join("fresh.after-kills");
    get(node(&nodes, 9), &fresh_cap, &copy);
    assert_same(&fresh, &copy);
    for (at, (original, cap)) in caps.iter().enumerate() {
        let copy = files.join(format!("file{at}.after-kills"));
        get(node(&nodes, 9), cap, &copy);
        assert_same(original, &copy);
    }

    // Damaged disks: every share on the holders of data shares 0 and 1 of
    // a new file's first stripe is flipped. A get still returns the exact
    // bytes, and reports what the holders found.
    let victim_file = files.join("victim");
    random_file(&victim_file, 3 << 20);
    let victim_cap = put(node(&nodes, 0), &victim_file, &[]);
    let lines = stat(node(&nodes, 0), &victim_cap);
    let getter = 3;
    let mut damaged = Vec::new();
    for index in [0, 1] {
        for holder in holders_of(&lines, 0, index) {
            let at = nodes
                .iter()
                .position(|n| n.as_ref().is_some_and(|n| n.peer_id == holder))
                .unwrap();
            if at != getter && !damaged.contains(&at) && damaged.len() < 2 {
                damaged.push(at);
            }
        }
    }
    assert!(!damaged.is_empty(), "no holder to damage: {lines:?}");
    for &at in &damaged {
        assert!(damage_every_share(node(&nodes, at)) > 0);
    }
    let copy = files.join("victim.copy");
    let warnings = get(node(&nodes, getter), &victim_cap, &copy);
    assert_same(&victim_file, &copy);
    assert!(
        warnings.contains("damaged"),
        "the damaged shares were not reported: {warnings}"
    );
    for &at in &damaged {
        assert!(
            warnings.contains(&node(&nodes, at).peer_id),
            "node {at} not named: {warnings}"
        );
    }
}

#[test]
fn too_few_peers_unknown_and_malformed_capabilities_and_bad_outputs_fail_clearly() {
    let temp = tempfile::tempdir().unwrap();
    let nodes = start_network(temp.path(), 3, 2, |_| Vec::new());
    let file = temp.path().join("file");
    random_file(&file, 100_000);

    // 3-of-5 needs five peers; three exist. No capability is printed.
    let output = kith_command(&nodes[0].dir)
        .arg("put")
        .arg(&file)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(output.stdout.is_empty(), "{}", text(&output.stdout));
    let message = text(&output.stderr);
    assert!(
        message.contains("only 3 peer(s)") && message.contains("needs 5"),
        "{message}"
    );

    // A code that fits works on the same nodes.
    let cap = put(&nodes[0], &file, &["--shares", "2/3"]);
    let copy = temp.path().join("copy");
    get(&nodes[1], &cap, &copy);
    assert_same(&file, &copy);
    let bad_shares = kith(&nodes[0].dir, &["put", "--shares", "5/3", "/dev/null"]);
    assert!(!bad_shares.status.success());
    assert!(bad_shares.stdout.is_empty());

    // A malformed capability is refused at once, before asking anyone.
    let mut broken = cap.clone();
    broken.pop();
    let started = Instant::now();
    let output = kith(&nodes[1].dir, &["get", &broken, "-o", "-"]);
    assert!(!output.status.success());
    assert!(output.stdout.is_empty());
    assert!(
        text(&output.stderr).contains("capability"),
        "{}",
        text(&output.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(5));

    // A well-formed capability nobody holds: "not found" in bounded time,
    // and no output file.
    let unknown = unknown_capability();
    let out = temp.path().join("never");
    let started = Instant::now();
    let output = kith_command(&nodes[2].dir)
        .args(["get", &unknown, "-o"])
        .arg(&out)
        .output()
        .unwrap();
    let took = started.elapsed();
    assert!(!output.status.success());
    let message = text(&output.stderr);
    assert!(message.contains("not found"), "{message}");
    assert!(took < Duration::from_secs(60), "took {took:?}");
    assert!(!out.exists());

    // An output that cannot be written: a clear error, nothing left.
    let blocker = temp.path().join("a-file");
    fs::write(&blocker, b"x").unwrap();
    for target in [blocker.join("out"), temp.path().join("missing/dir/out")] {
        let output = kith_command(&nodes[1].dir)
            .args(["get", &cap, "-o"])
            .arg(&target)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{}", target.display());
        let message = text(&output.stderr);
        assert!(message.contains("cannot write"), "{message}");
        assert!(!target.exists());
    }
    let leftovers: Vec<_> = fs::read_dir(temp.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".part"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// A valid capability for content that does not exist.
fn unknown_capability() -> String {
    let cap = kith_base::Capability::new(
        kith_base::ContentId::of(b"a manifest nobody stored"),
        kith_base::FileKey::from_bytes([7; 32]),
    );
    cap.to_string()
}

#[test]
fn a_node_with_a_tiny_quota_refuses_shares_and_the_put_goes_elsewhere() {
    let temp = tempfile::tempdir().unwrap();
    // Node 4 may store almost nothing.
    let mut nodes = start_network(temp.path(), 5, 4, |i| {
        if i == 4 {
            vec!["--quota".into(), "1K".into()]
        } else {
            Vec::new()
        }
    });
    let file = temp.path().join("file");
    random_file(&file, 2 << 20);

    // Five peers, one of which refuses: 3-of-5 cannot be placed.
    let output = kith_command(&nodes[0].dir)
        .arg("put")
        .arg(&file)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(output.stdout.is_empty());
    let message = text(&output.stderr);
    assert!(
        message.contains("full") || message.contains("quota"),
        "{message}"
    );

    // A sixth node joins: the shares go to the five that accept.
    let sixth = Daemon::start(&temp.path().join("n5"), &["--bootstrap", nodes[0].addr()]);
    nodes.push(sixth);
    wait_until_peers(&nodes[0], 5);
    let cap = put(&nodes[0], &file, &[]);
    let lines = stat(&nodes[0], &cap);
    let tiny = &nodes[4].peer_id;
    // (A manifest share is a few hundred bytes and may fit in 1 KiB.)
    assert!(
        lines
            .iter()
            .filter(|line| line.starts_with("stripe "))
            .all(|line| !line.contains(tiny.as_str())),
        "the tiny node holds a stripe share: {lines:?}"
    );
    let copy = temp.path().join("copy");
    get(&nodes[4], &cap, &copy);
    assert_same(&file, &copy);
}

#[test]
fn a_downloader_serves_what_it_fetched_after_every_original_holder_is_gone() {
    let temp = tempfile::tempdir().unwrap();
    let mut nodes: Vec<Option<Daemon>> = start_network(temp.path(), 7, 6, |_| Vec::new())
        .into_iter()
        .map(Some)
        .collect();
    let file = temp.path().join("file");
    random_file(&file, 3 << 20);
    let cap = put(node(&nodes, 0), &file, &[]);

    // Each stripe has its five shares on five distinct nodes, so nodes 1
    // and 2 together hold at most two shares of any stripe: fewer than k.
    let (seeder, leecher) = (1, 2);

    // Node 1 downloads, which caches and announces what it fetched…
    let copy = temp.path().join("first");
    get(node(&nodes, seeder), &cap, &copy);
    assert_same(&file, &copy);
    let seeder_id = node(&nodes, seeder).peer_id.clone();
    wait_for(
        "the seeder to show as a holder",
        Duration::from_secs(30),
        || {
            stat(node(&nodes, leecher), &cap)
                .iter()
                .filter(|line| line.starts_with("stripe "))
                .all(|line| line.contains(&seeder_id))
        },
    );

    // …then every other node goes away, and node 2 still gets the file,
    // with the seeder's copies.
    for at in [0, 3, 4, 5, 6] {
        nodes[at].take().unwrap().kill();
    }
    let copy = temp.path().join("second");
    get(node(&nodes, leecher), &cap, &copy);
    assert_same(&file, &copy);
}

#[test]
fn rm_deletes_a_file_for_its_owner_only() {
    let root = tempfile::tempdir().unwrap();
    let nodes = start_network(root.path(), 5, 4, |_| Vec::new());
    let file = root.path().join("secret.bin");
    random_file(&file, 2 << 20);
    let cap = put(&nodes[0], &file, &[]);

    // Another node's rm is refused by every holder and deletes nothing.
    let refused = kith(&nodes[1].dir, &["rm", &cap]);
    assert!(!refused.status.success());
    let message = text(&refused.stderr);
    assert!(message.contains("nothing was deleted"), "{message}");
    assert!(
        message.contains("only the node that put a file may delete it"),
        "{message}"
    );
    let copy = root.path().join("copy.bin");
    get(&nodes[2], &cap, &copy);
    assert_same(&file, &copy);

    // Node 2 caches what it fetched in the background; wait until its
    // copies show (beyond the one share of each stripe it held already).
    // (Read from its counters, not with `kith stat`, which would cache the
    // manifest on the asking node in the background and race the rm.) The
    // count must be above its three placed shares and the same in three
    // reads in a row: the cache is written a stripe at a time.
    let mut readings = Vec::new();
    wait_for("node 2's cached copies", Duration::from_secs(60), || {
        readings.push(counter(&nodes[2], "shares_held"));
        let last = &readings[readings.len().saturating_sub(3)..];
        last.len() == 3 && last[0] > 3 && last.iter().all(|held| *held == last[0])
    });

    // The owner's rm deletes every share it stored, and node 2's cached
    // copies too (node 2 kept the owner's leases with them).
    let removed = kith(&nodes[0].dir, &["rm", &cap]);
    assert!(removed.status.success(), "{}", text(&removed.stderr));
    let summary = text(&removed.stdout);
    let deleted: usize = summary
        .strip_prefix("deleted ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|count| count.parse().ok())
        .unwrap_or_else(|| panic!("{summary}"));
    assert!(
        deleted > 15,
        "the 15 placed shares and the cache: {summary}"
    );
    assert!(
        !text(&removed.stderr).contains("cached copies stay"),
        "node 2's cache was kept: {}",
        text(&removed.stderr)
    );
    let held: Vec<u64> = nodes
        .iter()
        .map(|node| counter(node, "shares_held"))
        .collect();
    eprintln!("held after rm: {held:?}");
    let left: u64 = held.iter().sum();
    assert_eq!(left, 0, "shares of the file are left after rm");
    // A malformed capability fails before anything is asked.
    let bad = kith(&nodes[0].dir, &["rm", "kith:nonsense"]);
    assert!(!bad.status.success());
    assert!(text(&bad.stderr).contains("not a valid capability"));
}

#[test]
fn get_with_no_cache_keeps_nothing_and_a_plain_get_keeps_the_file() {
    let root = tempfile::tempdir().unwrap();
    let nodes = start_network(root.path(), 5, 4, |_| Vec::new());
    let (kept, not_kept) = (root.path().join("kept"), root.path().join("not-kept"));
    random_file(&kept, 2 << 20);
    random_file(&not_kept, 2 << 20);
    let kept_cap = put(&nodes[0], &kept, &[]);
    let not_kept_cap = put(&nodes[0], &not_kept, &[]);

    // A node that joins after the puts holds nothing of either file.
    let late = Daemon::start(&root.path().join("late"), &["--bootstrap", nodes[0].addr()]);
    wait_until_peers(&late, 5);
    assert_eq!(counter(&late, "shares_held"), 0);

    // --no-cache, to a file (the node writes it: POST /v1/save) and to
    // standard output (streamed: GET /v1/get)…
    let copy = root.path().join("copy");
    let output = kith_command(&late.dir)
        .args(["get", "--no-cache", &not_kept_cap, "-o"])
        .arg(&copy)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_same(&not_kept, &copy);
    let streamed = kith_command(&late.dir)
        .args(["get", &not_kept_cap, "--no-cache", "-o", "-"])
        .output()
        .unwrap();
    assert!(streamed.status.success(), "{}", text(&streamed.stderr));
    assert!(streamed.stdout == fs::read(&not_kept).unwrap());

    // …then a plain get of the other file, which the node keeps: k = 3
    // shares of each of its 3 stripes (2 of data, 1 of manifest), 9 in
    // all, each stripe written in the background. Wait until all 9 are
    // there and the count holds still for three reads in a row (repair
    // may add a share of a stripe it finds short, at most 1 per stripe).
    get(&late, &kept_cap, &root.path().join("kept-copy"));
    let mut readings = Vec::new();
    wait_for(
        "the late node's cached copy",
        Duration::from_secs(60),
        || {
            readings.push(counter(&late, "shares_held"));
            let last = &readings[readings.len().saturating_sub(3)..];
            last.len() == 3 && last[0] >= 9 && last.iter().all(|held| *held == last[0])
        },
    );
    // A copy of the --no-cache file as well would be 9 more.
    let held = *readings.last().unwrap();
    assert!(
        held < 18,
        "the late node holds {held} shares: the --no-cache gets kept some"
    );
}
