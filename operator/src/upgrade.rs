//! The upgrade pipeline's state and the fleet's limit on concurrent upgrades.
//!
//! An upgrade (the spec's image differs from the one whose migrations are all done) runs:
//! a slot under `--max-concurrent-upgrades` -> the pre-deployment migration Job -> the
//! rolling update -> the post-deployment migration Job once every pod runs the new image.
//! Each step waits for the previous one; `Step` says where an instance stands, and the
//! status (`status.version.phase`) records it, which is also how the fleet counts.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::channel::mpsc;
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::crd::{FediInstance, UpgradePhase};
use crate::migrations::Migration;

/// Where the instance's pipeline stands after this reconcile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// The dependencies are not ready: nothing runs, nothing is decided.
    WaitingForDependencies,
    /// `spec.suspend`: every workload at zero, the pipeline frozen where it was.
    Suspended,
    /// Waiting for an upgrade slot; the message says why.
    Queued(String),
    /// The pre-deployment Job is running, failed or refused; the old version serves.
    PreMigration(Migration),
    /// The Deployments roll to the new image.
    RollingOut,
    /// Every pod runs the new image; the post-deployment Job is running or failed.
    PostMigration(Migration),
    /// Every step is done for the image the spec asks for.
    Done,
}

impl Step {
    /// The phase recorded in the status, `None` when nothing is pending; `previous` for the
    /// steps that decide nothing.
    pub fn phase(&self, previous: Option<UpgradePhase>) -> Option<UpgradePhase> {
        match self {
            Step::WaitingForDependencies | Step::Suspended => previous,
            Step::Queued(_) => Some(UpgradePhase::Queued),
            Step::PreMigration(Migration::Running { .. }) => Some(UpgradePhase::PreMigration),
            Step::PostMigration(Migration::Running { .. }) => Some(UpgradePhase::PostMigration),
            Step::PreMigration(_) | Step::PostMigration(_) => Some(UpgradePhase::Failed),
            Step::RollingOut => Some(UpgradePhase::RollingOut),
            Step::Done => None,
        }
    }
}

/// The fleet's upgrades, as far as this operator can see: how many may run at once, and
/// every instance it watches (its controllers' caches).
pub struct Fleet {
    limit: Option<usize>,
    /// Held for a whole admission decision.
    serial: Mutex<()>,
    stores: Mutex<Vec<Store<FediInstance>>>,
    /// Instances admitted whose status may not show it yet (the cache lags the write).
    admitted: Mutex<HashMap<ObjectRef<FediInstance>, Instant>>,
    /// Instances whose upgrade ended, whose status may still say it runs.
    ended: Mutex<HashMap<ObjectRef<FediInstance>, Instant>>,
    /// The controllers (and the namespace each serves, `None`: all), to wake queued
    /// instances when a slot frees up.
    wakers: Mutex<Vec<Waker>>,
}

/// A controller's channel for instances to reconcile, and the namespace it serves (`None`:
/// all).
type Waker = (
    Option<String>,
    mpsc::UnboundedSender<ObjectRef<FediInstance>>,
);

/// Long enough for an admitted instance's status write to reach the cache.
const ADMISSION_GRACE: Duration = Duration::from_secs(60);

/// How often a queued instance asks again for a slot, should a wake-up be missed.
pub const QUEUED_RETRY: Duration = Duration::from_secs(30);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    Go,
    Queued(String),
}

impl Fleet {
    /// `limit`: at most that many upgrades at once, and none while one has failed; `None`:
    /// every instance upgrades on its own.
    pub fn new(limit: Option<usize>) -> Self {
        Self {
            limit,
            serial: Mutex::new(()),
            stores: Mutex::new(Vec::new()),
            admitted: Mutex::new(HashMap::new()),
            ended: Mutex::new(HashMap::new()),
            wakers: Mutex::new(Vec::new()),
        }
    }

    /// The queued instances of `namespace` (`None`: all) to reconcile when a slot frees up.
    pub fn subscribe(
        &self,
        namespace: Option<String>,
    ) -> mpsc::UnboundedReceiver<ObjectRef<FediInstance>> {
        let (tx, rx) = mpsc::unbounded();
        self.wakers
            .lock()
            .expect("fleet lock")
            .push((namespace, tx));
        rx
    }

    /// Wakes as many queued instances as there are free slots, longest queued first.
    fn wake_queued(&self) {
        let Some(limit) = self.limit else {
            return;
        };
        let (others, recent) = self.snapshot();
        let nobody = ObjectRef::new("");
        let phases: Vec<_> = others.iter().map(|(r, p, _)| (r.clone(), *p)).collect();
        let Admission::Go = decide(limit, &nobody, &phases, &recent) else {
            return;
        };
        let upgrading = others
            .iter()
            .filter(|o| o.1.is_some_and(UpgradePhase::in_progress))
            .map(|o| &o.0)
            .chain(recent.iter())
            .collect::<HashSet<_>>()
            .len();
        let mut queued: Vec<_> = others
            .iter()
            .filter(|o| o.1 == Some(UpgradePhase::Queued))
            .collect();
        queued.sort_by(|a, b| (&a.2, &a.0.name).cmp(&(&b.2, &b.0.name)));
        let wakers = self.wakers.lock().expect("fleet lock");
        for (r, ..) in queued.into_iter().take(limit.saturating_sub(upgrading)) {
            for (namespace, tx) in wakers.iter() {
                if namespace.is_none() || *namespace == r.namespace {
                    let _ = tx.unbounded_send(r.clone());
                }
            }
        }
    }

    /// Every instance with its upgrade phase (those that just ended counted as ended) and
    /// when it was queued; and the instances just admitted.
    #[allow(clippy::type_complexity)]
    fn snapshot(
        &self,
    ) -> (
        Vec<(
            ObjectRef<FediInstance>,
            Option<UpgradePhase>,
            Option<String>,
        )>,
        HashSet<ObjectRef<FediInstance>>,
    ) {
        let mut admitted = self.admitted.lock().expect("fleet lock");
        admitted.retain(|_, at| at.elapsed() < ADMISSION_GRACE);
        let mut ended = self.ended.lock().expect("fleet lock");
        ended.retain(|_, at| at.elapsed() < ADMISSION_GRACE);
        let others = self
            .stores
            .lock()
            .expect("fleet lock")
            .iter()
            .flat_map(|s| s.state())
            .filter(|f| f.metadata.deletion_timestamp.is_none())
            .map(|f| {
                let r = ObjectRef::from_obj(f.as_ref());
                let phase = phase_of(&f).filter(|p| {
                    !((p.in_progress() || *p == UpgradePhase::Failed) && ended.contains_key(&r))
                });
                let since = f
                    .condition(crate::status::PROGRESSING)
                    .map(|c| c.last_transition_time.0.to_string());
                (r, phase, since)
            })
            .collect();
        (others, admitted.keys().cloned().collect())
    }

    pub fn set_stores(&self, stores: Vec<Store<FediInstance>>) {
        *self.stores.lock().expect("fleet lock") = stores;
    }

    /// The controllers' caches of every instance.
    pub fn stores(&self) -> Vec<Store<FediInstance>> {
        self.stores.lock().expect("fleet lock").clone()
    }

    /// Whether `fedi` may start upgrading now. Only instances that are not yet upgrading
    /// ask; one decision at a time, so that two reconciles cannot both take the last slot.
    pub fn admit(&self, fedi: &FediInstance) -> Admission {
        let Some(limit) = self.limit else {
            return Admission::Go;
        };
        let me = ObjectRef::from_obj(fedi);
        // One decision at a time.
        let _serial = self.serial.lock().expect("fleet lock");
        let (others, recent) = self.snapshot();
        let others: Vec<_> = others.into_iter().map(|(r, p, _)| (r, p)).collect();
        let decision = decide(limit, &me, &others, &recent);
        if decision == Admission::Go {
            self.ended.lock().expect("fleet lock").remove(&me);
            self.admitted
                .lock()
                .expect("fleet lock")
                .insert(me, Instant::now());
        }
        decision
    }

    /// `fedi`'s upgrade ended (its status says so, or soon will): its slot is free, and the
    /// queued instances ask again now rather than at their next retry.
    pub fn release(&self, fedi: &FediInstance) {
        if self.limit.is_none() {
            return;
        }
        let me = ObjectRef::from_obj(fedi);
        self.admitted.lock().expect("fleet lock").remove(&me);
        self.ended
            .lock()
            .expect("fleet lock")
            .insert(me, Instant::now());
        self.wake_queued();
    }
}

fn phase_of(f: &FediInstance) -> Option<UpgradePhase> {
    f.status.as_ref()?.version.as_ref()?.phase
}

/// The admission rule, pure: a failed upgrade anywhere stops the rollout; otherwise a slot
/// is free when fewer than `limit` instances are upgrading (as their status says, or just
/// admitted).
pub fn decide(
    limit: usize,
    me: &ObjectRef<FediInstance>,
    others: &[(ObjectRef<FediInstance>, Option<UpgradePhase>)],
    recent: &HashSet<ObjectRef<FediInstance>>,
) -> Admission {
    let name = |r: &ObjectRef<FediInstance>| {
        format!("{}/{}", r.namespace.clone().unwrap_or_default(), r.name)
    };
    let mut failed: Vec<String> = others
        .iter()
        .filter(|(r, p)| r != me && *p == Some(UpgradePhase::Failed))
        .map(|(r, _)| name(r))
        .collect();
    if !failed.is_empty() {
        failed.sort();
        return Admission::Queued(format!(
            "The fleet's upgrades are stopped: the upgrade of {} failed. Fix it (or set its \
             spec.version back) and the queued upgrades resume.",
            failed.join(", ")
        ));
    }
    let upgrading: HashSet<&ObjectRef<FediInstance>> = others
        .iter()
        .filter(|(r, p)| r != me && p.is_some_and(UpgradePhase::in_progress))
        .map(|(r, _)| r)
        .chain(recent.iter().filter(|r| *r != me))
        .collect();
    if upgrading.len() >= limit {
        return Admission::Queued(format!(
            "Waiting for an upgrade slot: {} of at most {limit} upgrades are running \
             (the operator's --max-concurrent-upgrades).",
            upgrading.len()
        ));
    }
    Admission::Go
}

/// The names of instances, for logs.
pub fn describe(f: &FediInstance) -> String {
    format!("{}/{}", f.namespace().unwrap_or_default(), f.name_any())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(name: &str) -> ObjectRef<FediInstance> {
        ObjectRef::new(name).within("ns")
    }

    #[test]
    fn slots_are_counted_from_statuses_and_recent_admissions() {
        let me = r("me");
        let busy = |n: usize| -> Vec<_> {
            (0..n)
                .map(|i| (r(&format!("u{i}")), Some(UpgradePhase::RollingOut)))
                .collect()
        };
        let none = HashSet::new();
        assert_eq!(decide(2, &me, &busy(1), &none), Admission::Go);
        assert!(
            matches!(decide(2, &me, &busy(2), &none), Admission::Queued(m) if m.contains("2 of at most 2"))
        );
        // Queued and finished ones do not count; an admission not yet in a status does.
        let mut others = busy(1);
        others.push((r("q"), Some(UpgradePhase::Queued)));
        others.push((r("idle"), None));
        assert_eq!(decide(2, &me, &others, &none), Admission::Go);
        let recent = HashSet::from([r("fresh")]);
        assert!(matches!(
            decide(2, &me, &others, &recent),
            Admission::Queued(_)
        ));
        // Counted once when both say so; never counting itself.
        let recent = HashSet::from([r("u0"), me.clone()]);
        assert_eq!(decide(2, &me, &others, &recent), Admission::Go);
    }

    #[test]
    fn a_failed_upgrade_stops_the_rollout() {
        let me = r("me");
        let others = vec![(r("broken"), Some(UpgradePhase::Failed))];
        let d = decide(5, &me, &others, &HashSet::new());
        assert!(
            matches!(&d, Admission::Queued(m) if m.contains("ns/broken")),
            "{d:?}"
        );
    }
}
