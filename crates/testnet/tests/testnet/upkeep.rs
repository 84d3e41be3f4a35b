//! Upkeep across real nodes: repair after a holder dies (asked for, and on
//! its own), scrub finding a damaged share, leases renewed while the owner
//! runs and expiring when it is gone.

use std::time::Duration;

use kith_node::{Capability, FileMeta, Health, Node, Params, StatReport, UpkeepSettings};
use kith_testnet::{Testnet, TestnetConfig};

use crate::{bytes, wait_joined};

const WAIT: Duration = Duration::from_secs(90);

fn config(upkeep: UpkeepSettings) -> TestnetConfig {
    TestnetConfig {
        upkeep,
        ..TestnetConfig::default()
    }
}

fn upkeep(edit: impl FnOnce(&mut UpkeepSettings)) -> UpkeepSettings {
    let mut settings = UpkeepSettings::default();
    edit(&mut settings);
    settings
}

async fn put(node: &Node, data: &[u8]) -> Capability {
    node.files()
        .put(
            Box::new(std::io::Cursor::new(data.to_vec())),
            Params::default(),
            FileMeta::none(),
        )
        .await
        .unwrap()
        .capability
}

async fn fetch(node: &Node, cap: &Capability) -> Vec<u8> {
    let mut chunks = node.files().get(cap).await.unwrap().into_stream();
    let mut out = Vec::new();
    while let Some(chunk) = chunks.recv().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

fn all_healthy(stat: &StatReport) -> bool {
    stat.all_stripes().all(|s| s.health == Health::Healthy)
}

/// A node (not node 0, the uploader) holding shares of the file's data
/// stripes. A node holding only manifest shares would not do: opening the
/// file caches manifest shares on node 0, and a cached copy on a distinct
/// live peer keeps the manifest's stripe healthy when its holder dies
/// (this picked such a node once in CI, and `stat` still called every
/// stripe healthy).
fn a_holder(net: &Testnet, stat: &StatReport) -> usize {
    (1..net.len())
        .find(|&i| {
            let peer = net.peer_id(i);
            stat.stripes
                .iter()
                .any(|s| s.holders.iter().any(|(_, p)| *p == peer))
        })
        .expect("some node other than the uploader holds data shares")
}

/// With automatic repair off, a dead holder leaves stripes degraded until a
/// round runs; one round on every node brings every stripe back to n
/// distinct live holders, rebuilt from k shares without the file key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repair_round_rebuilds_the_shares_of_a_dead_holder() {
    let mut net = Testnet::start(7, config(upkeep(|u| u.repair = false)))
        .await
        .unwrap();
    wait_joined(&net, 6).await;
    let data = bytes(3 << 20, 11);
    let cap = put(net.node(0), &data).await;
    let before = net.node(0).files().stat(&cap).await.unwrap();
    assert!(all_healthy(&before));
    let victim = a_holder(&net, &before);
    let victim_id = net.peer_id(victim);
    let lost = before.held_by(victim_id);
    net.kill(victim).await.unwrap();

    let degraded = net.node(0).files().stat(&cap).await.unwrap();
    assert!(
        !all_healthy(&degraded),
        "the dead holder's stripes are short"
    );
    assert!(
        degraded.all_stripes().all(|s| s.health != Health::Lost),
        "one dead holder loses nothing"
    );

    let mut repaired = 0;
    for (_, node) in net.nodes() {
        repaired += node.upkeep().repair_now().await;
    }
    assert!(repaired > 0, "some node repaired");
    let after = net.node(0).files().stat(&cap).await.unwrap();
    assert!(all_healthy(&after), "every stripe is healthy again");
    assert_eq!(after.held_by(net.peer_id(victim)), 0);

    let mut shares = 0;
    let mut fetched = 0;
    let mut sent = 0;
    for (_, node) in net.nodes() {
        let upkeep = node.status().await.unwrap().upkeep;
        shares += upkeep.shares_repaired;
        fetched += upkeep.repair_bytes_fetched;
        sent += upkeep.repair_bytes_sent;
    }
    // Every lost data share is rebuilt once. The manifest's may not need
    // to be: opening the file for `stat` cached manifest shares on node 0,
    // and a cached copy on a distinct live peer counts.
    let lost_data: usize = before
        .stripes
        .iter()
        .map(|s| s.holders.iter().filter(|(_, p)| *p == victim_id).count())
        .sum();
    assert!(
        (lost_data..=lost).contains(&(shares as usize)),
        "{shares} shares rebuilt; {lost_data} data and {lost} in all were lost"
    );
    // (Nothing may need fetching: a repairer holding k shares, e.g. the
    // uploader with its cached manifest shares, rebuilds from its own.)
    assert!(sent > 0, "sent {sent} fetched {fetched} shares {shares}");
    // Rebuilding a share takes k shares: k − 1 fetched when the repairer
    // holds one itself, k when it holds only the stripe's lease.
    assert!(fetched <= 3 * sent, "fetched {fetched}, sent {sent}");

    // A second round finds nothing to do.
    for (_, node) in net.nodes() {
        assert_eq!(node.upkeep().repair_now().await, 0);
    }
    let reader = (1..net.len()).find(|&i| i != victim).unwrap();
    assert_eq!(fetch(net.node(reader), &cap).await, data);
    net.shutdown().await;
}

/// Nodes heal a file by themselves after a holder dies: its co-holders see
/// it disconnect, find it does not answer, and run a round at once — the
/// periodic round (an hour here) is not what heals it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_repair_on_their_own_after_a_holder_dies() {
    let mut net = Testnet::start(
        7,
        config(upkeep(|u| u.repair_interval = Duration::from_secs(3600))),
    )
    .await
    .unwrap();
    wait_joined(&net, 6).await;
    let data = bytes(2 << 20, 12);
    let cap = put(net.node(0), &data).await;
    // Holders learn who holds shares beside them in a round; the first
    // periodic one is an hour away, so run one everywhere now.
    for (_, node) in net.nodes() {
        node.upkeep().repair_now().await;
    }
    let victim = a_holder(&net, &net.node(0).files().stat(&cap).await.unwrap());
    let victim_id = net.peer_id(victim);
    net.kill(victim).await.unwrap();
    let owner = net.node(0).clone();
    net.wait_for(
        "the file is healthy again without the dead holder",
        WAIT,
        || async {
            owner
                .files()
                .stat(&cap)
                .await
                .is_ok_and(|stat| all_healthy(&stat) && stat.held_by(victim_id) == 0)
        },
    )
    .await
    .unwrap();
    let reader = (1..net.len()).find(|&i| i != victim).unwrap();
    assert_eq!(fetch(net.node(reader), &cap).await, data);
    net.shutdown().await;
}

/// A share damaged on disk is found by the scrub, dropped, and rebuilt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrub_finds_a_damaged_share_and_its_stripe_is_repaired() {
    let net = Testnet::start(
        6,
        config(upkeep(|u| {
            u.repair_interval = Duration::from_secs(1);
            u.scrub_rate = 1 << 30;
        })),
    )
    .await
    .unwrap();
    wait_joined(&net, 5).await;
    let data = bytes(1 << 20, 13);
    let cap = put(net.node(0), &data).await;
    let stat = net.node(0).files().stat(&cap).await.unwrap();
    let victim = a_holder(&net, &stat);
    let store = net.node(victim).store().clone();
    // Flip a byte of one of the victim's share bodies.
    let stripe = stat.stripes[0].id;
    let (index, share) = store
        .shares_of_stripe(&stripe)
        .unwrap()
        .into_iter()
        .next()
        .or_else(|| {
            let stripe = stat.manifest_stripe.id;
            store.shares_of_stripe(&stripe).unwrap().into_iter().next()
        })
        .expect("the victim holds a share");
    let body = find_body(store.dir(), &share.to_string());
    let mut bytes_on_disk = std::fs::read(&body).unwrap();
    bytes_on_disk[0] ^= 0xff;
    std::fs::write(&body, &bytes_on_disk).unwrap();

    let node = net.node(victim).clone();
    net.wait_for("the scrub found the damaged share", WAIT, || async {
        node.status().await.unwrap().upkeep.scrub_damaged >= 1
    })
    .await
    .unwrap();
    let owner = net.node(0).clone();
    net.wait_for("the stripe is healthy again", WAIT, || async {
        owner
            .files()
            .stat(&cap)
            .await
            .is_ok_and(|stat| all_healthy(&stat))
    })
    .await
    .unwrap();
    assert!(node.store().get_share(&share).is_ok(), "index {index}");
    assert_eq!(fetch(net.node(5), &cap).await, data);
    net.shutdown().await;
}

/// The owner's node renews its leases while it runs; once it is gone, the
/// leases end and every holder drops the shares.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_are_renewed_while_the_owner_runs_and_expire_after() {
    // Long enough that a renewal running late on a loaded machine (it starts
    // with half a lease left) still lands before the holders' expiry sweep.
    let lease = Duration::from_secs(8);
    let mut net = Testnet::start(6, config(upkeep(|u| u.lease = lease)))
        .await
        .unwrap();
    wait_joined(&net, 5).await;
    let data = bytes(1 << 20, 14);
    let cap = put(net.node(0), &data).await;
    let (_, first_end) = leases(&net);

    // Two lease lengths later the file is still whole: renewed.
    let owner = net.node(0).clone();
    net.wait_for("the owner renewed its leases twice over", WAIT, || async {
        owner.status().await.unwrap().upkeep.leases_renewed >= 10
            && leases(&net).1 >= first_end + 2 * lease.as_secs()
    })
    .await
    .unwrap();
    let stat = owner.files().stat(&cap).await.unwrap();
    assert!(all_healthy(&stat), "renewed shares are all still there");
    // (The get caches a few shares on node 2, with no lease: they stay.)
    assert_eq!(fetch(net.node(2), &cap).await, data);
    drop(owner);

    // The owner leaves: nobody renews, and every leased share goes.
    net.kill(0).await.unwrap();
    net.wait_for("every leased share expired", WAIT, || async {
        leases(&net).0 == 0
    })
    .await
    .unwrap();
    let mut expired = 0;
    for (_, node) in net.nodes() {
        expired += node.status().await.unwrap().upkeep.shares_expired;
    }
    assert!(expired > 0);
    net.shutdown().await;
}

/// The shares under a lease on every running node, and the latest lease
/// end among them.
fn leases(net: &Testnet) -> (usize, u64) {
    let (mut count, mut latest) = (0, 0);
    for (_, node) in net.nodes() {
        let store = node.store();
        let mut after = None;
        loop {
            let page = store.list_stripes(after.as_ref(), 256).unwrap();
            for stripe in &page {
                for (_, share) in store.shares_of_stripe(stripe).unwrap() {
                    if let Some(at) = store.share_info(&share).unwrap().and_then(|i| i.expires_at) {
                        count += 1;
                        latest = latest.max(at);
                    }
                }
            }
            match page.last() {
                Some(last) if page.len() == 256 => after = Some(*last),
                _ => break,
            }
        }
    }
    (count, latest)
}

/// The body file of share `name` under a store folder.
fn find_body(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|f| f == name) {
                return path;
            }
        }
    }
    panic!("no body file for share {name} under {}", dir.display());
}
