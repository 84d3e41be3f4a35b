//! The asking side of `/kith/name/1.0.0`: storing a record on a peer,
//! fetching the record a peer holds.

use std::time::Duration;

use kith_base::{Name, NameRecord};
use kith_net::{Client, PeerId};

use super::wire::{self, NameWireError, tag};

/// How long one peer may take to answer.
pub(crate) const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// Asks `peer` to keep `record`; returns the record it holds afterwards
/// (this one, or a newer one it had).
pub(crate) async fn store_on(
    net: &Client,
    peer: PeerId,
    record: &NameRecord,
) -> Result<Option<NameRecord>, NameWireError> {
    let name = record.name();
    ask(net, peer, tag::STORE, record.as_bytes(), &name).await
}

/// Asks `peer` to keep `bytes` as a record of `name`, whatever they are
/// (tests play a peer that replays or forges records with it).
#[cfg(feature = "testing")]
pub(crate) async fn store_bytes_on(
    net: &Client,
    peer: PeerId,
    bytes: &[u8],
    name: &Name,
) -> Result<Option<NameRecord>, NameWireError> {
    ask(net, peer, tag::STORE, bytes, name).await
}

/// Asks `peer` for the record it holds for `name`.
pub(crate) async fn fetch_from(
    net: &Client,
    peer: PeerId,
    name: &Name,
) -> Result<Option<NameRecord>, NameWireError> {
    ask(net, peer, tag::FETCH, name.as_bytes(), name).await
}

async fn ask(
    net: &Client,
    peer: PeerId,
    request: u8,
    payload: &[u8],
    name: &Name,
) -> Result<Option<NameRecord>, NameWireError> {
    let conversation = async {
        let mut stream = net
            .streams()
            .open_stream(peer, wire::PROTOCOL)
            .await
            .map_err(|error| NameWireError::Open(error.to_string()))?;
        wire::write(&mut stream, request, payload).await?;
        wire::read_answer(&mut stream, ANSWER_TIMEOUT, name).await
    };
    tokio::time::timeout(ANSWER_TIMEOUT * 2, conversation)
        .await
        .unwrap_or(Err(NameWireError::Frame(
            kith_net::frames::FrameError::Timeout(ANSWER_TIMEOUT * 2),
        )))
}
