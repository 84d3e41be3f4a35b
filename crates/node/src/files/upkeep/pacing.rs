//! Pacing bytes to a rate, for the background work that must not swamp a
//! node: repair traffic and the scrub's reads.

use std::sync::Mutex;
use std::time::Duration;

/// Bursts the rate limiter lets through before it paces.
const BURST: Duration = Duration::from_secs(1);

/// Paces bytes to a rate: each call reserves its bytes' time on a shared
/// clock and waits until the clock, less a one-second burst, is reached.
/// Hand-written: a few lines, where the rate-limiting crates count requests
/// rather than bytes of varying size.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    rate: u64,
    next: Mutex<tokio::time::Instant>,
}

impl RateLimiter {
    /// A limiter of `rate` bytes per second.
    pub(crate) fn new(rate: u64) -> Self {
        Self {
            rate: rate.max(1),
            next: Mutex::new(tokio::time::Instant::now()),
        }
    }

    /// Waits until `bytes` more may pass.
    pub(crate) async fn take(&self, bytes: u64) {
        let cost = Duration::from_secs_f64(bytes as f64 / self.rate as f64);
        let due = {
            let mut next = lock(&self.next);
            let now = tokio::time::Instant::now();
            *next = (*next).max(now) + cost;
            next.checked_sub(BURST)
        };
        if let Some(due) = due {
            tokio::time::sleep_until(due).await;
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_rate_limiter_paces_bytes_after_a_burst() {
        let limiter = RateLimiter::new(10_000);
        let start = tokio::time::Instant::now();
        // One second's worth passes at once (the burst)...
        limiter.take(10_000).await;
        // ...then 2,000 more bytes wait their 0.2 s.
        limiter.take(2_000).await;
        assert!(
            start.elapsed() >= Duration::from_millis(200),
            "{:?}",
            start.elapsed()
        );
    }
}
