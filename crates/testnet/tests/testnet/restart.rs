//! Nodes that stop and start again on the same data folder.

use std::collections::HashSet;
use std::time::Duration;

use kith_testnet::{Testnet, TestnetConfig, TestnetError};

const LIMIT: Duration = Duration::from_secs(60);

/// Node 3 stops (saving its peer table), and so does node 0, the only
/// bootstrap address anyone was given. Node 3 restarts with no bootstrap
/// address: the saved table alone must bring it back into the network.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_node_rejoins_without_bootstrap() {
    let started = std::time::Instant::now();
    let mut net = Testnet::start(5, TestnetConfig::default()).await.unwrap();
    let others: HashSet<_> = [1, 2, 4].map(|i| net.peer_id(i)).into();

    // Node 3 knows the other non-bootstrap nodes before it stops, so its
    // saved table is more than the bootstrap address.
    let node3 = net.node(3).clone();
    net.wait_for("node 3 knows nodes 1, 2 and 4", LIMIT, || async {
        let known = node3.net().known_peers().await.unwrap_or_default();
        let known: HashSet<_> = known.into_iter().map(|(peer, _)| peer).collect();
        others.is_subset(&known)
    })
    .await
    .unwrap();
    drop(node3);

    let peer3 = net.peer_id(3);
    net.kill(3).await.unwrap();
    net.kill(0).await.unwrap();
    assert!(!net.is_running(3));
    assert!(matches!(
        net.try_node(3),
        Err(TestnetError::NotRunning { index: 3 })
    ));
    let table = std::fs::read_to_string(net.data_dir(3).join("peers")).unwrap();
    assert!(!table.trim().is_empty(), "node 3 saved no peer table");

    let restarted = std::time::Instant::now();
    net.restart(3, false).await.unwrap();
    assert_eq!(net.node(3).peer_id(), peer3, "same folder, same identity");
    assert!(matches!(
        net.restart(3, false).await,
        Err(TestnetError::AlreadyRunning { index: 3 })
    ));

    let node3 = net.node(3).clone();
    net.wait_for("the restarted node 3 is connected", LIMIT, || async {
        !node3
            .net()
            .connected_peers()
            .await
            .unwrap_or_default()
            .is_empty()
    })
    .await
    .unwrap();
    let target = net.peer_id(4);
    net.wait_for("the restarted node 3 finds node 4", LIMIT, || async {
        node3.net().find_peer(target).await.is_ok()
    })
    .await
    .unwrap();
    // And the network finds it again.
    let node1 = net.node(1).clone();
    net.wait_for("node 1 finds the restarted node 3", LIMIT, || async {
        node1.net().find_peer(peer3).await.is_ok()
    })
    .await
    .unwrap();
    drop((node1, node3));
    eprintln!(
        "node 3 rejoined without bootstrap in {:?}",
        restarted.elapsed()
    );

    // Node 0 comes back with a bootstrap address (node 1's) and rejoins too.
    net.restart(0, true).await.unwrap();
    let node0 = net.node(0).clone();
    net.wait_for("the restarted node 0 finds node 3", LIMIT, || async {
        node0.net().find_peer(peer3).await.is_ok()
    })
    .await
    .unwrap();
    drop(node0);
    net.shutdown().await;
    eprintln!("restart test took {:?} in total", started.elapsed());
}
