//! The node's stop, in stages: stop taking new work, let the work under way
//! finish within a grace period, then close the network.
//!
//! Every server (share, direct, mailbox) takes its streams through
//! [`Lifecycle::next_incoming`], which ends once the node is stopping, and
//! runs each stream's work with [`Lifecycle::spawn_request`], so that
//! [`Lifecycle::finish`] can wait for the requests under way. A server that
//! serves several requests on one stream checks [`Lifecycle::stopping`]
//! between them, never in the middle of one.

use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long a stopping node waits for requests under way to finish.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The node's stopping signal and its requests under way. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub(crate) struct Lifecycle {
    stopping: CancellationToken,
    in_flight: TaskTracker,
    /// What the servers refused peers, for the metrics.
    refusals: crate::slots::Refusals,
}

impl Lifecycle {
    /// The node's count of refusals, which every server adds to.
    pub(crate) fn refusals(&self) -> &crate::slots::Refusals {
        &self.refusals
    }

    /// The next item of `incoming`, or `None` once the node is stopping.
    pub(crate) async fn next_incoming<S: Stream + Unpin>(
        &self,
        incoming: &mut S,
    ) -> Option<S::Item> {
        tokio::select! {
            biased;
            () = self.stopping.cancelled() => None,
            item = incoming.next() => item,
        }
    }

    /// Completes once the node starts stopping.
    pub(crate) async fn stopping(&self) {
        self.stopping.cancelled().await;
    }

    /// Runs one stream's work as a request that a stopping node waits for.
    pub(crate) fn spawn_request(&self, work: impl Future<Output = ()> + Send + 'static) {
        self.in_flight.spawn(work);
    }

    /// Requests running now.
    #[cfg(feature = "testing")]
    pub(crate) fn requests_running(&self) -> usize {
        self.in_flight.len()
    }

    /// Stops taking new work and waits up to `grace` for the requests under
    /// way. Returns how many were still running when the grace ran out.
    pub(crate) async fn finish(&self, grace: Duration) -> usize {
        self.stopping.cancel();
        self.in_flight.close();
        match tokio::time::timeout(grace, self.in_flight.wait()).await {
            Ok(()) => 0,
            Err(_) => self.in_flight.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn finish_waits_for_requests_and_stops_the_intake() {
        let lifecycle = Lifecycle::default();
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<()>(1);
        lifecycle.spawn_request(async move {
            let _ = released.await;
            let _ = done_tx.send(()).await;
        });
        let (items_tx, items_rx) = futures::channel::mpsc::unbounded::<u32>();
        let mut items = items_rx;
        items_tx.unbounded_send(1).unwrap();
        assert_eq!(lifecycle.next_incoming(&mut items).await, Some(1));

        let finishing = {
            let lifecycle = lifecycle.clone();
            tokio::spawn(async move { lifecycle.finish(Duration::from_secs(30)).await })
        };
        lifecycle.stopping().await;
        // Stopping: no more intake, even with an item waiting.
        items_tx.unbounded_send(2).unwrap();
        assert_eq!(lifecycle.next_incoming(&mut items).await, None);
        assert!(!finishing.is_finished());
        release.send(()).unwrap();
        assert_eq!(finishing.await.unwrap(), 0);
        assert!(done_rx.recv().await.is_some(), "the request ran to its end");
    }

    #[tokio::test]
    async fn finish_gives_up_after_the_grace() {
        let lifecycle = Lifecycle::default();
        lifecycle.spawn_request(std::future::pending());
        assert_eq!(lifecycle.finish(Duration::from_millis(50)).await, 1);
    }
}
