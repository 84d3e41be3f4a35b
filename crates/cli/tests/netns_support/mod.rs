//! A small lab of Linux network namespaces for running real `kith up`
//! processes on private, isolated networks.
//!
//! A [`Lab`] owns everything it makes: namespaces, the links between them
//! and the `kith` processes started inside them. Dropping it — at the end of
//! a test or while a test panics — stops every process (SIGTERM, then
//! SIGKILL after a bounded wait) and deletes every namespace, which also
//! removes the veths and bridges inside them. While a test panics, it first
//! prints the tail of every node's log.
//!
//! Nothing here touches the host's own network: every interface is created
//! directly inside one of the lab's namespaces (`ip link add ... netns`),
//! bridges live in a namespace of their own, and no namespace has a link to
//! the outside. The only default routes and NAT are those of a home
//! ([`Lab::home`]): its host's default route points at its router, whose
//! nftables rules live in the router's own namespace and translate only
//! towards the lab's "internet" bridge. Addresses are in 10.231.0.0/16
//! (`netns.rs`), 10.232.0.0/16 (`chaos.rs`) and 10.233.0.0/16 (`nat.rs`).
//!
//! Beyond building networks, a lab can do to them what the world does:
//! crash a node ([`Lab::kill`], SIGKILL) and start it again on the same data
//! folder ([`Lab::restart`]), impair a link ([`Lab::impair`]: `tc netem`, or
//! loss alone through nftables on kernels without netem), and cut or mend
//! one ([`Lab::set_link`]). It can also put a host behind a NAT router that
//! behaves like a home router's firewall ([`Lab::home`], [`Nat`]), and tell
//! whether a TCP connection gets an answer ([`Lab::probe_tcp`]).
//!
//! Names: namespaces are `kithns<pid>-<lab>-<name>`, so parallel tests and runs
//! never collide; interface names only need to be unique inside their own
//! namespace and are short fixed names (≤ 15 characters).

// Each test binary that includes this module uses a different part of it.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long one poll loop may wait for a condition, unless told otherwise.
pub(crate) const WAIT: Duration = Duration::from_secs(60);
/// Pause between two checks of a condition.
const POLL: Duration = Duration::from_millis(250);
/// How long a node gets to stop after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Lines of a node's log printed when a test fails.
const LOG_TAIL_LINES: usize = 60;
/// Prefix of every namespace a lab makes (followed by the test process id).
const NS_PREFIX: &str = "kithns";

/// Namespaces, links and `kith` processes of one test; see the module docs.
pub(crate) struct Lab {
    label: String,
    namespaces: Vec<String>,
    nodes: Vec<Node>,
    temp: tempfile::TempDir,
}

/// One `kith up` process inside a namespace.
pub(crate) struct Node {
    /// A short name for messages ("a", "relay", ...).
    pub(crate) name: String,
    /// The namespace it runs in.
    pub(crate) ns: String,
    /// Its data folder.
    pub(crate) dir: PathBuf,
    /// Its peer id, from the first line `kith up` prints.
    pub(crate) peer_id: String,
    /// How many times it was started again after [`Lab::kill`].
    pub(crate) restarts: usize,
    /// The flags after `up`, kept to start it again the same way.
    args: Vec<String>,
    /// Lines the current `kith up` process printed on stdout so far.
    stdout: Arc<Mutex<Vec<String>>>,
    /// Its stderr (the log), appended to across restarts.
    log: PathBuf,
    child: Child,
}

impl Lab {
    /// Makes an empty lab, or returns `None` after printing why when this
    /// machine does not let us create network namespaces (not root, no
    /// `ip`, a sandbox without CAP_SYS_ADMIN). Under `CI=true` it panics
    /// instead: a test that skips there would pass without running.
    pub(crate) fn new(label: &str) -> Option<Self> {
        remove_stale_namespaces();
        let lab = Self {
            label: label.to_owned(),
            namespaces: Vec::new(),
            nodes: Vec::new(),
            temp: tempfile::Builder::new()
                .prefix(&format!("{NS_PREFIX}{}-{label}-", std::process::id()))
                .tempdir()
                .expect("a temporary folder"),
        };
        let probe = lab.ns_name("probe");
        match run("ip", &["netns", "add", &probe]) {
            Ok(_) => {
                let _ = run("ip", &["netns", "del", &probe]);
                Some(lab)
            }
            Err(reason) => {
                // Under CI a skip would pass without testing anything.
                assert_ne!(
                    std::env::var("CI").as_deref(),
                    Ok("true"),
                    "this test must run in CI, but cannot create network namespaces: {reason}"
                );
                eprintln!("skipping: cannot create network namespaces: {reason}");
                None
            }
        }
    }

    fn ns_name(&self, name: &str) -> String {
        format!("{NS_PREFIX}{}-{}-{name}", std::process::id(), self.label)
    }

    /// Creates a namespace with `lo` up and returns its full name.
    pub(crate) fn namespace(&mut self, name: &str) -> String {
        let ns = self.ns_name(name);
        must(run("ip", &["netns", "add", &ns]));
        self.namespaces.push(ns.clone());
        must(run("ip", &["-n", &ns, "link", "set", "lo", "up"]));
        ns
    }

    /// Creates a bridge `br0` in namespace `ns` that forwards multicast
    /// (snooping off, so mDNS reaches every port whatever IGMP says).
    pub(crate) fn bridge(&mut self, ns: &str) {
        must(run(
            "ip",
            &[
                "-n",
                ns,
                "link",
                "add",
                "br0",
                "type",
                "bridge",
                "mcast_snooping",
                "0",
            ],
        ));
        must(run("ip", &["-n", ns, "link", "set", "br0", "up"]));
    }

    /// Links `ns` to the bridge in `switch`: interface `eth0` in `ns` with
    /// `addr` (CIDR), and port `port` on the bridge. Adds a multicast route
    /// through `eth0` so that mDNS leaves by it; there is no default route.
    pub(crate) fn attach(&mut self, ns: &str, addr: &str, switch: &str, port: &str) {
        self.attach_as(ns, "eth0", addr, switch, port);
        must(run(
            "ip",
            &["-n", ns, "route", "add", "224.0.0.0/4", "dev", "eth0"],
        ));
    }

    /// Links `ns` to the bridge in `switch` as interface `iface` with
    /// `addr` (CIDR), and port `port` on the bridge; no routes beyond the
    /// subnet's.
    fn attach_as(&mut self, ns: &str, iface: &str, addr: &str, switch: &str, port: &str) {
        self.veth(ns, iface, switch, port);
        must(run(
            "ip",
            &["-n", switch, "link", "set", port, "master", "br0"],
        ));
        must(run("ip", &["-n", switch, "link", "set", port, "up"]));
        self.configure(ns, iface, addr);
    }

    /// Links two namespaces point to point: `if_a` in `a` with `addr_a`,
    /// `if_b` in `b` with `addr_b` (both CIDR, on the same subnet).
    pub(crate) fn link(
        &mut self,
        a: &str,
        if_a: &str,
        addr_a: &str,
        b: &str,
        if_b: &str,
        addr_b: &str,
    ) {
        self.veth(a, if_a, b, if_b);
        self.configure(a, if_a, addr_a);
        self.configure(b, if_b, addr_b);
    }

    /// A veth pair whose two ends are created directly in their
    /// namespaces: neither ever exists in the host's namespace.
    fn veth(&mut self, a: &str, if_a: &str, b: &str, if_b: &str) {
        must(run(
            "ip",
            &[
                "link", "add", "name", if_a, "netns", a, "type", "veth", "peer", "name", if_b,
                "netns", b,
            ],
        ));
    }

    fn configure(&mut self, ns: &str, iface: &str, addr: &str) {
        must(run(
            "ip",
            &["-n", ns, "link", "set", iface, "multicast", "on"],
        ));
        must(run("ip", &["-n", ns, "addr", "add", addr, "dev", iface]));
        must(run("ip", &["-n", ns, "link", "set", iface, "up"]));
    }

    /// Runs `kith --dir <lab>/<name> up ARGS` in `ns` and waits until it
    /// printed its API address (it is then ready for commands).
    pub(crate) fn start(&mut self, name: &str, ns: &str, args: &[&str]) -> usize {
        let dir = self.data_dir(name);
        let log = self.temp.path().join(format!("{name}.log"));
        let args: Vec<String> = args.iter().map(|&arg| arg.to_owned()).collect();
        let (child, stdout) = spawn_up(ns, &dir, &args, &log);
        self.nodes.push(Node {
            name: name.to_owned(),
            ns: ns.to_owned(),
            dir,
            peer_id: String::new(),
            restarts: 0,
            args,
            stdout,
            log,
            child,
        });
        let index = self.nodes.len() - 1;
        self.wait_up(index);
        index
    }

    /// The data folder that node `name` uses (or will use once started).
    pub(crate) fn data_dir(&self, name: &str) -> PathBuf {
        self.temp.path().join(name)
    }

    /// Writes `text` as `config.toml` in the data folder of node `name`
    /// (creating the folder, mode 0700 as `kith init` would); call it before
    /// [`Lab::start`].
    pub(crate) fn write_config(&self, name: &str, text: &str) {
        use std::os::unix::fs::DirBuilderExt as _;
        let dir = self.data_dir(name);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let path = dir.join("config.toml");
        std::fs::write(&path, text)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }

    /// Crashes node `index`: SIGKILL, so it gets no chance to close its
    /// connections or flush anything, then reaps the process. Its peers see
    /// the kernel reset its connections, as when a machine loses power
    /// while its network stays up.
    pub(crate) fn kill(&mut self, index: usize) {
        let node = &mut self.nodes[index];
        if let Err(error) = node.child.kill() {
            panic!("{}: cannot SIGKILL `kith up`: {error}", node.name);
        }
        if let Err(error) = node.child.wait() {
            panic!("{}: cannot reap `kith up`: {error}", node.name);
        }
    }

    /// Whether node `index`'s `kith up` is still running.
    pub(crate) fn is_running(&mut self, index: usize) -> bool {
        matches!(self.nodes[index].child.try_wait(), Ok(None))
    }

    /// Starts node `index` again after it stopped (see [`Lab::kill`]): same
    /// namespace, data folder and flags. Waits until it is ready and checks
    /// that it came back with the same peer id (its identity is on disk).
    pub(crate) fn restart(&mut self, index: usize) {
        assert!(
            !self.is_running(index),
            "{}: restart of a running node",
            self.nodes[index].name
        );
        let node = &mut self.nodes[index];
        let (child, stdout) = spawn_up(&node.ns, &node.dir, &node.args, &node.log);
        node.child = child;
        node.stdout = stdout;
        node.restarts += 1;
        let before = std::mem::take(&mut node.peer_id);
        self.wait_up(index);
        let node = &self.nodes[index];
        assert_eq!(
            node.peer_id, before,
            "{}: came back with another peer id",
            node.name
        );
    }

    fn wait_up(&mut self, index: usize) {
        let deadline = Instant::now() + WAIT;
        loop {
            let node = &mut self.nodes[index];
            let lines = node.stdout.lock().expect("stdout lines").clone();
            if lines.iter().any(|line| line.starts_with("api on ")) {
                let first = lines.first().map(String::as_str).unwrap_or_default();
                node.peer_id = first
                    .strip_prefix("kith node ")
                    .unwrap_or_else(|| panic!("{}: unexpected first line {first:?}", node.name))
                    .to_owned();
                return;
            }
            if let Ok(Some(status)) = node.child.try_wait() {
                panic!(
                    "{}: `kith up` exited ({status}) before it was ready",
                    node.name
                );
            }
            assert!(
                Instant::now() < deadline,
                "{}: `kith up` not ready after {WAIT:?}; stdout so far: {lines:?}",
                node.name
            );
            std::thread::sleep(POLL);
        }
    }

    /// A new empty folder `name` inside the lab's temporary folder (input
    /// files, downloads), removed with the lab.
    pub(crate) fn scratch(&self, name: &str) -> PathBuf {
        let path = self.temp.path().join(name);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        path
    }

    /// Sets a sysctl inside namespace `ns` (e.g. `net.ipv4.tcp_retries2`,
    /// which is per namespace).
    pub(crate) fn sysctl(&self, ns: &str, key: &str, value: &str) {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        must(run(
            "ip",
            &[
                "netns",
                "exec",
                ns,
                "sh",
                "-c",
                &format!("echo {value} > {path}"),
            ],
        ));
    }

    /// The node started as number `index`.
    pub(crate) fn node(&self, index: usize) -> &Node {
        &self.nodes[index]
    }

    /// Runs `kith --dir <node's dir> ARGS` in the node's namespace (the
    /// API listens on 127.0.0.1 there) and returns stdout, or the error.
    pub(crate) fn kith(&self, index: usize, args: &[&str]) -> Result<String, String> {
        let node = &self.nodes[index];
        let mut all = vec![
            "netns",
            "exec",
            node.ns.as_str(),
            env!("CARGO_BIN_EXE_kith"),
            "--dir",
        ];
        let dir = node.dir.to_str().expect("a UTF-8 path");
        all.push(dir);
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// The peer ids `kith peers` lists on node `index`, each with its
    /// addresses.
    pub(crate) fn peers(&self, index: usize) -> Result<Vec<(String, Vec<String>)>, String> {
        let out = self.kith(index, &["peers"])?;
        Ok(out
            .lines()
            .filter_map(|line| {
                let mut words = line.split_whitespace();
                let id = words.next()?.to_owned();
                Some((id, words.map(str::to_owned).collect()))
            })
            .collect())
    }

    /// The command [`Lab::kith`] runs, not started yet: for a client that
    /// runs while the test does something else (spawn it, then wait).
    /// Stdin is closed; stdout and stderr are the caller's to set.
    pub(crate) fn kith_command(&self, index: usize, args: &[&str]) -> Command {
        let node = &self.nodes[index];
        let mut command = Command::new("ip");
        command
            .args([
                "netns",
                "exec",
                &node.ns,
                env!("CARGO_BIN_EXE_kith"),
                "--dir",
            ])
            .arg(&node.dir)
            .args(args)
            .stdin(Stdio::null());
        command
    }

    /// Runs `ip ARGS` (e.g. `-n ns route get ...`).
    pub(crate) fn ip(&self, args: &[&str]) -> Result<String, String> {
        run("ip", args)
    }

    /// Cuts (`up == false`) or mends the link `dev` in namespace `ns`. A
    /// bridge port that is down forwards nothing either way, and the veth
    /// end inside the node loses its carrier.
    pub(crate) fn set_link(&self, ns: &str, dev: &str, up: bool) {
        must(run(
            "ip",
            &["-n", ns, "link", "set", dev, if up { "up" } else { "down" }],
        ));
    }

    /// Impairs every packet leaving `dev` in namespace `ns` (for a bridge
    /// port: every packet the bridge sends towards that node) with `link`'s
    /// delay, jitter and loss, as far as this machine allows, and says what
    /// it did:
    /// - `tc netem` when the kernel has it (`sch_netem`);
    /// - else the loss alone, dropped at random by an nftables rule on the
    ///   device's egress hook, when `nft` is installed (there is no delay
    ///   without netem);
    /// - else nothing.
    pub(crate) fn impair(&self, ns: &str, dev: &str, link: &Netem) -> Impairment {
        let delay = format!("{}ms", link.delay_ms);
        let jitter = format!("{}ms", link.jitter_ms);
        let loss = format!("{}%", link.loss_percent);
        let netem = run(
            "tc",
            &[
                "-n", ns, "qdisc", "replace", "dev", dev, "root", "netem", "delay", &delay,
                &jitter, "loss", &loss,
            ],
        );
        let why_not = match netem {
            Ok(_) => return Impairment::Netem,
            Err(error) => error,
        };
        if link.loss_percent <= 0.0 {
            return Impairment::None { why: why_not };
        }
        // `numgen random mod 100000 < N` drops N in 100,000 packets.
        let per_100k = ((link.loss_percent * 1000.0).round() as u64).to_string();
        let chain_spec = format!("{{ type filter hook egress device \"{dev}\" priority 0; }}");
        let nft = |args: &[&str]| {
            let mut all = vec!["netns", "exec", ns, "nft"];
            all.extend_from_slice(args);
            run("ip", &all)
        };
        let loss_rule = nft(&["add", "table", "netdev", "kithlab"])
            .and_then(|_| nft(&["add", "chain", "netdev", "kithlab", dev, &chain_spec]))
            .and_then(|_| {
                nft(&[
                    "add", "rule", "netdev", "kithlab", dev, "numgen", "random", "mod", "100000",
                    "<", &per_100k, "drop",
                ])
            });
        match loss_rule {
            Ok(_) => Impairment::LossOnly { why: why_not },
            Err(error) => {
                // CI installs nftables: a lossless chaos run there would
                // pass without the loss it claims to test.
                assert_ne!(
                    std::env::var("CI").as_deref(),
                    Ok("true"),
                    "links cannot be impaired in CI (no netem: {why_not}; nftables: {error})"
                );
                Impairment::None {
                    why: format!("{why_not}; {error}"),
                }
            }
        }
    }

    /// Everything node `index` logged so far (its stderr, across restarts).
    pub(crate) fn log(&self, index: usize) -> String {
        let path = &self.nodes[index].log;
        std::fs::read_to_string(path).unwrap_or_else(|e| format!("(cannot read: {e})"))
    }

    /// The tail of every node's log, for failure messages.
    pub(crate) fn log_tails(&self) -> String {
        let mut text = String::new();
        for node in &self.nodes {
            let _ = writeln!(
                text,
                "----- {} ({}, {}) stdout -----\n{}",
                node.name,
                node.peer_id,
                node.ns,
                node.stdout.lock().map(|l| l.join("\n")).unwrap_or_default()
            );
            let _ = writeln!(
                text,
                "----- {} log, last {LOG_TAIL_LINES} lines -----\n{}",
                node.name,
                tail(&node.log, LOG_TAIL_LINES)
            );
        }
        text
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "\n===== lab {}: node logs =====\n{}",
                self.label,
                self.log_tails()
            );
        }
        // SIGTERM everyone first so they stop in parallel, then wait.
        for node in &mut self.nodes {
            if matches!(node.child.try_wait(), Ok(None)) {
                let _ = run("kill", &["-TERM", &node.child.id().to_string()]);
            }
        }
        let deadline = Instant::now() + STOP_GRACE;
        for node in &mut self.nodes {
            loop {
                match node.child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() >= deadline => {
                        eprintln!("{}: did not stop after SIGTERM; killing it", node.name);
                        let _ = node.child.kill();
                        let _ = node.child.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        }
        // Deleting a namespace removes its veth ends (and so their peers)
        // and its bridge.
        for ns in self.namespaces.iter().rev() {
            if let Err(error) = run("ip", &["netns", "del", ns]) {
                eprintln!("cannot delete namespace {ns}: {error}");
            }
        }
    }
}

/// Home networks behind NAT routers.
impl Lab {
    /// Builds a home network on the internet bridge in `switch`: a router
    /// namespace `r<name>` and a host namespace `<name>1`, returned as a
    /// [`Home`]. The router's WAN leg `wan0` (address `wan`, CIDR) is port
    /// `p-r<name>` of the bridge; its LAN leg `lan0` takes the first address
    /// of `lan` (a CIDR like `10.233.1.0/24`) and links point to point to
    /// the host's `eth0`, which takes the second and routes everything
    /// through the router. The router forwards (`ip_forward = 1`) and runs
    /// nftables rules like a home router's (see [`Nat`] and [`nat_rules`]):
    /// LAN connections leave masqueraded as its WAN address; from the WAN
    /// only replies come in, and anything unsolicited, to the router or
    /// through it, is dropped without an answer (no RST, no ICMP error).
    pub(crate) fn home(
        &mut self,
        name: &str,
        switch: &str,
        wan: &str,
        lan: &str,
        nat: Nat,
    ) -> Home {
        let (network, prefix) = lan
            .split_once('/')
            .unwrap_or_else(|| panic!("{lan}: a LAN is a CIDR like 10.233.1.0/24"));
        let network: std::net::Ipv4Addr = network
            .parse()
            .unwrap_or_else(|e| panic!("{lan}: not an IPv4 network: {e}"));
        let gateway = std::net::Ipv4Addr::from(u32::from(network) + 1).to_string();
        let host_addr = std::net::Ipv4Addr::from(u32::from(network) + 2).to_string();
        let wan_addr = wan.split('/').next().unwrap_or(wan).to_owned();

        let router_ns = self.namespace(&format!("r{name}"));
        let host_ns = self.namespace(&format!("{name}1"));
        self.attach_as(&router_ns, "wan0", wan, switch, &format!("p-r{name}"));
        self.link(
            &router_ns,
            "lan0",
            &format!("{gateway}/{prefix}"),
            &host_ns,
            "eth0",
            &format!("{host_addr}/{prefix}"),
        );
        must(run(
            "ip",
            &["-n", &host_ns, "route", "add", "default", "via", &gateway],
        ));
        self.sysctl(&router_ns, "net.ipv4.ip_forward", "1");
        if let Err(error) = run_with_input(
            "ip",
            &["netns", "exec", &router_ns, "nft", "-f", "-"],
            &nat_rules(nat),
        ) {
            panic!("{name}: cannot set up the router's NAT (is nftables installed?): {error}");
        }
        Home {
            router_ns,
            host_ns,
            wan_addr,
            host_addr,
            gateway,
            nat,
        }
    }

    /// Opens a TCP connection from namespace `ns` to `addr:port` (bash's
    /// `/dev/tcp`) and says whether anything answered within `limit`.
    pub(crate) fn probe_tcp(&self, ns: &str, addr: &str, port: u16, limit: Duration) -> Probe {
        let secs = format!("{:.1}", limit.as_secs_f64());
        let port = port.to_string();
        let output = Command::new("ip")
            .args(["netns", "exec", ns, "timeout", &secs, "bash", "-c"])
            .arg(r#"exec 3<>"/dev/tcp/$0/$1""#)
            .args([addr, &port])
            .stdin(Stdio::null())
            .output()
            .expect("`ip netns exec ... bash` runs");
        match output.status.code() {
            Some(0) => Probe::Connected,
            // `timeout` ran out: the SYNs went unanswered.
            Some(124) => Probe::Silence,
            _ => Probe::Refused(String::from_utf8_lossy(&output.stderr).trim().to_owned()),
        }
    }
}

/// How a home router ([`Lab::home`]) maps its LAN's connections to its WAN
/// address. Both filter the same way (only replies come in).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nat {
    /// Plain `masquerade`: Linux keeps a connection's source port whenever
    /// the translated connection stays unique, so one local address:port is
    /// seen as the same WAN address:port by every peer (endpoint-independent
    /// mapping, what hole punching needs).
    Cone,
    /// `masquerade random,fully-random`: every connection gets a new random
    /// port, so each peer sees another one (endpoint-dependent mapping, as
    /// carrier-grade and some corporate NATs do).
    Symmetric,
}

/// What [`Lab::home`] built.
#[derive(Debug, Clone)]
pub(crate) struct Home {
    /// The router's namespace.
    pub(crate) router_ns: String,
    /// The host's namespace: start its node here.
    pub(crate) host_ns: String,
    /// The router's address on the internet bridge: what peers there see
    /// the host's connections come from.
    pub(crate) wan_addr: String,
    /// The host's private address on its LAN.
    pub(crate) host_addr: String,
    /// The router's LAN address, the host's default gateway.
    pub(crate) gateway: String,
    /// The kind of NAT the router does.
    pub(crate) nat: Nat,
}

/// What [`Lab::probe_tcp`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Probe {
    /// The connection was accepted.
    Connected,
    /// An answer that refused it (RST, ICMP unreachable, no route), in
    /// bash's words.
    Refused(String),
    /// No answer at all before the limit: the SYNs were dropped.
    Silence,
}

/// The nftables ruleset of a home router: masquerade (per `nat`) on the
/// WAN leg `wan0`; forwarding of replies and of anything the LAN `lan0`
/// starts; silent drops for everything new from the WAN, to the router
/// itself or through it.
pub(crate) fn nat_rules(nat: Nat) -> String {
    let masquerade = match nat {
        Nat::Cone => "masquerade",
        Nat::Symmetric => "masquerade random,fully-random",
    };
    format!(
        "table ip kithnat {{
    chain postrouting {{
        type nat hook postrouting priority srcnat; policy accept;
        oifname \"wan0\" {masquerade}
    }}
    chain forward {{
        type filter hook forward priority filter; policy drop;
        ct state established,related accept
        iifname \"lan0\" oifname \"wan0\" accept
    }}
    chain input {{
        type filter hook input priority filter; policy accept;
        iifname \"wan0\" ct state established,related accept
        iifname \"wan0\" drop
    }}
}}
"
    )
}

/// Delay, jitter and loss for [`Lab::impair`], as `tc netem` takes them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Netem {
    /// Added one-way delay, in milliseconds.
    pub(crate) delay_ms: u32,
    /// Random variation of the delay (±), in milliseconds.
    pub(crate) jitter_ms: u32,
    /// Share of packets dropped, in percent.
    pub(crate) loss_percent: f64,
}

/// What [`Lab::impair`] could do on this machine.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Impairment {
    /// `tc netem`: delay, jitter and loss.
    Netem,
    /// No netem in this kernel: loss alone, by nftables.
    LossOnly {
        /// Why netem could not be used.
        why: String,
    },
    /// Neither netem nor nftables: the link is left as it is.
    None {
        /// Why neither could be used.
        why: String,
    },
}

/// Waits until `check` returns `Ok`, checking every [`POLL`] for at most
/// `limit`; panics with the last error otherwise.
pub(crate) fn eventually<T>(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let start = Instant::now();
    loop {
        match check() {
            Ok(value) => {
                eprintln!("{what}: after {:.1} s", start.elapsed().as_secs_f64());
                return value;
            }
            Err(error) if start.elapsed() >= limit => {
                panic!("{what}: not done after {limit:?}; last: {error}")
            }
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

/// Ids that `peers` lists.
pub(crate) fn ids(peers: &[(String, Vec<String>)]) -> BTreeSet<String> {
    peers.iter().map(|(id, _)| id.clone()).collect()
}

/// Spawns `ip netns exec NS kith --dir DIR up ARGS`, its stderr appended
/// to `log` and its stdout lines collected by a thread.
fn spawn_up(ns: &str, dir: &Path, args: &[String], log: &Path) -> (Child, Arc<Mutex<Vec<String>>>) {
    let log_file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("a log file");
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, env!("CARGO_BIN_EXE_kith"), "--dir"])
        .arg(dir)
        .arg("up")
        .args(args)
        .env_remove("KITH_DIR")
        .env(
            "RUST_LOG",
            "info,libp2p=warn,libp2p_kad=error,kith_net=debug,libp2p_mdns=debug,libp2p_relay=debug",
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log_file))
        .spawn()
        .expect("`ip netns exec` starts");
    // `ip netns exec` execs kith in place: the child's pid is kith's, so
    // signals sent to the child reach the node itself.
    let stdout = Arc::new(Mutex::new(Vec::new()));
    let pipe = child.stdout.take().expect("a piped stdout");
    let lines = Arc::clone(&stdout);
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            lines.lock().expect("stdout lines").push(line);
        }
    });
    (child, stdout)
}

/// Runs a program; its stdout on success, else a one-line reason.
fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let output: Output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|error| format!("cannot run {program}: {error}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Runs a program with `input` on its stdin; its stdout on success, else a
/// one-line reason.
fn run_with_input(program: &str, args: &[&str], input: &str) -> Result<String, String> {
    use std::io::Write as _;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| format!("cannot run {program}: {error}"))?;
    let written = child
        .stdin
        .take()
        .expect("a piped stdin")
        .write_all(input.as_bytes());
    let output = child
        .wait_with_output()
        .map_err(|error| format!("cannot wait for {program}: {error}"))?;
    if output.status.success() && written.is_ok() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

#[track_caller]
fn must(result: Result<String, String>) {
    if let Err(error) = result {
        panic!("{error}");
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| format!("(cannot read: {e})"));
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Deletes namespaces and data folders left by earlier runs of these tests
/// that died without cleaning up (SIGKILL, power loss): those named with
/// our prefix and the id of a process that no longer exists. Processes
/// still inside such a namespace (`kith up` of that dead run) are killed by
/// id first.
fn remove_stale_namespaces() {
    let list = run("ip", &["netns", "list"]).unwrap_or_default();
    for name in list
        .lines()
        .filter_map(|line| line.split_whitespace().next())
    {
        if stale_pid(name).is_none() {
            continue;
        }
        if let Ok(pids) = run("ip", &["netns", "pids", name]) {
            for stray in pids.split_whitespace() {
                let _ = run("kill", &["-KILL", stray]);
            }
        }
        let _ = run("ip", &["netns", "del", name]);
    }
    if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
        for entry in entries.flatten() {
            if stale_pid(&entry.file_name().to_string_lossy()).is_some() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

/// The id of the dead test process that made `name`, if `name` is one of
/// ours (`kithns<pid>-...`) and that process is gone.
fn stale_pid(name: &str) -> Option<u32> {
    let pid: u32 = name
        .strip_prefix(NS_PREFIX)?
        .split('-')
        .next()?
        .parse()
        .ok()?;
    let alive = pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists();
    (!alive).then_some(pid)
}
