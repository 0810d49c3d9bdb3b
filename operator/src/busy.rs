//! The time a reconcile spends running, apart from the time it waits.
//!
//! "Excluding waits" is measured as the sum of the reconcile future's polls: the operator's
//! own work (building children, comparing them, decoding answers, writing the status), and
//! none of the time spent parked on the API server, a dependency probe, a timer or a free
//! runtime thread. An accumulator around every API call would miss calls added later and
//! would still count the queueing for a thread on a loaded node; the polls cannot miss any.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Runs `inner`, adding up how long each of its polls takes.
pub struct Busy<F> {
    // Boxed so that this wrapper is Unpin without unsafe projection; one allocation per
    // reconcile.
    inner: Pin<Box<F>>,
    spent: Duration,
}

impl<F: Future> Busy<F> {
    pub fn new(inner: F) -> Self {
        Self {
            inner: Box::pin(inner),
            spent: Duration::ZERO,
        }
    }
}

impl<F: Future> Future for Busy<F> {
    /// The output, and the time spent inside polls.
    type Output = (F::Output, Duration);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let start = Instant::now();
        let polled = self.inner.as_mut().poll(cx);
        self.spent += start.elapsed();
        polled.map(|out| (out, self.spent))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sleeping_is_not_busy_and_working_is() {
        let (out, busy) = Busy::new(async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let start = Instant::now();
            // Work that holds the thread, as building and comparing children does.
            while start.elapsed() < Duration::from_millis(30) {
                std::hint::spin_loop();
            }
            7
        })
        .await;
        assert_eq!(out, 7);
        assert!(busy >= Duration::from_millis(30), "{busy:?}");
        assert!(busy < Duration::from_millis(150), "{busy:?}");
    }
}
