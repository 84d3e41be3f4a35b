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

/// Replies from people nobody follows reach the author and its followers;
/// forged, misaddressed and foreign withdrawals are refused or change
/// nothing; the replier's own withdrawal takes the reply away everywhere.
/// A follower copies the attachments of the feeds it follows and serves
/// them when every other node is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_from_strangers_reach_the_thread_and_followers_keep_attachments() {
    let mut net = Testnet::start(5, TestnetConfig::default()).await.unwrap();
    crate::wait_joined(&net, 4).await;
    let (author, follower, replier, stranger) = (0, 1, 2, 3);
    let author_key = net.node(author).identity().public_key();

    // The author posts a photo; its follower copies the file.
    let photo = crate::bytes(300_000, 7);
    let put = net
        .node(author)
        .files()
        .put(
            Box::new(std::io::Cursor::new(photo.clone())),
            kith_node::Params::default(),
            kith_node::FileMeta::none(),
        )
        .await
        .unwrap();
    let first = net
        .node(author)
        .feeds()
        .post(Body::Post(Post {
            text: "the river".into(),
            attachments: vec![("river.jpg".into(), put.capability.clone())],
            ..Post::default()
        }))
        .await
        .unwrap();
    for node in [follower, replier] {
        net.node(node)
            .feeds()
            .follow(net.peer_id(author))
            .await
            .unwrap();
    }

    // The replier follows the author; nobody follows the replier.
    let reply = net
        .node(replier)
        .feeds()
        .post(Body::Post(Post {
            text: "lovely".into(),
            reply_to: Some(first.id()),
            ..Post::default()
        }))
        .await
        .unwrap();
    let reply_id = reply.id().to_string();
    let shows = |node: usize, who: Option<usize>, id: String| {
        let net = &net;
        async move {
            let who = who.map(|i| net.peer_id(i));
            net.node(node)
                .feeds()
                .timeline(who, 50)
                .await
                .unwrap()
                .iter()
                .any(|item| item.id == id)
        }
    };
    for (node, who) in [(author, None), (follower, None), (follower, Some(author))] {
        let seen = net
            .wait_for(
                "the reply to reach the thread",
                Duration::from_secs(30),
                || shows(node, who, reply_id.clone()),
            )
            .await;
        assert!(seen.is_ok(), "node {node}: {seen:?}");
    }

    // What a misbehaving peer tries, at the follower.
    let liar = net.node(stranger).feeds();
    let at = net.peer_id(follower);
    let sign = |sequence: u64, body: &Body| {
        Entry::sign(net.node(stranger).identity(), sequence, None, 5, body).unwrap()
    };
    let answer = |to: EntryId| {
        Body::Post(Post {
            text: "spam".into(),
            reply_to: Some(to),
            ..Post::default()
        })
    };
    let mut forged = sign(1, &answer(first.id())).to_bytes();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let refusal = liar
        .reply_raw(at, &author_key, &first.id(), &forged)
        .await
        .unwrap_err();
    assert!(refusal.contains("signed hash"), "{refusal}");
    let refusal = liar
        .reply_raw(
            at,
            &author_key,
            &EntryId([4; 32]),
            &sign(1, &answer(EntryId([4; 32]))).to_bytes(),
        )
        .await
        .unwrap_err();
    assert!(refusal.contains("no such post"), "{refusal}");
    let refusal = liar
        .reply_raw(
            at,
            &author_key,
            &first.id(),
            &sign(1, &post("hi")).to_bytes(),
        )
        .await
        .unwrap_err();
    assert!(refusal.contains("not a reply"), "{refusal}");
    let refusal = liar
        .reply_raw(
            at,
            &[9; 32],
            &first.id(),
            &sign(1, &answer(first.id())).to_bytes(),
        )
        .await
        .unwrap_err();
    assert!(refusal.contains("does not hold"), "{refusal}");
    // Withdrawing someone else's reply changes nothing.
    let foreign = sign(2, &Body::Deletion(reply.id())).to_bytes();
    assert_eq!(
        liar.reply_raw(at, &author_key, &first.id(), &foreign).await,
        Ok(false)
    );
    assert!(shows(follower, None, reply_id.clone()).await);

    // The replier withdraws it: gone from the author and the follower.
    net.node(replier)
        .feeds()
        .post(Body::Deletion(reply.id()))
        .await
        .unwrap();
    for node in [author, follower] {
        let gone = net
            .wait_for(
                "the withdrawn reply to go",
                Duration::from_secs(30),
                || async { !shows(node, None, reply_id.clone()).await },
            )
            .await;
        assert!(gone.is_ok(), "node {node}: {gone:?}");
    }

    // The follower has copied the photo: with every other node gone, it
    // still reads it whole.
    let copied = net
        .wait_for(
            "the follower to copy the attachment",
            Duration::from_secs(60),
            || async {
                net.node(follower).feeds().list().await.unwrap()[1].attachment_bytes
                    == photo.len() as u64
            },
        )
        .await;
    assert!(copied.is_ok(), "{copied:?}");
    for node in [author, replier, stranger, 4] {
        net.kill(node).await.unwrap();
    }
    let (read, _) = crate::read_with_report(net.node(follower), &put.capability)
        .await
        .unwrap();
    assert!(read == photo, "the copy differs");
    net.shutdown().await;
}
