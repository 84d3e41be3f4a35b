//! `kith demo` as a newcomer runs it: one process, real nodes, and at the end
//! the file back verified — with nothing left behind in the temporary folder.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn demo(tmp: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kith"))
        .arg("demo")
        .args(args)
        .env("TMPDIR", tmp)
        .env_remove("KITH_DIR")
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

#[test]
fn demo_ends_with_the_file_back_verified_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let output = demo(tmp.path(), &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "demo failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("It came back verified: 67108864 bytes, byte-identical"),
        "{stdout}"
    );
    // The map has a row per node, and two of them are marked stopped.
    for node in 0..8 {
        assert!(stdout.contains(&format!("node {node} ")), "{stdout}");
    }
    assert_eq!(stdout.matches("✗ stopped").count(), 2, "{stdout}");
    assert!(stdout.contains("0 lost"), "{stdout}");
    assert!(stdout.contains("kith:"), "{stdout}");
    assert!(stdout.contains("Timings:"), "{stdout}");
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "the demo left {left:?} behind");
}

#[test]
fn demo_refuses_a_network_too_small_or_a_bad_size() {
    let tmp = tempfile::tempdir().unwrap();
    let output = demo(tmp.path(), &["--nodes", "4"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("needs at least 6 nodes"), "{stderr}");

    let output = demo(tmp.path(), &["--size", "lots"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--size"), "{stderr}");
    assert!(std::fs::read_dir(tmp.path()).unwrap().next().is_none());
}
