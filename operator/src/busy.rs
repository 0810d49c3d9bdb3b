//! The time a reconcile spends running, apart from the time it waits.
//!
//! "Excluding waits" is measured as the CPU time of the reconcile future's polls: the
//! operator's own work (building children, comparing them, decoding answers, writing the
//! status), and none of the time spent parked on the API server, a dependency probe, a timer
//! or a free runtime thread. An accumulator around every API call would miss calls added
//! later; the polls cannot miss any. CPU time rather than wall time inside a poll, because
//! on a loaded node the thread is preempted within polls too, and that is a wait.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

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
        // A poll runs on one thread from start to end, so the thread's clock covers it.
        let start = thread_cpu_time();
        let polled = self.inner.as_mut().poll(cx);
        self.spent += thread_cpu_time().saturating_sub(start);
        polled.map(|out| (out, self.spent))
    }
}

/// The CPU time the calling thread has used so far.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; this clock exists on every Linux since
    // 2.6.12, and on failure `ts` stays zero (the poll then counts as no time).
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sleeping_is_not_busy_and_working_is() {
        let (out, busy) = Busy::new(async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            // 30 ms of work on the thread, as building and comparing children is (counted
            // on the thread's clock: a loaded machine may preempt the loop).
            let start = thread_cpu_time();
            while thread_cpu_time() - start < Duration::from_millis(30) {
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
