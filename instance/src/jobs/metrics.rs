//! The worker's `/metrics` (Prometheus text): per queue, what waits and for how long (what
//! an autoscaler scales workers on), what runs, what is scheduled or dead, and this
//! process's processed and failed counters. Queue gauges are read from Redis at each
//! scrape, so every replica reports the same, current values.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::{Queue, diagnostics, now_ms, store};
use crate::state::AppState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct QueueLabel {
    queue: &'static str,
}

fn label(queue: Queue) -> QueueLabel {
    QueueLabel {
        queue: match queue {
            Queue::Default => "default",
            Queue::Push => "push",
            Queue::Ingress => "ingress",
            Queue::Mailers => "mailers",
            Queue::Pull => "pull",
            Queue::Scheduler => "scheduler",
        },
    }
}

type Gauges = Family<QueueLabel, Gauge>;

pub(crate) struct Metrics {
    registry: Registry,
    processed: Family<QueueLabel, Counter>,
    failed: Family<QueueLabel, Counter>,
    depth: Gauges,
    in_flight: Gauges,
    scheduled: Gauges,
    dead: Gauges,
    oldest_age: Family<QueueLabel, Gauge<f64, AtomicU64>>,
    heartbeat: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("fedi_jobs");
        let m = Self {
            processed: Family::default(),
            failed: Family::default(),
            depth: Family::default(),
            in_flight: Family::default(),
            scheduled: Family::default(),
            dead: Family::default(),
            oldest_age: Family::default(),
            heartbeat: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "processed",
            "Jobs this process ran successfully",
            m.processed.clone(),
        );
        registry.register(
            "failed",
            "Job runs in this process that failed (retried or dead)",
            m.failed.clone(),
        );
        registry.register("queue_depth", "Jobs waiting for a worker", m.depth.clone());
        registry.register(
            "in_flight",
            "Jobs taken by a worker and not finished",
            m.in_flight.clone(),
        );
        registry.register(
            "scheduled",
            "Jobs waiting for their time (retries and scheduled jobs)",
            m.scheduled.clone(),
        );
        registry.register("dead", "Jobs in the dead set", m.dead.clone());
        registry.register(
            "oldest_age_seconds",
            "How long the oldest waiting job has waited (0 when none waits)",
            m.oldest_age.clone(),
        );
        registry.register(
            "scheduler_heartbeat_timestamp_seconds",
            "Period of the last run of the scheduler's heartbeat job (0: never)",
            m.heartbeat.clone(),
        );
        Self { registry, ..m }
    }
}

impl Metrics {
    pub(crate) fn processed(&self, queue: Queue) {
        self.processed.get_or_create(&label(queue)).inc();
    }

    pub(crate) fn failed(&self, queue: Queue) {
        self.failed.get_or_create(&label(queue)).inc();
    }

    /// Reads every queue's state, then renders everything.
    pub(crate) async fn render(&self, state: &AppState) -> anyhow::Result<String> {
        let now = now_ms();
        for queue in Queue::ALL {
            let s = store::stats(state, queue).await?;
            let l = label(queue);
            let int = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            self.depth.get_or_create(&l).set(int(s.waiting));
            self.in_flight.get_or_create(&l).set(int(s.in_flight));
            self.scheduled.get_or_create(&l).set(int(s.scheduled));
            self.dead.get_or_create(&l).set(int(s.dead));
            let age = s
                .oldest_waiting_ms
                .map_or(0.0, |t| (now - t).max(0) as f64 / 1000.0);
            self.oldest_age.get_or_create(&l).set(age);
        }
        let beat = diagnostics::last_heartbeat(state).await?;
        self.heartbeat.set(beat.map_or(0, |ms| ms / 1000));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        Ok(out)
    }
}
