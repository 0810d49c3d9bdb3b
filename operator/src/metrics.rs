//! Prometheus metrics of the operator, served at `/metrics`.

use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::Error;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub error: &'static str,
}

pub struct Metrics {
    pub registry: Registry,
    reconciles: Counter,
    errors: Family<ErrorLabels, Counter>,
    status_writes: Counter,
    child_writes: Counter,
    managed_instances: Gauge,
    duration: Histogram,
    busy: Histogram,
    queued: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        let reconciles = Counter::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let status_writes = Counter::default();
        let child_writes = Counter::default();
        let managed_instances = Gauge::default();
        // 1 ms .. ~16 s: a reconcile excluding waits should sit in the lowest buckets.
        let duration = Histogram::new(exponential_buckets(0.001, 2.0, 15));
        // 0.1 ms .. ~13 s: the work of one reconcile is expected well under the 100 ms target.
        let busy = Histogram::new(exponential_buckets(0.0001, 2.0, 18));
        // 1 ms .. ~65 s: a reconcile waits here when more instances want one than
        // `--max-concurrent-reconciles` allows (a fleet converging, a restart's resync).
        let queued = Histogram::new(exponential_buckets(0.001, 2.0, 17));
        let mut registry = Registry::with_prefix("fedi_operator");
        registry.register("reconciles", "Reconciles started", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Reconciles that failed, by error",
            errors.clone(),
        );
        registry.register(
            "status_writes",
            "Status patches written",
            status_writes.clone(),
        );
        registry.register(
            "managed_instances",
            "FediInstances in the operator's cache",
            managed_instances.clone(),
        );
        registry.register(
            "child_writes",
            "Writes (apply, delete) of child objects",
            child_writes.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of a reconcile, waits on the API server and dependency probes included",
            duration.clone(),
        );
        registry.register(
            "reconcile_busy_seconds",
            "Time a reconcile spent running (the sum of its polls), waits excluded: API \
             calls, dependency probes, timers and runtime queueing",
            busy.clone(),
        );
        registry.register(
            "reconcile_queue_seconds",
            "Time a reconcile waited for one of the --max-concurrent-reconciles slots",
            queued.clone(),
        );
        Self {
            registry,
            reconciles,
            errors,
            status_writes,
            child_writes,
            managed_instances,
            duration,
            busy,
            queued,
        }
    }
}

impl Metrics {
    /// Counts a reconcile and times it until the returned guard is dropped.
    pub fn reconcile_started(&self) -> ReconcileTimer<'_> {
        self.reconciles.inc();
        ReconcileTimer {
            histogram: &self.duration,
            start: Instant::now(),
        }
    }

    /// Records the time a reconcile spent running, waits excluded (see `busy`).
    pub fn reconcile_busy(&self, spent: std::time::Duration) {
        self.busy.observe(spent.as_secs_f64());
    }

    /// Records how long a reconcile waited for a slot before it started.
    pub fn reconcile_queued(&self, waited: std::time::Duration) {
        self.queued.observe(waited.as_secs_f64());
    }

    pub fn reconcile_failed(&self, error: &Error) {
        self.errors
            .get_or_create(&ErrorLabels {
                error: error.metric_label(),
            })
            .inc();
    }

    pub fn status_written(&self) {
        self.status_writes.inc();
    }

    pub fn set_managed_instances(&self, n: usize) {
        self.managed_instances
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    pub fn child_written(&self) {
        self.child_writes.inc();
    }

    pub fn reconciles(&self) -> u64 {
        self.reconciles.get()
    }

    pub fn status_writes(&self) -> u64 {
        self.status_writes.get()
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

pub struct ReconcileTimer<'a> {
    histogram: &'a Histogram,
    start: Instant,
}

impl ReconcileTimer<'_> {
    pub fn elapsed(&self) -> std::time::Duration {
        self.start.elapsed()
    }
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.histogram.observe(self.start.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconciles_errors_and_durations_are_exported() {
        let m = Metrics::default();
        drop(m.reconcile_started());
        m.reconcile_busy(std::time::Duration::from_micros(150));
        m.reconcile_queued(std::time::Duration::from_millis(3));
        m.reconcile_failed(&Error::Build(crate::build::BuildError::Incomplete("uid")));
        let text = m.encode();
        assert!(text.contains("fedi_operator_reconciles_total 1"), "{text}");
        assert!(
            text.contains(r#"fedi_operator_reconcile_errors_total{error="build"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("fedi_operator_reconcile_duration_seconds_count 1"),
            "{text}"
        );
        assert!(
            text.contains(r#"fedi_operator_reconcile_busy_seconds_bucket{le="0.0001"} 0"#),
            "{text}"
        );
        assert!(
            text.contains(r#"fedi_operator_reconcile_busy_seconds_bucket{le="0.0002"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"fedi_operator_reconcile_queue_seconds_bucket{le="0.002"} 0"#),
            "{text}"
        );
        assert!(
            text.contains(r#"fedi_operator_reconcile_queue_seconds_bucket{le="0.004"} 1"#),
            "{text}"
        );
    }
}
