//! The migration stage: before the server's Deployments roll to an image, its schema
//! migrations run to completion in a Job (`build::migration_job`). The outcome is kept in
//! `status.migratedImage`, so a finished Job that expired is not run again, and a failed
//! one leaves the running Deployments untouched.

use kube::api::DynamicObject;
use serde_json::Value;

use crate::Result;
use crate::apply;
use crate::build::{self, Defaults};
use crate::crd::FediInstance;

/// Where the migrations of the wanted image stand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Migration {
    /// The schema is ready for `image`.
    Done {
        image: String,
    },
    Running {
        job: String,
        image: String,
    },
    Failed {
        job: String,
        image: String,
        message: String,
    },
}

impl Migration {
    pub fn done(&self) -> bool {
        matches!(self, Migration::Done { .. })
    }
}

/// Runs (or follows) the migration Job of the image the spec asks for. Returns the applied
/// Job's outcome; `applied` receives the Job when it was created, for an event.
pub async fn ensure(
    client: &kube::Client,
    fedi: &FediInstance,
    namespace: &str,
    defaults: &Defaults,
) -> Result<(Migration, Option<apply::Applied>)> {
    let (job, image) = build::migration(fedi, defaults)?;
    let migrated = fedi
        .status
        .as_ref()
        .and_then(|s| s.migrated_image.as_deref());
    if migrated == Some(image.as_str()) {
        return Ok((Migration::Done { image }, None));
    }
    let name = job.name();
    let applied = apply::apply(client, namespace, job).await?;
    let state = verdict(&applied.live, name, image);
    Ok((state, Some(applied)))
}

/// A Job's outcome from its status conditions (`Complete`, `Failed`).
fn verdict(job: &DynamicObject, name: String, image: String) -> Migration {
    let conditions = job.data["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let holds = |t: &str| -> Option<&Value> {
        conditions
            .iter()
            .find(|c| c["type"] == t && c["status"] == "True")
    };
    if holds("Complete").is_some() {
        return Migration::Done { image };
    }
    if let Some(failed) = holds("Failed") {
        let reason = failed["reason"].as_str().unwrap_or("Failed");
        let detail = failed["message"].as_str().unwrap_or("");
        let message = format!(
            "Job {name} failed ({reason}{}); the running version keeps serving. Its log: \
             kubectl logs job/{name}. Fix the cause, then delete the Job to retry.",
            if detail.is_empty() {
                String::new()
            } else {
                format!(": {detail}")
            }
        );
        return Migration::Failed {
            job: name,
            image,
            message,
        };
    }
    Migration::Running { job: name, image }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(status: Value) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "social-migrate-abc"},
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn the_job_status_decides() {
        let v = |status| verdict(&job(status), "social-migrate-abc".into(), "img:1".into());
        assert!(v(json!({})).eq(&Migration::Running {
            job: "social-migrate-abc".into(),
            image: "img:1".into()
        }));
        assert!(v(json!({"conditions": [{"type": "Complete", "status": "True"}]})).done());
        let failed = v(json!({"conditions": [{"type": "Failed", "status": "True",
            "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]}));
        let Migration::Failed { message, .. } = failed else {
            panic!("{failed:?}")
        };
        assert!(message.contains("BackoffLimitExceeded"), "{message}");
        assert!(
            message.contains("kubectl logs job/social-migrate-abc"),
            "{message}"
        );
        // A condition that does not hold is not an outcome.
        assert!(!v(json!({"conditions": [{"type": "Failed", "status": "False"}]})).done());
    }
}
