//! Lying peers: a node that serves damaged shares (switched on with
//! `node.files().faults()`) is caught by verification, reported and avoided, and the
//! download still comes back byte-identical from the honest holders.
//! (Lying redirect targets are in `swarm.rs`, which has their set-up.)

use std::time::Duration;

use kith_node::{Detected, FileMeta, Params, UpkeepSettings};
use kith_testnet::{Testnet, TestnetConfig};

use crate::{bytes, read_with_report};

/// Stripes of the file (1 MiB each).
const STRIPES: usize = 32;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_serving_bad_bytes_is_caught_reported_and_avoided() {
    // No repair: the stripes must stay where the put placed them.
    let mut upkeep = UpkeepSettings::default();
    upkeep.repair = false;
    let config = TestnetConfig {
        upkeep,
        ..TestnetConfig::default()
    };
    let mut net = Testnet::start(4, config).await.unwrap();
    net.wait_joined(3, Duration::from_secs(60)).await.unwrap();
    let data = bytes(STRIPES << 20, 21);
    let cap = net
        .node(0)
        .files()
        .put(
            Box::new(std::io::Cursor::new(data.clone())),
            "2/4".parse::<Params>().unwrap(),
            FileMeta::none(),
        )
        .await
        .unwrap()
        .capability;

    // 2-of-4 on four nodes: each holds one share of every stripe. The liar
    // is the holder of share 0 of the first stripe. A downloader asks for
    // data shares first, so it surely asks the liar, and without the strike
    // it would ask it first for every stripe of the extent.
    let stat = net.node(0).files().stat(&cap).await.unwrap();
    assert_eq!(stat.stripes.len(), STRIPES);
    let liar_peer = stat.stripes[0]
        .holders
        .iter()
        .find(|(index, _)| *index == 0)
        .unwrap()
        .1;
    let liar = (0..4).find(|i| net.peer_id(*i) == liar_peer).unwrap();
    net.node(liar).files().faults().damage_served_shares(true);

    // A fresh downloader, holding nothing of the file.
    net.grow(1, |_| 0).await.unwrap();
    net.wait_for(
        "the downloader knows the holders",
        Duration::from_secs(60),
        || async {
            let known = net.node(4).net().known_peers().await.unwrap_or_default();
            (0..4).all(|i| known.iter().any(|(peer, _)| *peer == net.peer_id(i)))
        },
    )
    .await
    .unwrap();

    let (got, report) = read_with_report(net.node(4), &cap).await.unwrap();
    assert!(got == data, "the download differs from the file");
    eprintln!(
        "node {liar} lied: {} bad share(s) caught over {STRIPES} stripes; {} good shares from {} peers",
        report.corrupt.len(),
        report.shares,
        report.peers
    );
    for bad in &report.corrupt {
        assert_eq!(bad.peer, liar_peer, "an honest peer was reported: {bad:?}");
        assert_eq!(bad.detected, Detected::ByVerification);
    }
    assert!(!report.corrupt.is_empty(), "the liar was never caught");
    // Only the stripes already asked for when its first bad share arrived
    // (8 in flight, and the manifest) can meet it.
    assert!(
        report.corrupt.len() <= STRIPES / 2,
        "the liar was not avoided: {} bad shares over {STRIPES} stripes",
        report.corrupt.len()
    );
    assert!(
        report.peers <= 3,
        "the liar is not among the peers that served good shares"
    );
    net.shutdown().await;
}
