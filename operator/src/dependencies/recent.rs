//! Reports of ready dependencies, kept a short while so that the reconciles a converging
//! instance goes through (one per child event) do not each probe Redis, S3, PostgreSQL and
//! search again.
//!
//! Only an all-ready report with nothing done is kept, and only for the instance's
//! generation and annotations it was made for: a spec change, an annotation (a person's
//! nudge), a change to a referenced Secret, to a managed service's StatefulSet or to the
//! CloudNativePG Cluster (see `controller`) forgets it. What no watch sees (an external
//! server going down) is noticed after `TTL` at the latest, when a reconcile happens; a
//! ready instance is otherwise probed at its resync, as before.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::ResourceExt;

use super::Report;
use crate::crd::FediInstance;

pub const TTL: Duration = Duration::from_secs(30);

#[derive(Default)]
pub struct Recent {
    entries: Mutex<HashMap<(String, String), Entry>>,
}

struct Entry {
    at: Instant,
    generation: Option<i64>,
    annotations: BTreeMap<String, String>,
    report: Report,
}

fn key(fedi: &FediInstance) -> (String, String) {
    (fedi.namespace().unwrap_or_default(), fedi.name_any())
}

impl Recent {
    /// The report kept for `fedi` as it is now, if still fresh.
    pub fn get(&self, fedi: &FediInstance) -> Option<Report> {
        self.get_at(fedi, Instant::now())
    }

    fn get_at(&self, fedi: &FediInstance, now: Instant) -> Option<Report> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let e = entries.get(&key(fedi))?;
        (now.duration_since(e.at) < TTL
            && e.generation == fedi.metadata.generation
            && &e.annotations == fedi.annotations())
        .then(|| e.report.clone())
    }

    /// Keeps `report` if it is one to keep (all ready, nothing done); forgets any older one
    /// otherwise.
    pub fn put(&self, fedi: &FediInstance, report: &Report) {
        self.put_at(fedi, report, Instant::now());
    }

    fn put_at(&self, fedi: &FediInstance, report: &Report, now: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        // Deleted instances' entries go with the next write after they expire.
        entries.retain(|_, e| now.duration_since(e.at) < TTL);
        if !report.all_ready() || !report.actions.is_empty() {
            entries.remove(&key(fedi));
            return;
        }
        entries.insert(
            key(fedi),
            Entry {
                at: now,
                generation: fedi.metadata.generation,
                annotations: fedi.annotations().clone(),
                report: report.clone(),
            },
        );
    }

    /// Something a probe looks at changed: the next reconcile of the instance probes.
    pub fn forget(&self, namespace: &str, name: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.remove(&(namespace.to_string(), name.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dependencies::{Action, Readiness};

    fn instance(generation: i64) -> FediInstance {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "fedi.dev/v1alpha1", "kind": "FediInstance",
            "metadata": {"name": "a", "namespace": "ns", "generation": generation},
            "spec": {"domain": "a.example"},
        }))
        .unwrap()
    }

    fn report(ready: bool) -> Report {
        Report::uniform(if ready {
            Readiness::ready("Ready", "fine")
        } else {
            Readiness::waiting("Down", "not fine")
        })
    }

    #[test]
    fn a_ready_report_is_reused_until_it_expires_or_the_instance_changes() {
        let recent = Recent::default();
        let fedi = instance(1);
        let t0 = Instant::now();
        recent.put_at(&fedi, &report(true), t0);
        assert_eq!(recent.get_at(&fedi, t0 + TTL / 2), Some(report(true)));
        assert_eq!(recent.get_at(&fedi, t0 + TTL), None);
        assert_eq!(recent.get_at(&instance(2), t0), None);
        let mut nudged = instance(1);
        nudged
            .annotations_mut()
            .insert("touched".into(), "1".into());
        assert_eq!(recent.get_at(&nudged, t0), None);
        recent.forget("ns", "a");
        assert_eq!(recent.get_at(&fedi, t0), None);
    }

    #[test]
    fn reports_not_ready_or_with_actions_are_not_kept_and_replace_a_kept_one() {
        let recent = Recent::default();
        let fedi = instance(1);
        let t0 = Instant::now();
        recent.put_at(&fedi, &report(true), t0);
        recent.put_at(&fedi, &report(false), t0);
        assert_eq!(recent.get_at(&fedi, t0), None);
        let mut acted = report(true);
        acted.actions.push(Action {
            reason: "BucketCreated".into(),
            note: "created".into(),
        });
        recent.put_at(&fedi, &acted, t0);
        assert_eq!(recent.get_at(&fedi, t0), None);
    }
}
