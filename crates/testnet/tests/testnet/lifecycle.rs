//! Stopping work cleanly: a put whose caller goes away stops every share
//! transfer it started, and a node that stops while it takes in shares
//! finishes them first, leaving a store with nothing to recover.

use std::time::Duration;

use kith_node::{FileMeta, Node, Params, PutError, PutReport, STORE_DIR};
use kith_store::{Store, StoreConfig};
use kith_testnet::{Testnet, TestnetConfig};

use crate::{bytes, wait_joined};

/// How soon an aborted put's transfers must be gone: far less than the
/// time a share transfer to a hanging holder waits (over 10 s), so
/// transfers left running would fail the test.
const STOPPED_WITHIN: Duration = Duration::from_secs(5);

/// Starts a put of `data` from `uploader` as a task of its own.
fn put_in_background(
    uploader: &Node,
    data: Vec<u8>,
) -> tokio::task::JoinHandle<Result<PutReport, PutError>> {
    let uploader = uploader.clone();
    tokio::spawn(async move {
        uploader
            .files()
            .put(
                Box::new(std::io::Cursor::new(data)),
                Params::default(),
                FileMeta::none(),
            )
            .await
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_put_stops_every_share_transfer_it_started() {
    let net = Testnet::start(6, TestnetConfig::default()).await.unwrap();
    wait_joined(&net, 5).await;
    // Every other node takes shares in and never answers: each transfer
    // the put starts hangs until it is stopped.
    for i in 1..6 {
        net.node(i).files().faults().stall_stores(true);
    }
    let uploader = net.node(0).clone();
    let put = put_in_background(&uploader, bytes(12 << 20, 3));
    net.wait_for(
        "the put to be sending stripes",
        Duration::from_secs(60),
        || async { uploader.upkeep().counters().stripes_sending > 0 },
    )
    .await
    .unwrap();
    net.wait_for(
        "a holder to be taking a share in",
        Duration::from_secs(60),
        || async { (1..6).any(|i| net.node(i).requests_running() > 0) },
    )
    .await
    .unwrap();

    put.abort();
    assert!(put.await.unwrap_err().is_cancelled());
    net.wait_for(
        "the dropped put's transfers to stop",
        STOPPED_WITHIN,
        || async { uploader.upkeep().counters().stripes_sending == 0 },
    )
    .await
    .unwrap();
    // The holders see their streams closed and let go of them; none
    // stored anything (they never answered), and no unfinished share body
    // is left in their stores.
    net.wait_for(
        "the holders to close the stalled streams",
        Duration::from_secs(60),
        || async { (1..6).all(|i| net.node(i).requests_running() == 0) },
    )
    .await
    .unwrap();
    for i in 1..6 {
        assert_eq!(net.node(i).store().usage().shares, 0, "node {i}");
        let tmp = net.data_dir(i).join(STORE_DIR).join("tmp");
        let left = std::fs::read_dir(&tmp).map_or(0, |dir| dir.count());
        assert_eq!(left, 0, "node {i} left {left} unfinished bodies");
    }
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_stopped_during_a_put_finishes_what_it_took_in() {
    let mut net = Testnet::start(7, TestnetConfig::default()).await.unwrap();
    wait_joined(&net, 6).await;
    let uploader = net.node(0).clone();
    let put = put_in_background(&uploader, bytes(48 << 20, 9));
    // Stop a holder as soon as it holds its first share, while more are
    // coming in. Which nodes hold shares depends on their random ids, so
    // the holder is the first that stores one (a fixed node may be chosen
    // for none, and the test would wait in vain).
    let holds_a_share = |i: usize| net.node(i).store().usage().shares > 0;
    net.wait_for(
        "a holder to store a share",
        Duration::from_secs(60),
        || async { (1..7).any(holds_a_share) },
    )
    .await
    .unwrap();
    let holder = (1..7).find(|i| holds_a_share(*i)).unwrap();
    let reader = if holder == 1 { 2 } else { 1 };
    net.kill(holder).await.unwrap();
    let put = put.await.unwrap();

    // What it stored is whole: opening its store finds nothing to recover
    // (no unfinished body, no row without its body).
    let store_dir = net.data_dir(holder).join(STORE_DIR);
    let store = tokio::task::spawn_blocking(move || {
        Store::open(
            store_dir,
            StoreConfig {
                quota_bytes: 1 << 30,
            },
        )
    })
    .await
    .unwrap()
    .unwrap();
    let report = *store.recovery_report();
    assert!(report.is_clean(), "{report:?}");
    drop(store);

    // And the network goes on: the put found other holders, or says why.
    match put {
        Ok(report) => {
            let (copy, _) = crate::read_with_report(net.node(reader), &report.capability)
                .await
                .unwrap();
            assert_eq!(copy, bytes(48 << 20, 9));
        }
        Err(error) => panic!("the put failed when one of seven nodes stopped: {error}"),
    }
    net.shutdown().await;
}
