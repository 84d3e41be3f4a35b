//! The command-line grammar (clap). DESIGN.md's "Command line" section is the
//! contract; this file is where it is spelled out.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// kith: a node for a decentralized internet.
///
/// Store files encrypted and erasure-coded across peers, share them with a
/// capability, and talk to friends directly, with no server in the middle.
/// Start a node with `kith up`; the other commands talk to it.
#[derive(Debug, Parser)]
#[command(name = "kith", version, propagate_version = true)]
pub(crate) struct Cli {
    /// The node's data folder [default: ~/.local/share/kith].
    #[arg(long, global = true, env = "KITH_DIR", value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create the data folder and this node's identity (safe to run again).
    ///
    /// Prints the node's peer id on stdout. An existing identity is kept; a
    /// damaged one is reported and never replaced.
    Init,
    /// Run the node in the foreground until Ctrl-C or SIGTERM.
    ///
    /// Creates the data folder and identity if missing, listens, finds peers
    /// (mDNS on the LAN, --bootstrap addresses, and the peers it knew last
    /// time), and serves the local API that the other commands use. Prints
    /// the peer id and listen addresses on stdout; logs go to stderr
    /// (RUST_LOG=debug for more). Settings may also live in DIR/config.toml;
    /// flags override it.
    Up(UpArgs),
    /// Print this node's peer id, and its listen addresses if it is running.
    ///
    /// The first line is the peer id; works with no node running. A running
    /// node adds one line per listen address, then `reachability: public`,
    /// `private` or `unknown` with the reason (AutoNAT's verdict) and the
    /// relays it listens through.
    Id,
    /// List connected peers, one per line: peer id, then known addresses.
    Peers {
        /// Print one JSON object instead, with each peer's open connections
        /// (a relayed one's address contains `/p2p-circuit`).
        #[arg(long)]
        json: bool,
    },
    /// What this node holds, and what its upkeep did since it started:
    /// repair rounds, stripes and shares repaired, bytes moved by repair,
    /// scrub findings, leases renewed and expired.
    Status {
        /// Print one JSON object instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Check every stripe this node holds now, and repair the ones it is
    /// responsible for (the node also does this on its own, every
    /// repair_interval and when a peer leaves, unless config.toml says
    /// `repair = false`).
    Repair,
    /// Print the address of this node's web dashboard (read-only: store,
    /// peers, serving, swarming, upkeep), for a browser on this machine.
    ///
    /// The address carries the API token after '#', which the browser
    /// keeps to itself; do not share it.
    Dashboard,
    /// Print the base URL of this node's HTTP gateway, where a browser
    /// opens published content: URL + k/CAP/path. Read-only, no token.
    Gateway,
    /// Connect to a peer by multiaddr, e.g. /ip4/192.0.2.7/tcp/4001/p2p/12D3KooW…
    Connect {
        /// The peer's address; `kith id` on that node prints it.
        addr: String,
    },
    /// Measure the round trip to a connected peer.
    Ping {
        /// The peer's id (12D3KooW…).
        peer: String,
    },
    /// Store a file or a folder on the network; prints its capability
    /// (kith:…) on stdout.
    ///
    /// The file is encrypted on this node, cut into 1 MiB segments,
    /// erasure-coded K-of-N and spread so that every stripe's N shares sit on
    /// N distinct peers; any K of them rebuild it. Succeeds only once every
    /// share is stored. Whoever has the capability can fetch the file.
    ///
    /// A folder is stored file by file, with a listing per folder (names,
    /// sizes, media types); one capability reaches the whole tree, and
    /// CAP/sub/path anything in it. Symbolic links, special files and names
    /// a folder cannot hold are skipped with a message.
    Put {
        /// The file or folder to store ('-' reads standard input).
        file: PathBuf,
        /// Erasure code: any K of N shares rebuild the data [default: 3/5].
        #[arg(long, value_name = "K/N")]
        shares: Option<String>,
    },
    /// Fetch a file or a folder by capability, verify and decrypt it.
    ///
    /// Shares come from several peers at once; bad or missing ones are
    /// replaced from others. Writes to PATH only once the whole file (or
    /// folder) has arrived and checked out; a file without -o (or with
    /// -o -) streams to stdout. CAP/sub/path fetches one entry of a folder.
    Get {
        /// The capability `kith put` printed (kith:…), with an optional
        /// /path inside a folder.
        cap: String,
        /// Where to write the file or folder; '-' for stdout (files only).
        #[arg(short = 'o', long = "output", value_name = "PATH")]
        output: Option<PathBuf>,
        /// Keep nothing of the fetched file in this node's store. By
        /// default the node keeps the shares it fetched (within its quota)
        /// and serves them to later downloaders; with --no-cache it passes
        /// them on from memory while it downloads, and the file does not
        /// take its size a second time on this machine (restoring a large
        /// backup, say). A folder's listings, which are small, are still
        /// kept.
        #[arg(long = "no-cache")]
        no_cache: bool,
    },
    /// List a folder: one line per entry, every level down, with its kind,
    /// its size in bytes and its path (tab-separated; folders end in '/').
    Ls {
        /// The folder's capability, with an optional /path inside it.
        cap: String,
    },
    /// Show where the shares of each stripe of a file are, and their health.
    ///
    /// One line per stripe: healthy (N shares on N distinct peers), degraded
    /// (at least K) or lost (fewer than K); then a summary line.
    Stat {
        /// The file's capability (kith:…).
        cap: String,
    },
    /// Delete a file (or a folder, with everything in it) this node
    /// stored, from every peer that holds it.
    ///
    /// Each holder checks that the request comes from the node that stored
    /// the share; for any other node it refuses and deletes nothing. Nodes
    /// that cached the file when they fetched it delete their copies too.
    Rm {
        /// The file's or folder's capability (kith:…).
        cap: String,
    },
    /// Names: point a name of this node at a capability, and resolve names.
    ///
    /// A name is a public key (52 letters and digits): whoever resolves it
    /// checks the record's signature, so no registry is involved. The node's
    /// own key is its default name; --label gives further names.
    #[command(subcommand)]
    Name(NameCommand),
    /// Keep a full copy of a name's current version (or of a capability's
    /// files), serve it, and follow the name's updates; `kith mirror ls`,
    /// `kith mirror rm NAME|CAP`.
    ///
    /// A mirror also stores the name's record on the peers closest to it
    /// again and again, so the name keeps resolving while its publisher is
    /// offline. Prints one line once the first copy is made.
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Mirror(MirrorArgs),
    /// Post to this node's feed (signed, appended, pushed to followers);
    /// prints the post's id. `--delete ID` withdraws an earlier post:
    /// followers drop its text and attachments.
    Post {
        /// The text (at most 4 KiB).
        #[arg(required_unless_present_any = ["delete", "attach"])]
        text: Option<String>,
        /// Attach a file (repeatable): stored like any file, its capability
        /// in the post.
        #[arg(long, value_name = "FILE")]
        attach: Vec<PathBuf>,
        /// Answer the post with this id.
        #[arg(long, value_name = "ID")]
        reply: Option<String>,
        /// Withdraw this node's post with this id.
        #[arg(long, value_name = "ID", conflicts_with_all = ["text", "attach", "reply"])]
        delete: Option<String>,
    },
    /// Follow a feed: fetch all of it (from its author or from anyone who
    /// holds it), keep it, serve it, and receive new posts as they appear.
    Follow {
        /// A petname or a peer id.
        who: String,
    },
    /// Stop following a feed; its posts are dropped here.
    Unfollow {
        /// A petname or a peer id.
        who: String,
    },
    /// Show posts, newest first: this node's and those of everyone it
    /// follows, or one feed.
    Feed {
        /// Only this feed: a petname or a peer id.
        who: Option<String>,
        /// Show at most this many.
        #[arg(long, value_name = "N", default_value_t = 50)]
        limit: usize,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        /// Keep running and print new posts as they arrive.
        #[arg(long, short = 'f')]
        follow: bool,
    },
    /// Manage the address book: petnames for friends' peer ids.
    ///
    /// Petnames are yours alone (never sent); every command that takes a
    /// friend accepts a petname or a peer id. Works with no node running.
    #[command(subcommand)]
    Friend(FriendCommand),
    /// Send a text message to a friend, end-to-end encrypted.
    ///
    /// Goes straight to the friend's node if it can be reached (directly or
    /// through a relay) and prints "delivered"; otherwise it is sealed to
    /// the friend's key and left with peers until the friend comes online.
    Msg {
        /// A petname or a peer id.
        friend: String,
        /// The message (at most 16 KiB).
        text: String,
    },
    /// Send a file to a friend.
    ///
    /// Streams the file to the friend's node, which verifies it and puts it
    /// in its inbox folder under a safe name; prints the delivery. If the
    /// friend is offline, the file is stored encrypted on the network and
    /// its capability is left in the friend's mailbox.
    Send {
        /// A petname or a peer id.
        friend: String,
        /// The file to send.
        file: PathBuf,
    },
    /// Show received messages and files, newest first.
    Inbox {
        /// Keep running and print new messages and files as they arrive.
        #[arg(long, short = 'f')]
        follow: bool,
        /// Show at most this many (the newest).
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        /// One JSON object per line, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// See it work: a small network on this machine stores a file, loses two
    /// nodes and gives the file back.
    ///
    /// Starts a few real nodes in this process (127.0.0.1, data in a
    /// temporary folder removed afterwards), puts a file of random bytes,
    /// shows which node holds which share, stops two holders (the uploader
    /// among them), fetches the file on another node, checks that it is
    /// byte-identical and prints the timings. Needs no running node and
    /// leaves nothing behind.
    Demo {
        /// How many nodes to start (at least 6).
        #[arg(long, default_value_t = 8)]
        nodes: usize,
        /// Size of the file to store, e.g. 64M or 1G.
        #[arg(long, default_value = "64M", value_name = "SIZE")]
        size: String,
    },
    /// Run kith as a systemd service: write (or remove) a unit for `kith up`
    /// with this data folder and this kith binary.
    ///
    /// A user unit (~/.config/systemd/user/kith.service) unless run as root
    /// or with --system (/etc/systemd/system/kith.service, running as the
    /// invoking user). The unit is sandboxed: the system read-only, home
    /// read-only except the data folder. Prints the systemctl commands to
    /// run next; runs none itself.
    #[command(subcommand)]
    Service(ServiceCommand),
    /// Print a shell completion script: bash, zsh, fish, elvish or
    /// powershell.
    ///
    /// e.g. `kith completions bash > ~/.local/share/bash-completion/completions/kith`,
    /// `kith completions zsh > ~/.zfunc/_kith`,
    /// `kith completions fish > ~/.config/fish/completions/kith.fish`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page kith(1) (roff), generated from this program's
    /// own help: `kith man > ~/.local/share/man/man1/kith.1`.
    Man {
        /// Write one page per command into this folder instead (kith.1,
        /// kith-put.1, kith-name-publish.1, ...).
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
    /// Print TEXT (e.g. a capability) as a QR code in the terminal, for a
    /// phone's camera.
    Qr {
        /// What to encode, e.g. a kith:... capability.
        text: String,
        /// Print an SVG image instead.
        #[arg(long)]
        svg: bool,
        /// Dark squares as blocks, for a terminal with dark text on a light
        /// background (the default suits light text on a dark one).
        #[arg(long, conflicts_with = "svg")]
        invert: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum NameCommand {
    /// Point this node's name at CAP (the next sequence number) and store
    /// the signed record on the peers closest to it; prints the name.
    Publish {
        /// What the name points at: a folder's or a file's capability.
        cap: String,
        /// Publish under a further name of this node, derived from its
        /// identity and this label (a-z, 0-9, '-'); the same label always
        /// gives the same name.
        #[arg(long, value_name = "LABEL")]
        label: Option<String>,
    },
    /// Print the capability NAME points at now (the highest valid sequence
    /// found).
    Resolve {
        /// The name `kith name publish` printed.
        name: String,
        /// Ask the network even when this node holds a record.
        #[arg(long)]
        fresh: bool,
        /// Print one JSON object (name, capability, sequence, times).
        #[arg(long)]
        json: bool,
    },
    /// List this node's names: label, name, sequence, capability
    /// (tab-separated; the default name's label is '-').
    Ls,
}

#[derive(Debug, Args)]
pub(crate) struct MirrorArgs {
    #[command(subcommand)]
    pub(crate) command: Option<MirrorCommand>,
    /// The name or capability to mirror.
    #[arg(required = true, value_name = "NAME|CAP")]
    pub(crate) target: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum MirrorCommand {
    /// List the mirrors: target, sequence, files, bytes, state.
    Ls {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Stop mirroring (what was copied stays as a cached copy).
    Rm {
        /// The name or capability.
        target: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum FriendCommand {
    /// Give a peer id a petname.
    Add {
        /// The petname: up to 32 letters, digits, '-', '_' or '.'.
        name: String,
        /// The friend's peer id (`kith id` on their node prints it).
        peer_id: String,
    },
    /// List friends: one "NAME PEER_ID" line each.
    Ls,
    /// Remove a petname.
    Rm {
        /// The petname.
        name: String,
    },
}

// These doc comments are `kith up --help` as printed: `<peer id>` there is
// text for the terminal, not an HTML tag.
#[allow(rustdoc::invalid_html_tags)]
#[derive(Debug, Args)]
pub(crate) struct UpArgs {
    /// Listen on this multiaddr (repeatable) [default: all interfaces, a free
    /// port, TCP and QUIC]; e.g. /ip4/0.0.0.0/tcp/4001.
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: Vec<String>,
    /// Join the network through this peer (repeatable); the address must end
    /// in /p2p/<peer id>.
    #[arg(long, value_name = "ADDR")]
    pub(crate) bootstrap: Vec<String>,
    /// Do not look for peers on the local network.
    #[arg(long)]
    pub(crate) no_mdns: bool,
    /// Do not relay for peers that cannot reach each other.
    #[arg(long)]
    pub(crate) no_relay: bool,
    /// An address at which other nodes can reach this one (repeatable), e.g.
    /// a public address or forwarded port; it makes this node a relay for others.
    #[arg(long, value_name = "ADDR")]
    pub(crate) external: Vec<String>,
    /// Be reachable through this relay (repeatable), for a node that others
    /// cannot dial directly; the address must end in /p2p/<relay id>.
    #[arg(long = "relay", value_name = "ADDR")]
    pub(crate) relays: Vec<String>,
    /// Where the local API listens [default: 127.0.0.1, a free port].
    #[arg(long, value_name = "HOST:PORT")]
    pub(crate) api: Option<String>,
    /// Where the HTTP gateway for browsers listens (read-only, no token)
    /// [default: 127.0.0.1, a free port]; e.g. 0.0.0.0:8080 on a community
    /// server.
    #[arg(long, value_name = "HOST:PORT")]
    pub(crate) gateway: Option<String>,
    /// Most space other peers' shares may take, e.g. 50G.
    #[arg(long, value_name = "SIZE")]
    pub(crate) quota: Option<String>,
    /// Most bytes per second this node sends, to all peers together (relayed
    /// traffic included), e.g. 10MiB; 0 for no cap [default: no cap].
    #[arg(long, value_name = "RATE")]
    pub(crate) max_upload: Option<String>,
    /// Most bytes per second this node receives, from all peers together,
    /// e.g. 10MiB; 0 for no cap [default: no cap].
    #[arg(long, value_name = "RATE")]
    pub(crate) max_download: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ServiceCommand {
    /// Write the systemd unit for `kith up` (or print it, with --dry-run).
    ///
    /// Creates the data folder if it is missing (the sandbox lets kith write
    /// nowhere else). An existing unit with the same content is left as it
    /// is; a different one is replaced only with --force.
    Install(ServiceArgs),
    /// Remove the systemd unit (or say which file, with --dry-run).
    ///
    /// Refuses while the service is enabled (run `systemctl [--user]
    /// disable --now kith` first) unless --force. The data folder is kept.
    Uninstall(ServiceArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ServiceArgs {
    /// A user unit, run by your own systemd (the default unless root).
    #[arg(long, conflicts_with = "system")]
    pub(crate) user: bool,
    /// A system unit in /etc/systemd/system, started at boot (the default
    /// for root; needs root to write).
    #[arg(long)]
    pub(crate) system: bool,
    /// Print what would be written or removed, and change nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Replace a different unit, or remove an enabled one.
    #[arg(long)]
    pub(crate) force: bool,
    /// The user a system unit runs kith as (e.g. a `kith` system user)
    /// [default: the user who ran sudo].
    #[arg(long, value_name = "USER")]
    pub(crate) run_as: Option<String>,
}
