//! `kith`, the command line.
//!
//! # Modules
//!
//! | module | what it is for |
//! |---|---|
//! | (this file) | `main`: dispatches each command, prints results; `kith up`, `init`, `id`, `status`, `peers`, `connect`, `ping`, `repair`, `dashboard` |
//! | [`cli`] | the grammar (clap): every command and flag |
//! | [`client`] | the HTTP client for a running node's API; turns failures into one sentence |
//! | [`files`] | `kith put`, `get`, `stat`, `rm` |
//! | [`friends`] | `kith friend`, `msg`, `send`, `inbox` |
//! | `demo` | `kith demo`, with the cargo feature `demo` (default) |
//! | [`service`] | `kith service install`, `uninstall`: the systemd unit |
//! | [`extras`] | `kith completions`, `man`, `qr` |
//!
//! # What it does
//!
//! This binary only parses arguments and calls into the libraries: `kith up`
//! runs `kith_api::up`, the other commands talk to the running node over its
//! HTTP API ([`client`]), and `init`/`id` read the data folder directly.
//! Results go to stdout (so `cap=$(kith put f)` works), progress and messages
//! to stderr, and every error is one sentence and a non-zero exit.

mod cli;
mod client;
#[cfg(feature = "demo")]
mod demo;
mod extras;
mod feeds;
mod files;
mod folders;
mod friends;
mod names;
mod service;

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;
use kith_api::types::{ConnectRequest, Connected, Id, Peers, PingRequest, Pong};
use kith_node::{ConfigFile, DataDir, DataDirError, Flags, NodeConfig};

use crate::cli::{Cli, Command, FriendCommand, MirrorCommand, NameCommand, UpArgs};
use crate::client::ApiClient;

/// `kith status` as lines of `label  value`.
/// The last line of `kith id` on a running node: the verdict, why, the
/// DHT mode and the relays, e.g. `reachability: private (peers could not
/// …); DHT client; relays: 12D3KooW…`.
fn reachability_line(report: &kith_node::ReachabilityReport) -> String {
    let mut line = format!("reachability: {} ({})", report.reachability, report.reason);
    line.push_str(if report.dht_server {
        "; DHT server"
    } else {
        "; DHT client"
    });
    if !report.relays.is_empty() {
        line.push_str("; relays: ");
        line.push_str(&report.relays.join(" "));
    }
    if report.relaying_for_others {
        line.push_str("; relaying for others");
    }
    line
}

fn status_lines(status: &kith_node::NodeStatus) -> Vec<String> {
    use kith_base::ByteSize;
    let upkeep = &status.upkeep;
    vec![
        format!("peer      {}", status.peer_id),
        format!(
            "uptime    {}",
            humantime::format_duration(std::time::Duration::from_secs(status.uptime_secs))
        ),
        format!("peers     {}", status.peers),
        format!(
            "stored    {} shares, {} of {} quota",
            status.shares_held,
            ByteSize(status.bytes_held),
            ByteSize(status.quota)
        ),
        format!(
            "repair    {} rounds, {} stripes checked, {} repaired ({} shares), {} fetched, {} sent, {} under way, {} failed",
            upkeep.repair_rounds,
            upkeep.stripes_checked,
            upkeep.stripes_repaired,
            upkeep.shares_repaired,
            ByteSize(upkeep.repair_bytes_fetched),
            ByteSize(upkeep.repair_bytes_sent),
            upkeep.repairs_running,
            upkeep.repair_failures
        ),
        format!(
            "scrub     {} shares checked ({}), {} damaged, {} passes",
            upkeep.scrub_checked,
            ByteSize(upkeep.scrub_bytes),
            upkeep.scrub_damaged,
            upkeep.scrub_passes
        ),
        format!(
            "leases    {} shares renewed, {} expired",
            upkeep.leases_renewed, upkeep.shares_expired
        ),
        format!(
            "served    {} shares ({}), {} of them passed on from memory, {} requests sent to a peer that had just got the share; {} redirects followed led nowhere",
            upkeep.shares_served,
            ByteSize(upkeep.bytes_served),
            upkeep.served_from_memory,
            upkeep.swarm_redirects,
            upkeep.swarm_redirects_failed
        ),
        format!("limits    {}", rate_caps_line(&status.rate_limits)),
    ]
}

/// `kith status`'s caps line: `upload 10.0 MiB/s (per peer 2.0 MiB/s), download no cap`.
fn rate_caps_line(caps: &kith_node::RateCaps) -> String {
    let rate = |rate: Option<u64>| match rate {
        Some(rate) => format!("{}/s", kith_base::ByteSize(rate)),
        None => "no cap".to_owned(),
    };
    let direction = |name: &str, all: Option<u64>, per_peer: Option<u64>| match per_peer {
        Some(_) => format!("{name} {} (per peer {})", rate(all), rate(per_peer)),
        None => format!("{name} {}", rate(all)),
    };
    format!(
        "{}, {}",
        direction("upload", caps.max_upload, caps.max_upload_per_peer),
        direction("download", caps.max_download, caps.max_download_per_peer)
    )
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("kith: {}", chain(&error));
            ExitCode::FAILURE
        }
    }
}

/// Joins an error and its causes into one line: "doing X: because Y",
/// skipping a cause whose text its parent already includes.
fn chain(error: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if !parts.last().is_some_and(|last| last.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

/// Prints one line of results on stdout. A closed pipe (`kith peers | head -1`)
/// ends the program quietly, as it does for other Unix tools, instead of
/// panicking like `println!`.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut stdout = std::io::stdout().lock();
        if let Err(error) = writeln!(stdout, $($arg)*).and_then(|()| stdout.flush()) {
            if error.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
            return Err(anyhow::Error::from(error).context("cannot write to stdout"));
        }
    }};
}

fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Demo { nodes, size } = &cli.command {
        // The demo brings its own nodes and folders; it needs no data folder.
        return demo(*nodes, size);
    }
    // Nor do these (the service only needs the folder's path).
    match cli.command {
        Command::Service(command) => return service::run(cli.dir, command),
        Command::Completions { shell } => return extras::completions(shell),
        Command::Man { out_dir } => return extras::man(out_dir.as_deref()),
        Command::Qr { text, svg, invert } => return extras::qr(&text, svg, invert),
        _ => {}
    }
    let dir = match cli.dir {
        Some(path) => DataDir::new(path),
        None => DataDir::default_location()?,
    };
    match cli.command {
        Command::Init => {
            let (identity, created) = dir.init()?;
            if created {
                eprintln!(
                    "created a new identity in {}",
                    dir.path(kith_node::data_dir::IDENTITY_FILE).display()
                );
            } else {
                eprintln!("{} already has an identity", dir.root().display());
            }
            out!("{}", identity.peer_id());
        }
        Command::Up(args) => up(dir, args)?,
        Command::Id => {
            let identity = dir.load_identity().with_context(|| {
                format!("cannot read this node's id from {}", dir.root().display())
            })?;
            out!("{}", identity.peer_id());
            // Addresses only if the node runs; `kith id` must work without it.
            match ApiClient::from_dir(&dir).and_then(|api| api.get::<Id>("/v1/id")) {
                Ok(id) => {
                    for addr in id.listen_addrs {
                        out!("{addr}");
                    }
                    if let Some(report) = id.reachability {
                        out!("{}", reachability_line(&report));
                    }
                }
                Err(error) => {
                    let not_running = error
                        .downcast_ref::<DataDirError>()
                        .is_some_and(|e| matches!(e, DataDirError::NotRunning { .. }));
                    if !not_running {
                        eprintln!("(not showing listen addresses: {})", chain(&error));
                    }
                }
            }
        }
        Command::Peers { json } => {
            let peers: Peers = ApiClient::from_dir(&dir)?.get("/v1/peers")?;
            if json {
                out!("{}", serde_json::to_string(&peers)?);
            } else {
                for peer in peers.peers {
                    if peer.addrs.is_empty() {
                        out!("{}", peer.peer_id);
                    } else {
                        out!("{} {}", peer.peer_id, peer.addrs.join(" "));
                    }
                }
            }
        }
        Command::Status { json } => {
            let status: kith_node::NodeStatus = ApiClient::from_dir(&dir)?.get("/v1/status")?;
            if json {
                out!("{}", serde_json::to_string(&status)?);
            } else {
                for line in status_lines(&status) {
                    out!("{line}");
                }
            }
        }
        Command::Gateway => {
            let addr = dir.gateway_addr()?;
            out!("http://{addr}/");
        }
        Command::Dashboard => {
            let api = ApiClient::from_dir(&dir)?;
            // Fails with the usual sentence when no node is running.
            let _: kith_api::types::Health = api.get("/v1/health")?;
            out!("{}", api.page_with_token("/dashboard"));
            eprintln!(
                "open it in a browser on this machine; it carries the API token, so do not share it"
            );
        }
        Command::Repair => {
            let done: kith_api::types::Repaired =
                ApiClient::from_dir(&dir)?.post("/v1/repair", &serde_json::json!({}))?;
            out!(
                "checked {} stripes; repaired {} ({} shares placed)",
                done.checked,
                done.stripes,
                done.shares
            );
        }
        Command::Connect { addr } => {
            let connected: Connected =
                ApiClient::from_dir(&dir)?.post("/v1/connect", &ConnectRequest { addr })?;
            out!("{}", connected.peer_id);
        }
        Command::Ping { peer } => {
            let pong: Pong =
                ApiClient::from_dir(&dir)?.post("/v1/ping", &PingRequest { peer_id: peer })?;
            out!("{} {:.2} ms", pong.peer_id, pong.rtt_ms);
        }
        Command::Put { file, shares } => {
            let api = ApiClient::from_dir(&dir)?;
            let capability = files::put(&api, &file, shares.as_deref())?;
            out!("{capability}");
        }
        Command::Get {
            cap,
            output,
            no_cache,
        } => {
            // A malformed capability fails before the node is even looked for.
            cap.parse::<kith_base::CapabilityPath>()
                .map_err(|error| anyhow::anyhow!("not a valid capability: {error}"))?;
            let api = ApiClient::from_dir(&dir)?;
            files::get(&api, &cap, output.as_deref(), !no_cache)?;
        }
        Command::Ls { cap } => {
            let target = cap
                .parse::<kith_base::CapabilityPath>()
                .map_err(|error| anyhow::anyhow!("not a valid capability: {error}"))?;
            if !target.capability.is_folder() {
                anyhow::bail!("this capability is a file, not a folder: fetch it with kith get");
            }
            let api = ApiClient::from_dir(&dir)?;
            for line in folders::ls(&api, &cap)? {
                out!("{line}");
            }
        }
        Command::Rm { cap } => {
            let parsed = cap
                .trim()
                .parse::<kith_base::Capability>()
                .map_err(|error| anyhow::anyhow!("not a valid capability: {error}"))?;
            let api = ApiClient::from_dir(&dir)?;
            if parsed.is_folder() {
                out!("{}", folders::remove(&api, &cap)?);
            } else {
                out!("{}", files::remove(&api, &cap)?);
            }
        }
        Command::Name(NameCommand::Publish { cap, label }) => {
            let api = ApiClient::from_dir(&dir)?;
            out!("{}", names::publish(&api, &cap, label)?);
        }
        Command::Name(NameCommand::Resolve { name, fresh, json }) => {
            let api = ApiClient::from_dir(&dir)?;
            out!("{}", names::resolve(&api, &name, fresh, json)?);
        }
        Command::Name(NameCommand::Ls) => {
            let api = ApiClient::from_dir(&dir)?;
            for line in names::list(&api)? {
                out!("{line}");
            }
        }
        Command::Post {
            text,
            attach,
            reply,
            delete,
        } => {
            let api = ApiClient::from_dir(&dir)?;
            out!("{}", feeds::post(&api, text, &attach, reply, delete)?);
        }
        Command::Follow { who } => {
            let api = ApiClient::from_dir(&dir)?;
            out!("{}", feeds::follow(&api, &who)?);
        }
        Command::Unfollow { who } => {
            let api = ApiClient::from_dir(&dir)?;
            out!("{}", feeds::unfollow(&api, &who)?);
        }
        Command::Feed {
            who,
            limit,
            json,
            follow,
        } => {
            let api = ApiClient::from_dir(&dir)?;
            feeds::feed(&api, &dir, who.as_deref(), limit, json, follow, |line| {
                out!("{line}");
                Ok(())
            })?;
        }
        Command::Mirror(args) => match (args.command, args.target) {
            (Some(MirrorCommand::Ls { json }), _) => {
                let api = ApiClient::from_dir(&dir)?;
                for line in names::list_mirrors(&api, json)? {
                    out!("{line}");
                }
            }
            (Some(MirrorCommand::Rm { target }), _) => {
                let api = ApiClient::from_dir(&dir)?;
                out!("{}", names::remove_mirror(&api, &target)?);
            }
            (None, Some(target)) => {
                let api = ApiClient::from_dir(&dir)?;
                out!("{}", names::mirror(&api, &target)?);
            }
            (None, None) => anyhow::bail!("kith mirror needs a name or a capability"),
        },
        Command::Friend(FriendCommand::Add { name, peer_id }) => {
            eprintln!("{}", friends::add(&dir, &name, &peer_id)?);
        }
        Command::Friend(FriendCommand::Rm { name }) => {
            eprintln!("{}", friends::remove(&dir, &name)?);
        }
        Command::Friend(FriendCommand::Ls) => {
            for line in friends::list(&dir)? {
                out!("{line}");
            }
        }
        Command::Msg { friend, text } => {
            let api = ApiClient::from_dir(&dir)?;
            out!("{}", friends::message(&api, &friend, text)?);
        }
        Command::Send { friend, file } => {
            let api = ApiClient::from_dir(&dir)?;
            out!("{}", friends::send(&api, &friend, &file)?);
        }
        Command::Inbox {
            follow,
            limit,
            json,
        } => {
            let api = ApiClient::from_dir(&dir)?;
            friends::inbox(&api, follow, limit, json, |line| {
                out!("{line}");
                Ok(())
            })?;
        }
        // Ran above, before a data folder was looked for.
        Command::Demo { .. }
        | Command::Service(_)
        | Command::Completions { .. }
        | Command::Man { .. }
        | Command::Qr { .. } => {}
        Command::Stat { cap } => {
            cap.trim()
                .parse::<kith_base::Capability>()
                .map_err(|error| anyhow::anyhow!("not a valid capability: {error}"))?;
            let api = ApiClient::from_dir(&dir)?;
            for line in files::stat(&api, &cap)? {
                out!("{line}");
            }
        }
    }
    Ok(())
}

/// `kith demo`.
#[cfg(feature = "demo")]
fn demo(nodes: usize, size: &str) -> anyhow::Result<()> {
    init_logging("warn,libp2p=error");
    let size = size
        .parse::<kith_base::ByteSize>()
        .map_err(|error| anyhow::anyhow!("--size: {error}"))?
        .0;
    demo::run(demo::DemoOptions { nodes, size })
}

/// `kith demo` in a build without it.
#[cfg(not(feature = "demo"))]
fn demo(_nodes: usize, _size: &str) -> anyhow::Result<()> {
    anyhow::bail!("this build of kith has no demo: it was built without the cargo feature `demo`")
}

fn up(dir: DataDir, args: UpArgs) -> anyhow::Result<()> {
    init_logging("info,libp2p=warn,libp2p_kad=error");
    let file = ConfigFile::load(dir.root())?;
    let flags = Flags {
        listen: args.listen,
        bootstrap: args.bootstrap,
        no_mdns: args.no_mdns,
        no_relay: args.no_relay,
        external: args.external,
        relays: args.relays,
        api: args.api,
        gateway: args.gateway,
        quota: args.quota,
        max_upload: args.max_upload,
        max_download: args.max_download,
    };
    let config = NodeConfig::resolve(&file, &flags)?;
    let started_with = config.clone();
    let reload_dir = dir.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let running = kith_api::up(dir, config).await?;
        // The signal handlers go in before "api on" is printed: scripts (and
        // our tests) send SIGTERM as soon as they read that line, and a
        // SIGTERM that arrives before tokio listens kills the process
        // uncleanly.
        let shutdown = shutdown_signal()?;
        let reloads = reload_on_hangup(reload_dir, flags, started_with, running.node().clone())?;
        let node = running.node();
        out!("kith node {}", node.peer_id());
        for addr in node.listen_addrs().await? {
            out!("listening on {addr}");
        }
        // Before "api on", which scripts wait for.
        out!("gateway on http://{}/", running.gateway_addr());
        out!("api on {}", running.api_addr());
        running.run_until(shutdown).await;
        reloads.abort();
        anyhow::Ok(())
    })
}

/// Reads `config.toml` again on each SIGHUP (systemd's `ExecReload`) and
/// applies what can change live; the flags `kith up` was given still win.
/// A file that does not parse is reported and changes nothing.
fn reload_on_hangup(
    dir: DataDir,
    flags: Flags,
    started_with: NodeConfig,
    node: kith_node::Node,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
    Ok(tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            let config = ConfigFile::load(dir.root())
                .map_err(anyhow::Error::from)
                .and_then(|file| Ok(NodeConfig::resolve(&file, &flags)?));
            let config = match config {
                Ok(config) => config,
                Err(error) => {
                    tracing::error!(
                        "config.toml not reloaded, the settings stay as they were: {error:#}"
                    );
                    continue;
                }
            };
            // Live settings are compared with what is in force; the others
            // with what the node started with, as they wait for a restart.
            let reload = node.reload(&started_with, &config);
            for change in &reload.applied {
                tracing::info!("config.toml reloaded: {change}");
            }
            if !reload.at_restart.is_empty() {
                tracing::warn!(
                    "config.toml reloaded; these settings changed but take effect at the next start: {}",
                    reload.at_restart.join(", ")
                );
            }
            if reload.is_empty() {
                tracing::info!("config.toml reloaded: nothing changed");
            }
        }
    }))
}

/// Listens for Ctrl-C and SIGTERM now; the future completes on either.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use anyhow::Context as _;
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut interrupt =
        signal(SignalKind::interrupt()).context("cannot listen for Ctrl-C (SIGINT)")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

/// Logs to stderr, filtered by RUST_LOG or else by `default_filter`.
fn init_logging(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
