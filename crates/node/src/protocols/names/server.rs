//! The holding side of `/kith/name/1.0.0`: records kept for the network.
//!
//! A record is kept when it verifies (signature under its own name), has
//! not expired, and is newer than the one held (a higher sequence, or the
//! same one renewed): an old record replayed changes nothing, and the
//! answer hands the replayer the newer one. At most
//! [`crate::names::NameSettings::max_held`] names are kept; the table is
//! swept of expired records by the republish loop.

use std::time::Duration;

use kith_base::Name;
use kith_net::{Control, PeerId, Stream};
use tracing::debug;

use super::wire::{self, NameWireError, Reason, tag};
use crate::lifecycle::Lifecycle;
use crate::names::{HoldError, Names};
use crate::slots::StreamSlots;

/// Most name streams served at once.
const MAX_STREAMS: usize = 64;
/// Most name streams served at once for one peer.
const MAX_STREAMS_PER_PEER: usize = 4;
/// How long a stream may sit between requests.
const IDLE: Duration = Duration::from_secs(10);

/// Serves `/kith/name/1.0.0` until the node stops.
pub(crate) async fn serve(names: Names, control: Control, lifecycle: Lifecycle) {
    let slots = StreamSlots::new(MAX_STREAMS, MAX_STREAMS_PER_PEER);
    crate::slots::serve_admitted(
        control,
        wire::PROTOCOL,
        "names",
        slots,
        lifecycle,
        move |peer, mut stream, stopping| {
            let names = names.clone();
            async move {
                if let Err(error) = serve_stream(&names, peer, &mut stream, &stopping).await {
                    debug!(%peer, %error, "name stream ended");
                }
            }
        },
    )
    .await;
}

async fn serve_stream(
    names: &Names,
    peer: PeerId,
    stream: &mut Stream,
    lifecycle: &Lifecycle,
) -> Result<(), NameWireError> {
    let mut buffer = Vec::new();
    loop {
        let frame = tokio::select! {
            biased;
            () = lifecycle.stopping() => return Ok(()),
            frame = kith_net::frames::read_frame(stream, IDLE, wire::bounds, &mut buffer) => frame?,
        };
        let Some(frame) = frame else { break };
        match frame {
            tag::STORE => match names.hold(peer, &buffer).await {
                Ok(held) => wire::write(stream, tag::RECORD, held.as_bytes()).await?,
                Err(error) => {
                    let reason = match error {
                        HoldError::Bad(_) => Reason::Forged,
                        HoldError::Expired | HoldError::TooLong => Reason::Expired,
                        HoldError::Busy => Reason::Full,
                        HoldError::Full => Reason::Full,
                        HoldError::Store(_) => Reason::Internal,
                    };
                    wire::write_refusal(stream, reason, &error.to_string()).await?;
                }
            },
            tag::FETCH => {
                // Exactly 32 bytes: the bounds say so.
                let key: [u8; 32] = buffer
                    .as_slice()
                    .try_into()
                    .map_err(|_| kith_net::frames::FrameError::Malformed("a name"))?;
                let record = match Name::from_key(key) {
                    Ok(name) => names.held(&name).await,
                    Err(_) => None,
                };
                let payload = record.as_ref().map_or(&[][..], |r| r.as_bytes());
                wire::write(stream, tag::RECORD, payload).await?;
            }
            got => {
                return Err(kith_net::frames::FrameError::Unexpected {
                    got,
                    expected: "a name request",
                }
                .into());
            }
        }
    }
    Ok(())
}
