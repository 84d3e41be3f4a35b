//! A node's data folder damaged on disk, with real `kith up` processes: a
//! garbled database file, a damaged old side database, a lost database
//! (and the messages in it), secrets left readable by others; and an old
//! folder's side databases, imported. Nothing stored may be lost silently, and
//! no damage may end in a panic.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use common::*;

/// Runs `kith up` on `dir` expecting it to exit by itself (it must refuse
/// to start); returns its status and stderr.
fn up_expecting_exit(dir: &Path) -> (ExitStatus, String) {
    let mut child = kith_command(dir)
        .args(["up", "--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Polled with the shared wait (bounded by START_LIMIT); a node that
    // does not exit is killed so a failing test leaves no process behind.
    let mut status = None;
    let exited = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_for("kith up on a damaged folder to exit", START_LIMIT, || {
            status = child.try_wait().unwrap();
            status.is_some()
        });
    }));
    if let Err(panic) = exited {
        let _ = child.kill();
        std::panic::resume_unwind(panic);
    }
    let status = status.unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status, stderr)
}

/// The files in `dir` whose names start with `prefix`.
fn named(dir: &Path, prefix: &str) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(prefix))
        .collect()
}

#[test]
fn a_garbled_store_index_stops_kith_up_with_a_sentence_naming_it() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("a");
    let node = Daemon::start(&dir, &[]);
    node.terminate();
    let db = dir.join("store").join("store.redb");
    for (what, damage) in [("random bytes", 0), ("cut short", 1)] {
        let len = fs::metadata(&db).unwrap().len();
        if damage == 0 {
            random_file(&db, len as usize);
        } else {
            fs::OpenOptions::new()
                .write(true)
                .open(&db)
                .unwrap()
                .set_len(len / 3)
                .unwrap();
        }
        let (status, stderr) = up_expecting_exit(&dir);
        assert!(!status.success(), "{what}: {stderr}");
        assert!(
            stderr.contains(&db.display().to_string())
                && stderr.contains("is damaged")
                && stderr.contains("move it aside"),
            "{what}: {stderr}"
        );
        assert!(
            !stderr.contains("panicked") && !stderr.contains("internal error"),
            "{what}: {stderr}"
        );
        // Doing what it says: the node starts (and rebuilds its index).
        fs::rename(&db, dir.join("store").join("store.redb.damaged")).unwrap();
        let node = Daemon::start(&dir, &[]);
        node.terminate();
    }
}

#[test]
fn damaged_side_databases_are_moved_aside_and_the_node_starts() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("a");
    let node = Daemon::start(&dir, &[]);
    node.terminate();
    // What a data folder of a kith from before the store's schema 2 can
    // hold beside the store: its side databases, damaged. messages.redb a
    // redb file cut short (the node makes no messages.redb any more: a copy
    // of its store.redb stands in), owned.redb overwritten with garbage.
    let messages = dir.join("messages.redb");
    fs::copy(dir.join("store").join("store.redb"), &messages).unwrap();
    let len = fs::metadata(&messages).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&messages)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    random_file(&dir.join("owned.redb"), 64 << 10);

    let node = Daemon::start(&dir, &[]);
    for file in ["messages.redb", "owned.redb"] {
        wait_for(
            &format!("a warning about {file}"),
            Duration::from_secs(10),
            || {
                let stderr = node.stderr.lock().unwrap();
                stderr.contains(&format!("{file} was damaged")) && stderr.contains("Lost: ")
            },
        );
        assert_eq!(named(&dir, &format!("{file}.damaged-")).len(), 1, "{file}");
        // Its tables live in store.redb now: no fresh file takes its place.
        assert!(!dir.join(file).exists());
    }
    // The node works: its API answers and its inbox (now empty) lists.
    let inbox = kith(&dir, &["inbox"]);
    assert!(inbox.status.success(), "{}", text(&inbox.stderr));
    node.terminate();
}

/// Writes `messages.redb` and `owned.redb` into `dir` as a kith from
/// before the store's schema 2 did (its table names and row layouts, copied
/// here on purpose rather than taken from kith-store): one text letter from
/// `from` in the inbox, 41 letters written, one file to renew.
fn write_old_side_databases(dir: &Path, from: &str) {
    use redb::TableDefinition;
    const INBOX: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("inbox");
    const SEEN: TableDefinition<'_, (&[u8], u64), u64> = TableDefinition::new("seen");
    const COUNTERS: TableDefinition<'_, &str, u64> = TableDefinition::new("counters");
    const OWNED: TableDefinition<'_, &[u8; 32], &[u8]> = TableDefinition::new("owned");
    let db = redb::Database::create(dir.join("messages.redb")).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let entry = format!(
            r#"{{"arrival":1,"from":"{from}","sent_at_ms":1700000000000,"seq":7,"received_at_ms":1700000000001,"via":"direct","kind":"text","text":"a letter from before the upgrade"}}"#
        );
        txn.open_table(INBOX)
            .unwrap()
            .insert(1, entry.as_bytes())
            .unwrap();
        txn.open_table(SEEN)
            .unwrap()
            .insert((b"author".as_slice(), 7), 1)
            .unwrap();
        let mut counters = txn.open_table(COUNTERS).unwrap();
        counters.insert("next_seq", 41).unwrap();
        counters.insert("next_arrival", 1).unwrap();
    }
    txn.commit().unwrap();
    let db = redb::Database::create(dir.join("owned.redb")).unwrap();
    let txn = db.begin_write().unwrap();
    let mut row = vec![1u8];
    row.extend_from_slice(&u64::MAX.to_le_bytes());
    row.extend_from_slice(&0u32.to_le_bytes());
    txn.open_table(OWNED)
        .unwrap()
        .insert(&[1; 32], row.as_slice())
        .unwrap();
    txn.commit().unwrap();
}

#[test]
fn an_old_folders_side_databases_are_imported_once_and_kept() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("a");
    let node = Daemon::start(&dir, &[]);
    let me = node.peer_id.clone();
    node.terminate();
    write_old_side_databases(&dir, &me);

    for start in ["first", "second"] {
        let node = Daemon::start(&dir, &[]);
        let inbox = kith(&dir, &["inbox"]);
        assert!(inbox.status.success(), "{}", text(&inbox.stderr));
        let lines = text(&inbox.stdout);
        assert_eq!(
            lines.matches("a letter from before the upgrade").count(),
            1,
            "{start} start: {lines}"
        );
        node.terminate();
        for file in ["messages.redb", "owned.redb"] {
            assert!(!dir.join(file).exists(), "{start} start: {file}");
            assert_eq!(
                named(&dir, &format!("{file}.imported-")).len(),
                1,
                "{start} start: {file}"
            );
        }
        assert!(named(&dir, "messages.redb.damaged-").is_empty());
    }
}

#[test]
fn letters_written_after_messages_redb_was_lost_are_delivered() {
    let root = tempfile::tempdir().unwrap();
    let mut nodes = start_network(root.path(), 2, 1, |_| Vec::new());
    let bob = nodes.pop().unwrap();
    let alice = nodes.pop().unwrap();
    let alice_dir = alice.dir.clone();
    let sent = kith(&alice_dir, &["msg", &bob.peer_id, "first letter"]);
    assert!(
        text(&sent.stdout).contains("delivered message to"),
        "{}",
        text(&sent.stderr)
    );
    alice.terminate();

    // The messages live in the store's database: lose it.
    fs::remove_file(alice_dir.join("store").join("store.redb")).unwrap();
    let alice = Daemon::start(&alice_dir, &["--bootstrap", bob.addr()]);
    wait_until_peers(&alice, 1);
    wait_for(
        "a warning that store.redb was reset",
        Duration::from_secs(10),
        || {
            alice
                .stderr
                .lock()
                .unwrap()
                .contains("store.redb was reset or replaced")
        },
    );
    let sent = kith(&alice_dir, &["msg", &bob.peer_id, "second letter"]);
    assert!(
        sent.status.success() && text(&sent.stdout).contains("delivered message to"),
        "{}{}",
        text(&sent.stdout),
        text(&sent.stderr)
    );
    let inbox = text(&kith(&bob.dir, &["inbox"]).stdout);
    assert!(
        inbox.contains("first letter") && inbox.contains("second letter"),
        "{inbox}"
    );
}

#[test]
fn kith_up_makes_secrets_and_the_folder_private_again() {
    use std::os::unix::fs::PermissionsExt;
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("a");
    let node = Daemon::start(&dir, &[]);
    node.terminate();
    let set = |path: &Path, mode: u32| {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    };
    let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;
    set(&dir.join("identity.key"), 0o644);
    set(&dir.join("api.token"), 0o644);
    set(&dir, 0o777);

    let node = Daemon::start(&dir, &[]);
    assert_eq!(mode(&dir.join("identity.key")), 0o600);
    assert_eq!(mode(&dir.join("api.token")), 0o600);
    assert_eq!(mode(&dir), 0o700);
    wait_for("warnings about the modes", Duration::from_secs(10), || {
        let stderr = node.stderr.lock().unwrap();
        ["identity.key", "api.token"].iter().all(|file| {
            stderr.contains(&format!(
                "{file} was open to other users (mode 0644); set it to 0600"
            ))
        }) && stderr.contains("(mode 0777); set it to 0700")
    });
    node.terminate();
}
