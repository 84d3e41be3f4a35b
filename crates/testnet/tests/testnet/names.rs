//! Name records between real nodes: an old record replayed to a holder
//! changes nothing, and forged, relabelled or expired records are refused
//! by every holder, which keeps answering with the true newest record.

use kith_base::name::NameSigner;
use kith_base::{Capability, ContentId, FileKey, Identity, Name};
use kith_testnet::{Testnet, TestnetConfig};

fn cap(seed: &[u8]) -> Capability {
    Capability::new(ContentId::of(seed), FileKey::random())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_forged_and_expired_records_are_refused_and_change_nothing() {
    let net = Testnet::start(4, TestnetConfig::default()).await.unwrap();
    crate::wait_joined(&net, 3).await;
    let publisher = net.node(0);
    let (first, second) = (cap(b"one"), cap(b"two"));
    let one = publisher.names().publish(&first, None).await.unwrap();
    let two = publisher.names().publish(&second, None).await.unwrap();
    assert_eq!((one.record.sequence(), two.record.sequence()), (1, 2));
    assert!(two.stored_on >= 1, "no peer took the record");
    let name = two.record.name();
    let holder = net.peer_id(1);
    let attacker = net.node(3).names();
    let newest = |answer: Option<kith_base::NameRecord>| answer.map(|r| r.sequence());

    // Replay: the holder keeps sequence 2 and says so.
    let answer = attacker
        .send_record(holder, &name, one.record.as_bytes())
        .await
        .unwrap();
    assert_eq!(newest(answer), Some(2));

    // A higher sequence with a signature that does not match.
    let mut forged = *two.record.as_bytes();
    forged[33] = 9; // the sequence's low byte: 2 → 9
    let refusal = attacker
        .send_record(holder, &name, &forged)
        .await
        .unwrap_err();
    assert!(refusal.contains("forged"), "{refusal}");

    // Someone else's valid record with the name swapped in.
    let impostor = NameSigner::new(&Identity::generate(), None).unwrap();
    let day_from_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 86_400;
    let theirs = impostor.sign(&cap(b"evil"), 99, 1, day_from_now);
    let mut relabelled = *theirs.as_bytes();
    relabelled[1..33].copy_from_slice(name.as_bytes());
    let refusal = attacker
        .send_record(holder, &name, &relabelled)
        .await
        .unwrap_err();
    assert!(refusal.contains("forged"), "{refusal}");

    // A valid record of another key is kept under that key, not this name.
    let answer = attacker
        .send_record(holder, &theirs.name(), theirs.as_bytes())
        .await
        .unwrap();
    assert_eq!(newest(answer), Some(99));

    // A record that claims to be valid for ever: a holder would keep it
    // past any sweep, so it is refused.
    let forever = impostor.sign(&cap(b"evil"), 100, 1, u64::MAX);
    let refusal = attacker
        .send_record(holder, &forever.name(), forever.as_bytes())
        .await
        .unwrap_err();
    assert!(refusal.contains("400 days"), "{refusal}");

    // An expired record, however high its sequence.
    let key = Identity::generate();
    let old = NameSigner::new(&key, None)
        .unwrap()
        .sign(&cap(b"old"), 50, 1, 2);
    let refusal = attacker
        .send_record(holder, &old.name(), old.as_bytes())
        .await
        .unwrap_err();
    assert!(refusal.contains("expired"), "{refusal}");

    // Garbage of a record's length.
    let refusal = attacker
        .send_record(holder, &name, &[7; kith_base::name::RECORD_LEN])
        .await
        .unwrap_err();
    assert!(refusal.contains("refused"), "{refusal}");

    // Every node still resolves the true newest record, from the network.
    for (i, node) in net.nodes() {
        let resolved = node.names().resolve(name, true).await.unwrap();
        assert_eq!(resolved.record.sequence(), 2, "node {i}");
        assert_eq!(resolved.record.target(), &second, "node {i}");
    }
    let nobody = Name::from_key(Identity::generate().public_key()).unwrap();
    assert!(net.node(2).names().resolve(nobody, false).await.is_err());
    net.shutdown().await;
}
