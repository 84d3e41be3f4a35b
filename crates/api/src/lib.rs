//! kith's HTTP API, and the `kith up` life cycle built around it.
//!
//! # Modules
//!
//! Dependencies between them point one way: the handlers use the leaves
//! (`error`, [`types`]), never the other way round.
//!
//! | module | what it is for |
//! |---|---|
//! | `routes` | the [`router`]: every route and layer put together, and the node routes (health, id, peers, connect, ping, status, metrics, repair) |
//! | `files` | the file and folder routes: put, get, folder, ls, resolve, downloads, stat, rm |
//! | `save` | `POST /v1/save`: the node writes a fetched file to a local path itself (`kith get -o` on the same machine) |
//! | `gateway` | the HTTP gateway for browsers, on its own listener: `/k/<cap>/path`, Range, ETag |
//! | `gateway_limits` | what one client of the gateway may ask: requests per second (429 past it), the largest response |
//! | `friends` | the friend routes: msg, send, inbox (and its received files), mail, the address book |
//! | `qr` | `GET /v1/qr`: a QR code of a text, as SVG, for the web app |
//! | `names` | the name and mirror routes: publish, resolve, list; mirror, mirrors, rm |
//! | `feeds` | the feed routes: post, follow, unfollow, the timeline |
//! | `failures` | remembers the error answer of a named streamed request (`GET /v1/failures/ID`) |
//! | `dashboard` | the web app's static files: files (upload, download, QR codes), friends, inbox, names, the feed, the node's state |
//! | `openapi` | `GET /v1/openapi.json`: the API's OpenAPI description (`openapi.json`, checked against the routes by `tests/openapi.rs`) |
//! | `security` | the guard: host, origin and bearer token checks |
//! | `error` | leaf: every error answer — its kinds, one status per kind, the JSON body, the mapping of the node's errors |
//! | [`types`] | leaf: the JSON request and answer bodies, shared with the command line |
//! | `serve` | the accept loop with its timeouts and connection cap ([`ApiLimits`]) |
//! | `up` | [`up`]: a node and its API, started and stopped together |
//!
//! # The API
//!
//! The API is JSON over HTTP/1.1 on 127.0.0.1 (a random free port unless
//! `--api HOST:PORT` says otherwise). Every request needs the bearer token
//! that the node keeps in its data folder (`api.token`, mode 0600), so only
//! users who can read that folder can drive the node. Requests that carry a
//! foreign web `Origin`, or a `Host` that is not the API's own address, are
//! refused: a web page the user visits cannot reach the API through their
//! browser (cross-site requests and DNS rebinding).
//!
//! | method and path | body | answer |
//! |---|---|---|
//! | `GET /v1/health` | | `{"status":"ok","peer_id","uptime_secs","peers"}` |
//! | `GET /v1/id` | | `{"peer_id","listen_addrs":[…],"gateway"}` (the gateway's base URL) |
//! | `GET /v1/peers` | | `{"peers":[{"peer_id","addrs":[…]}]}` |
//! | `POST /v1/connect` | `{"addr"}` | `{"peer_id"}` |
//! | `POST /v1/ping` | `{"peer_id"}` | `{"peer_id","rtt_ms"}` |
//! | `GET /v1/status` | — | what the node holds and its upkeep counters (`kith status --json`) |
//! | `POST /v1/repair` | — | `{"checked","stripes","shares"}`: one repair round, now |
//! | `POST /v1/put?shares=K/N&name=NAME` | the file's bytes (streamed) | `{"capability","size","stripes","shares","peers"}` |
//! | `GET /v1/get?cap=CAP[/PATH][&cache=false]` | | the file's bytes (streamed, `Content-Length`, `Content-Type`, `x-kith-download: ID`); `cache=false` keeps nothing of it in the node's store |
//! | `POST /v1/save` | `{"cap","path"[,"cache":false]}` | NDJSON lines: `{"size","download","name"}`, `{"written"}`…, then `{"done":{"size"}}` or `{"error":{"error","message"}}`; the node writes the file to `path` (new, 0600) |
//! | `POST /v1/folder?shares=K/N` | `{"entries":[{"name","capability","size"}]}` | `{"capability",…}` as put: the folder's capability |
//! | `GET /v1/ls?cap=CAP[/PATH]` | | `{"capability","entries":[{"name","kind","size","media_type","capability"}]}` |
//! | `GET /v1/resolve?cap=CAP/PATH` | | `{"capability","kind","media_type"}` |
//! | `GET /v1/downloads/ID` | | `{"corrupt":[{"peer_id","stripe","index"}],"peers","shares"}` |
//! | `GET /v1/stat?cap=CAP` | | `{"size","name","shares","asked","manifest":{…},"stripes":[{"id","health","shares","peers","holders":[{"index","peer_id"}]}]}` |
//! | `POST /v1/rm?cap=CAP` | | `{"dropped","not_held","refused","cached","unreachable","peers"}` |
//! | `POST /v1/msg` | `{"to","text"}` | `{"to","seq","via":"direct"\|"mailbox","size","blake3","mailbox_peers","capability"}` |
//! | `POST /v1/send?to=FRIEND&name=NAME&size=BYTES` | the file's bytes (streamed) | as `/v1/msg` |
//! | `GET /v1/inbox?after=N&wait=SECS` | | `{"entries":[{"arrival","from","from_name","sent_at_ms","seq","received_at_ms","via","kind":"text"\|"file",…}]}` |
//! | `GET /v1/inbox/file?arrival=N` | | the received file of inbox entry N (streamed, `Content-Disposition: attachment`) |
//! | `GET /v1/friends` | | `{"friends":[{"name","peer_id"}]}`: the address book |
//! | `POST /v1/friends` | `{"name","peer_id"}` | `{"name","peer_id","added"}` |
//! | `POST /v1/friends/rm` | `{"name"}` | `{"name","peer_id"}` |
//! | `GET /v1/qr?text=TEXT` | | `image/svg+xml`: TEXT's QR code |
//! | `POST /v1/mail/check` | | `{"new"}` |
//! | `GET /v1/mail/held?peer=PEER_ID` | | `{"letters","bytes"}` |
//! | `POST /v1/names/publish` | `{"capability","label"?}` | `{"name","capability","sequence","published_at","expires_at","stored_on","asked"}` |
//! | `GET /v1/names/resolve?name=NAME&fresh=BOOL` | | `{"name","capability","sequence","published_at","expires_at","cached"}` |
//! | `GET /v1/names` | | `{"names":[{"label","name","capability","sequence"}]}` |
//! | `POST /v1/mirrors` | `{"target"}` (a name or a capability) | `{"target","sequence","held","files","bytes","added_at","checked_at","error"}` once the first copy is made |
//! | `GET /v1/mirrors` | | `{"mirrors":[…as above]}` |
//! | `POST /v1/mirrors/rm` | `{"target"}` | `{"removed"}` |
//! | `POST /v1/post` | `{"text","reply_to"?,"attachments":[{"name","capability"}]}` or `{"delete":ID}` | `{"id","sequence"}` |
//! | `POST /v1/follow` · `POST /v1/unfollow` | `{"who"}` (petname or peer id) | `{"author","head","sources"}` once fetched · `{"unfollowed"}` |
//! | `GET /v1/feed?who=WHO&limit=N` | | `{"items":[{"author","sequence","id","time_ms","text","reply_to","attachments"}],"feeds":[{"author","head","own","forks"}]}` |
//! | `GET /v1/failures/ID` | | `{"status","error","message"}`: how the request named `ID` (header `x-kith-request`) failed |
//!
//! Errors are `{"error": KIND, "message": "one sentence"}` ([`types::ErrorBody`])
//! with the one 4xx or 5xx status of that kind (`error.rs` has the table). A client
//! that streams a body may name its request with an `x-kith-request: ID`
//! header; if the node fails it while the client is still sending, the
//! client may see only a broken connection, and `GET /v1/failures/ID` then
//! gives the node's answer (see `failures.rs`).
//!
//! [`up`] starts a node and its API together and writes the API's address
//! into the data folder, where the command line finds it.

mod dashboard;
mod error;
mod failures;
mod feeds;
mod files;
mod friends;
mod gateway;
mod gateway_limits;
mod names;
mod openapi;
mod qr;
mod routes;
mod save;
mod security;
mod serve;
mod up;

pub use failures::REQUEST_HEADER;
pub use routes::router;
pub use serve::{ApiLimits, MAX_API_CONNECTIONS};
pub use up::{Running, UpError, up, up_with};

/// The JSON shapes the API answers with; the command line reads the same types.
pub mod types;
