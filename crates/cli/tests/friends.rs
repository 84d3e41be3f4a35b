//! Friends end to end with real `kith up` processes on 127.0.0.1:
//! `kith friend`, `kith msg`, `kith send` and `kith inbox` (also
//! `--follow`), online and offline, and the setting that accepts letters
//! from friends only.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::*;

const MAIL_LIMIT: Duration = Duration::from_secs(90);

fn random_file(path: &Path, len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut bytes)
        .unwrap();
    fs::write(path, &bytes).unwrap();
    bytes
}

/// Runs `kith ARGS` on `dir`, asserts success, returns stdout.
fn ok(dir: &Path, args: &[&str]) -> String {
    let output = kith(dir, args);
    assert!(
        output.status.success(),
        "kith {args:?} failed: {}",
        text(&output.stderr)
    );
    text(&output.stdout)
}

/// Runs `kith ARGS` on `dir`, asserts failure, returns stderr.
fn fails(dir: &Path, args: &[&str]) -> String {
    let output = kith(dir, args);
    assert!(
        !output.status.success(),
        "kith {args:?} should have failed: {}",
        text(&output.stdout)
    );
    text(&output.stderr)
}

/// Writes `config.toml` into each node folder before the nodes start.
fn configure(root: &Path, count: usize, extra: impl Fn(usize) -> &'static str) {
    for i in 0..count {
        let dir = root.join(format!("n{i}"));
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("config.toml"),
            format!("mail_check_secs = 2\n{}", extra(i)),
        )
        .unwrap();
    }
}

#[test]
fn friends_message_and_send_files_directly() {
    let root = tempfile::tempdir().unwrap();
    configure(root.path(), 3, |i| {
        if i == 2 { "accept = \"friends\"\n" } else { "" }
    });
    let nodes = start_network(root.path(), 3, 2, |_| Vec::new());
    let (alice, bob, carol) = (&nodes[0], &nodes[1], &nodes[2]);

    // The address book works with or without a node.
    let added = kith(&alice.dir, &["friend", "add", "bob", &bob.peer_id]);
    assert!(added.status.success(), "{}", text(&added.stderr));
    assert!(text(&added.stderr).contains("added bob"));
    ok(&alice.dir, &["friend", "add", "carol", &carol.peer_id]);
    assert_eq!(
        ok(&alice.dir, &["friend", "ls"]),
        format!("bob {}\ncarol {}\n", bob.peer_id, carol.peer_id)
    );
    let taken = fails(&alice.dir, &["friend", "add", "bob", &carol.peer_id]);
    assert!(taken.contains("already the name of"), "{taken}");
    let bad = fails(&alice.dir, &["friend", "add", "../bob", &bob.peer_id]);
    assert!(bad.contains("cannot be a friend's name"), "{bad}");
    let unknown = fails(&alice.dir, &["msg", "dave", "hi"]);
    assert!(
        unknown.contains("no friend is called \"dave\""),
        "{unknown}"
    );
    let missing = fails(&alice.dir, &["send", "bob", "/nonexistent/file"]);
    assert!(
        missing.contains("cannot read /nonexistent/file"),
        "{missing}"
    );

    // bob follows his inbox while alice writes.
    let mut follow = kith_command(&bob.dir)
        .args(["inbox", "--follow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    let stdout = follow.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });

    let sent = ok(&alice.dir, &["msg", "bob", "dinner at 8?"]);
    assert!(sent.contains("delivered message to bob directly"), "{sent}");
    let photo = root.path().join("photo.jpg");
    let data = random_file(&photo, 3 << 20);
    let sent = ok(&alice.dir, &["send", "bob", photo.to_str().unwrap()]);
    assert!(
        sent.contains("delivered photo.jpg (3.0 MiB) to bob directly"),
        "{sent}"
    );
    assert!(
        sent.contains(&blake3::hash(&data).to_hex().to_string()),
        "{sent}"
    );

    let followed: Vec<String> = (0..2)
        .map(|_| lines_rx.recv_timeout(Duration::from_secs(60)).unwrap())
        .collect();
    assert!(followed[0].contains("dinner at 8?"), "{followed:?}");
    assert!(followed[1].contains("file photo.jpg"), "{followed:?}");
    let _ = follow.kill();
    let _ = follow.wait();

    // Newest first; the sender shows by id until bob names her.
    let inbox = ok(&bob.dir, &["inbox"]);
    let lines: Vec<&str> = inbox.lines().collect();
    assert_eq!(lines.len(), 2, "{inbox}");
    assert!(lines[0].contains("file photo.jpg (3.0 MiB) →"), "{inbox}");
    assert!(
        lines[1].contains(&alice.peer_id) && lines[1].ends_with("dinner at 8?"),
        "{inbox}"
    );
    ok(&bob.dir, &["friend", "add", "alice", &alice.peer_id]);
    assert!(ok(&bob.dir, &["inbox", "--limit", "1"]).contains("  alice  file photo.jpg"));
    let received = bob.dir.join("inbox").join("photo.jpg");
    assert!(
        fs::read(&received).unwrap() == data,
        "the file arrived changed"
    );
    let json = ok(&bob.dir, &["inbox", "--json"]);
    assert!(json.lines().all(|line| line.starts_with('{')), "{json}");

    // carol takes letters from friends only.
    let refused = fails(&alice.dir, &["msg", "carol", "hello stranger"]);
    assert!(
        refused.contains("accepts letters from friends only"),
        "{refused}"
    );
    ok(&carol.dir, &["friend", "add", "alice", &alice.peer_id]);
    let sent = ok(&alice.dir, &["msg", "carol", "hello friend"]);
    assert!(sent.contains("directly"), "{sent}");
    let inbox = ok(&carol.dir, &["inbox"]);
    assert!(
        inbox.contains("hello friend") && !inbox.contains("stranger"),
        "{inbox}"
    );
}

#[test]
fn mail_for_an_offline_friend_arrives_when_it_starts() {
    let root = tempfile::tempdir().unwrap();
    configure(root.path(), 6, |_| "");
    let mut nodes = start_network(root.path(), 6, 5, |_| Vec::new());
    let bob = nodes.remove(1);
    let (bob_dir, bob_id) = (bob.dir.clone(), bob.peer_id.clone());
    let alice = &nodes[0];
    ok(&alice.dir, &["friend", "add", "bob", &bob_id]);
    bob.kill();

    let sent = ok(&alice.dir, &["msg", "bob", "while you were out"]);
    assert!(
        sent.contains("bob is offline: message waits in its mailbox"),
        "{sent}"
    );
    let notes = root.path().join("notes.txt");
    let data = random_file(&notes, 200_000);
    let sent = ok(&alice.dir, &["send", "bob", notes.to_str().unwrap()]);
    assert!(
        sent.contains("bob is offline: notes.txt (195.3 KiB) waits"),
        "{sent}"
    );

    let bob = Daemon::start(&bob_dir, &["--bootstrap", alice.addr()]);
    wait_for("bob's mail", MAIL_LIMIT, || {
        let inbox = ok(&bob.dir, &["inbox"]);
        inbox.contains("while you were out (via mailbox)")
            && inbox.contains("file notes.txt (195.3 KiB) →")
    });
    assert!(fs::read(bob.dir.join("inbox").join("notes.txt")).unwrap() == data);
}

/// `kith send` of a 20 MB file to a peer nobody can reach, from a node with
/// one peer: the node gives up on direct delivery, starts storing the file
/// for the mailbox, and refuses after a few MiB (too few peers), while the
/// CLI is still uploading. The CLI used to say "no kith node is answering";
/// now it prints the node's own sentence, which names both causes.
#[test]
fn a_send_that_cannot_be_delivered_says_the_true_cause() {
    let root = tempfile::tempdir().unwrap();
    configure(root.path(), 2, |_| "");
    let nodes = start_network(root.path(), 2, 1, |_| Vec::new());
    let stranger = kith_base::Identity::generate().peer_id().to_string();
    let file = root.path().join("big.bin");
    random_file(&file, 20 << 20);
    let error = fails(&nodes[0].dir, &["send", &stranger, file.to_str().unwrap()]);
    assert!(!error.contains("no kith node is answering"), "{error}");
    assert!(
        error.contains(&format!("{stranger} cannot be reached directly")),
        "{error}"
    );
    assert!(
        error.contains("could not be stored on the network to wait in its mailbox"),
        "{error}"
    );
    assert!(error.contains("distinct peers"), "{error}");
    // The node is still up and answering.
    ok(&nodes[0].dir, &["peers"]);
}

/// A direct transfer that dies part way (the friend's node is killed in
/// the middle of it, as when the relay carrying it dies) is sent again by
/// the mailbox, and said so: the friend gets the file once, whole, when it
/// comes back.
#[test]
fn a_transfer_that_breaks_off_goes_to_the_mailbox_and_arrives_once() {
    let root = tempfile::tempdir().unwrap();
    configure(root.path(), 6, |_| "");
    let mut nodes = start_network(root.path(), 6, 5, |_| Vec::new());
    let bob = nodes.remove(1);
    let (bob_dir, bob_id) = (bob.dir.clone(), bob.peer_id.clone());
    let alice = &nodes[0];
    ok(&alice.dir, &["friend", "add", "bob", &bob_id]);
    let file = root.path().join("big.bin");
    let data = random_file(&file, 128 << 20);

    let send = kith_command(&alice.dir)
        .args(["send", "bob", file.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Bob's node is killed as soon as the file starts landing in its inbox.
    let inbox = bob_dir.join("inbox");
    wait_for("the transfer to start", Duration::from_secs(30), || {
        fs::read_dir(&inbox).is_ok_and(|entries| {
            entries.flatten().any(|entry| {
                entry
                    .file_name()
                    .to_string_lossy()
                    .starts_with(".kith-partial")
                    && entry.metadata().is_ok_and(|meta| meta.len() > 0)
            })
        })
    });
    bob.kill();
    let sent = send.wait_with_output().unwrap();
    let (stdout, stderr) = (text(&sent.stdout), text(&sent.stderr));
    assert!(sent.status.success(), "{stdout}{stderr}");
    assert!(stderr.contains("broke off"), "{stderr}");
    // Sent again the usual way: bob is gone, so to his mailbox.
    assert!(
        stderr.contains("sending it again: another way to bob, else its mailbox"),
        "{stderr}"
    );
    assert!(stdout.contains("waits in its mailbox"), "{stdout}");

    let bob = Daemon::start(&bob_dir, &["--bootstrap", alice.addr()]);
    wait_for("bob's mail", MAIL_LIMIT, || {
        ok(&bob.dir, &["inbox"]).contains("file big.bin")
    });
    let listing = ok(&bob.dir, &["inbox"]);
    assert_eq!(listing.matches("big.bin").count(), 1, "{listing}");
    wait_for("the file to be written", MAIL_LIMIT, || {
        fs::read(bob.dir.join("inbox").join("big.bin")).is_ok_and(|got| got.len() == data.len())
    });
    assert!(fs::read(bob.dir.join("inbox").join("big.bin")).unwrap() == data);
    let names: Vec<String> = fs::read_dir(bob.dir.join("inbox"))
        .unwrap()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["big.bin"],
        "the partial file stayed, or a second copy came"
    );
}
