//! Limits per peer with real `kith up` processes on 127.0.0.1: a peer
//! past its share of a holder's quota (`quota_per_peer`) is refused with a
//! clear, counted refusal and its put still succeeds, the share placed on
//! another holder; the count survives the holder's restart; and a
//! mailbox holds only so many letters from one sender
//! (`mailbox_letters_per_peer`), the rest left with the next peer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::path::Path;
use std::time::Duration;

use common::*;

/// `GET /v1/metrics` of a running node.
fn metrics(node: &Daemon) -> String {
    let addr = fs::read_to_string(node.dir.join("api.addr")).unwrap();
    let token = fs::read_to_string(node.dir.join("api.token")).unwrap();
    ureq::get(format!("http://{}/v1/metrics", addr.trim()))
        .header("Authorization", format!("Bearer {}", token.trim()))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap()
}

/// The value of the metric line that starts with `name` (labels included).
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
}

/// `kith put FILE` on `node`; the capability. Panics with stderr on failure.
fn put(node: &Daemon, file: &Path) -> String {
    let output = kith_command(&node.dir)
        .arg("put")
        .arg(file)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "put failed: {}",
        text(&output.stderr)
    );
    text(&output.stdout).trim().to_owned()
}

/// Writes `config.toml` into node folder `i` before it starts.
fn configure(root: &Path, i: usize, config: &str) {
    let dir = root.join(format!("n{i}"));
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("config.toml"), config).unwrap();
}

const QUOTA_PER_PEER: &str = "kith_refused_total{reason=\"quota_per_peer\"} ";
const MAILBOX_PER_PEER: &str = "kith_refused_total{reason=\"mailbox_per_peer\"} ";

#[test]
fn a_peer_past_its_share_is_refused_and_its_put_goes_to_another_holder() {
    let root = tempfile::tempdir().unwrap();
    // Node 1 gives any one peer 1 MiB of its store; the others, the default.
    configure(root.path(), 1, "quota_per_peer = \"1MiB\"\n");
    let nodes = start_network(root.path(), 7, 6, |_| Vec::new());
    let (uploader, limited) = (&nodes[0], &nodes[1]);
    let cap = metric(&metrics(limited), "kith_store_peer_cap_bytes ");
    assert_eq!(cap, f64::from(1 << 20));

    // 3-of-5 over seven nodes: the limited node holds a share of most
    // files, about 350 KiB each, so a few files take the uploader past its
    // share there. Every put must succeed anyway.
    let mut last = None;
    for round in 0..12 {
        let file = root.path().join(format!("file{round}"));
        random_file(&file, 1 << 20);
        last = Some((put(uploader, &file), file));
        if metric(&metrics(limited), QUOTA_PER_PEER) >= 1.0 {
            break;
        }
    }
    let figures = metrics(limited);
    assert!(
        metric(&figures, QUOTA_PER_PEER) >= 1.0,
        "the limited node never refused: {figures}"
    );
    let held = metric(&figures, "kith_store_peer_bytes_max ");
    assert!(held > 0.0 && held <= cap, "held {held} of a {cap} cap");
    eprintln!(
        "refused {} time(s); the uploader holds {held} bytes there, cap {cap}",
        metric(&figures, QUOTA_PER_PEER)
    );
    // The file whose share was refused there is whole on the others.
    let (cap_text, file) = last.unwrap();
    let copy = root.path().join("copy");
    let output = kith_command(&nodes[2].dir)
        .args(["get", &cap_text, "-o"])
        .arg(&copy)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(fs::read(&copy).unwrap() == fs::read(&file).unwrap());
    // The uploader's own limit is its quota: a node's own shares are not
    // capped, and another peer still stores on the limited node.
    assert!(metric(&figures, "kith_store_peers_holding ") >= 1.0);

    // The count is rebuilt from the store at the next start.
    let dir = limited.dir.clone();
    let mut nodes = nodes;
    nodes.remove(1).terminate();
    let again = Daemon::start(&dir, &["--bootstrap", nodes[0].addr()]);
    let after = metrics(&again);
    assert_eq!(metric(&after, "kith_store_peer_bytes_max "), held);
    assert_eq!(metric(&after, QUOTA_PER_PEER), 0.0, "counts start at zero");
}

#[test]
fn a_mailbox_holds_only_so_many_letters_from_one_sender() {
    let root = tempfile::tempdir().unwrap();
    for i in 0..3 {
        let extra = if i == 1 {
            "mailbox_letters_per_peer = 2\n"
        } else {
            ""
        };
        configure(root.path(), i, &format!("mail_check_secs = 2\n{extra}"));
    }
    let mut nodes = start_network(root.path(), 3, 2, |_| Vec::new());
    let bob = nodes.remove(2);
    let (bob_dir, bob_id) = (bob.dir.clone(), bob.peer_id.clone());
    let (alice, holder) = (&nodes[0], &nodes[1]);
    let added = kith(&alice.dir, &["friend", "add", "bob", &bob_id]);
    assert!(added.status.success(), "{}", text(&added.stderr));
    bob.kill();

    // Each letter is left with the holder and with alice herself (the
    // only peers left near bob's mailbox); the holder takes two.
    for n in 0..3 {
        let sent = kith(&alice.dir, &["msg", "bob", &format!("letter {n}")]);
        assert!(sent.status.success(), "{}", text(&sent.stderr));
        assert!(
            text(&sent.stdout).contains("mailbox"),
            "{}",
            text(&sent.stdout)
        );
    }
    let figures = metrics(holder);
    assert_eq!(metric(&figures, MAILBOX_PER_PEER), 1.0, "{figures}");

    // Bob gets all three when he starts.
    let bob = Daemon::start(&bob_dir, &["--bootstrap", alice.addr()]);
    wait_for("bob's three letters", Duration::from_secs(60), || {
        let inbox = text(&kith(&bob.dir, &["inbox"]).stdout);
        (0..3).all(|n| inbox.contains(&format!("letter {n}")))
    });
}
