//! Computes the status the operator reports. Pure: the controller posts the result only
//! when it differs from what is stored, so a no-op reconcile writes nothing.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use crate::crd::{ComponentStatus, FediInstance, FediInstanceStatus, VersionStatus};
use crate::dependencies::Report;
use crate::migrations::Migration;
use crate::search_index::Reindex;
use crate::upgrade::Step;

pub const READY: &str = "Ready";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";
pub const MIGRATED: &str = "Migrated";
pub const SEARCH_INDEXED: &str = "SearchIndexed";

/// A workload's Deployment as last seen, under its component name (`api`, `worker-default`).
pub struct Observed<'a> {
    pub component: &'a str,
    pub deployment: &'a Deployment,
}

/// The status after a successful reconcile: `version` and `image` are what the spec asks
/// for, `step` where the upgrade pipeline stands.
pub fn desired(
    fedi: &FediInstance,
    workloads: &[Observed],
    version: &str,
    image: &str,
    dependencies: &Report,
    step: &Step,
    now: Timestamp,
) -> FediInstanceStatus {
    let generation = fedi.metadata.generation;
    let previous = fedi.status.clone().unwrap_or_default();
    let components: Vec<ComponentStatus> = workloads.iter().map(component_status).collect();
    let rolling: Vec<&str> = workloads
        .iter()
        .filter(|o| !rolled_out(o.deployment))
        .map(|o| o.component)
        .collect();
    let unready: Vec<String> = components
        .iter()
        .filter(|c| c.ready < c.desired)
        .map(|c| format!("{} {}/{}", c.name, c.ready, c.desired))
        .collect();

    let c = Conditions {
        fedi,
        generation,
        now,
    };
    let ready = match step {
        Step::Suspended => c.make(
            READY,
            false,
            "Suspended",
            "spec.suspend is true: every workload is scaled to zero and all data is kept.",
        ),
        Step::WaitingForDependencies => c.make(
            READY,
            false,
            "WaitingForDependencies",
            &format!(
                "The server is not rolled out until its dependencies are ready; waiting for \
                 {}.",
                dependencies.waiting_for().join(", ")
            ),
        ),
        Step::Queued(message) => c.make(READY, false, "UpgradeQueued", message),
        Step::PreMigration(Migration::Running { job, image }) => c.make(
            READY,
            false,
            "Migrating",
            &format!("Job {job} is migrating the schema for {image}; the rollout follows."),
        ),
        Step::PreMigration(Migration::Failed { message, .. }) => {
            c.make(READY, false, "MigrationFailed", message)
        }
        Step::PreMigration(Migration::Refused { message, .. }) => {
            c.make(READY, false, "DowngradeRefused", message)
        }
        _ if unready.is_empty() && rolling.is_empty() => c.make(
            READY,
            true,
            "Available",
            "Every workload runs the desired version with all its pods ready.",
        ),
        _ if !unready.is_empty() => c.make(
            READY,
            false,
            "ComponentsNotReady",
            &format!("Pods ready: {}.", unready.join(", ")),
        ),
        _ => c.make(
            READY,
            false,
            "RollingOut",
            &format!("Rolling out: {}.", rolling.join(", ")),
        ),
    };
    let progressing = match step {
        Step::Queued(message) => c.make(PROGRESSING, true, "UpgradeQueued", message),
        Step::PreMigration(Migration::Running { job, .. }) => c.make(
            PROGRESSING,
            true,
            "PreMigration",
            &format!("Job {job} runs the pre-deployment migrations."),
        ),
        Step::PostMigration(Migration::Running { job, .. }) => c.make(
            PROGRESSING,
            true,
            "PostMigration",
            &format!("Job {job} runs the post-deployment migrations."),
        ),
        _ if rolling.is_empty() => c.make(
            PROGRESSING,
            false,
            "Complete",
            "Every workload is rolled out.",
        ),
        _ => c.make(
            PROGRESSING,
            true,
            "RollingOut",
            &format!("Rolling out: {}.", rolling.join(", ")),
        ),
    };
    let degraded = c.make(
        DEGRADED,
        false,
        "ReconcileSucceeded",
        "The last reconcile succeeded.",
    );
    let mut conditions = vec![ready, progressing, degraded];
    for (type_, r) in dependencies.conditions() {
        conditions.push(c.make(type_, r.ready, &r.reason, &r.message));
    }
    let kept = |fallback: (&str, &str)| {
        fedi.condition(MIGRATED)
            .cloned()
            .unwrap_or_else(|| c.make(MIGRATED, false, fallback.0, fallback.1))
    };
    conditions.push(match step {
        Step::WaitingForDependencies => kept((
            "WaitingForDependencies",
            "Migrations run once the dependencies are ready.",
        )),
        Step::Suspended => kept(("Suspended", "Nothing runs while suspended.")),
        Step::Queued(message) => c.make(MIGRATED, false, "UpgradeQueued", message),
        Step::PreMigration(m) | Step::PostMigration(m) => match m {
            Migration::Running { job, image } => c.make(
                MIGRATED,
                false,
                "Migrating",
                &format!("Job {job} is running the migrations for {image}."),
            ),
            Migration::Failed { message, .. } => {
                c.make(MIGRATED, false, "MigrationFailed", message)
            }
            Migration::Refused { message, .. } => {
                c.make(MIGRATED, false, "DowngradeRefused", message)
            }
            Migration::Done { image } => c.make(
                MIGRATED,
                true,
                "Migrated",
                &format!("The schema is ready for {image}."),
            ),
        },
        Step::RollingOut => c.make(
            MIGRATED,
            false,
            "RollingOut",
            &format!(
                "Pre-deployment migrations for {image} are done; the post-deployment ones \
                 run once every pod runs it."
            ),
        ),
        Step::Done => c.make(
            MIGRATED,
            true,
            "Migrated",
            &format!("The schema is ready for {image}."),
        ),
    });
    let pre_done = matches!(step, Step::RollingOut | Step::PostMigration(_) | Step::Done);
    let migrated_image = if pre_done {
        Some(image.to_string())
    } else {
        // Until a newer image is migrated, the last one stays the schema's.
        previous.migrated_image.clone()
    };
    let post_migrated_image = if *step == Step::Done {
        Some(image.to_string())
    } else {
        previous.post_migrated_image.clone()
    };
    let old = previous.version.clone().unwrap_or_default();
    let current = if *step == Step::Done {
        Some(version.to_string())
    } else {
        old.current
    };
    let phase = step.phase(old.phase);
    FediInstanceStatus {
        observed_generation: generation,
        conditions,
        components,
        version: Some(VersionStatus {
            current,
            target: version.to_string(),
            phase,
        }),
        url: Some(format!("https://{}", fedi.spec.domain)),
        migrated_image,
        post_migrated_image,
        search_indexed_image: previous.search_indexed_image.clone(),
        secrets_rotation: previous.secrets_rotation.clone(),
    }
}

/// Records the search reindex step in `status`: `searchIndexedImage` and the
/// `SearchIndexed` condition. A condition of its own rather than a reason on `SearchReady`:
/// `SearchReady` gates the rollout, and the reindex must not (PostgreSQL serves search
/// meanwhile).
pub fn search_indexed(
    status: &mut FediInstanceStatus,
    fedi: &FediInstance,
    reindex: &Reindex,
    now: Timestamp,
) {
    let c = Conditions {
        fedi,
        generation: fedi.metadata.generation,
        now,
    };
    status.conditions.retain(|c| c.type_ != SEARCH_INDEXED);
    let condition = match reindex {
        Reindex::NotConfigured => {
            status.search_indexed_image = None;
            return;
        }
        Reindex::Waiting => fedi.condition(SEARCH_INDEXED).cloned().unwrap_or_else(|| {
            c.make(
                SEARCH_INDEXED,
                false,
                "WaitingForMigrations",
                "The search indexes are migrated once the schema migrations are done.",
            )
        }),
        Reindex::Running { job, image } => c.make(
            SEARCH_INDEXED,
            false,
            "Reindexing",
            &format!(
                "Job {job} runs fedi-server admin search migrate for {image}; search uses \
                 PostgreSQL where the indexes do not match yet."
            ),
        ),
        Reindex::Failed { message, .. } => c.make(SEARCH_INDEXED, false, "ReindexFailed", message),
        Reindex::Done { job, image } => {
            status.search_indexed_image = Some(image.clone());
            match (job, fedi.condition(SEARCH_INDEXED)) {
                // Already recorded: the same condition, the Job that did it still named.
                (None, Some(kept)) if kept.status == "True" => kept.clone(),
                _ => c.make(
                    SEARCH_INDEXED,
                    true,
                    "Indexed",
                    &match job {
                        Some(job) => {
                            format!("Job {job} migrated the search indexes for {image}.")
                        }
                        None => format!("The search indexes match {image}."),
                    },
                ),
            }
        }
    };
    status.conditions.push(condition);
}

/// The stored status with `Ready=False`, reason `Paused`: while the pause annotation is set,
/// nothing is observed, so nothing else is claimed.
pub fn paused(fedi: &FediInstance, now: Timestamp) -> FediInstanceStatus {
    let mut status = fedi.status.clone().unwrap_or_default();
    let c = Conditions {
        fedi,
        generation: fedi.metadata.generation,
        now,
    };
    let ready = c.make(
        READY,
        false,
        "Paused",
        "Reconciliation is paused by the fedi.dev/paused annotation: objects are neither \
         repaired nor updated until it is removed.",
    );
    status.conditions.retain(|x| x.type_ != READY);
    status.conditions.insert(0, ready);
    status
}

/// The stored status with `Degraded=True` for a failed reconcile; the other conditions keep
/// what was last observed, since the failure says nothing new about them.
pub fn failed(
    fedi: &FediInstance,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> FediInstanceStatus {
    let mut status = fedi.status.clone().unwrap_or_default();
    let c = Conditions {
        fedi,
        generation: fedi.metadata.generation,
        now,
    };
    let degraded = c.make(DEGRADED, true, reason, message);
    status.conditions.retain(|x| x.type_ != DEGRADED);
    status.conditions.push(degraded);
    if !status.conditions.iter().any(|x| x.type_ == READY) {
        status
            .conditions
            .insert(0, c.make(READY, false, reason, message));
    }
    status
}

fn component_status(o: &Observed) -> ComponentStatus {
    let spec_replicas = o.deployment.spec.replicas;
    let status = o.deployment.status.clone().unwrap_or_default();
    ComponentStatus {
        name: o.component.to_string(),
        ready: status.ready_replicas.unwrap_or(0),
        // Under an HPA the spec holds what the HPA chose.
        desired: spec_replicas.unwrap_or(1),
    }
}

/// The Deployment controller has seen the latest spec and every pod runs it.
pub fn rolled_out(d: &Deployment) -> bool {
    let Some(status) = &d.status else {
        return false;
    };
    let desired = d.spec.replicas.unwrap_or(1);
    status.observed_generation >= d.metadata.generation
        && status.updated_replicas.unwrap_or(0) >= desired
        && status.replicas.unwrap_or(0) == status.updated_replicas.unwrap_or(0)
        && status.available_replicas.unwrap_or(0) >= desired
}

struct Conditions<'a> {
    fedi: &'a FediInstance,
    generation: Option<i64>,
    now: Timestamp,
}

impl Conditions<'_> {
    /// A condition whose `lastTransitionTime` moves only when its status changes, as the
    /// Kubernetes API conventions ask.
    fn make(&self, type_: &str, status: bool, reason: &str, message: &str) -> Condition {
        let status = if status { "True" } else { "False" }.to_string();
        let last_transition_time = self
            .fedi
            .condition(type_)
            .filter(|c| c.status == status)
            .map(|c| c.last_transition_time.clone())
            .unwrap_or(Time(self.now));
        Condition {
            type_: type_.to_string(),
            status,
            reason: reason.to_string(),
            message: message.to_string(),
            observed_generation: self.generation,
            last_transition_time,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::fixtures::minimal;
    use serde_json::json;

    fn deployment(
        replicas: i32,
        ready: i32,
        updated: i32,
        generation: i64,
        observed: i64,
    ) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "d", "generation": generation},
            "spec": {"replicas": replicas, "selector": {}, "template": {}},
            "status": {"observedGeneration": observed, "replicas": updated, "updatedReplicas": updated,
                       "readyReplicas": ready, "availableReplicas": ready},
        }))
        .unwrap()
    }

    fn reason(s: &FediInstanceStatus, type_: &str) -> (String, String) {
        let c = s.conditions.iter().find(|c| c.type_ == type_).unwrap();
        (c.status.clone(), c.reason.clone())
    }

    #[test]
    fn ready_only_when_every_workload_is_rolled_out_and_ready() {
        let fedi = minimal();
        let ok = deployment(2, 2, 2, 3, 3);
        let cases = [
            (
                deployment(2, 2, 2, 3, 3),
                ("True", "Available"),
                ("False", "Complete"),
            ),
            (
                deployment(2, 1, 2, 3, 3),
                ("False", "ComponentsNotReady"),
                ("True", "RollingOut"),
            ),
            (
                deployment(2, 2, 2, 4, 3),
                ("False", "RollingOut"),
                ("True", "RollingOut"),
            ),
        ];
        for (api, ready, progressing) in cases {
            let observed = [
                Observed {
                    component: "api",
                    deployment: &api,
                },
                Observed {
                    component: "streamer",
                    deployment: &ok,
                },
            ];
            let s = desired(
                &fedi,
                &observed,
                "0.1.0",
                "img:0.1.0",
                &all_ready(),
                &Step::Done,
                Timestamp::UNIX_EPOCH,
            );
            assert_eq!(reason(&s, READY), (ready.0.into(), ready.1.into()));
            assert_eq!(
                reason(&s, PROGRESSING),
                (progressing.0.into(), progressing.1.into())
            );
            assert_eq!(s.version.unwrap().current.as_deref(), Some("0.1.0"));
            assert_eq!(s.observed_generation, Some(1));
        }
    }

    #[test]
    fn the_rollout_waits_for_the_migration_and_the_last_migrated_image_is_kept() {
        let mut fedi = minimal();
        let running = Migration::Running {
            job: "social-migrate-1".into(),
            image: "img:0.2.0".into(),
        };
        fedi.status = Some(desired(
            &fedi,
            &[],
            "0.1.0",
            "img:0.1.0",
            &all_ready(),
            &Step::Done,
            Timestamp::UNIX_EPOCH,
        ));
        let s = desired(
            &fedi,
            &[],
            "0.2.0",
            "img:0.2.0",
            &all_ready(),
            &Step::PreMigration(running),
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(reason(&s, READY), ("False".into(), "Migrating".into()));
        assert_eq!(reason(&s, MIGRATED), ("False".into(), "Migrating".into()));
        assert_eq!(s.migrated_image.as_deref(), Some("img:0.1.0"));
        let failed = Migration::Failed {
            job: "social-migrate-1".into(),
            message: "Job social-migrate-1 failed".into(),
        };
        let s = desired(
            &fedi,
            &[],
            "0.2.0",
            "img:0.2.0",
            &all_ready(),
            &Step::PreMigration(failed),
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(
            reason(&s, READY),
            ("False".into(), "MigrationFailed".into())
        );
        assert_eq!(s.migrated_image.as_deref(), Some("img:0.1.0"));
    }

    #[test]
    fn a_failed_reindex_is_reported_without_holding_anything_and_the_indexed_image_is_kept() {
        let mut fedi = minimal();
        let base = desired(
            &fedi,
            &[],
            "0.1.0",
            "img:0.1.0",
            &all_ready(),
            &Step::Done,
            Timestamp::UNIX_EPOCH,
        );
        let mut s = base.clone();
        search_indexed(
            &mut s,
            &fedi,
            &Reindex::Done {
                job: Some("j1".into()),
                image: "img:0.1.0".into(),
            },
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(s.search_indexed_image.as_deref(), Some("img:0.1.0"));
        assert_eq!(
            reason(&s, SEARCH_INDEXED),
            ("True".into(), "Indexed".into())
        );
        assert!(fedi.condition(SEARCH_INDEXED).is_none());
        fedi.status = Some(s);
        let base = desired(
            &fedi,
            &[],
            "0.2.0",
            "img:0.2.0",
            &all_ready(),
            &Step::Done,
            Timestamp::UNIX_EPOCH,
        );
        let mut s = base.clone();
        search_indexed(
            &mut s,
            &fedi,
            &Reindex::Failed {
                job: "j2".into(),
                message: "Job j2 failed".into(),
                first_report: true,
            },
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(
            reason(&s, SEARCH_INDEXED),
            ("False".into(), "ReindexFailed".into())
        );
        // The last image indexed stays; the rollout's conditions are untouched.
        assert_eq!(s.search_indexed_image.as_deref(), Some("img:0.1.0"));
        assert_eq!(reason(&s, READY), reason(&base, READY));
        assert_eq!(
            s.conditions
                .iter()
                .filter(|c| c.type_ == SEARCH_INDEXED)
                .count(),
            1
        );
        let mut s = base;
        search_indexed(
            &mut s,
            &fedi,
            &Reindex::NotConfigured,
            Timestamp::UNIX_EPOCH,
        );
        assert!(
            s.search_indexed_image.is_none()
                && s.conditions.iter().all(|c| c.type_ != SEARCH_INDEXED)
        );
    }

    fn all_ready() -> Report {
        Report::uniform(crate::dependencies::Readiness::ready("Ready", "ok"))
    }

    #[test]
    fn a_dependency_not_ready_holds_the_rollout_and_says_which() {
        let fedi = minimal();
        let mut report = all_ready();
        report.database =
            crate::dependencies::Readiness::waiting("CloudNativePGNotInstalled", "install it");
        let s = desired(
            &fedi,
            &[],
            "0.1.0",
            "img:0.1.0",
            &report,
            &Step::WaitingForDependencies,
            Timestamp::UNIX_EPOCH,
        );
        let ready = s.conditions.iter().find(|c| c.type_ == READY).unwrap();
        assert_eq!(ready.reason, "WaitingForDependencies");
        assert!(
            ready
                .message
                .contains("DatabaseReady (CloudNativePGNotInstalled)"),
            "{}",
            ready.message
        );
        assert_eq!(
            reason(&s, "DatabaseReady"),
            ("False".into(), "CloudNativePGNotInstalled".into())
        );
        for t in ["RedisReady", "StorageReady", "SearchReady"] {
            assert_eq!(reason(&s, t).0, "True", "{t}");
        }
        assert_eq!(s.version.unwrap().current, None, "nothing installed yet");
    }

    #[test]
    fn a_suspended_instance_says_so() {
        let mut fedi = minimal();
        fedi.spec.suspend = true;
        let s = desired(
            &fedi,
            &[],
            "0.1.0",
            "img:0.1.0",
            &all_ready(),
            &Step::Suspended,
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(reason(&s, READY), ("False".into(), "Suspended".into()));
    }

    #[test]
    fn an_unchanged_status_is_identical_so_nothing_is_written() {
        let mut fedi = minimal();
        let d = deployment(1, 1, 1, 1, 1);
        let observed = [Observed {
            component: "api",
            deployment: &d,
        }];
        let first = desired(
            &fedi,
            &observed,
            "0.1.0",
            "img:0.1.0",
            &all_ready(),
            &Step::Done,
            Timestamp::UNIX_EPOCH,
        );
        fedi.status = Some(first.clone());
        let later = Timestamp::from_second(1_000_000).unwrap();
        assert_eq!(
            desired(
                &fedi,
                &observed,
                "0.1.0",
                "img:0.1.0",
                &all_ready(),
                &Step::Done,
                later
            ),
            first
        );
    }

    #[test]
    fn a_failure_is_degraded_and_keeps_the_rest() {
        let mut fedi = minimal();
        let d = deployment(1, 1, 1, 1, 1);
        fedi.status = Some(desired(
            &fedi,
            &[Observed {
                component: "api",
                deployment: &d,
            }],
            "0.1.0",
            "img:0.1.0",
            &all_ready(),
            &Step::Done,
            Timestamp::UNIX_EPOCH,
        ));
        let s = failed(
            &fedi,
            "ApplyFailed",
            "Deployment/social-api: forbidden",
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(reason(&s, DEGRADED), ("True".into(), "ApplyFailed".into()));
        assert_eq!(reason(&s, READY), ("True".into(), "Available".into()));
    }
}
