//! Waiting for a condition instead of sleeping for a fixed time.
//!
//! A fixed sleep is either too short on a loaded machine (the test flakes)
//! or too long on an idle one (the suite crawls). [`wait_for`] polls the
//! condition every [`POLL_INTERVAL`] and returns as soon as it holds, or an
//! error carrying the caller's description when the time limit passes.

use std::time::Duration;

use tokio::time::Instant;

use crate::TestnetError;

/// How long [`wait_for`] sleeps between two checks of its condition.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Checks `condition` until it returns `true`, every [`POLL_INTERVAL`],
/// for at most `timeout`.
///
/// The condition is always checked at least once, even with a zero
/// timeout. A check that is still running when the time is up is dropped
/// (so a condition that hangs cannot make the wait overrun its limit).
///
/// # Errors
///
/// [`TestnetError::Timeout`] with `description` if the condition did not
/// hold in time; write the description as what was expected ("node 3 is
/// connected"), since the message reads "waiting until {description}".
///
/// Cancel-safe: dropping the future stops the checks.
pub async fn wait_for<F, Fut>(
    description: &str,
    timeout: Duration,
    mut condition: F,
) -> Result<(), TestnetError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    let deadline = start + timeout;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        // `timeout` polls the check before looking at the clock, so a
        // condition that already holds succeeds even with no time left.
        if let Ok(true) = tokio::time::timeout(remaining, condition()).await {
            return Ok(());
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(TestnetError::Timeout {
                description: description.to_owned(),
                after: now - start,
            });
        }
        tokio::time::sleep(POLL_INTERVAL.min(deadline - now)).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn times_out_with_the_description() {
        let checks = AtomicUsize::new(0);
        let started = std::time::Instant::now();
        let error = wait_for("the moon is cheese", Duration::from_millis(350), || async {
            checks.fetch_add(1, Ordering::Relaxed);
            false
        })
        .await
        .unwrap_err();
        let elapsed = started.elapsed();
        let message = error.to_string();
        assert!(
            message.contains("waiting until the moon is cheese"),
            "{message}"
        );
        assert!(matches!(error, TestnetError::Timeout { .. }));
        assert!(elapsed >= Duration::from_millis(350), "{elapsed:?}");
        // Generous: a loaded machine may be slow, but not by seconds.
        assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
        // Polled repeatedly, not once and then slept through.
        assert!(checks.load(Ordering::Relaxed) >= 2);
    }

    #[tokio::test]
    async fn a_hanging_check_cannot_overrun_the_limit() {
        let started = std::time::Instant::now();
        let error = wait_for("never", Duration::from_millis(200), || {
            std::future::pending::<bool>()
        })
        .await
        .unwrap_err();
        assert!(error.to_string().contains("never"));
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[tokio::test]
    async fn returns_once_the_condition_holds() {
        let checks = AtomicUsize::new(0);
        wait_for("three checks", Duration::from_secs(10), || async {
            checks.fetch_add(1, Ordering::Relaxed) >= 2
        })
        .await
        .unwrap();
        assert_eq!(checks.load(Ordering::Relaxed), 3);
        // A condition that holds at once succeeds even with no time.
        wait_for("true", Duration::ZERO, || async { true })
            .await
            .unwrap();
    }
}
