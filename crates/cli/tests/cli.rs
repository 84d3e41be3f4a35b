//! Runs the real `kith` binary the way a user does.
//!
//! Add a test here for every command-line behaviour a user or script relies
//! on: its stdout, its stderr, its exit code, and what it leaves on disk.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn kith(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kith"))
        .arg("--dir")
        .arg(dir)
        .args(args)
        .env_remove("KITH_DIR")
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

#[test]
fn init_then_id_prints_one_stable_peer_id() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("node");
    let init = kith(&dir, &["init"]);
    assert!(init.status.success(), "{}", stderr(&init));
    let id = stdout(&init).trim().to_owned();
    assert!(id.starts_with("12D3KooW"), "{id}");
    let mode = fs::metadata(dir.join("identity.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let again = kith(&dir, &["init"]);
    assert!(again.status.success());
    assert_eq!(stdout(&again).trim(), id);
    assert!(stderr(&again).contains("already has an identity"));

    let shown = kith(&dir, &["id"]);
    assert!(shown.status.success());
    assert_eq!(stdout(&shown).trim(), id);
}

#[test]
fn kith_dir_environment_variable_picks_the_folder() {
    let temp = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_kith"))
        .arg("init")
        .env("KITH_DIR", temp.path())
        .output()
        .unwrap();
    assert!(output.status.success());
    assert!(temp.path().join("identity.key").exists());
}

#[test]
fn id_without_init_says_what_to_do() {
    let temp = tempfile::tempdir().unwrap();
    let output = kith(temp.path(), &["id"]);
    assert!(!output.status.success());
    assert!(stdout(&output).is_empty());
    assert!(stderr(&output).contains("kith init"), "{}", stderr(&output));
}

#[test]
fn corrupt_identity_is_an_error_and_left_untouched() {
    let temp = tempfile::tempdir().unwrap();
    assert!(kith(temp.path(), &["init"]).status.success());
    let path = temp.path().join("identity.key");
    let damaged = b"kith-identity-v1\npeer-id 12D3KooWnope\nsecret 00\n";
    fs::write(&path, damaged).unwrap();
    for command in ["init", "id"] {
        let output = kith(temp.path(), &[command]);
        assert!(
            !output.status.success(),
            "{command} accepted a damaged identity"
        );
        assert!(
            stderr(&output).contains("left untouched"),
            "{}",
            stderr(&output)
        );
        assert_eq!(fs::read(&path).unwrap(), damaged);
    }
}

#[test]
fn every_command_has_help() {
    let temp = tempfile::tempdir().unwrap();
    for command in ["init", "id"] {
        let output = kith(temp.path(), &[command, "--help"]);
        assert!(output.status.success());
        assert!(stdout(&output).len() > 40, "{command} has no help");
    }
    let output = kith(temp.path(), &["--help"]);
    assert!(stdout(&output).contains("init"));
}
