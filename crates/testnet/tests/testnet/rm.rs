//! `rm`: the node that stored a file deletes it from every holder; any
//! other node's request is refused and deletes nothing.

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
    let refused = stranger.remove(&cap).await.unwrap();
    assert_eq!(refused.dropped, 0, "{refused:?}");
    assert!(refused.refused >= 15, "{refused:?}");
    let stat = net.node(2).stat(&cap).await.unwrap();
    assert!(
        stat.stripes.iter().all(|s| s.health == Health::Healthy),
        "the file must be intact after a refused rm"
    );

    // The stranger reads the file's manifest, which caches its shares in
    // the background and then announces them; once announced, the cache is
    // on its disk for the owner's rm to meet.
    stranger.stat(&cap).await.unwrap();
    let stranger_id = stranger.peer_id();
    net.wait_for(
        "the stranger announced its cached manifest",
        std::time::Duration::from_secs(60),
        || async {
            owner
                .net()
                .providers(*cap.manifest().as_bytes())
                .await
                .is_ok_and(|providers| providers.contains(&stranger_id))
        },
    )
    .await
    .unwrap();

    // The owner's rm deletes every share it stored, everywhere.
    let removed = owner.remove(&cap).await.unwrap();
    assert_eq!(removed.refused, 0, "{removed:?}");
    assert_eq!(removed.dropped, 20, "{removed:?}");
    // What is left are copies cached by nodes that read the file (the
    // stranger, and node 2's `stat` above, which caches in the background
    // and may finish after `rm` looked): all without an owner.
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
    assert!(
        cached_left >= removed.cached && cached_left > 0,
        "the stranger's cached copies stay ({cached_left} left, {removed:?})"
    );
    assert_eq!(
        shares_held().await as usize,
        cached_left,
        "nothing but cached copies of the file is stored"
    );
    // The owner read the manifest to find the holders, but kept no copy.
    assert_eq!(owner.store().usage().shares, 0, "rm left a cache behind");
    match net.node(3).get(&cap).await {
        Err(GetError::NotFound { .. } | GetError::Lost { .. }) => {}
        Ok(download) => {
            // The manifest may still come from the stranger's cache; the
            // data is gone.
            let mut chunks = download.into_stream();
            let mut failed = false;
            while let Some(chunk) = chunks.recv().await {
                if chunk.is_err() {
                    failed = true;
                    break;
                }
            }
            assert!(failed, "the deleted file came back");
        }
        Err(other) => panic!("unexpected error: {other}"),
    }
    // Running it again finds nothing more to delete.
    let again = owner.remove(&cap).await;
    assert!(
        again.as_ref().map_or(true, |report| report.dropped == 0),
        "{again:?}"
    );
    assert_eq!(owner.store().usage().shares, 0, "rm left a cache behind");
    net.shutdown().await;
}
