//! Friends between real nodes: direct messages and files, offline
//! mailboxes, and the letters a hostile peer might send.

use std::path::Path;
use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt};
use kith_base::Identity;
use kith_base::letter::{self, MAX_SIGNED_LETTER};
use kith_node::protocols::letter_frames::{self as wire, FrameError, Reason, WireError, tag};
use kith_node::{Content, FileState, FriendError, FriendSettings, InboxItem, Node, SendError, Via};
use kith_testnet::{Testnet, TestnetConfig};

use crate::{bytes, wait_joined};

const LIMIT: Duration = Duration::from_secs(90);

fn config() -> TestnetConfig {
    TestnetConfig {
        friends: FriendSettings {
            mail_check: Duration::from_secs(2),
            ..FriendSettings::default()
        },
        ..TestnetConfig::default()
    }
}

async fn inbox(node: &Node) -> Vec<InboxItem> {
    node.friends().inbox(0, None).await.unwrap()
}

async fn send_bytes(
    node: &Node,
    to: &str,
    name: &str,
    data: Vec<u8>,
) -> Result<kith_node::Delivery, SendError> {
    let size = data.len() as u64;
    node.friends()
        .send_file(to, name, size, Box::new(futures::io::Cursor::new(data)))
        .await
}

/// Online: 100 messages and a 50 MiB file arrive once each, in order and
/// identical; a second file of the same name does not overwrite the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_and_a_file_arrive_directly_once_and_in_order() {
    let net = Testnet::start(2, config()).await.unwrap();
    wait_joined(&net, 1).await;
    let (alice, bob) = (net.node(0).clone(), net.node(1).clone());
    let to_bob = bob.peer_id().to_string();

    for i in 0..100 {
        let delivery = alice
            .friends()
            .send_message(&to_bob, format!("message {i}"))
            .await
            .unwrap();
        assert_eq!(
            delivery.via,
            Via::Direct,
            "message {i}: {:?}",
            delivery.direct_error
        );
    }
    let data = bytes(50 << 20, 1);
    let delivery = send_bytes(&alice, &to_bob, "big.bin", data.clone())
        .await
        .unwrap();
    assert_eq!(delivery.via, Via::Direct);
    assert_eq!(
        delivery.blake3.as_deref(),
        Some(blake3::hash(&data).to_hex().as_str())
    );
    let small = send_bytes(&alice, &to_bob, "big.bin", b"second".to_vec())
        .await
        .unwrap();
    assert_eq!(small.via, Via::Direct);

    let items = inbox(&bob).await;
    assert_eq!(items.len(), 102, "each letter once");
    let texts: Vec<_> = items
        .iter()
        .filter_map(|item| match &item.entry.content {
            Content::Text { text } => Some(text.clone()),
            _ => None,
        })
        .collect();
    let expected: Vec<_> = (0..100).map(|i| format!("message {i}")).collect();
    assert_eq!(texts, expected, "in the order sent");
    let seqs: Vec<_> = items.iter().map(|item| item.entry.seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "sequence numbers rise"
    );
    assert!(
        items
            .iter()
            .all(|item| item.entry.from == alice.peer_id().to_string())
    );

    let files: Vec<_> = items
        .iter()
        .filter_map(|item| match &item.entry.content {
            Content::File { path, state, .. } => {
                assert_eq!(*state, FileState::Received);
                Some(path.clone().unwrap())
            }
            _ => None,
        })
        .collect();
    assert_eq!(files.len(), 2);
    assert!(
        std::fs::read(&files[0]).unwrap() == data,
        "the 50 MiB file differs"
    );
    assert_eq!(std::fs::read(&files[1]).unwrap(), b"second");
    assert!(files[0].ends_with("/inbox/big.bin"), "{}", files[0]);
    assert!(files[1].ends_with("/inbox/big (1).bin"), "{}", files[1]);
    let leftovers = std::fs::read_dir(bob.friends().inbox_dir())
        .unwrap()
        .count();
    assert_eq!(leftovers, 2, "only the two files in the inbox folder");
    net.shutdown().await;
}

/// Offline: bob is down while alice sends three messages and a 5 MiB file;
/// when bob starts again it has all four within a bounded time, and the
/// mailbox peers then hold nothing for it, and never held any plaintext.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_waits_for_an_offline_friend_and_is_collected() {
    let mut net = Testnet::start(6, config()).await.unwrap();
    wait_joined(&net, 5).await;
    let bob_id = net.peer_id(1);
    let to_bob = bob_id.to_string();
    let alice = net.node(0).clone();
    net.kill(1).await.unwrap();

    let texts = [
        "the treasure is under the old oak",
        "bring a spade",
        "and tell nobody",
    ];
    for text in texts {
        let delivery = alice
            .friends()
            .send_message(&to_bob, text.to_owned())
            .await
            .unwrap();
        assert_eq!(delivery.via, Via::Mailbox, "{text}");
        assert!(delivery.mailbox_peers >= 1);
    }
    let data = bytes(5 << 20, 2);
    let delivery = send_bytes(&alice, &to_bob, "map.bin", data.clone())
        .await
        .unwrap();
    assert_eq!(delivery.via, Via::Mailbox);
    assert!(delivery.capability.is_some());

    let mut held = 0;
    for (_, node) in net.nodes() {
        held += node.friends().held_mail(Some(bob_id)).await.unwrap().0;
    }
    assert!(held >= 4, "the four letters are held somewhere ({held})");
    // Mailbox peers see ciphertext only.
    for (i, _) in net.nodes() {
        if i == 0 {
            continue;
        }
        for text in texts {
            assert!(
                !folder_contains(net.data_dir(i), text.as_bytes()),
                "node {i}'s folder holds the plaintext {text:?}"
            );
        }
        assert!(
            !folder_contains(net.data_dir(i), &data[1000..1064]),
            "node {i}'s folder holds the file's plaintext"
        );
    }

    let restarted = std::time::Instant::now();
    net.restart(1, true).await.unwrap();
    let bob = net.node(1).clone();
    net.wait_for("bob has the messages and the file", LIMIT, || async {
        let items = inbox(&bob).await;
        items.len() == 4
            && items.iter().all(|item| match &item.entry.content {
                Content::File { state, .. } => *state == FileState::Received,
                _ => true,
            })
    })
    .await
    .unwrap();
    eprintln!(
        "bob had his mail {:?} after restarting",
        restarted.elapsed()
    );
    let mut items = inbox(&bob).await;
    items.sort_by_key(|item| item.entry.seq);
    for (item, text) in items.iter().zip(texts) {
        assert_eq!(item.entry.via, Via::Mailbox);
        assert_eq!(item.entry.content, Content::Text { text: text.into() });
    }
    match &items[3].entry.content {
        Content::File { path, name, .. } => {
            assert_eq!(name, "map.bin");
            assert!(std::fs::read(path.as_ref().unwrap()).unwrap() == data);
        }
        other => panic!("expected the file, got {other:?}"),
    }
    net.wait_for("the mailbox peers dropped bob's mail", LIMIT, || async {
        for (_, node) in net.nodes() {
            if node.friends().held_mail(Some(bob_id)).await.unwrap().0 != 0 {
                return false;
            }
        }
        true
    })
    .await
    .unwrap();
    // A second check brings nothing twice.
    assert_eq!(bob.friends().check_mail().await, 0);
    assert_eq!(inbox(&bob).await.len(), 4);
    net.shutdown().await;
}

/// Whether any file under `dir` contains `needle`.
fn folder_contains(dir: &Path, needle: &[u8]) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|entry| {
        let path = entry.path();
        if path.is_dir() {
            folder_contains(&path, needle)
        } else {
            std::fs::read(&path)
                .map(|content| content.windows(needle.len()).any(|w| w == needle))
                .unwrap_or(false)
        }
    })
}

/// A letter's bytes written by hand, as a hostile peer could: no checks.
fn raw_letter(
    from: &Identity,
    claimed_from: &kith_base::PeerId,
    to: &kith_base::PeerId,
    seq: u64,
    kind: u8,
    body: &[u8],
) -> Vec<u8> {
    let mut bytes = vec![1u8];
    for peer in [claimed_from, to] {
        let id = peer.to_bytes();
        bytes.push(id.len() as u8);
        bytes.extend_from_slice(&id);
    }
    bytes.extend_from_slice(&1_700_000_000_000u64.to_le_bytes());
    bytes.extend_from_slice(&seq.to_le_bytes());
    bytes.push(kind);
    bytes.extend_from_slice(body);
    let mut message = b"kith letter v1".to_vec();
    message.extend_from_slice(&bytes);
    bytes.extend_from_slice(&from.keypair().sign(&message).unwrap());
    bytes
}

fn text_body(text: &str) -> Vec<u8> {
    let mut body = (text.len() as u32).to_le_bytes().to_vec();
    body.extend_from_slice(text.as_bytes());
    body
}

/// Sends raw frames on a fresh direct stream and returns the answer.
async fn answer_to(from: &Node, to: &Node, frames: &[(u8, Vec<u8>)]) -> Result<u8, WireError> {
    let mut stream = from
        .net()
        .streams()
        .open_stream(to.peer_id(), wire::DIRECT)
        .await
        .unwrap();
    for (tag, payload) in frames {
        wire::write_frame(&mut stream, *tag, payload).await?;
    }
    let mut buffer = Vec::new();
    match wire::read_frame(&mut stream, Duration::from_secs(20), &mut buffer).await? {
        Some(tag) => Ok(tag),
        None => Err(WireError::Frame(FrameError::Closed)),
    }
}

/// Three joined nodes: alice and bob, honest, and mallory, who will write
/// frames by hand.
async fn alice_bob_and_mallory() -> (Testnet, Node, Node, Node) {
    let net = Testnet::start(3, config()).await.unwrap();
    wait_joined(&net, 2).await;
    let nodes = (
        net.node(0).clone(),
        net.node(1).clone(),
        net.node(2).clone(),
    );
    (net, nodes.0, nodes.1, nodes.2)
}

/// A test node's identity, read from its data folder (to sign letters by
/// hand as that node).
fn identity_of(net: &Testnet, index: usize) -> Identity {
    Identity::from_file_text(
        &std::fs::read_to_string(net.data_dir(index).join(kith_node::data_dir::IDENTITY_FILE))
            .unwrap(),
    )
    .unwrap()
}

/// A file letter's body: name and size.
fn file_body(name: &str, size: u64) -> Vec<u8> {
    let mut body = (name.len() as u16).to_le_bytes().to_vec();
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(&size.to_le_bytes());
    body
}

/// Opens a direct stream from `from` to `to`, sends `letter` and waits for
/// the recipient's "ready": the stream is then in the middle of a transfer.
async fn start_transfer(from: &Node, to: &Node, letter: &[u8]) -> kith_net::Stream {
    let mut stream = from
        .net()
        .streams()
        .open_stream(to.peer_id(), wire::DIRECT)
        .await
        .unwrap();
    wire::write_frame(&mut stream, tag::LETTER, letter)
        .await
        .unwrap();
    wire::expect_frame(&mut stream, LIMIT, tag::READY, "ready", &mut Vec::new())
        .await
        .unwrap();
    stream
}

#[track_caller]
fn refused(result: Result<u8, WireError>) -> Reason {
    match result {
        Err(WireError::Refused { reason, sentence }) => {
            eprintln!("refused: {sentence}");
            reason
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Forged sender, replay, oversized letter, a path in a file name, an
/// unknown friend: each refused with a reason, nothing stored or lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_letters_are_refused_and_nothing_is_lost() {
    let (net, alice, bob, mallory) = alice_bob_and_mallory().await;
    let (alice_id, bob_id) = (alice.peer_id(), bob.peer_id());
    alice
        .friends()
        .send_message(&bob_id.to_string(), "a real one".into())
        .await
        .unwrap();
    let mallory_key = identity_of(&net, 2);

    // Mallory signs a letter that claims to be from alice.
    let forged = raw_letter(
        &mallory_key,
        &alice_id,
        &bob_id,
        99,
        1,
        &text_body("send money"),
    );
    assert_eq!(
        refused(answer_to(&mallory, &bob, &[(tag::LETTER, forged)]).await),
        Reason::Forged
    );

    // Mallory replays a letter alice really signed (captured somewhere).
    let alices_key = identity_of(&net, 0);
    let genuine = raw_letter(&alices_key, &alice_id, &bob_id, 500, 1, &text_body("hello"));
    assert_eq!(
        refused(answer_to(&mallory, &bob, &[(tag::LETTER, genuine.clone())]).await),
        Reason::Forged,
        "alice's letter from mallory's connection"
    );
    // Alice's node sends it once (accepted), then again (a replay).
    assert_eq!(
        answer_to(&alice, &bob, &[(tag::LETTER, genuine.clone())])
            .await
            .unwrap(),
        tag::DELIVERED
    );
    assert_eq!(
        refused(answer_to(&alice, &bob, &[(tag::LETTER, genuine)]).await),
        Reason::Duplicate
    );

    // A letter frame over the limit: the stream is dropped unread.
    let mut stream = mallory
        .net()
        .streams()
        .open_stream(bob_id, wire::DIRECT)
        .await
        .unwrap();
    let mut header = vec![tag::LETTER];
    header.extend_from_slice(&(MAX_SIGNED_LETTER as u32 + 1).to_le_bytes());
    stream.write_all(&header).await.unwrap();
    let _ = stream.flush().await;
    // Bob answers with a refusal that says why, then closes the stream.
    let answer = wire::read_frame(&mut stream, LIMIT, &mut Vec::new()).await;
    match answer {
        Err(WireError::Refused { reason, sentence }) => {
            assert_eq!(reason, Reason::Invalid, "{sentence}");
            assert!(sentence.contains("at most"), "{sentence}");
        }
        Err(WireError::Frame(FrameError::Closed | FrameError::Io(_))) => {}
        other => panic!("expected a refusal or a closed stream, got {other:?}"),
    }
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut rest)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "the stream was not closed: {read:?}"
    );

    // A file whose name climbs out of the inbox.
    let body = file_body("../escape.txt", 4);
    let escape = raw_letter(&mallory_key, &mallory.peer_id(), &bob_id, 1, 2, &body);
    let reason = refused(
        // Only the letter: bob refuses before it asks for any data.
        answer_to(&mallory, &bob, &[(tag::LETTER, escape)]).await,
    );
    assert_eq!(reason, Reason::BadName);
    assert!(
        !bob.friends()
            .inbox_dir()
            .parent()
            .unwrap()
            .join("escape.txt")
            .exists()
    );

    // A file that does not match its hash is not kept.
    let fake = raw_letter(
        &mallory_key,
        &mallory.peer_id(),
        &bob_id,
        2,
        2,
        &file_body("fake.txt", 4),
    );
    let mut stream = start_transfer(&mallory, &bob, &fake).await;
    let mut buffer = Vec::new();
    wire::write_frame(&mut stream, tag::DATA, b"evil")
        .await
        .unwrap();
    wire::write_frame(&mut stream, tag::END, blake3::hash(b"good").as_bytes())
        .await
        .unwrap();
    assert_eq!(
        refused(
            wire::expect_frame(&mut stream, LIMIT, tag::DELIVERED, "delivered", &mut buffer)
                .await
                .map(|()| 0)
        ),
        Reason::Corrupt
    );

    // Through the node's own API: limits and unknown names.
    let long = "x".repeat(letter::MAX_TEXT + 1);
    assert!(matches!(
        alice
            .friends()
            .send_message(&bob_id.to_string(), long)
            .await,
        Err(SendError::Letter(
            kith_base::LetterError::TextTooLong { .. }
        ))
    ));
    assert!(matches!(
        alice.friends().send_message("carol", "hi".into()).await,
        Err(SendError::Friend(FriendError::Unknown(_)))
    ));
    assert!(matches!(
        send_bytes(&alice, &bob_id.to_string(), "../x", b"x".to_vec()).await,
        Err(SendError::Letter(
            kith_base::LetterError::BadFileName { .. }
        ))
    ));
    assert!(matches!(
        alice
            .friends()
            .send_message(&alice_id.to_string(), "me".into())
            .await,
        Err(SendError::ToSelf(_))
    ));

    // Nothing was lost: the two real letters, nothing else, no stray files.
    let items = inbox(&bob).await;
    assert_eq!(items.len(), 2, "{items:?}");
    assert_eq!(
        std::fs::read_dir(bob.friends().inbox_dir())
            .map(|d| d.count())
            .unwrap_or(0),
        0,
        "no file was kept"
    );
    net.shutdown().await;
}

/// The red-team finding: a signed file letter, a few bytes, then an end
/// frame whose hash is 0 or 5 bytes long made the recipient panic. Now the
/// frame is refused as malformed, nothing is kept, and the node goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_end_frame_of_the_wrong_size_is_refused_not_a_panic() {
    let (net, alice, bob, mallory) = alice_bob_and_mallory().await;
    let bob_id = bob.peer_id();
    let mallory_key = identity_of(&net, 2);
    for (seq, hash_len) in [(1u64, 0usize), (2, 5), (3, 31)] {
        let body = file_body("boom.bin", 3);
        let letter = raw_letter(&mallory_key, &mallory.peer_id(), &bob_id, seq, 2, &body);
        let mut stream = start_transfer(&mallory, &bob, &letter).await;
        let mut buffer = Vec::new();
        wire::write_frame(&mut stream, tag::DATA, b"abc")
            .await
            .unwrap();
        wire::write_frame(&mut stream, tag::END, &vec![9u8; hash_len])
            .await
            .unwrap();
        let answer =
            wire::expect_frame(&mut stream, LIMIT, tag::DELIVERED, "delivered", &mut buffer).await;
        match answer {
            Err(WireError::Refused { reason, sentence }) => {
                assert_eq!(reason, Reason::Invalid, "{sentence}");
                assert!(sentence.contains("at least 32 bytes"), "{sentence}");
            }
            other => panic!("a {hash_len}-byte end frame: expected a refusal, got {other:?}"),
        }
    }
    // Bob is still up and receiving; nothing of mallory's file was kept.
    let delivery = alice
        .friends()
        .send_message(&bob_id.to_string(), "still there?".into())
        .await
        .unwrap();
    assert_eq!(delivery.via, Via::Direct, "{:?}", delivery.direct_error);
    let items = inbox(&bob).await;
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(
        std::fs::read_dir(bob.friends().inbox_dir())
            .map(|d| d.filter_map(Result::ok).count())
            .unwrap_or(0),
        0,
        "no partial file left"
    );
    net.shutdown().await;
}

/// Plaintext never leaves the uploader (issue 23, item 7): a file put with
/// a marker in it, fetched by another node, and a message and a file sent
/// with markers to a friend, directly and through the mailbox. Afterwards
/// no data folder but the author's (and, for what it was sent, the
/// recipient's) holds any marker: holders, mailbox peers and the node that
/// fetched and cached the file see ciphertext only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_marker_of_any_plaintext_reaches_another_nodes_folder() {
    let mut net = Testnet::start(7, config()).await.unwrap();
    wait_joined(&net, 6).await;
    let (alice, reader) = (net.node(0).clone(), net.node(1).clone());
    let (carol_id, dave_id) = (net.peer_id(2), net.peer_id(3));
    let marker = |what: &str| format!("KITH-MARKER-{what}-7f3a9c");
    let with_marker = |what: &str, len: usize| {
        let mut data = bytes(len, 9);
        let text = marker(what);
        for at in [0, len / 2, len - text.len()] {
            data[at..at + text.len()].copy_from_slice(text.as_bytes());
        }
        data
    };

    // A stored file, fetched (and so cached) by another node.
    let stored = with_marker("put", 3 << 20);
    let put = alice
        .files()
        .put(
            Box::new(std::io::Cursor::new(stored.clone())),
            kith_node::Params::default(),
            kith_node::FileMeta::none(),
        )
        .await
        .unwrap();
    let mut fetched = Vec::new();
    let mut stream = reader
        .files()
        .get(&put.capability)
        .await
        .unwrap()
        .into_stream();
    while let Some(chunk) = stream.recv().await {
        fetched.extend_from_slice(&chunk.unwrap());
    }
    assert!(fetched == stored, "the file came back different");

    // To carol, online: a message and a file, directly.
    let to_carol = carol_id.to_string();
    let delivery = alice
        .friends()
        .send_message(&to_carol, marker("msg-direct"))
        .await
        .unwrap();
    assert_eq!(delivery.via, Via::Direct);
    let direct_file = with_marker("send-direct", 1 << 20);
    let delivery = send_bytes(&alice, &to_carol, "direct.bin", direct_file)
        .await
        .unwrap();
    assert_eq!(delivery.via, Via::Direct);

    // To dave, offline: a message and a file through the mailbox.
    net.kill(3).await.unwrap();
    let to_dave = dave_id.to_string();
    let delivery = alice
        .friends()
        .send_message(&to_dave, marker("msg-mailbox"))
        .await
        .unwrap();
    assert_eq!(delivery.via, Via::Mailbox);
    let mailed_file = with_marker("send-mailbox", 1 << 20);
    let delivery = send_bytes(&alice, &to_dave, "mailed.bin", mailed_file)
        .await
        .unwrap();
    assert_eq!(delivery.via, Via::Mailbox);

    let all = [
        "put",
        "msg-direct",
        "send-direct",
        "msg-mailbox",
        "send-mailbox",
    ];
    let mut searched = 0;
    for (i, _) in net.nodes() {
        if i == 0 {
            continue;
        }
        // Carol may hold what was sent to her, nothing else.
        let allowed: &[&str] = if i == 2 {
            &["msg-direct", "send-direct"]
        } else {
            &[]
        };
        for what in all.iter().filter(|what| !allowed.contains(what)) {
            searched += 1;
            assert!(
                !folder_contains(net.data_dir(i), marker(what).as_bytes()),
                "node {i}'s data folder holds the plaintext marker of {what}"
            );
        }
    }
    // Dave's folder too (he was stopped; his mail waits sealed on others).
    for what in all {
        assert!(!folder_contains(net.data_dir(3), marker(what).as_bytes()));
    }
    // The check itself finds a marker where one is: in carol's inbox.
    assert!(folder_contains(
        net.data_dir(2),
        marker("send-direct").as_bytes()
    ));
    eprintln!("searched {searched} (node, marker) pairs: no plaintext found");
    net.shutdown().await;
}

/// A peer cannot hold more than its share of the recipient: with four file
/// transfers of its own open and stalled (the per-peer limit), its fifth
/// stream is refused as busy at once, while another peer still delivers;
/// once it lets go, it may send again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_peer_cannot_open_more_than_its_share_of_transfers() {
    let (net, alice, bob, mallory) = alice_bob_and_mallory().await;
    let bob_id = bob.peer_id();
    let mallory_key = identity_of(&net, 2);
    let mut held = Vec::new();
    for seq in 1..=4 {
        let body = file_body("stall.bin", 1 << 20);
        let letter = raw_letter(&mallory_key, &mallory.peer_id(), &bob_id, seq, 2, &body);
        held.push(start_transfer(&mallory, &bob, &letter).await);
    }
    // The fifth: refused as soon as it opens, before any letter is read.
    let mut fifth = mallory
        .net()
        .streams()
        .open_stream(bob_id, wire::DIRECT)
        .await
        .unwrap();
    let answer = wire::read_frame(&mut fifth, LIMIT, &mut Vec::new()).await;
    assert_eq!(refused(answer.map(|tag| tag.unwrap_or(0))), Reason::Busy);
    drop(fifth);
    // Another peer is not held up by mallory's stalled transfers.
    let delivery = alice
        .friends()
        .send_message(&bob_id.to_string(), "room for me?".into())
        .await
        .unwrap();
    assert_eq!(delivery.via, Via::Direct, "{:?}", delivery.direct_error);
    // Mallory lets go; its slots come back.
    drop(held);
    net.wait_for("mallory's slots to be freed", LIMIT, || async {
        let mut body = 4u32.to_le_bytes().to_vec();
        body.extend_from_slice(b"next");
        let seq = 100 + rand_seq();
        let letter = raw_letter(&mallory_key, &mallory.peer_id(), &bob_id, seq, 1, &body);
        matches!(
            answer_to(&mallory, &bob, &[(tag::LETTER, letter)]).await,
            Ok(tag::DELIVERED)
        )
    })
    .await
    .unwrap();
    net.shutdown().await;
}

/// A fresh sequence number for each try of a polling loop.
fn rand_seq() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
