//! Upkeep through the command line, with real `kith up` processes: `kith
//! stat` showing a stripe go degraded → healthy after a holder is killed,
//! `kith repair` and `kith status`; bad upkeep settings; and crash safety —
//! nodes killed with SIGKILL during puts and during repairs, twenty times
//! over, after which every store is consistent and every put that said it
//! succeeded can be read back; and nodes stopped with SIGTERM during a put,
//! which leave nothing for recovery.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::{Daemon, counter, kith, kith_command, random_file, start_network, text, wait_for};

fn write_config(dir: &Path, text: &str) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join("config.toml"), text).unwrap();
}

fn put(node: &Daemon, file: &Path) -> String {
    let output = kith_command(&node.dir)
        .arg("put")
        .arg(file)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    text(&output.stdout).trim().to_owned()
}

fn stat(node: &Daemon, cap: &str) -> Vec<String> {
    let output = kith(&node.dir, &["stat", cap]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    text(&output.stdout).lines().map(str::to_owned).collect()
}

/// Whether the summary of `kith stat` says every stripe and the manifest
/// are healthy.
fn all_healthy(stat: &[String]) -> bool {
    let summary = stat.last().unwrap();
    summary.contains(" 0 degraded, 0 lost") && !summary.contains("manifest")
}

fn same_bytes(a: &Path, b: &Path) -> bool {
    fs::read(a).unwrap() == fs::read(b).unwrap()
}

#[test]
fn stat_shows_a_stripe_go_degraded_then_healthy_after_a_holder_is_killed() {
    let temp = tempfile::tempdir().unwrap();
    for i in 0..6 {
        // Repair only when asked, so that the degraded state can be seen.
        write_config(&temp.path().join(format!("n{i}")), "repair = false\n");
    }
    let mut nodes: Vec<Option<Daemon>> = start_network(temp.path(), 6, 5, |_| Vec::new())
        .into_iter()
        .map(Some)
        .collect();
    let file = temp.path().join("file");
    random_file(&file, 2 << 20);
    let first = nodes[0].as_ref().unwrap();
    let cap = put(first, &file);
    let before = stat(first, &cap);
    assert!(all_healthy(&before), "{before:#?}");

    // Kill a node (not the uploader) that holds a share of stripe 0.
    let stripe0 = before.iter().find(|l| l.starts_with("stripe 0 ")).unwrap();
    let victim = (1..6)
        .find(|&i| stripe0.contains(&nodes[i].as_ref().unwrap().peer_id))
        .expect("a holder other than the uploader");
    nodes[victim].take().unwrap().kill();

    let first = nodes[0].as_ref().unwrap();
    let degraded = stat(first, &cap);
    let line = degraded
        .iter()
        .find(|l| l.starts_with("stripe 0 "))
        .unwrap();
    assert!(
        line.contains(" degraded 4 shares on 4 peers"),
        "{degraded:#?}"
    );
    assert!(degraded.last().unwrap().contains("0 lost"), "{degraded:#?}");

    // Rounds on every live node bring it back: the closest live holder
    // repairs in the first round; should it fail, the next one steps in a
    // round later.
    let mut after = Vec::new();
    for _ in 0..3 {
        for node in nodes.iter().flatten() {
            let output = kith(&node.dir, &["repair"]);
            assert!(output.status.success(), "{}", text(&output.stderr));
            let said = text(&output.stdout);
            assert!(said.starts_with("checked "), "{said}");
        }
        after = stat(first, &cap);
        if all_healthy(&after) {
            break;
        }
    }
    assert!(all_healthy(&after), "{after:#?}");
    let line = after.iter().find(|l| l.starts_with("stripe 0 ")).unwrap();
    assert!(line.contains(" healthy 5 shares on 5 peers"), "{after:#?}");

    let repaired: u64 = nodes
        .iter()
        .flatten()
        .map(|node| counter(node, "shares_repaired"))
        .sum();
    assert!(
        repaired >= 2,
        "the victim's share of both data stripes was rebuilt: {repaired}"
    );
    let lines = text(&kith(&first.dir, &["status"]).stdout);
    assert!(
        lines.contains("repair ") && lines.contains("leases ") && lines.contains("served "),
        "{lines}"
    );

    let copy = temp.path().join("copy");
    let output = kith(
        &nodes[2 + usize::from(victim == 2)].as_ref().unwrap().dir,
        &["get", &cap, "-o", copy.to_str().unwrap()],
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(same_bytes(&file, &copy));
}

#[test]
fn bad_upkeep_settings_stop_the_node_with_a_clear_message() {
    let temp = tempfile::tempdir().unwrap();
    for (config, expected) in [
        ("lease = \"soon\"\n", "lease: \"soon\" is not a duration"),
        ("lease = \"1s\"\n", "outside what holders accept"),
        ("repair_rate = \"fast\"\n", "repair_rate"),
        ("scrub_rate = \"1\"\n", "at least 4KiB"),
        ("repair_interval = \"0s\"\n", "at least 1s"),
    ] {
        let dir = temp.path().join("n");
        write_config(&dir, config);
        let output = kith_command(&dir)
            .args(["up", "--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!output.status.success(), "{config} was accepted");
        let stderr = text(&output.stderr);
        assert!(stderr.contains(expected), "{config}: {stderr}");
    }
}

/// Starts `kith put FILE` against the node in `dir`, its output captured.
fn spawn_put(dir: &Path, file: &Path) -> std::process::Child {
    kith_command(dir)
        .arg("put")
        .arg(file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Opens a stopped node's store (which runs the recovery pass) and reads
/// every share back: all must verify. Returns how many shares it holds.
fn check_store(dir: &Path) -> u64 {
    let store = kith_store::Store::open(
        dir.join("store"),
        kith_store::StoreConfig {
            quota_bytes: 1 << 40,
        },
    )
    .unwrap_or_else(|error| panic!("{}: {error}", dir.display()));
    let report = store.scrub_step(usize::MAX).unwrap();
    assert!(
        report.corrupt.is_empty(),
        "{}: damaged shares after a crash: {:?}",
        dir.display(),
        report.corrupt
    );
    store.usage().shares
}

/// Kills nodes with SIGKILL twenty times: ten times the node running a
/// `kith put` in the middle of it, ten times a node while the network
/// repairs the shares of another killed node. After each kill the node's
/// store is opened and fully verified before the node is started again.
/// Every put either printed a capability (and then the file reads back
/// byte-identical at the end) or failed with a message.
#[test]
fn stores_stay_consistent_when_nodes_are_killed_during_puts_and_repairs() {
    const NODES: usize = 6;
    const ROUNDS: usize = 10;
    let temp = tempfile::tempdir().unwrap();
    for i in 0..NODES {
        // Fast, slow-paced repair: it starts soon after a death and lasts
        // long enough to be interrupted.
        write_config(
            &temp.path().join(format!("n{i}")),
            "repair_interval = \"2s\"\nrepair_rate = \"512KiB\"\n",
        );
    }
    let mut nodes: Vec<Option<Daemon>> =
        start_network(temp.path(), NODES, NODES - 1, |_| Vec::new())
            .into_iter()
            .map(Some)
            .collect();
    // A restarted node listens on a new port, so a node coming back
    // bootstraps from whichever node is up at that moment.
    let restart = |i: usize, nodes: &[Option<Daemon>]| {
        let dir = temp.path().join(format!("n{i}"));
        let bootstrap = nodes.iter().flatten().next().unwrap().addr().to_owned();
        let node = Daemon::start(&dir, &["--bootstrap", &bootstrap]);
        common::wait_until_peers(&node, 3);
        node
    };
    let mut stored: Vec<(std::path::PathBuf, String)> = Vec::new();
    let (mut put_ok, mut put_failed, mut during_repair) = (0, 0, 0);

    for round in 0..ROUNDS {
        // 1. Kill the putting node partway through a put.
        let i = 1 + round % (NODES - 1);
        let file = temp.path().join(format!("file{round}"));
        random_file(&file, (3 << 20) + round * 4099);
        let dir = nodes[i].as_ref().unwrap().dir.clone();
        let held = |nodes: &[Option<Daemon>]| -> u64 {
            nodes
                .iter()
                .flatten()
                .map(|node| counter(node, "shares_held"))
                .sum()
        };
        let before = held(&nodes);
        let mut client = spawn_put(&dir, &file);
        // The kill lands at a different point of the put each round: once
        // the network holds `progress` of its 20 shares (3 stripes and the
        // manifest, 5 each), from none to all — or once the put is over.
        let progress = (round as u64 * 7) % 20;
        wait_for(
            "the put to reach its kill point",
            Duration::from_secs(60),
            || matches!(client.try_wait(), Ok(Some(_))) || held(&nodes) >= before + progress,
        );
        nodes[i].take().unwrap().kill();
        let output = client.wait_with_output().unwrap();
        let stdout = text(&output.stdout);
        if output.status.success() {
            assert!(stdout.trim().starts_with("kith:"), "{stdout}");
            stored.push((file, stdout.trim().to_owned()));
            put_ok += 1;
        } else {
            assert!(stdout.is_empty(), "a failed put printed {stdout}");
            assert!(
                !text(&output.stderr).trim().is_empty(),
                "a failed put said nothing"
            );
            put_failed += 1;
        }
        check_store(&dir);
        nodes[i] = Some(restart(i, &nodes));

        // 2. Kill a holder of a stored file, then kill a node while the
        //    network repairs.
        let Some((_, cap)) = stored.last().cloned() else {
            continue;
        };
        let lines = stat(nodes[i].as_ref().unwrap(), &cap);
        let victim = (0..NODES)
            .find(|&j| {
                lines
                    .iter()
                    .any(|l| l.contains(&nodes[j].as_ref().unwrap().peer_id))
            })
            .unwrap();
        let done_before: Vec<u64> = (0..NODES)
            .map(|j| counter(nodes[j].as_ref().unwrap(), "stripes_repaired"))
            .collect();
        nodes[victim].take().unwrap().kill();
        // The repairer to kill: any node that is repairing, or has just
        // repaired, a stripe. (All stripes of a file share one placement
        // key, so the live holder closest to it repairs them all, and only
        // a slow repair lets the next in rank step in: the repairer may be
        // any node.)
        let repairer = wait_for_repairer(&nodes, &done_before);
        if counter(nodes[repairer].as_ref().unwrap(), "repairs_running") > 0 {
            during_repair += 1;
        }
        let repairer_dir = nodes[repairer].as_ref().unwrap().dir.clone();
        nodes[repairer].take().unwrap().kill();
        check_store(&repairer_dir);
        check_store(&temp.path().join(format!("n{victim}")));
        nodes[victim] = Some(restart(victim, &nodes));
        nodes[repairer] = Some(restart(repairer, &nodes));
    }
    println!(
        "crash safety: {ROUNDS} kills during puts ({put_ok} finished, {put_failed} failed), \
         {ROUNDS} kills after a holder died ({during_repair} while a repair ran)"
    );
    assert!(during_repair > 0, "no kill landed during a repair");

    // Every put that said it succeeded reads back, byte-identical.
    let reader = nodes[0].as_ref().unwrap();
    for (n, (file, cap)) in stored.iter().enumerate() {
        let copy = temp.path().join(format!("copy{n}"));
        let output = kith(&reader.dir, &["get", cap, "-o", copy.to_str().unwrap()]);
        assert!(
            output.status.success(),
            "{}: {}",
            file.display(),
            text(&output.stderr)
        );
        assert!(
            same_bytes(file, &copy),
            "{} came back different",
            file.display()
        );
    }
}

/// Waits up to a minute for a node that is repairing, or has repaired a
/// stripe since `done_before` was read, and returns its index. On time-out
/// the failure names each live node's repair counters and its log lines
/// about repair.
fn wait_for_repairer(nodes: &[Option<Daemon>], done_before: &[u64]) -> usize {
    let mut found = None;
    let started = common::poll_until(Duration::from_secs(60), || {
        found = (0..nodes.len()).find(|&j| {
            nodes[j].as_ref().is_some_and(|node| {
                counter(node, "repairs_running") > 0
                    || counter(node, "stripes_repaired") > done_before[j]
            })
        });
        found.is_some()
    });
    if let (true, Some(repairer)) = (started, found) {
        return repairer;
    }
    let mut report = String::new();
    for (j, node) in nodes.iter().enumerate() {
        let Some(node) = node else {
            report.push_str(&format!("\nnode {j}: killed"));
            continue;
        };
        let status = common::status(node);
        report.push_str(&format!(
            "\nnode {j} {}: repair_rounds {} stripes_checked {} repairs_running {} \
             stripes_repaired {} (before {}) repair_failures {}",
            node.peer_id,
            status["repair_rounds"],
            status["stripes_checked"],
            status["repairs_running"],
            status["stripes_repaired"],
            done_before[j],
            status["repair_failures"],
        ));
        for line in node.stderr.lock().unwrap().lines() {
            if line.contains("repair") || line.contains("is gone") {
                report.push_str(&format!("\n    {line}"));
            }
        }
    }
    panic!("no node started a repair within 60 s of a holder's death:{report}");
}

/// Stops a node with SIGTERM — the way a service manager stops it — in the
/// middle of a `kith put`: first the first node to take in a share of it,
/// then the node running the put. Each stops in time with exit status 0,
/// its store opens with nothing to recover and every share in it verifies,
/// and the put either printed a capability that reads back byte-identical
/// or failed with a message.
#[test]
fn sigterm_during_a_put_leaves_a_consistent_store() {
    const NODES: usize = 6;
    const READER: usize = 5;
    let temp = tempfile::tempdir().unwrap();
    let mut nodes: Vec<Option<Daemon>> =
        start_network(temp.path(), NODES, NODES - 1, |_| Vec::new())
            .into_iter()
            .map(Some)
            .collect();
    let held = |nodes: &[Option<Daemon>]| -> Vec<u64> {
        nodes
            .iter()
            .map(|node| counter(node.as_ref().unwrap(), "shares_held"))
            .collect()
    };
    for (round, putter) in [0, 2].into_iter().enumerate() {
        let file = temp.path().join(format!("file{round}"));
        random_file(&file, 64 << 20);
        let putter_dir = nodes[putter].as_ref().unwrap().dir.clone();
        let before = held(&nodes);
        let client = spawn_put(&putter_dir, &file);
        // Under way: a node other than the putter took in a share of it.
        let mut taker = None;
        wait_for("the put to be under way", Duration::from_secs(60), || {
            let now = held(&nodes);
            taker = (0..NODES).find(|&i| i != putter && i != READER && now[i] > before[i]);
            taker.is_some()
        });
        // Round 0 stops that holder; round 1 the node running the put.
        let stopped = if round == 0 { taker.unwrap() } else { putter };
        let daemon = nodes[stopped].take().unwrap();
        let dir = daemon.dir.clone();
        daemon.terminate();
        let output = client.wait_with_output().unwrap();

        let store = kith_store::Store::open(
            dir.join("store"),
            kith_store::StoreConfig {
                quota_bytes: 1 << 40,
            },
        )
        .unwrap();
        let recovery = *store.recovery_report();
        assert!(
            recovery.is_clean(),
            "round {round}: a node stopped by SIGTERM left work for recovery: {recovery:?}"
        );
        drop(store);
        check_store(&dir);

        let stdout = text(&output.stdout);
        eprintln!(
            "round {round}: node {stopped} stopped by SIGTERM mid-put; the put {}",
            if output.status.success() {
                "succeeded".to_owned()
            } else {
                format!("failed: {}", text(&output.stderr).trim())
            }
        );
        if output.status.success() {
            let copy = temp.path().join(format!("file{round}.copy"));
            let got = kith(
                &nodes[READER].as_ref().unwrap().dir,
                &["get", stdout.trim(), "-o", copy.to_str().unwrap()],
            );
            assert!(got.status.success(), "{}", text(&got.stderr));
            assert!(fs::read(&copy).unwrap() == fs::read(&file).unwrap());
        } else {
            assert!(stdout.is_empty(), "a failed put printed {stdout}");
            assert!(
                !text(&output.stderr).trim().is_empty(),
                "a failed put said nothing"
            );
        }
        let seed = nodes[READER].as_ref().unwrap().addr().to_owned();
        let back = Daemon::start(&dir, &["--bootstrap", &seed]);
        common::wait_until_peers(&back, 3);
        nodes[stopped] = Some(back);
    }
}
