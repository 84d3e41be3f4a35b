//! Rate caps with real `kith up` processes on 127.0.0.1: `--max-upload`
//! holds a direct send to its rate, a bad rate is refused with a sentence
//! naming the flag, and a cap written into `config.toml` takes effect on
//! `SIGHUP` without a restart (a broken file changes nothing).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Instant;

use common::*;

#[test]
fn a_send_under_an_upload_cap_moves_at_the_cap() {
    let root = tempfile::tempdir().unwrap();
    // 10 MiB/s out of the sender; the receiver is not capped.
    let sender = Daemon::start(&root.path().join("a"), &["--max-upload", "10MiB"]);
    let receiver = Daemon::start(&root.path().join("b"), &["--bootstrap", sender.addr()]);
    let file = root.path().join("big.bin");
    let size = 100_000_000;
    let data: Vec<u8> = (0..size).map(|i: usize| (i * 7 % 251) as u8).collect();
    std::fs::write(&file, &data).unwrap();

    let started = Instant::now();
    let sent = kith(
        &sender.dir,
        &["send", &receiver.peer_id, file.to_str().unwrap()],
    );
    let took = started.elapsed();
    assert!(sent.status.success(), "{}", text(&sent.stderr));
    assert!(
        text(&sent.stdout).contains("directly"),
        "{}",
        text(&sent.stdout)
    );
    let landed = std::fs::read(receiver.dir.join("inbox").join("big.bin")).unwrap();
    assert!(landed == data, "the file differs");
    let rate = size as f64 / took.as_secs_f64() / f64::from(1 << 20);
    let addr = std::fs::read_to_string(sender.dir.join("api.addr")).unwrap();
    let token = std::fs::read_to_string(sender.dir.join("api.token")).unwrap();
    let metrics = ureq::get(format!("http://{}/v1/metrics", addr.trim()))
        .header("Authorization", format!("Bearer {}", token.trim()))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let waits = metrics
        .lines()
        .find_map(|line| line.strip_prefix("kith_net_upload_waits_total "))
        .and_then(|value| value.trim().parse::<f64>().ok());
    assert!(waits.is_some_and(|waits| waits > 0.0), "{metrics}");
    eprintln!("100 MB under a 10 MiB/s cap: {took:.1?} ({rate:.1} MiB/s)");
    // Uncapped, this send takes under half a second on loopback. The
    // bucket starts with a quarter of a second's worth (2.5 MiB), so the
    // rest must wait: at least 9.2 s; a busy machine may take longer, not
    // shorter.
    assert!(
        took.as_secs_f64() >= 9.0,
        "the cap did not hold: {took:?} for 100 MB"
    );
}

#[test]
fn a_bad_rate_is_refused_naming_the_flag() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("a");
    assert!(kith(&dir, &["init"]).status.success());
    for (rate, says) in [("fast", "--max-upload"), ("1KiB", "too slow")] {
        let output = kith(&dir, &["up", "--no-mdns", "--max-upload", rate]);
        assert!(!output.status.success());
        let stderr = text(&output.stderr);
        assert!(stderr.contains(says), "{rate}: {stderr}");
    }
}

#[test]
fn a_cap_written_into_config_toml_holds_after_sighup_without_a_restart() {
    let root = tempfile::tempdir().unwrap();
    let sender = Daemon::start(&root.path().join("a"), &[]);
    let receiver = Daemon::start(&root.path().join("b"), &["--bootstrap", sender.addr()]);
    let config = sender.dir.join("config.toml");

    // A file that does not parse is reported and changes nothing.
    std::fs::write(&config, "max_upload = \"fast\"\n").unwrap();
    hang_up_and_wait_for(&sender, "config.toml not reloaded");
    let log = sender.stderr.lock().unwrap().clone();
    assert!(log.contains("max_upload"), "the error names the key: {log}");

    // A cap, and a setting that only a restart can change.
    std::fs::write(
        &config,
        "max_upload = \"8MiB\"\nquota = \"1GiB\"\nquota_per_peer = \"none\"\n",
    )
    .unwrap();
    // The line naming what waits for a restart comes last.
    hang_up_and_wait_for(&sender, "take effect at the next start: quota");
    let log = sender.stderr.lock().unwrap().clone();
    assert!(
        log.contains("config.toml reloaded: max_upload: no cap → 8.0 MiB/s"),
        "{log}"
    );
    assert!(
        log.contains("→ no cap per peer"),
        "quota_per_peer is applied: {log}"
    );

    let status = kith(&sender.dir, &["status"]);
    assert!(
        text(&status.stdout).contains("limits    upload 8.0 MiB/s, download no cap"),
        "{}",
        text(&status.stdout)
    );

    let file = root.path().join("capped.bin");
    let size = 40_000_000;
    random_file(&file, size);
    let started = Instant::now();
    let sent = kith(
        &sender.dir,
        &["send", &receiver.peer_id, file.to_str().unwrap()],
    );
    let took = started.elapsed();
    assert!(sent.status.success(), "{}", text(&sent.stderr));
    assert_eq!(
        std::fs::read(receiver.dir.join("inbox").join("capped.bin")).unwrap(),
        std::fs::read(&file).unwrap()
    );
    eprintln!("40 MB under an 8 MiB/s cap set by SIGHUP: {took:.1?}");
    // 40 MB at 8 MiB/s is 4.8 s, less the 2 MiB burst: at least 4.5 s.
    // Uncapped it takes well under a second here.
    assert!(
        took.as_secs_f64() >= 4.3,
        "the reloaded cap did not hold: {took:?} for 40 MB"
    );

    // Lifted again: the log says so.
    std::fs::write(&config, "quota = \"1GiB\"\n").unwrap();
    hang_up_and_wait_for(
        &sender,
        "config.toml reloaded: max_upload: 8.0 MiB/s → no cap",
    );
    sender.terminate();
}
