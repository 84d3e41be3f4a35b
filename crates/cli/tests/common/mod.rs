//! Helpers shared by the process tests: `kith up` daemons on 127.0.0.1,
//! running `kith` commands against a data folder, and waiting for
//! conditions with a time limit.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

pub const START_LIMIT: Duration = Duration::from_secs(30);

pub fn kith_command(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kith"));
    command.arg("--dir").arg(dir).env_remove("KITH_DIR");
    command
}

pub fn kith(dir: &Path, args: &[&str]) -> Output {
    kith_command(dir).args(args).output().unwrap()
}

/// Writes `len` random bytes to `path`.
pub fn random_file(path: &Path, len: usize) {
    let mut bytes = vec![0u8; len];
    fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut bytes)
        .unwrap();
    fs::write(path, bytes).unwrap();
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A `kith up` process, stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Daemon {
    pub child: Child,
    pub dir: PathBuf,
    pub peer_id: String,
    pub addrs: Vec<String>,
    pub stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Daemon {
    /// Starts `kith up` with mDNS off on a free loopback port plus `extra`
    /// flags, and waits until it prints its API address.
    pub fn start(dir: &Path, extra: &[&str]) -> Self {
        let mut child = kith_command(dir)
            .args(["up", "--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0"])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut err_pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n) = err_pipe.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().push_str(&text(&buffer[..n]));
            }
        });
        let (lines_tx, lines_rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + START_LIMIT;
        let mut peer_id = String::new();
        let mut addrs = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match lines_rx.recv_timeout(left) {
                Ok(line) => line,
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "kith up did not start within {START_LIMIT:?}; stderr:\n{}",
                        stderr.lock().unwrap()
                    );
                }
            };
            if let Some(id) = line.strip_prefix("kith node ") {
                peer_id = id.to_owned();
            } else if let Some(addr) = line.strip_prefix("listening on ") {
                addrs.push(addr.to_owned());
            } else if line.starts_with("api on ") {
                break;
            }
        }
        assert!(peer_id.starts_with("12D3KooW"), "{peer_id}");
        assert!(!addrs.is_empty());
        Self {
            child,
            dir: dir.to_owned(),
            peer_id,
            addrs,
            stderr,
        }
    }

    /// Kills the process at once (SIGKILL), as a crash or power loss would.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn addr(&self) -> &str {
        &self.addrs[0]
    }

    /// Sends SIGTERM, waits for the process to exit, and fails the test
    /// (with the node's stderr) unless it exited cleanly.
    pub fn terminate(mut self) {
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "kith up ignored SIGTERM; stderr:\n{}",
                self.stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(
            status.success(),
            "kith up exited with {status} after SIGTERM; stderr:\n{}",
            self.stderr.lock().unwrap()
        );
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Polls `condition` every 100 ms until it holds or `limit` passes.
pub fn wait_for(what: &str, limit: Duration, condition: impl FnMut() -> bool) {
    assert!(
        poll_until(limit, condition),
        "timed out after {limit:?} waiting for {what}"
    );
}

/// Polls `condition` every 100 ms until it holds (true) or `limit` passes
/// (false), for a caller that says more than [`wait_for`] on a time-out.
pub fn poll_until(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !condition() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    true
}

pub fn peer_ids(dir: &Path) -> Vec<String> {
    let output = kith(dir, &["peers"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    text(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .collect()
}

/// A snapshot of every file in a folder, to show that nothing changed.
pub fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|entry| entry.path().is_file())
        .map(|entry| {
            (
                entry.file_name().to_string_lossy().into_owned(),
                fs::read(entry.path()).unwrap(),
            )
        })
        .collect()
}

/// Starts `count` daemons in `root/n0`, `root/n1`, …; every node but the
/// first bootstraps from the first, and `extra(i)` adds flags to node `i`.
/// Waits until every node lists at least `min_peers` peers.
pub fn start_network(
    root: &Path,
    count: usize,
    min_peers: usize,
    extra: impl Fn(usize) -> Vec<String>,
) -> Vec<Daemon> {
    let first_flags = extra(0);
    let first_flags: Vec<&str> = first_flags.iter().map(String::as_str).collect();
    let first = Daemon::start(&root.join("n0"), &first_flags);
    let seed = first.addr().to_owned();
    let mut nodes = vec![first];
    for i in 1..count {
        let mut flags = vec!["--bootstrap".to_owned(), seed.clone()];
        flags.extend(extra(i));
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        nodes.push(Daemon::start(&root.join(format!("n{i}")), &flags));
    }
    for node in &nodes {
        wait_until_peers(node, min_peers);
    }
    nodes
}

/// Waits until `node` lists at least `min` peers.
pub fn wait_until_peers(node: &Daemon, min: usize) {
    wait_for(
        &format!("{} to list {min} peers", node.dir.display()),
        Duration::from_secs(60),
        || peer_ids(&node.dir).len() >= min,
    );
}

/// `kith status --json` of a running node.
pub fn status(node: &Daemon) -> serde_json::Value {
    let output = kith(&node.dir, &["status", "--json"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// One counter of `kith status --json`.
pub fn counter(node: &Daemon, name: &str) -> u64 {
    status(node)[name]
        .as_u64()
        .unwrap_or_else(|| panic!("no {name}"))
}

/// Sends SIGHUP to `node` and waits until its log has one more line
/// containing `says` than before.
pub fn hang_up_and_wait_for(node: &Daemon, says: &str) {
    let before = node.stderr.lock().unwrap().matches(says).count();
    kill(Pid::from_raw(node.child.id() as i32), Signal::SIGHUP).unwrap();
    wait_for(
        &format!("the node to log {says:?} after SIGHUP"),
        Duration::from_secs(20),
        || node.stderr.lock().unwrap().matches(says).count() > before,
    );
}
