//! The search reindex step: once an image's pre-deployment migrations are done, a Job runs
//! `fedi-server admin search migrate` for it (`build::search_index_job`). It never holds the
//! rollout back: until the indexes match, the server searches with PostgreSQL. A failed Job
//! is reported and run again after `RETRY_AFTER`; `status.searchIndexedImage` remembers the
//! last image indexed and the index prefix it indexed under (`indexed_key`), so an expired
//! Job is not run again, and a new prefix (`spec.search.indexPrefix`, or a new default) gets
//! its indexes filled without waiting for the next image.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::api::{ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PropagationPolicy};
use kube::{Api, Client, ResourceExt};

use crate::build::{self, Defaults, search_index_job};
use crate::crd::FediInstance;
use crate::migrations::{follow, job_condition, last_log_lines};
use crate::{Result, apply};

/// How long a failed reindex Job stays (for its logs and the report) before it runs again.
pub const RETRY_AFTER: Duration = Duration::from_secs(10 * 60);

/// Where the reindex for the wanted image stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reindex {
    /// Search is not configured: nothing to index.
    NotConfigured,
    /// The pre-deployment migrations of the image are not done yet.
    Waiting,
    Done {
        job: Option<String>,
        image: String,
    },
    Running {
        job: String,
        image: String,
    },
    Failed {
        job: String,
        message: String,
        /// True for the one reconcile that marked the Job as reported: the failure's Event
        /// goes out then, however stale the cached instance the next reconciles read.
        first_report: bool,
    },
}

/// On a failed reindex Job once its failure has been announced, so that it is announced once.
const REPORTED_ANNOTATION: &str = "fedi.dev/failure-reported";

/// Runs (or follows) the reindex Job for the image the spec asks for, once `migrated` (its
/// pre-deployment migrations are done). Returns its outcome and the Job when just created.
pub async fn ensure(
    client: &Client,
    fedi: &FediInstance,
    namespace: &str,
    defaults: &Defaults,
    migrated: bool,
) -> Result<(Reindex, Option<apply::Applied>)> {
    if fedi.spec.search.is_none() {
        return Ok((Reindex::NotConfigured, None));
    }
    let prefix = index_prefix(fedi);
    let wanted = indexed_key(&build::image(fedi, defaults), &prefix);
    let indexed = fedi
        .status
        .as_ref()
        .and_then(|s| s.search_indexed_image.clone());
    if indexed.as_deref() == Some(wanted.as_str()) {
        return Ok((
            Reindex::Done {
                job: None,
                image: wanted,
            },
            None,
        ));
    }
    if !migrated {
        return Ok((Reindex::Waiting, None));
    }
    let (job, image) = build::search_index(fedi, defaults, indexed.as_deref())?;
    let image = indexed_key(&image, &prefix);
    let name = job.name();
    let resource = job.resource.clone();
    let (live, created) = follow(client, namespace, job).await?;
    let mut state = verdict(&live, name.clone(), image);
    if let Reindex::Failed {
        message,
        first_report,
        ..
    } = &mut state
    {
        *first_report = claim_report(client, namespace, &resource, &live).await;
        if let Some(log) =
            last_log_lines(client, namespace, &name, search_index_job::CONTAINER).await?
        {
            message.push_str(&format!(" Last log lines:\n{log}"));
        }
        if failed_long_ago(&live, Timestamp::now()) {
            // Deleted with its pods; the next reconcile runs a new one.
            let jobs: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), namespace, &resource);
            let params = DeleteParams {
                propagation_policy: Some(PropagationPolicy::Background),
                ..Default::default()
            };
            // Best effort: without the right to delete Jobs, the failure stays reported and
            // deleting the Job by hand retries.
            if let Err(e) = jobs.delete(&name, &params).await {
                tracing::warn!(job = name, error = %e, "cannot delete the failed reindex Job");
            }
        }
    }
    Ok((state, created))
}

/// Marks the failed Job as reported; true when this call did it. The mark lives on the Job,
/// read fresh from the API server, because the condition in the instance's status can be
/// stale when reconciles follow each other closely (the cache lags the status write).
async fn claim_report(
    client: &Client,
    namespace: &str,
    resource: &ApiResource,
    live: &DynamicObject,
) -> bool {
    if live.annotations().contains_key(REPORTED_ANNOTATION) {
        return false;
    }
    let jobs: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, resource);
    let mark = serde_json::json!({"metadata": {
        "annotations": {REPORTED_ANNOTATION: "true"},
        // The write fails if another reconcile marked it first.
        "resourceVersion": live.resource_version(),
    }});
    let name = live.name_any();
    match jobs
        .patch(&name, &PatchParams::default(), &Patch::Merge(&mark))
        .await
    {
        Ok(_) => true,
        Err(e) => {
            tracing::debug!(job = name, error = %e, "reindex failure already reported or not markable");
            false
        }
    }
}

/// What `status.searchIndexedImage` records: the image and the prefix of the indexes it
/// filled. The server reads `<prefix>-statuses`, ...: indexes under a new prefix start empty,
/// so a prefix change needs the Job as much as a mapping change does. A status written
/// before the prefix was recorded (the image alone) differs too, which reindexes once.
pub fn indexed_key(image: &str, prefix: &str) -> String {
    format!("{image} (index prefix {prefix})")
}

/// `FEDI_SEARCH_PREFIX` as `build::env` sets it: the spec's, else `<namespace>_<name>`.
fn index_prefix(fedi: &FediInstance) -> String {
    fedi.spec
        .search
        .as_ref()
        .and_then(|s| s.index_prefix.clone())
        .unwrap_or_else(|| {
            format!(
                "{}_{}",
                fedi.metadata.namespace.as_deref().unwrap_or_default(),
                fedi.metadata.name.as_deref().unwrap_or_default()
            )
        })
}

fn verdict(job: &DynamicObject, name: String, image: String) -> Reindex {
    if job_condition(job, "Complete").is_some() {
        return Reindex::Done {
            job: Some(name),
            image,
        };
    }
    if let Some(failed) = job_condition(job, "Failed") {
        let reason = failed["reason"].as_str().unwrap_or("Failed");
        let message = format!(
            "Job {name} (fedi-server admin search migrate for {image}) failed ({reason}); \
             search uses PostgreSQL until the indexes match. It runs again {} minutes after \
             failing; deleting the Job retries now.",
            RETRY_AFTER.as_secs() / 60
        );
        return Reindex::Failed {
            job: name,
            message,
            first_report: false,
        };
    }
    Reindex::Running { job: name, image }
}

/// Whether the Job failed more than `RETRY_AFTER` ago.
fn failed_long_ago(job: &DynamicObject, now: Timestamp) -> bool {
    job_condition(job, "Failed")
        .and_then(|c| c["lastTransitionTime"].as_str())
        .and_then(|t| t.parse::<Timestamp>().ok())
        .is_some_and(|at| now.duration_since(at).as_secs() >= RETRY_AFTER.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn job(status: Value) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "social-search-migrate-abc"},
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn the_job_status_decides_and_a_failure_is_retried_after_a_while() {
        let v = |status| verdict(&job(status), "j".into(), "img:1".into());
        assert_eq!(
            v(json!({})),
            Reindex::Running {
                job: "j".into(),
                image: "img:1".into()
            }
        );
        assert_eq!(
            v(json!({"conditions": [{"type": "Complete", "status": "True"}]})),
            Reindex::Done {
                job: Some("j".into()),
                image: "img:1".into()
            }
        );
        let failed = json!({"conditions": [{"type": "Failed", "status": "True",
            "reason": "BackoffLimitExceeded", "lastTransitionTime": "2026-01-01T00:00:00Z"}]});
        let Reindex::Failed { message, .. } = v(failed.clone()) else {
            panic!()
        };
        assert!(message.contains("BackoffLimitExceeded") && message.contains("PostgreSQL"));
        let at: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let soon = at + Duration::from_secs(60);
        let later = at + RETRY_AFTER;
        assert!(!failed_long_ago(&job(failed.clone()), soon));
        assert!(failed_long_ago(&job(failed), later));
        assert!(!failed_long_ago(&job(json!({})), later));
    }

    /// The prefix recorded is the one the pods get, with and without `indexPrefix`, and a
    /// change of either the image or the prefix asks for a reindex.
    #[test]
    fn the_indexed_key_follows_the_prefix_the_pods_get() {
        use crate::build::fixtures::instance;
        let with = |search: Value| instance(json!({"domain": "social.example", "search": search}));
        let external = json!({"external": {"url": "http://search:9200"}});
        let mut named = external.clone();
        named["indexPrefix"] = json!("shared.social");
        for (fedi, want) in [
            (with(external), "tenant-a_social"),
            (with(named), "shared.social"),
        ] {
            let children = build::children(&fedi, &Defaults::default()).unwrap();
            let config = children
                .iter()
                .find(|c| c.resource.kind == "ConfigMap")
                .expect("a ConfigMap");
            assert_eq!(config.object.data["data"]["FEDI_SEARCH_PREFIX"], want);
            assert_eq!(index_prefix(&fedi), want);
        }
        let key = indexed_key("img:1", "tenant-a_social");
        assert_ne!(key, indexed_key("img:1", "shared.social"));
        assert_ne!(key, indexed_key("img:2", "tenant-a_social"));
        // A status from before the prefix was recorded does not pass for indexed.
        assert_ne!(key, "img:1");
    }
}
