//! `rm`: the node that stored a file deletes it from every holder and every
//! cache that kept the owner's lease; any other node's request is refused
//! and deletes nothing.

use kith_base::ContentId;
use kith_node::{FileMeta, GetError, Health, Params};
use kith_testnet::{Testnet, TestnetConfig};

use crate::{bytes, wait_joined};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_owner_deletes_a_file() {
    let net = Testnet::start(6, TestnetConfig::default()).await.unwrap();
    wait_joined(&net, 5).await;
    let (owner, stranger) = (net.node(0).clone(), net.node(1).clone());
    let data = bytes(3 << 20, 7);
    let put = owner
        .files()
        .put(
            Box::new(std::io::Cursor::new(data.clone())),
            Params::default(),
            FileMeta::none(),
        )
        .await
        .unwrap();
    let cap = put.capability;
    let shares_held = || async {
        let mut total = 0;
        for (_, node) in net.nodes() {
            total += node.store().usage().shares;
        }
        total
    };
    let stored = shares_held().await;
    assert_eq!(
        stored,
        5 * (3 + 1),
        "3 data stripes and the manifest, 5 shares each"
    );

    // A stranger's rm: every holder refuses; nothing is deleted.
    let refused = stranger.files().remove(&cap).await.unwrap();
    assert_eq!(refused.dropped, 0, "{refused:?}");
    assert!(refused.refused >= 15, "{refused:?}");
    let stat = net.node(2).files().stat(&cap).await.unwrap();
    assert!(
        stat.stripes.iter().all(|s| s.health == Health::Healthy),
        "the file must be intact after a refused rm"
    );

    // The stranger reads the whole file, which caches its shares (with the
    // owner's leases) in the background and then announces them under the
    // manifest id and the extent key; once both are announced, the cache is
    // on its disk for the owner's rm to meet. Node 2's stat above cached the
    // manifest too.
    let mut download = stranger.files().get(&cap).await.unwrap().into_stream();
    while let Some(chunk) = download.recv().await {
        chunk.unwrap();
    }
    let (stranger_id, node2_id) = (stranger.peer_id(), net.peer_id(2));
    let extent_key = *stat.stripes[0].id.as_bytes();
    net.wait_for(
        "the readers announced their cached copies",
        std::time::Duration::from_secs(60),
        || async {
            let net_client = owner.net();
            let manifest = net_client.providers(*cap.manifest().as_bytes()).await;
            let extent = net_client.providers(extent_key).await;
            manifest.is_ok_and(|p| p.contains(&stranger_id) && p.contains(&node2_id))
                && extent.is_ok_and(|p| p.contains(&stranger_id))
        },
    )
    .await
    .unwrap();
    // The announcements come as the first stripe of each key is cached;
    // wait until the caches are whole (the count the same three times in a
    // row), or the rm could race the last stripes being written.
    let readings = std::sync::Mutex::new(Vec::new());
    net.wait_for(
        "the caches to be written",
        std::time::Duration::from_secs(60),
        || async {
            let held = shares_held().await;
            let mut readings = readings.lock().unwrap();
            readings.push(held);
            let last = &readings[readings.len().saturating_sub(3)..];
            last.len() == 3 && last.iter().all(|value| *value == held)
        },
    )
    .await
    .unwrap();
    let cached_before = shares_held().await - stored;
    assert!(cached_before > 0, "the readers cached nothing");

    // The owner's rm deletes every share it stored, and every cached copy
    // whose holder kept its lease: nothing of the file is left anywhere.
    let removed = owner.files().remove(&cap).await.unwrap();
    assert_eq!(removed.refused, 0, "{removed:?}");
    assert_eq!(removed.cached, 0, "a cache kept its copy: {removed:?}");
    assert_eq!(
        removed.dropped as u64,
        stored + cached_before,
        "{removed:?}"
    );
    eprintln!(
        "rm dropped {} shares, {cached_before} of them cached copies",
        removed.dropped
    );
    let stripes: Vec<ContentId> = stat
        .stripes
        .iter()
        .map(|stripe| stripe.id)
        .chain([stat.manifest_stripe.id])
        .collect();
    let (mut owned_left, mut cached_left) = (0, 0);
    for (_, node) in net.nodes() {
        for stripe in &stripes {
            for (_, share) in node.store().shares_of_stripe(stripe).unwrap() {
                match node.store().share_info(&share).unwrap() {
                    Some(info) if info.owner == [0; 32] => cached_left += 1,
                    Some(_) => owned_left += 1,
                    None => {}
                }
            }
        }
    }
    assert_eq!(owned_left, 0, "an owned share survived the owner's rm");
    assert_eq!(cached_left, 0, "a cached copy survived the owner's rm");
    assert_eq!(shares_held().await, 0, "nothing of the file is stored");
    // And `stat` says so.
    match net.node(4).files().stat(&cap).await {
        Err(GetError::NotFound { .. } | GetError::Lost { .. }) => {}
        Ok(stat) => panic!(
            "the deleted file still has holders: {:?}",
            stat.health_counts()
        ),
        Err(other) => panic!("unexpected error: {other}"),
    }
    // The owner read the manifest to find the holders, but kept no copy.
    assert_eq!(owner.store().usage().shares, 0, "rm left a cache behind");
    match net.node(3).files().get(&cap).await {
        Err(GetError::NotFound { .. } | GetError::Lost { .. }) => {}
        Ok(_) => panic!("the deleted file's manifest came back"),
        Err(other) => panic!("unexpected error: {other}"),
    }
    // Running it again finds nothing more to delete.
    let again = owner.files().remove(&cap).await;
    assert!(
        again.as_ref().map_or(true, |report| report.dropped == 0),
        "{again:?}"
    );
    assert_eq!(owner.store().usage().shares, 0, "rm left a cache behind");
    net.shutdown().await;
}
