//! Provider announcements: a holder of a placed share announces itself
//! under the placement key, a getter that cached shares under their extent
//! key, so that a reader whose lookup missed them still finds them. Once
//! per key, a few at a time.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use kith_net::Client;
use tracing::debug;

/// Provider announcements running at once (each is a DHT lookup); more
/// wait their turn.
const ANNOUNCING_AT_ONCE: usize = 4;
/// Provider keys remembered as announced; beyond this the set starts over
/// (a repeated announcement is harmless, only wasted work).
const ANNOUNCED_MEMORY: usize = 4096;

/// Announces keys this node provides. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Announcer {
    net: Client,
    /// Provider keys this node has announced.
    announced: Arc<Mutex<HashSet<[u8; 32]>>>,
    /// Turns for provider announcements ([`ANNOUNCING_AT_ONCE`]).
    announcing: Arc<tokio::sync::Semaphore>,
}

impl Announcer {
    pub(crate) fn new(net: Client) -> Self {
        Self {
            net,
            announced: Arc::default(),
            announcing: Arc::new(tokio::sync::Semaphore::new(ANNOUNCING_AT_ONCE)),
        }
    }

    /// Announces this node as a provider of `key` in the DHT, once per key:
    /// a holder of a placed share for its placement key, a getter that
    /// cached shares for their extent key. At most [`ANNOUNCING_AT_ONCE`]
    /// run at once. Best effort: a failure is logged, and the next stripe
    /// of the same key does not retry (the node re-announces what it
    /// provides every 12 hours anyway).
    pub(crate) async fn announce(&self, key: [u8; 32]) {
        {
            let mut announced = self.announced.lock().unwrap_or_else(|e| e.into_inner());
            if announced.len() >= ANNOUNCED_MEMORY {
                announced.clear();
            }
            if !announced.insert(key) {
                return;
            }
        }
        let Ok(_turn) = self.announcing.acquire().await else {
            return;
        };
        if let Err(error) = self.net.start_providing(key).await {
            debug!(%error, "could not announce held content");
        }
    }
}
