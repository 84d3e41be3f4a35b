//! Request and answer bodies, shared by the server and its clients.

use serde::{Deserialize, Serialize};

/// `GET /v1/health`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Health {
    /// Always `"ok"` when the node answers.
    pub status: String,
    /// The node's peer id.
    pub peer_id: String,
    /// Seconds since the node started.
    pub uptime_secs: u64,
    /// Connected peers.
    pub peers: usize,
}

/// `POST /v1/repair` answer: what one repair round on this node did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Repaired {
    /// Stripes this node checked (counting every stripe it holds a lease
    /// for; concurrent automatic rounds add theirs).
    pub checked: u64,
    /// Stripes it repaired.
    pub stripes: usize,
    /// Shares it rebuilt and placed.
    pub shares: u64,
}

/// `GET /v1/id`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Id {
    /// The node's peer id.
    pub peer_id: String,
    /// Listen addresses, each ending in `/p2p/<peer id>`.
    pub listen_addrs: Vec<String>,
    /// The gateway's base URL (`http://HOST:PORT/`), when it listens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Whether peers can reach it directly, why, and its relays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reachability: Option<kith_node::ReachabilityReport>,
}

/// One peer in `GET /v1/peers`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Peer {
    /// The peer's id.
    pub peer_id: String,
    /// Addresses known for it.
    pub addrs: Vec<String>,
    /// The remote address of each open connection to it; a relayed one
    /// contains `/p2p-circuit`.
    #[serde(default)]
    pub connections: Vec<String>,
}

/// `GET /v1/peers`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Peers {
    /// Connected peers, sorted by id.
    pub peers: Vec<Peer>,
}

/// `POST /v1/connect` request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnectRequest {
    /// A multiaddr, usually ending in `/p2p/<peer id>`.
    pub addr: String,
}

/// `POST /v1/connect` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Connected {
    /// The peer now connected.
    pub peer_id: String,
}

/// `POST /v1/ping` request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PingRequest {
    /// The peer to ping (must be connected).
    pub peer_id: String,
}

/// `POST /v1/ping` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pong {
    /// The peer pinged.
    pub peer_id: String,
    /// Round-trip time in milliseconds.
    pub rtt_ms: f64,
}

/// Every error answer: `{"error": KIND, "message": SENTENCE}`, with the
/// one HTTP status of its kind.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What kind of error, in a word: `bad_request`, `unauthorized`,
    /// `forbidden`, `not_found`, `method_not_allowed`, `too_large`,
    /// `unsupported_media_type`, `unprocessable`, `internal`, `network`,
    /// `unavailable`, `timeout`, `storage_full` or `interrupted`.
    pub error: String,
    /// One sentence saying what went wrong.
    pub message: String,
}

/// `GET /v1/failures/ID` answer: how a named request failed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Failure {
    /// The HTTP status it was answered with.
    pub status: u16,
    /// Its kind, as in [`ErrorBody::error`].
    pub error: String,
    /// The node's sentence.
    pub message: String,
}

/// `POST /v1/put` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stored {
    /// The read capability, `kith:…`.
    pub capability: String,
    /// Bytes in the file.
    pub size: u64,
    /// Data stripes.
    pub stripes: usize,
    /// The code, `K/N`.
    pub shares: String,
    /// Distinct peers holding shares.
    pub peers: usize,
}

/// One entry of a `POST /v1/folder` request: a file or folder stored
/// already, by the name it has in the new folder.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewFolderEntry {
    /// One name, never a path.
    pub name: String,
    /// Its capability, `kith:…` (a file's or a folder's).
    pub capability: String,
    /// Bytes in the file, or in every file below the folder.
    pub size: u64,
}

/// `POST /v1/folder` request: the entries of one folder.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewFolder {
    /// Every file and subfolder directly inside it.
    pub entries: Vec<NewFolderEntry>,
}

/// One entry of `GET /v1/ls`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListingEntry {
    /// Its name in the folder.
    pub name: String,
    /// `"file"` or `"folder"`.
    pub kind: String,
    /// Bytes in the file, or in every file below the folder.
    pub size: u64,
    /// The media type the folder lists for it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Its capability, `kith:…`.
    pub capability: String,
}

/// `GET /v1/resolve?cap=CAP/PATH`: what a path inside a folder names.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Resolved {
    /// Its capability, `kith:…`.
    pub capability: String,
    /// `"file"` or `"folder"`.
    pub kind: String,
    /// The media type its folder lists for it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
}

/// `GET /v1/ls?cap=CAP[/PATH]`: a folder's entries, sorted by name.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Listing {
    /// The folder's own capability (the path's target).
    pub capability: String,
    /// Its entries.
    pub entries: Vec<ListingEntry>,
}

/// A bad share met by a download.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CorruptShare {
    /// The peer that served it.
    pub peer_id: String,
    /// The stripe.
    pub stripe: String,
    /// The share index.
    pub index: u8,
    /// Who noticed: `"holder"` (the holder found it damaged on its own
    /// disk, dropped it and said so) or `"verification"` (the share this
    /// node received failed verification; the peer is avoided).
    pub detected: String,
}

/// `GET /v1/downloads/ID` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DownloadReport {
    /// Shares that failed verification (not used).
    pub corrupt: Vec<CorruptShare>,
    /// Distinct peers that served good shares.
    pub peers: usize,
    /// Good shares fetched.
    pub shares: usize,
}

/// One holder of one share.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Holder {
    /// Share index.
    pub index: u8,
    /// The holder.
    pub peer_id: String,
}

/// One stripe in `GET /v1/stat`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatStripe {
    /// Stripe id.
    pub id: String,
    /// `healthy`, `degraded` or `lost`.
    pub health: String,
    /// Distinct shares held.
    pub shares: usize,
    /// Distinct peers holding them.
    pub peers: usize,
    /// Who holds which share.
    pub holders: Vec<Holder>,
    /// Whether the asked node is repairing this stripe right now.
    #[serde(default)]
    pub repairing: bool,
}

/// `GET /v1/stat` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatAnswer {
    /// Bytes in the file.
    pub size: u64,
    /// The file's name, if it was stored with one.
    pub name: Option<String>,
    /// The code, `K/N`.
    pub shares: String,
    /// Peers asked.
    pub asked: usize,
    /// The manifest's stripe.
    pub manifest: StatStripe,
    /// The data stripes, in file order.
    pub stripes: Vec<StatStripe>,
}

/// `POST /v1/msg` request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessageRequest {
    /// A petname or a peer id.
    pub to: String,
    /// The text.
    pub text: String,
}

/// `GET /v1/inbox` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InboxAnswer {
    /// Entries in arrival order.
    pub entries: Vec<kith_node::InboxItem>,
}

/// `POST /v1/mail/check` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MailChecked {
    /// New letters collected.
    pub new: usize,
}

/// `GET /v1/mail/held` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeldMail {
    /// Sealed letters held.
    pub letters: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// `POST /v1/names/publish` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PublishRequest {
    /// The capability the name points at.
    pub capability: String,
    /// A label for a further name of this node (`None`: its default name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// A name record: `POST /v1/names/publish` and `GET /v1/names/resolve`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NameAnswer {
    /// The name.
    pub name: String,
    /// Where it points.
    pub capability: String,
    /// The record's sequence number.
    pub sequence: u64,
    /// When the publisher signed it (Unix seconds).
    pub published_at: u64,
    /// When it expires unless renewed (Unix seconds).
    pub expires_at: u64,
    /// Resolve: whether it came from this node's table without a lookup.
    #[serde(default)]
    pub cached: bool,
    /// Publish: peers that keep the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_on: Option<usize>,
    /// Publish: peers asked to keep it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asked: Option<usize>,
}

/// One name of `GET /v1/names`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MyNameAnswer {
    /// Its label (absent: the node's default name).
    pub label: Option<String>,
    /// The name.
    pub name: String,
    /// Where it points now.
    pub capability: Option<String>,
    /// The current record's sequence.
    pub sequence: Option<u64>,
}

/// `GET /v1/names` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MyNames {
    /// The names this node publishes, by label.
    pub names: Vec<MyNameAnswer>,
}

/// `POST /v1/mirrors` and `POST /v1/mirrors/rm` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MirrorRequest {
    /// A name or a capability.
    pub target: String,
}

/// `GET /v1/mirrors` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Mirrors {
    /// Every mirror of the node.
    pub mirrors: Vec<kith_node::MirrorInfo>,
}

/// One attachment of a post.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attachment {
    /// Its file name.
    pub name: String,
    /// Its capability.
    pub capability: String,
}

/// `POST /v1/post` body: a post, or with `delete` the deletion of one.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PostRequest {
    /// The text (at most 4 KiB).
    #[serde(default)]
    pub text: Option<String>,
    /// The id of the post it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// Attached files, stored already.
    #[serde(default)]
    pub attachments: Vec<Attachment>,
    /// The id of an earlier post of this node to withdraw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete: Option<String>,
}

/// `POST /v1/post` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Posted {
    /// The new entry's id.
    pub id: String,
    /// Its sequence in this node's feed.
    pub sequence: u64,
}

/// `POST /v1/follow` and `POST /v1/unfollow` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FollowRequest {
    /// A petname or a peer id.
    pub who: String,
}

/// `GET /v1/feed` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Timeline {
    /// Posts, newest first.
    pub items: Vec<kith_node::FeedItem>,
    /// The feeds this node holds.
    pub feeds: Vec<kith_node::FeedInfo>,
}

/// `POST /v1/save`: its body and the lines of its answer.
pub use crate::save::{SaveDone, SaveFailure, SaveLine, SaveRequest};

/// One friend of the address book, in `GET /v1/friends` and the body of
/// `POST /v1/friends`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Friend {
    /// The petname: the user's own short name for the peer.
    pub name: String,
    /// Its peer id, `12D3KooW…`.
    pub peer_id: String,
}

/// `GET /v1/friends`: the address book, by petname.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FriendList {
    /// Every friend, sorted by petname.
    pub friends: Vec<Friend>,
}

/// `POST /v1/friends`'s answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FriendAdded {
    /// The petname.
    pub name: String,
    /// Its peer id.
    pub peer_id: String,
    /// `false` when the book already had this petname for this peer.
    pub added: bool,
}

/// `POST /v1/friends/rm`'s body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FriendRemove {
    /// The petname to remove.
    pub name: String,
}
