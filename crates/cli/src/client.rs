//! The command line's client for a running node's HTTP API.
//!
//! It finds the API through the data folder (`api.addr` and `api.token`,
//! written by `kith up`) and turns every failure into one sentence that says
//! what to do: no node running, a node that stopped without cleaning up, or
//! the node's own error message.

use std::time::Duration;

use anyhow::{Context as _, anyhow};
use kith_api::types::ErrorBody;
use kith_node::DataDir;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// How long a kept-alive connection is reused: below the API's 10 s wait
/// for the next request (`kith_api::ApiLimits::header_timeout`), after
/// which the node closes it.
const POOLED_IDLE: Duration = Duration::from_secs(5);

/// A connection to the node that owns a data folder.
pub(crate) struct ApiClient {
    agent: ureq::Agent,
    /// For file transfers: no overall time limit (a large file takes as
    /// long as it takes), but a bounded wait for each read.
    transfer: ureq::Agent,
    base: String,
    token: String,
    dir: String,
}

impl ApiClient {
    /// Reads the API address and token from the data folder.
    pub(crate) fn from_dir(dir: &DataDir) -> anyhow::Result<Self> {
        let (addr, token) = dir.api_endpoint()?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_idle_age(POOLED_IDLE)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        let transfer: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_idle_age(POOLED_IDLE)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_recv_response(Some(Duration::from_secs(600)))
            .timeout_recv_body(Some(Duration::from_secs(300)))
            .build()
            .into();
        Ok(Self {
            agent,
            transfer,
            base: format!("http://{addr}"),
            token,
            dir: dir.root().display().to_string(),
        })
    }

    /// The address of `path` on the API with the token after `#`, which a
    /// browser keeps to itself (the dashboard reads it there).
    pub(crate) fn page_with_token(&self, path: &str) -> String {
        format!("{}{path}#token={}", self.base, self.token)
    }

    /// Whether the node runs on this machine as this user: its API is on
    /// a loopback address and its token file belongs to the user running
    /// this command. Only then may the node write files for it
    /// (`POST /v1/save`): a path here means the same file there, and the
    /// file the node creates is this user's to rename.
    pub(crate) fn is_local_and_mine(&self) -> bool {
        use std::os::unix::fs::MetadataExt as _;
        let loopback = self
            .base
            .strip_prefix("http://")
            .and_then(|addr| addr.parse::<std::net::SocketAddr>().ok())
            .is_some_and(|addr| addr.ip().is_loopback());
        let owner = |path: &std::path::Path| std::fs::metadata(path).ok().map(|meta| meta.uid());
        let token_owner = owner(&std::path::Path::new(&self.dir).join("api.token"));
        // Linux: /proc/self belongs to the process's effective user.
        let me = owner(std::path::Path::new("/proc/self"));
        loopback && token_owner.is_some() && token_owner == me
    }

    /// `POST path` with a JSON body, for a streamed answer: the response
    /// on success, the node's error (a [`NodeRefusal`]) otherwise.
    pub(crate) fn post_for_stream<B: Serialize>(
        &self,
        path: &str,
        body: &B,
    ) -> anyhow::Result<ureq::http::Response<ureq::Body>> {
        let response = self
            .transfer
            .post(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.token))
            .send_json(body);
        self.streamed(response)
    }

    /// `GET path`, decoded as `T`.
    pub(crate) fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let response = self
            .agent
            .get(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.token))
            .call();
        self.decode(response)
    }

    /// `POST path` with a JSON body, decoded as `T`.
    pub(crate) fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> anyhow::Result<T> {
        let response = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.token))
            .send_json(body);
        self.decode(response)
    }

    /// `POST path` with a JSON body, for a request that may take as long as
    /// a transfer (a mirror's first copy), decoded as `T`.
    pub(crate) fn post_slow<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> anyhow::Result<T> {
        let response = self
            .transfer
            .post(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.token))
            .send_json(body);
        self.decode(response)
    }

    /// `POST path` with a streamed body of `len` bytes (if known), decoded
    /// as `T`.
    ///
    /// The node may refuse while the body is still being sent (a friend
    /// that cannot be reached, a store that is full); it answers and closes
    /// the connection, and what this side sees is a broken pipe. So the
    /// request is named (`x-kith-request`), and after a broken connection
    /// the node is asked how that request ended: its sentence, not "no
    /// node is answering", is what the user needs.
    pub(crate) fn post_stream<T: DeserializeOwned>(
        &self,
        path: &str,
        body: impl std::io::Read + 'static,
        len: Option<u64>,
    ) -> anyhow::Result<T> {
        let request_id = new_request_id();
        let mut request = self
            .transfer
            .post(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.token))
            .header("Content-Type", "application/octet-stream")
            .header(kith_api::REQUEST_HEADER, &request_id);
        if let Some(len) = len {
            request = request.header("Content-Length", len.to_string());
        }
        match request.send(ureq::SendBody::from_owned_reader(body)) {
            Err(ureq::Error::Io(io)) => Err(self
                .failure_of(&request_id)
                .unwrap_or_else(|| self.connection_error(ureq::Error::Io(io)))),
            response => self.decode(response),
        }
    }

    /// How the node says the request `id` failed, if it remembers it. The
    /// answer is recorded as the node sends it, just before it closes the
    /// connection, so a short retry covers the moment in between.
    fn failure_of(&self, id: &str) -> Option<anyhow::Error> {
        for attempt in 0..5 {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(100 * attempt));
            }
            let response = self
                .agent
                .get(format!("{}/v1/failures/{id}", self.base))
                .header("Authorization", format!("Bearer {}", self.token))
                .call();
            match response {
                // No node at all: the caller's "no node is answering" is true.
                Err(_) => return None,
                Ok(mut response) if response.status().is_success() => {
                    let failure: kith_api::types::Failure = response.body_mut().read_json().ok()?;
                    return Some(
                        NodeRefusal {
                            kind: failure.error,
                            message: failure.message,
                        }
                        .into(),
                    );
                }
                Ok(_) => continue,
            }
        }
        Some(anyhow!(
            "the node closed the connection before the upload ended and did not say why; \
             its log (the terminal of `kith up`) may tell more"
        ))
    }

    /// `GET path` for a streamed answer: the response on success, the
    /// node's error sentence otherwise.
    pub(crate) fn get_stream(
        &self,
        path: &str,
    ) -> anyhow::Result<ureq::http::Response<ureq::Body>> {
        let response = self
            .transfer
            .get(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.token))
            .call();
        self.streamed(response)
    }

    fn connection_error(&self, error: ureq::Error) -> anyhow::Error {
        match error {
            ureq::Error::Io(_) | ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => {
                anyhow!(
                    "no kith node is answering for the data folder {dir} (it may have stopped); \
                     start one with `kith --dir {dir} up`",
                    dir = self.dir
                )
            }
            ureq::Error::Timeout(_) => anyhow!("the node did not answer in time"),
            other => anyhow!("cannot talk to the node: {other}"),
        }
    }

    fn decode<T: DeserializeOwned>(
        &self,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> anyhow::Result<T> {
        let mut response = response.map_err(|error| self.connection_error(error))?;
        let status = response.status();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER)
            .read_to_string()
            .context("cannot read the node's answer")?;
        if status.is_success() {
            serde_json::from_str(&body).context("the node's answer is not what this kith expects")
        } else {
            Err(refusal(status, &body))
        }
    }

    /// A response for its streamed body when it is a success; otherwise
    /// the node's error (a [`NodeRefusal`]).
    fn streamed(
        &self,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> anyhow::Result<ureq::http::Response<ureq::Body>> {
        let mut response = response.map_err(|error| self.connection_error(error))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let body = response
            .body_mut()
            .read_to_string()
            .context("cannot read the node's answer")?;
        Err(refusal(status, &body))
    }
}

/// The node's error answer `body` (status `status`) as an error: a
/// [`NodeRefusal`] when it is the node's JSON error body.
fn refusal(status: ureq::http::StatusCode, body: &str) -> anyhow::Error {
    match serde_json::from_str::<ErrorBody>(body) {
        Ok(error) => NodeRefusal {
            kind: error.error,
            message: error.message,
        }
        .into(),
        Err(_) => anyhow!("the node answered {status}"),
    }
}

/// The node's error answer: its kind (`ErrorBody::error`, for callers that
/// act on it) and its sentence (what the user reads).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(crate) struct NodeRefusal {
    /// The kind, e.g. `interrupted`.
    pub(crate) kind: String,
    /// The sentence.
    pub(crate) message: String,
}

/// The largest JSON answer read: a folder listing of the most entries a
/// listing may hold (64 MiB of listing, about twice that as JSON).
const MAX_ANSWER: u64 = 160 << 20;

/// A fresh random name for a request (`x-kith-request`).
fn new_request_id() -> String {
    let mut seed = [0u8; 16];
    // A failed read of the system's randomness leaves zeros, mixed with the
    // time and process id below: unique enough for a name, not a secret.
    let _ = getrandom::fill(&mut seed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or_default();
    let mut hasher = blake3::Hasher::new();
    hasher.update(&seed);
    hasher.update(&nanos.to_le_bytes());
    hasher.update(&std::process::id().to_le_bytes());
    hasher.finalize().to_hex()[..32].to_owned()
}
