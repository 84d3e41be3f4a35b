//! The background scrub: re-reads every share this node holds at a bounded
//! rate ([`UpkeepSettings::scrub_rate`](super::UpkeepSettings)), so that bit
//! rot is found while the stripe can still be rebuilt. The store drops a
//! damaged share as it finds it (`kith_store::Store::scrub_step`); this node
//! then repairs the stripe at once (see [`super::repair`]).
//!
//! A pass over the store starts at most once per repair interval; within a
//! pass, the scrub's reads go through the same byte pacing as repair
//! traffic ([`RateLimiter`]).

use std::time::Duration;

use tracing::{debug, warn};

use super::UpkeepRunner;
use super::counters::bump;
use super::pacing::RateLimiter;

/// Shares checked per store call.
const STEP: usize = 8;

impl UpkeepRunner {
    /// Scrubs forever.
    pub(crate) async fn scrub_loop(self) {
        let pace = RateLimiter::new(self.settings.scrub_rate);
        let mut passes =
            tokio::time::interval(self.settings.repair_interval.max(Duration::from_secs(1)));
        passes.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is immediate: the first pass starts now.
        passes.tick().await;
        loop {
            let report = self.blocking(|store| store.scrub_step(STEP)).await;
            let pass_over = match report {
                Ok(report) => {
                    bump(&self.counters.scrub_checked, report.checked as u64);
                    bump(&self.counters.scrub_bytes, report.bytes);
                    for corrupt in &report.corrupt {
                        warn!(share = %corrupt.id, stripe = %corrupt.stripe, index = corrupt.index,
                            "scrub found a damaged share; dropped it, repairing its stripe");
                        bump(&self.counters.scrub_damaged, 1);
                        // A share rebuilt from its body alone has no stripe
                        // to repair (see `kith_store::UNKNOWN_STRIPE`).
                        if corrupt.stripe != kith_store::UNKNOWN_STRIPE {
                            self.repair.lost_here(corrupt.stripe);
                        }
                    }
                    pace.take(report.bytes).await;
                    if report.pass_complete {
                        bump(&self.counters.scrub_passes, 1);
                        debug!("scrub pass complete");
                    }
                    report.pass_complete
                }
                Err(error) => {
                    warn!(%error, "scrub step failed");
                    true
                }
            };
            if pass_over {
                passes.tick().await;
            }
        }
    }
}
