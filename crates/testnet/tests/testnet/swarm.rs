//! Swarming: downloaders that fetch one file at the same time serve each
//! other, so that its only holder sends each share about once.

use std::time::Duration;

use kith_node::{Capability, FileMeta, Node, Params, UpkeepCounters, UpkeepSettings};
use kith_testnet::{Testnet, TestnetConfig};

use crate::bytes;

/// Reads a whole file on `node`.
async fn read_all(node: &Node, cap: &Capability) -> Result<Vec<u8>, kith_node::GetError> {
    crate::read_with_report(node, cap)
        .await
        .map(|(bytes, _)| bytes)
}

/// Every downloader reads the file at the same time: each one's bytes and
/// report, in [`DOWNLOADERS`] order.
async fn download_all(
    net: &Testnet,
    cap: &Capability,
) -> Vec<Result<(Vec<u8>, kith_node::GetReport), kith_node::GetError>> {
    let gets = DOWNLOADERS.map(|i| {
        let node = net.node(i).clone();
        let cap = cap.clone();
        async move { crate::read_with_report(&node, &cap).await }
    });
    futures::future::join_all(gets).await
}

/// A testnet where node 0 holds the only copy of a `size`-byte file and
/// nodes 2..6 know each other (node 1, the helper, is stopped); returns it
/// with the file and its capability.
async fn one_holder_four_downloaders(size: usize, seed: u8) -> (Testnet, Vec<u8>, Capability) {
    // No repair: the holder must serve the downloaders, not rebuild the
    // helper's copies on them.
    let mut upkeep = UpkeepSettings::default();
    upkeep.repair = false;
    let config = TestnetConfig {
        upkeep,
        ..TestnetConfig::default()
    };
    // One holder: node 0 puts the file 1-of-2 while node 1 is the only other
    // node (every stripe has one share on each), then node 1 stops, so node
    // 0 holds the only copy of everything.
    let mut net = Testnet::start(2, config).await.unwrap();
    net.wait_joined(1, Duration::from_secs(60)).await.unwrap();
    let data = bytes(size, seed);
    let cap = net
        .node(0)
        .files()
        .put(
            Box::new(std::io::Cursor::new(data.clone())),
            "1/2".parse::<Params>().unwrap(),
            FileMeta::none(),
        )
        .await
        .unwrap()
        .capability;
    net.kill(1).await.unwrap();
    net.grow(4, |_| 0).await.unwrap();
    // The downloaders know each other (they are sent to each other).
    net.wait_for(
        "the downloaders know each other",
        Duration::from_secs(60),
        || async {
            for i in DOWNLOADERS {
                let known = net.node(i).net().known_peers().await.unwrap_or_default();
                let others = DOWNLOADERS
                    .filter(|j| *j != i)
                    .filter(|j| known.iter().any(|(peer, _)| *peer == net.peer_id(*j)))
                    .count();
                if others < 3 {
                    return false;
                }
            }
            true
        },
    )
    .await
    .unwrap();
    (net, data, cap)
}

/// One upkeep counter, summed over the downloaders.
async fn downloaders_total(net: &Testnet, counter: fn(&UpkeepCounters) -> u64) -> u64 {
    let mut total = 0;
    for i in DOWNLOADERS {
        total += counter(&net.node(i).status().await.unwrap().upkeep);
    }
    total
}

/// The downloaders' node indices.
const DOWNLOADERS: std::ops::Range<usize> = 2..6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_downloaders_at_once_draw_the_file_mostly_from_each_other() {
    let (net, data, cap) = one_holder_four_downloaders(32 << 20, 11).await;
    let holder = net.node(0).clone();
    let before = holder.status().await.unwrap().upkeep;
    for got in download_all(&net, &cap).await {
        assert!(got.unwrap().0 == data, "a downloader got different bytes");
    }
    let after = holder.status().await.unwrap().upkeep;
    let served = after.bytes_served - before.bytes_served;
    let from_memory = downloaders_total(&net, |c| c.served_from_memory).await;
    let report = format!(
        "holder served {served} bytes ({:.2} × the file), {} redirects; downloaders passed on {from_memory} shares from memory",
        served as f64 / data.len() as f64,
        after.swarm_redirects - before.swarm_redirects,
    );
    eprintln!("{report}");
    // Without swarming the holder sends the file four times over.
    assert!(served < 2 * data.len() as u64, "{report}");
    assert!(after.swarm_redirects > before.swarm_redirects, "{report}");
    assert!(from_memory > 0, "{report}");
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloaders_finish_when_one_they_are_sent_to_stops() {
    let (mut net, data, cap) = one_holder_four_downloaders(64 << 20, 12).await;
    let finished = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let gets: Vec<_> = DOWNLOADERS
        .map(|i| {
            let node = net.node(i).clone();
            let cap = cap.clone();
            let finished = finished.clone();
            tokio::spawn(async move {
                let got = read_all(&node, &cap).await;
                finished.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                got
            })
        })
        .collect();
    // The first downloader seen passing shares on (others were being sent
    // to it) stops.
    let victim = std::sync::Mutex::new(None);
    net.wait_for(
        "a downloader passed shares on",
        Duration::from_secs(60),
        || async {
            for i in DOWNLOADERS {
                let passed_on = net
                    .node(i)
                    .status()
                    .await
                    .map_or(0, |status| status.upkeep.served_from_memory);
                if passed_on >= 2 {
                    *victim.lock().unwrap() = Some(i);
                    return true;
                }
            }
            false
        },
    )
    .await
    .unwrap();
    let victim = victim.into_inner().unwrap().unwrap();
    assert_eq!(
        finished.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the downloads must still be running when node {victim} stops"
    );
    net.kill(victim).await.unwrap();
    for (i, get) in DOWNLOADERS.zip(gets) {
        let got = get.await.unwrap();
        if i != victim {
            assert!(got.unwrap() == data, "downloader {i} got different bytes");
        }
    }
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloaders_sent_to_liars_catch_them_and_still_finish() {
    let (net, data, cap) = one_holder_four_downloaders(32 << 20, 13).await;
    let holder = net.peer_id(0);
    // Every downloader passes on damaged bytes (its own download, and what
    // it keeps, are sound): whoever the holder sends a downloader to lies.
    for i in DOWNLOADERS {
        net.node(i).files().faults().damage_served_shares(true);
    }
    let mut caught = 0;
    for (i, got) in DOWNLOADERS.zip(download_all(&net, &cap).await) {
        let (got, report) = got.unwrap();
        assert!(got == data, "downloader {i} got different bytes");
        for bad in &report.corrupt {
            assert_ne!(bad.peer, holder, "the honest holder was reported");
            assert!(
                DOWNLOADERS.clone().any(|j| net.peer_id(j) == bad.peer),
                "an unknown peer was reported: {bad:?}"
            );
        }
        caught += report.corrupt.len();
    }
    let passed_on = downloaders_total(&net, |c| c.served_from_memory).await;
    let redirects = net.node(0).status().await.unwrap().upkeep.swarm_redirects;
    eprintln!(
        "{redirects} redirects; the liars passed on {passed_on} damaged shares from memory; {caught} caught"
    );
    assert!(redirects > 0, "the holder sent nobody elsewhere");
    assert!(passed_on > 0, "no liar was asked");
    assert!(caught > 0, "damaged shares were served and none was caught");
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloaders_sent_to_peers_that_hang_give_up_on_them_and_finish() {
    let (net, data, cap) = one_holder_four_downloaders(16 << 20, 14).await;
    // Every downloader hangs on every request it gets: whoever the holder
    // sends a downloader to never answers, and neither does a downloader
    // that cached the file and is asked as a holder.
    for i in DOWNLOADERS {
        net.node(i).files().faults().stall_share_requests(true);
    }
    // A hung redirect costs its 10 s deadline (after three, the downloader
    // asks the holder straight), a hung holder the 30 s a holder has to
    // start answering (then it is asked last): seconds, not the minutes a
    // 64 MiB transfer may take.
    let all = tokio::time::timeout(Duration::from_secs(180), download_all(&net, &cap))
        .await
        .expect("downloads sent to hanging peers did not finish within 3 min");
    for (i, got) in DOWNLOADERS.zip(all) {
        let (got, _) = got.unwrap();
        assert!(got == data, "downloader {i} got different bytes");
    }
    let failed = downloaders_total(&net, |c| c.swarm_redirects_failed).await;
    let redirects = net.node(0).status().await.unwrap().upkeep.swarm_redirects;
    eprintln!("{redirects} redirects to hanging peers; {failed} given up on");
    assert!(redirects > 0, "the holder sent nobody elsewhere");
    assert!(failed > 0, "no hung redirect was given up on");
    net.shutdown().await;
}
