//! Feeds between real nodes: forged, relinked, oversized and replayed
//! entries are refused and change nothing; a fork is kept as proof and
//! does not stop replication; a follower that was offline while its author
//! posted 500 entries catches up on its own.

use std::time::Duration;

use kith_base::feed::{Body, Entry, EntryId, Post};
use kith_testnet::{Testnet, TestnetConfig};

fn post(text: &str) -> Body {
    Body::Post(Post {
        text: text.into(),
        ..Post::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_entries_are_refused_a_fork_is_kept_and_an_offline_follower_catches_up() {
    let mut net = Testnet::start(3, TestnetConfig::default()).await.unwrap();
    crate::wait_joined(&net, 2).await;
    let author = net.node(0).clone();
    let one = author.feeds().post(post("one")).await.unwrap();
    let two = author.feeds().post(post("two")).await.unwrap();
    let follower = net.peer_id(1);
    let followed = net.node(1).feeds().follow(net.peer_id(0)).await.unwrap();
    assert_eq!(followed.head, 2);
    let attacker = net.node(2).feeds();
    let head = || async { net.node(1).feeds().list().await.unwrap()[1].head };

    // A forged third entry: the signature does not verify.
    let three = Entry::sign(author.identity(), 3, Some(two.id()), 3, &post("three")).unwrap();
    let mut forged = three.to_bytes();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let refusal = attacker.push_raw(follower, &forged).await.unwrap_err();
    assert!(
        refusal.contains("does not match its signed hash"),
        "{refusal}"
    );
    // Signed by the author, but linked to the wrong entry.
    let relinked =
        Entry::sign(author.identity(), 3, Some(EntryId([9; 32])), 3, &post("x")).unwrap();
    assert_eq!(
        attacker.push_raw(follower, &relinked.to_bytes()).await,
        Ok(2)
    );
    // An entry of a feed the follower does not follow.
    let stranger = Entry::sign(net.node(2).identity(), 1, None, 1, &post("hi")).unwrap();
    let refusal = attacker
        .push_raw(follower, &stranger.to_bytes())
        .await
        .unwrap_err();
    assert!(refusal.contains("does not follow"), "{refusal}");
    // Oversized: refused before it is read.
    assert!(
        attacker
            .push_raw(follower, &vec![0; 64 << 10])
            .await
            .is_err()
    );
    // A replay of an entry held.
    assert_eq!(attacker.push_raw(follower, &one.to_bytes()).await, Ok(2));
    assert_eq!(head().await, 2);

    // A fork: the author signed another second entry. Kept as proof, the
    // first stays, and the honest feed goes on replicating.
    let other_two = Entry::sign(author.identity(), 2, Some(one.id()), 2, &post("two'")).unwrap();
    assert_eq!(
        attacker.push_raw(follower, &other_two.to_bytes()).await,
        Ok(2)
    );
    let feeds = net.node(1).feeds().list().await.unwrap();
    assert_eq!(feeds[1].forks, vec![2]);
    let texts = |items: Vec<kith_node::FeedItem>| {
        items.into_iter().map(|item| item.text).collect::<Vec<_>>()
    };
    let shown = net
        .node(1)
        .feeds()
        .timeline(Some(net.peer_id(0)), 10)
        .await
        .unwrap();
    assert_eq!(texts(shown), ["two", "one"]);

    // The follower goes offline; the author posts 500; the follower comes
    // back and catches up by itself.
    net.kill(1).await.unwrap();
    for i in 0..500 {
        author
            .feeds()
            .post(post(&format!("post {i}")))
            .await
            .unwrap();
    }
    net.restart(1, true).await.unwrap();
    let caught_up = net
        .wait_for(
            "the follower to catch up",
            Duration::from_secs(60),
            || async { net.node(1).feeds().list().await.unwrap()[1].head == 502 },
        )
        .await;
    assert!(caught_up.is_ok(), "{caught_up:?}");
    let newest = net
        .node(1)
        .feeds()
        .timeline(Some(net.peer_id(0)), 1)
        .await
        .unwrap();
    assert_eq!(texts(newest), ["post 499"]);
    net.shutdown().await;
}
