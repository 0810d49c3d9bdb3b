//! Background jobs on Redis: the queue every role enqueues into, and the `worker` role that
//! runs them.
//!
//! # Why Redis Streams
//!
//! Each queue is a stream read through one consumer group. A fetched entry stays in the
//! group's pending list, owned by the worker that read it, until that worker acknowledges
//! it; a worker killed mid-job leaves its entries there and any other worker takes them over
//! with `XAUTOCLAIM` once they have been idle longer than the visibility timeout (running
//! workers keep their in-flight entries fresh with `XCLAIM ... JUSTID`). The alternative,
//! `LMOVE` into per-worker processing lists, needs a registry of live workers, heartbeats
//! and a reaper that decides a worker is dead before moving its list back: the pending list
//! is that bookkeeping, kept by Redis itself and updated atomically with the read. Stream
//! ids are also timestamps, which gives the age of the oldest waiting job for free.
//!
//! Delivery is at least once: a job may run twice (a worker killed after the effect but
//! before the acknowledgement, or stalled past the visibility timeout), so every handler
//! must be idempotent.
//!
//! # Keys
//!
//! Every key of a queue carries the hash tag `{fedi:jobs:<queue>}`, so that on a Redis
//! cluster they share a slot and the scripts that move a job between them (stream,
//! scheduled set, dead set) are atomic. See `store` for the layout.

mod diagnostics;
mod metrics;
mod schedule;
pub mod store;
mod worker;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::types::chrono::{DateTime, Utc};

use crate::state::AppState;

pub use fedi_config::Queue;
pub use store::DeadJob;
pub use worker::run;

/// Retries of a kind registered without a limit of its own: Sidekiq's default, about three
/// weeks of back-off.
pub const DEFAULT_MAX_RETRIES: u32 = 25;

/// Queues `kind` with `args` on `queue`, to run as soon as a worker takes it.
pub async fn enqueue(
    state: &AppState,
    queue: Queue,
    kind: &str,
    args: serde_json::Value,
) -> anyhow::Result<()> {
    store::push(state, queue, &Job::new(kind, args)).await?;
    Ok(())
}

/// Queues `kind` with `args` on `queue`, to run once `at` has come (at once if it has).
pub async fn enqueue_at(
    state: &AppState,
    queue: Queue,
    kind: &str,
    args: serde_json::Value,
    at: DateTime<Utc>,
) -> anyhow::Result<()> {
    store::push_at(state, queue, &Job::new(kind, args), at.timestamp_millis()).await?;
    Ok(())
}

/// A job as it is stored: what to run, and its history of failures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// 24 hex digits, unique; names the job in the dead set and in logs.
    pub id: String,
    pub kind: String,
    pub args: Value,
    /// Failures so far.
    #[serde(default)]
    pub retries: u32,
    /// Milliseconds since the epoch.
    pub enqueued_at: i64,
    /// The last failure's message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When it last failed, milliseconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_at: Option<i64>,
}

impl Job {
    pub fn new(kind: &str, args: Value) -> Self {
        let mut id = [0u8; 12];
        getrandom::fill(&mut id).expect("the OS random generator works");
        Self {
            id: id.iter().map(|b| format!("{b:02x}")).collect(),
            kind: kind.to_owned(),
            args,
            retries: 0,
            enqueued_at: now_ms(),
            error: None,
            failed_at: None,
        }
    }
}

pub(crate) fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// Why a job failed, and whether running it again could help.
#[derive(Debug)]
pub enum JobError {
    /// A transient failure (a database or a remote server down): retried with back-off up
    /// to the kind's limit, then dead.
    Retry(anyhow::Error),
    /// Running it again cannot succeed (bad arguments, the record is gone): dead at once.
    Permanent(anyhow::Error),
}

impl JobError {
    pub fn retry(e: impl Into<anyhow::Error>) -> Self {
        Self::Retry(e.into())
    }

    pub fn permanent(e: impl Into<anyhow::Error>) -> Self {
        Self::Permanent(e.into())
    }

    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Permanent(_))
    }
}

impl std::fmt::Display for JobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Retry(e) | Self::Permanent(e) => write!(f, "{e:#}"),
        }
    }
}

/// `?` on any error makes a retryable failure: most errors in a job (database, Redis,
/// network) are transient. Say `JobError::permanent` where they are not.
impl<E: Into<anyhow::Error>> From<E> for JobError {
    fn from(e: E) -> Self {
        Self::Retry(e.into())
    }
}

/// A job's arguments as `T`; arguments that do not fit will never fit, so the failure is
/// permanent.
pub fn args<T: DeserializeOwned>(args: Value) -> Result<T, JobError> {
    serde_json::from_value(args)
        .map_err(|e| JobError::permanent(anyhow::anyhow!("invalid arguments: {e}")))
}

type JobFuture = Pin<Box<dyn Future<Output = Result<(), JobError>> + Send>>;
type HandlerFn = dyn Fn(AppState, Value) -> JobFuture + Send + Sync;

#[derive(Clone)]
pub(crate) struct Handler {
    run: Arc<HandlerFn>,
    max_retries: u32,
}

/// The job kinds this binary can run, and which of them run periodically.
#[derive(Default, Clone)]
pub struct Registry {
    handlers: BTreeMap<String, Handler>,
    periodic: BTreeMap<String, Periodic>,
}

/// When the scheduler enqueues a periodic kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Periodic {
    pub interval: Duration,
    /// Only while the clock is inside `FEDI_MAINTENANCE_WINDOW` (when set): heavy deletion
    /// sweeps that a host wants in its quiet hours.
    pub in_maintenance_window: bool,
}

impl Registry {
    /// Every kind of this binary: the built-in diagnostics and the tasks.
    pub fn all() -> Self {
        let mut r = Self::default();
        diagnostics::register(&mut r);
        crate::tasks::register(&mut r);
        r
    }

    /// Registers `handler` for `kind`: an `async fn(AppState, Value) -> Result<(), JobError>`
    /// retried up to `max_retries` times (`DEFAULT_MAX_RETRIES` is Sidekiq's). Panics on a
    /// kind registered twice, a programming error that must not reach production.
    pub fn register<F, Fut>(&mut self, kind: &str, max_retries: u32, handler: F)
    where
        F: Fn(AppState, Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), JobError>> + Send + 'static,
    {
        let run: Arc<HandlerFn> = Arc::new(move |state, args| Box::pin(handler(state, args)));
        let previous = self
            .handlers
            .insert(kind.to_owned(), Handler { run, max_retries });
        assert!(previous.is_none(), "job kind {kind} registered twice");
    }

    /// Runs `kind` (registered with `register`) every `interval`, on the scheduler queue,
    /// with the arguments `{"due": <start of the period, ms since the epoch>}`. One scheduler enqueues it across all replicas; periods are
    /// aligned on multiples of `interval` since the epoch.
    pub fn periodic(&mut self, kind: &str, interval: Duration) {
        self.insert_periodic(kind, interval, false);
    }

    /// As [`Registry::periodic`], but enqueued only inside the configured maintenance
    /// window (any time when none is set). The window is the configuration's, read by the
    /// scheduler, so that registering stays independent of it.
    pub fn periodic_in_maintenance_window(&mut self, kind: &str, interval: Duration) {
        self.insert_periodic(kind, interval, true);
    }

    fn insert_periodic(&mut self, kind: &str, interval: Duration, in_maintenance_window: bool) {
        assert!(
            interval >= Duration::from_secs(1),
            "periodic job {kind}: interval below one second"
        );
        self.periodic.insert(
            kind.to_owned(),
            Periodic {
                interval,
                in_maintenance_window,
            },
        );
    }

    pub(crate) fn handler(&self, kind: &str) -> Option<&Handler> {
        self.handlers.get(kind)
    }

    pub(crate) fn periodic_jobs(&self) -> impl Iterator<Item = (&str, Periodic)> {
        self.periodic.iter().map(|(k, p)| (k.as_str(), *p))
    }

    /// Every periodic kind must have a handler: said at start-up, not at the first tick.
    pub(crate) fn check(&self) -> anyhow::Result<()> {
        for kind in self.periodic.keys() {
            anyhow::ensure!(
                self.handlers.contains_key(kind),
                "periodic job {kind} has no handler registered"
            );
        }
        Ok(())
    }
}

/// The delay before retry number `retries + 1`: Sidekiq's `retries^4 + 15` seconds plus a
/// jitter of up to `10 * (retries + 1)` seconds, so that jobs that failed together (a remote
/// server down) do not come back together.
pub fn backoff(retries: u32) -> Duration {
    // 100^4 s is three years: beyond any sensible limit, and far from overflowing.
    let retries = u64::from(retries.min(100));
    let jitter_ms = random_below(10_000) * (retries + 1);
    Duration::from_secs(retries.pow(4) + 15) + Duration::from_millis(jitter_ms)
}

/// A uniform random number in `0..n` (n > 0); not for secrets.
pub(crate) fn random_below(n: u64) -> u64 {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).expect("the OS random generator works");
    u64::from_le_bytes(b) % n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_as_sidekiqs_with_bounded_jitter() {
        for (retries, base) in [(0u32, 15u64), (1, 16), (2, 31), (5, 640), (10, 10_015)] {
            for _ in 0..50 {
                let d = backoff(retries);
                let max = Duration::from_secs(base + 10 * u64::from(retries + 1));
                assert!(
                    d >= Duration::from_secs(base) && d < max,
                    "{retries}: {d:?}"
                );
            }
        }
        assert!(backoff(u32::MAX) >= Duration::from_secs(100u64.pow(4)));
    }

    #[test]
    fn job_ids_are_unique_and_errors_say_whether_to_retry() {
        let a = Job::new("k", Value::Null);
        let b = Job::new("k", Value::Null);
        assert_ne!(a.id, b.id);
        assert_eq!(a.id.len(), 24);
        let e: JobError = sqlx::Error::PoolTimedOut.into();
        assert!(!e.is_permanent());
        let e = args::<Vec<i64>>(serde_json::json!({"x": 1})).unwrap_err();
        assert!(e.is_permanent() && e.to_string().contains("invalid arguments"));
    }

    #[test]
    fn a_periodic_kind_without_a_handler_is_refused() {
        let mut r = Registry::default();
        r.periodic("nothing.here", Duration::from_secs(60));
        assert!(r.check().unwrap_err().to_string().contains("nothing.here"));
        r.register("nothing.here", 1, |_, _| async { Ok(()) });
        r.check().unwrap();
    }

    #[test]
    fn only_the_maintenance_sweeps_wait_for_the_maintenance_window() {
        let r = Registry::all();
        let windowed: Vec<&str> = r
            .periodic_jobs()
            .filter(|(_, p)| p.in_maintenance_window)
            .map(|(k, _)| k)
            .collect();
        use crate::tasks::maintenance;
        let mut expected = [
            maintenance::MEDIA_CACHE,
            maintenance::ORPHANED_MEDIA,
            maintenance::PREVIEW_CARD_IMAGES,
        ];
        expected.sort();
        assert_eq!(windowed, expected);
        // The others (mail, polls, feeds, domain policy...) keep running at any hour.
        assert!(r.periodic_jobs().count() > windowed.len() + 3);
    }
}
