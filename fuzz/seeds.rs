//! Writes the seed corpora under `fuzz/corpus/<target>/` from real
//! encodings (`run.sh --seeds`, or `write_seeds -runs=1` from `fuzz/`).
//! Not a fuzz target: it does its work on the first input and exits.
#![no_main]

#[path = "common.rs"]
mod common;

use std::path::Path;

use kith_base::letter::{self, Body, Letter};
use kith_base::{Capability, CapabilityKind, ContentId, FileKey, Identity, Lease};
use kith_codec::{FileMeta, Folder, FolderEntry, Params, encode_all};
use kith_node::AddressBook;
use kith_node::protocols::letter_frames::{encode_deposit, encode_ids, encode_mail};
use libfuzzer_sys::fuzz_target;

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    std::fs::create_dir_all(&dir).expect("corpus folder");
    std::fs::write(dir.join(name), bytes).expect("seed file");
}

fn seeds() {
    let alice = Identity::from_secret([1; 32]);
    // `letter.rs` unseals with this identity.
    let bob = Identity::from_secret([7; 32]);
    let cap = Capability::new(ContentId::from_bytes([2; 32]), FileKey::from_bytes([9; 32]));
    write("capability", "bytes", &cap.to_bytes());
    write("capability", "text", cap.to_string().as_bytes());
    let folder_cap = cap.clone().with_kind(CapabilityKind::Folder);
    write("capability", "folder-path", format!("{folder_cap}/img/cat.jpg").as_bytes());
    write("identity_file", "alice", alice.to_file_text().as_bytes());

    let bodies = [
        ("text", Body::Text("hello bob".into())),
        (
            "file",
            Body::File {
                name: "photo.jpg".into(),
                size: 123_456,
            },
        ),
        (
            "stored",
            Body::Stored {
                name: "notes.txt".into(),
                size: 42,
                capability: cap.to_string(),
            },
        ),
    ];
    let mut signed_letters = Vec::new();
    for (name, body) in bodies {
        let letter = Letter {
            from: alice.peer_id(),
            to: bob.peer_id(),
            sent_at_ms: 1_700_000_000_000,
            seq: 7,
            body,
        };
        let encoded = letter.encode().expect("encode");
        let signed = letter.sign(&alice).expect("sign");
        let sealed = letter::seal(&bob.peer_id(), &signed).expect("seal");
        write("letter", &format!("{name}-encoded"), &encoded);
        write("letter", &format!("{name}-signed"), &signed);
        write("letter", &format!("{name}-sealed"), &sealed);
        signed_letters.push((signed, sealed));
    }

    let lease = Lease::sign(
        &alice,
        ContentId::from_bytes([3; 32]),
        [4; 32],
        1_800_000_000,
    );
    write("lease", "signed", lease.as_bytes());

    let signer = kith_base::NameSigner::new(&alice, Some("blog")).expect("a label");
    let site = Capability::new(ContentId::from_bytes([6; 32]), FileKey::random())
        .with_kind(CapabilityKind::Folder);
    let record = signer.sign(&site, 3, 1_700_000_000, 1_900_000_000);
    write("name_record", "signed", record.as_bytes());
    write("name_record", "name", record.name().to_string().as_bytes());
    write("name_record", "label", b"my-site-2");

    let first = kith_base::feed::Entry::sign(
        &alice,
        1,
        None,
        1_700_000_000_000,
        &kith_base::feed::Body::Post(kith_base::feed::Post {
            text: "first light".into(),
            reply_to: None,
            attachments: vec![("cat.jpg".into(), site.clone())],
        }),
    )
    .expect("a post");
    let deletion = kith_base::feed::Entry::sign(
        &alice,
        2,
        Some(first.id()),
        1_700_000_000_001,
        &kith_base::feed::Body::Deletion(first.id()),
    )
    .expect("a deletion");
    write("feed_entry", "post", &first.to_bytes());
    write("feed_entry", "deletion", &deletion.to_bytes());
    write("feed_entry", "head-only", &first.without_body().to_bytes());
    write(
        "feed_entry",
        "batch",
        &kith_node::protocols::feeds::wire::encode_entries(&[first.to_bytes(), deletion.to_bytes()]),
    );

    write(
        "text_values",
        "id",
        ContentId::from_bytes([5; 32]).to_string().as_bytes(),
    );
    write("text_values", "size", b"10 GiB");
    write(
        "text_values",
        "params",
        Params::default().to_string().as_bytes(),
    );

    // A small file encoded for real: its manifest, stripe records and shares.
    let params = Params::new(2, 3, 4096).expect("params");
    let data: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
    let mut stripes = Vec::new();
    let file = encode_all::<_, kith_codec::EncodeError, _>(
        data.as_slice(),
        params,
        FileKey::from_bytes([9; 32]),
        FileMeta::none().with_name("seed.bin").expect("name"),
        |stripe| {
            stripes.push(stripe);
            Ok(())
        },
    )
    .expect("encode");
    write("manifest", "two-stripes", &file.manifest.to_bytes());
    let folder = Folder::new(vec![
        FolderEntry::new("index.html", 300, Some("text/html"), cap.clone()).expect("entry"),
        FolderEntry::new(
            "img",
            5000,
            None,
            cap.clone().with_kind(CapabilityKind::Folder),
        )
        .expect("entry"),
    ])
    .expect("folder");
    write("folder_listing", "two-entries", &folder.to_bytes());
    write("folder_listing", "empty", &Folder::default().to_bytes());
    write("folder_listing", "path", b"img/cat.jpg");
    let record = file.manifest_stripe.record().to_bytes();
    write("stripe_record", "manifest-stripe", &record);
    for (at, stripe) in stripes.iter().enumerate() {
        write(
            "stripe_record",
            &format!("stripe-{at}"),
            &stripe.record().to_bytes(),
        );
    }
    let decode_input =
        |cap: &Capability, record: &[u8], manifest: &[u8], index: u32, shares: Vec<&[u8]>| {
            let mut out = cap.manifest().as_bytes().to_vec();
            out.extend_from_slice(cap.key().as_bytes());
            out.extend_from_slice(&(record.len() as u16).to_le_bytes());
            out.extend_from_slice(record);
            out.extend_from_slice(&(manifest.len() as u16).to_le_bytes());
            out.extend_from_slice(manifest);
            out.extend_from_slice(&index.to_le_bytes());
            for (at, share) in shares.iter().enumerate() {
                // The first share missing: k of n rebuild.
                out.push(u8::from(at != 0));
                out.extend_from_slice(&(share.len() as u32).to_le_bytes());
                out.extend_from_slice(share);
            }
            out
        };
    let manifest_bytes = file.manifest.to_bytes();
    write(
        "stripe_decode",
        "manifest",
        &decode_input(
            &file.capability,
            &record,
            &manifest_bytes,
            0,
            file.manifest_stripe.shares().collect(),
        ),
    );
    write(
        "stripe_decode",
        "segment-1",
        &decode_input(
            &file.capability,
            &stripes[1].record().to_bytes(),
            &manifest_bytes,
            1,
            stripes[1].shares().collect(),
        ),
    );

    // Store share row v1: 1 | stripe | index | len | owner | 1 | expires.
    let mut row = vec![1];
    row.extend_from_slice(&[3; 32]);
    row.push(2);
    row.extend_from_slice(&4096u64.to_le_bytes());
    row.extend_from_slice(&alice.public_key());
    row.push(1);
    row.extend_from_slice(&1_800_000_000u64.to_le_bytes());
    write("share_row", "leased", &row);

    // Held mail v1: 1 | mailbox | expires ms | depositor len | depositor | sealed.
    let depositor = alice.peer_id().to_bytes();
    let mut held = vec![1];
    held.extend_from_slice(&[6; 32]);
    held.extend_from_slice(&1_800_000_000_000u64.to_le_bytes());
    held.push(depositor.len() as u8);
    held.extend_from_slice(&depositor);
    held.extend_from_slice(&signed_letters[0].1);
    write("held_mail", "text-letter", &held);

    // Owned file v1: 1 | expires | groups u32 | (placement | count u16 | ids)*.
    let mut owned = vec![1];
    owned.extend_from_slice(&1_800_000_000u64.to_le_bytes());
    owned.extend_from_slice(&2u32.to_le_bytes());
    for (placement, ids) in [([8u8; 32], 1u16), ([9; 32], 2)] {
        owned.extend_from_slice(&placement);
        owned.extend_from_slice(&ids.to_le_bytes());
        for id in 0..ids {
            owned.extend_from_slice(&[id as u8 + 10; 32]);
        }
    }
    write("owned_file", "two-groups", &owned);

    let mail = encode_mail(&[
        ([0; 32], signed_letters[0].1.clone()),
        ([1; 32], b"x".to_vec()),
    ]);
    write(
        "friends_payloads",
        "mail",
        &[[0].as_slice(), &mail].concat(),
    );
    let ids = encode_ids(&[[1; 32], [2; 32]]);
    write("friends_payloads", "ids", &[[1].as_slice(), &ids].concat());
    let deposit = encode_deposit(&[4; 32], 1_800_000_000_000, b"a sealed letter");
    write(
        "friends_payloads",
        "deposit",
        &[[2].as_slice(), &deposit].concat(),
    );

    let mut book = AddressBook::default();
    book.add("alice", alice.peer_id()).expect("name");
    book.add("bob", bob.peer_id()).expect("name");
    write(
        "node_text",
        "address-book",
        &[[0].as_slice(), book.render().as_bytes()].concat(),
    );
    let peers = format!(
        "# peers\n{} /ip4/192.0.2.1/tcp/4001\n{} /ip6/::1/udp/4001/quic-v1\n",
        alice.peer_id(),
        bob.peer_id()
    );
    write(
        "node_text",
        "peer-table",
        &[[1].as_slice(), peers.as_bytes()].concat(),
    );
    let config = "listen = [\"/ip4/0.0.0.0/tcp/4001\"]\nmdns = true\nquota = \"10 GiB\"\naccept = \"friends\"\nmail_check_secs = 30\nlease = \"30d\"\nrepair_rate = \"1 MiB\"\n";
    write(
        "node_text",
        "config",
        &[[2].as_slice(), config.as_bytes()].concat(),
    );

    let (requests, answers) = common::runtime().block_on(kith_node::fuzzing::share_seed_frames(
        lease.as_bytes(),
        &record,
        alice.peer_id(),
    ));
    write("share_answers", "all-answers", &answers);
    // The request bytes seed `share_frames` only through its own format;
    // kept for reference and for by-hand runs of the request reader.
    write("share_answers", "requests-as-answers", &requests);
}

static ONCE: std::sync::Once = std::sync::Once::new();

fuzz_target!(|_data: &[u8]| ONCE.call_once(seeds));
