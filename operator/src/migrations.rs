//! The migration steps of the upgrade pipeline: a Job per phase (`build::migration_job`),
//! pre before the server's Deployments roll to an image, post once every pod runs it. The
//! outcome is kept in the status (`migratedImage`, `postMigratedImage`), so a finished Job
//! that expired is not run again, and a failed one leaves the running Deployments untouched.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{DynamicObject, ListParams};
use kube::{Api, Client};
use serde_json::Value;

pub use crate::build::migration_job::Phase;
use crate::build::{self, Defaults};
use crate::cache::ChildCache;
use crate::crd::FediInstance;
use crate::{Error, Result, apply};

/// Where one migration step of the wanted image stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Migration {
    /// The schema is ready for `image` (this phase of it).
    Done {
        image: String,
    },
    Running {
        job: String,
        image: String,
    },
    Failed {
        job: String,
        message: String,
    },
    /// `fedi-server migrate` refused: the database's schema is newer than the image.
    Refused {
        job: String,
        message: String,
    },
}

impl Migration {
    pub fn done(&self) -> bool {
        matches!(self, Migration::Done { .. })
    }
}

/// Runs (or follows) the Job of `phase` for the image the spec asks for, coming from
/// `from`. Returns its outcome, and the applied Job when it was just created (for an event).
pub async fn ensure(
    client: &Client,
    fedi: &FediInstance,
    namespace: &str,
    defaults: &Defaults,
    phase: Phase,
    from: Option<&str>,
) -> Result<(Migration, Option<apply::Applied>)> {
    let (job, image) = build::migration(fedi, defaults, phase, from)?;
    let name = job.name();
    let (live, created) = follow(client, namespace, job).await?;
    let mut state = verdict(&live, name.clone(), image, phase);
    // The end of the failed pod's log, when the kubelet recorded it.
    if let Migration::Failed { message, .. } | Migration::Refused { message, .. } = &mut state
        && let Some(log) = last_log_lines(client, namespace, &name, "migrate").await?
    {
        message.push_str(&format!(" Last log lines:\n{log}"));
    }
    Ok((state, created))
}

/// The live Job of a step, created if missing; and the applied Job when it was just
/// created. A Job is immutable, and its step is named by the image: an existing one is
/// followed as it is, even if the configuration (its pod's checksum annotation) changed
/// since.
pub(crate) async fn follow(
    client: &Client,
    namespace: &str,
    job: build::Child,
) -> Result<(DynamicObject, Option<apply::Applied>)> {
    let jobs: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &job.resource);
    Ok(
        match jobs.get_opt(&job.name()).await.map_err(Error::Kube)? {
            Some(live) => (live, None),
            None => {
                let applied = apply::apply(client, &ChildCache::default(), namespace, job).await?;
                (applied.live.clone(), Some(applied))
            }
        },
    )
}

/// The condition of `type_` that holds on a Job (`Complete`, `Failed`).
pub(crate) fn job_condition<'a>(job: &'a DynamicObject, type_: &str) -> Option<&'a Value> {
    job.data["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_ && c["status"] == "True")
}

/// A Job's outcome from its status conditions (`Complete`, `Failed`).
fn verdict(job: &DynamicObject, name: String, image: String, phase: Phase) -> Migration {
    let holds = |t: &str| job_condition(job, t);
    if holds("Complete").is_some() {
        return Migration::Done { image };
    }
    if let Some(failed) = holds("Failed") {
        let reason = failed["reason"].as_str().unwrap_or("Failed");
        let detail = failed["message"].as_str().unwrap_or("");
        // Only the rule for `migrate`'s "schema newer" exit code fails the Job by policy.
        if reason == "PodFailurePolicy" {
            return Migration::Refused {
                message: format!(
                    "Job {name} refused to migrate: the database's schema is newer than {image} \
                     (a later version migrated it). Downgrading past a schema is not \
                     possible; set spec.version back to the version that runs."
                ),
                job: name,
            };
        }
        let serving = match phase {
            Phase::Pre => "the running version keeps serving",
            Phase::Post => "the new version serves; its post-deployment migrations are pending",
        };
        let message = format!(
            "Job {name} ({} migrations for {image}) failed ({reason}{}); {serving}. Fix the \
             cause, then delete the Job to retry.",
            phase.as_str(),
            if detail.is_empty() {
                String::new()
            } else {
                format!(": {detail}")
            }
        );
        return Migration::Failed { job: name, message };
    }
    Migration::Running { job: name, image }
}

/// Longest quote of a log kept in a condition (the kubelet keeps 2 KiB at most anyway).
const LOG_QUOTE: usize = 1024;

/// The termination message of the Job's last failed pod (its last log lines, through
/// `FallbackToLogsOnError`), trimmed to its end.
pub(crate) async fn last_log_lines(
    client: &Client,
    namespace: &str,
    job: &str,
    container: &str,
) -> Result<Option<String>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = pods
        .list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}")))
        .await
        .map_err(Error::Kube)?;
    let mut messages: Vec<(Option<String>, String)> = list
        .items
        .into_iter()
        .filter_map(|p| {
            let status = p.status?;
            let terminated = status
                .container_statuses?
                .into_iter()
                .find(|c| c.name == container)?
                .state?
                .terminated?;
            let message = terminated.message.filter(|m| !m.trim().is_empty())?;
            let at = terminated.finished_at.map(|t| t.0.to_string());
            Some((at, message))
        })
        .collect();
    messages.sort();
    Ok(messages.pop().map(|(_, m)| tail(m.trim_end(), LOG_QUOTE)))
}

/// The end of `text`, at most `max` bytes, starting on a line (or char) boundary.
fn tail(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let cut = &text[start..];
    match cut.find('\n') {
        Some(i) => cut[i + 1..].to_string(),
        None => cut.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(status: Value) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "social-migrate-pre-abc"},
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn the_job_status_decides() {
        let v = |status| {
            verdict(
                &job(status),
                "social-migrate-pre-abc".into(),
                "img:1".into(),
                Phase::Pre,
            )
        };
        assert!(v(json!({})).eq(&Migration::Running {
            job: "social-migrate-pre-abc".into(),
            image: "img:1".into()
        }));
        assert!(v(json!({"conditions": [{"type": "Complete", "status": "True"}]})).done());
        let failed = v(json!({"conditions": [{"type": "Failed", "status": "True",
            "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]}));
        let Migration::Failed { message, job } = failed else {
            panic!("{failed:?}")
        };
        assert_eq!(job, "social-migrate-pre-abc");
        assert!(message.contains("BackoffLimitExceeded"), "{message}");
        assert!(message.contains("keeps serving"), "{message}");
        let refused = v(json!({"conditions": [{"type": "Failed", "status": "True",
            "reason": "PodFailurePolicy", "message": "Container migrate for pod x failed with exit code 4 matching FailJob rule at index 0"}]}));
        let Migration::Refused { message, .. } = refused else {
            panic!("{refused:?}")
        };
        assert!(message.contains("schema is newer than img:1"), "{message}");
        // A condition that does not hold is not an outcome.
        assert!(!v(json!({"conditions": [{"type": "Failed", "status": "False"}]})).done());
    }

    #[test]
    fn a_long_log_is_quoted_from_its_end_on_a_line_boundary() {
        let log: String = (0..200).map(|i| format!("line {i}\n")).collect();
        let t = tail(log.trim_end(), 100);
        assert!(
            t.len() <= 100 && t.starts_with("line ") && t.ends_with("line 199"),
            "{t}"
        );
        assert_eq!(tail("short", 100), "short");
        assert_eq!(tail("ééééé", 3), "é");
    }
}
