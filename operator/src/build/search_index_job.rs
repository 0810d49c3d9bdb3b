//! The search reindex Job: `fedi-server admin search migrate` once per server image, after
//! its pre-deployment migrations. The server compares its index mappings' version with the
//! indexes' and reindexes only on a change, so an image whose mappings did not change costs
//! one request. Built like the migration Jobs (`migration_job::one_shot`), on the primary.

use k8s_openapi::api::batch::v1::Job;

use super::Ctx;
use super::migration_job::{self, OneShot};

/// Label marking the reindex Job.
pub const STEP_LABEL: &str = "fedi.dev/search-index";
pub const CONTAINER: &str = "search-migrate";

/// A Job name per change of image (`from` -> `image`), as for the migrations.
pub fn name(instance: &str, from: Option<&str>, image: &str) -> String {
    format!(
        "{instance}-search-migrate-{}",
        migration_job::step_hash(from, image)
    )
}

pub(crate) fn build(ctx: &Ctx, config_checksum: &str, from: Option<&str>) -> Job {
    let mut job = migration_job::one_shot(
        ctx,
        config_checksum,
        OneShot {
            container: CONTAINER,
            args: ["admin", "search", "migrate"].map(String::from).to_vec(),
            label: (STEP_LABEL, "reindex"),
            name: &|image| name(&ctx.name, from, image),
        },
    );
    if let Some(spec) = job.spec.as_mut() {
        // The Job's own back-off (10 s, 20 s, 40 s) covers a search cluster restarting; the
        // operator retries a failed Job later (`search_index::RETRY_AFTER`).
        spec.backoff_limit = Some(3);
        // A reindex of a large instance takes hours; the migrations' hour is too short.
        spec.active_deadline_seconds = Some(12 * 3600);
        if let Some(pod) = spec.template.spec.as_mut() {
            for c in &mut pod.containers {
                on_primary(c);
            }
        }
    }
    job
}

/// Reads go to the primary (`FEDI_DATABASE_MIGRATION_URL`, never the pooler), as for the
/// migrations: a reindex scans whole tables, which transaction pooling would cut short.
fn on_primary(c: &mut k8s_openapi::api::core::v1::Container) {
    let Some(env) = c.env.as_mut() else {
        return;
    };
    let primary = env
        .iter()
        .find(|e| e.name == fedi_config::vars::DATABASE_MIGRATION_URL)
        .and_then(|e| e.value.clone());
    if let Some(primary) = primary {
        for e in env.iter_mut() {
            if e.name == fedi_config::vars::DATABASE_URL {
                e.value = Some(primary.clone());
                e.value_from = None;
            }
        }
        // No replica: a lagging standby would index stale rows.
        env.retain(|e| e.name != fedi_config::vars::DATABASE_REPLICA_URL);
    } else {
        env.retain(|e| e.name != fedi_config::vars::DATABASE_REPLICA_URL);
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::super::{Ctx, Defaults};
    use super::*;
    use serde_json::json;

    fn env(job: &Job) -> Vec<(String, Option<String>, bool)> {
        let pod = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        pod.containers[0]
            .env
            .iter()
            .flatten()
            .map(|e| (e.name.clone(), e.value.clone(), e.value_from.is_some()))
            .collect()
    }

    #[test]
    fn the_job_runs_search_migrate_on_the_primary_with_the_search_credentials() {
        let defaults = Defaults::default();
        let fedi = instance(json!({
            "domain": "social.example",
            "database": {"managed": {"instances": 2}},
            "search": {"external": {"url": "https://search.example:9200",
                "credentialsSecretRef": {"name": "search-creds"}}},
        }));
        let job = build(&Ctx::new(&fedi, &defaults).unwrap(), "sum", None);
        let pod = job.spec.as_ref().unwrap().template.spec.clone().unwrap();
        let c = &pod.containers[0];
        assert_eq!(
            c.args.as_deref().unwrap(),
            ["admin", "search", "migrate"].map(String::from)
        );
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        assert!(c.readiness_probe.is_none() && c.ports.is_none());
        let env = env(&job);
        let get = |n: &str| env.iter().find(|e| e.0 == n).cloned();
        let url = get("FEDI_DATABASE_URL").unwrap().1.unwrap();
        assert!(url.contains("social-db-rw."), "{url}");
        assert!(get("FEDI_DATABASE_REPLICA_URL").is_none());
        // The search URL comes with the rest of the configuration (the ConfigMap).
        assert!(c.env_from.is_some());
        // Credentials through the Secret only.
        for secret in [
            "FEDI_SEARCH_USERNAME",
            "FEDI_SEARCH_PASSWORD",
            "FEDI_DATABASE_PASSWORD",
        ] {
            let e = get(secret).unwrap_or_else(|| panic!("{secret}"));
            assert!(e.1.is_none() && e.2, "{secret}");
        }
        let image = c.image.clone().unwrap();
        assert_eq!(
            job.metadata.name.clone().unwrap(),
            name("social", None, &image)
        );
        assert_eq!(job.metadata.labels.as_ref().unwrap()[STEP_LABEL], "reindex");
        // Another origin, another Job: going back to an old image indexes again.
        assert_ne!(
            name("social", Some("a"), &image),
            name("social", None, &image)
        );
        assert!(job.spec.unwrap().pod_failure_policy.is_none());
    }
}
