//! The schema migration Job: `fedi-server migrate` against the primary (never the pooler:
//! the server's `FEDI_DATABASE_MIGRATION_URL`), once per server image, before the server's
//! Deployments may roll to that image. Its pod is the api pod's, minus what only a
//! long-running server needs (probes, ports, spreading), so that it sees exactly the
//! configuration the new version will run with.

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use sha2::{Digest, Sha256};

use super::Ctx;
use super::deployments::{self, Workload};

/// A Job name per image: a new version gets a new Job (Jobs are immutable), a re-applied
/// one finds its own.
pub fn name(instance: &str, image: &str) -> String {
    let hash = Sha256::digest(image.as_bytes());
    let short: String = hash.iter().take(5).map(|b| format!("{b:02x}")).collect();
    format!("{instance}-migrate-{short}")
}

pub(crate) fn build(ctx: &Ctx, config_checksum: &str) -> Job {
    let api = Workload::all(ctx.fedi)
        .into_iter()
        .find(|w| w.component == "api")
        .expect("every instance has an api workload");
    let deployment = deployments::build(ctx, &api, config_checksum);
    let mut template = deployment.spec.template;
    let image = image_of(&template);
    if let Some(pod) = template.spec.as_mut() {
        pod.restart_policy = Some("Never".into());
        pod.topology_spread_constraints = None;
        for c in &mut pod.containers {
            c.name = "migrate".into();
            c.args = Some(vec!["migrate".into()]);
            c.ports = None;
            c.startup_probe = None;
            c.readiness_probe = None;
            c.liveness_probe = None;
        }
    }
    let mut labels = ctx.labels(Some("migrate"));
    labels.insert("app.kubernetes.io/version".into(), image_tag(&image));
    if let Some(meta) = template.metadata.as_mut() {
        meta.labels = Some(labels.clone());
    }
    let mut metadata = ctx.metadata(name(&ctx.name, &image), Some("migrate"));
    metadata.labels = Some(labels);
    Job {
        metadata,
        spec: Some(JobSpec {
            template,
            // A migration that failed twice needs a person, not a loop.
            backoff_limit: Some(2),
            active_deadline_seconds: Some(3600),
            // Kept a week for its logs; the status remembers the outcome after that.
            ttl_seconds_after_finished: Some(7 * 24 * 3600),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn image_of(template: &k8s_openapi::api::core::v1::PodTemplateSpec) -> String {
    template
        .spec
        .as_ref()
        .and_then(|p| p.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default()
}

fn image_tag(image: &str) -> String {
    image
        .rsplit_once(':')
        .map(|(_, t)| t.to_string())
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(63)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::super::{Ctx, Defaults};
    use super::*;
    use serde_json::json;

    #[test]
    fn the_job_runs_migrate_with_the_api_pod_and_is_named_by_image() {
        let defaults = Defaults::default();
        let fedi = minimal();
        let job = build(&Ctx::new(&fedi, &defaults).unwrap(), "sum");
        let spec = job.spec.unwrap();
        let pod = spec.template.spec.unwrap();
        let c = &pod.containers[0];
        assert_eq!(c.args.as_deref(), Some(&["migrate".to_string()][..]));
        assert!(c.readiness_probe.is_none() && c.ports.is_none());
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        // Same configuration as the server: the ConfigMap and the Secret references.
        assert!(c.env_from.is_some());
        assert!(
            c.env
                .iter()
                .flatten()
                .any(|e| e.name == "FEDI_DATABASE_PASSWORD"
                    || e.name == "FEDI_DATABASE_MIGRATION_URL")
        );
        assert_eq!(
            c.security_context
                .as_ref()
                .unwrap()
                .read_only_root_filesystem,
            Some(true)
        );
        let image = c.image.clone().unwrap();
        assert_eq!(job.metadata.name.unwrap(), name("social", &image));

        let newer = instance(json!({"domain": "social.example", "version": "9.9.9"}));
        let job2 = build(&Ctx::new(&newer, &defaults).unwrap(), "sum");
        assert_ne!(
            job2.metadata.name,
            Some(name("social", &image)),
            "a new image, a new Job"
        );
        let labels = job2.metadata.labels.unwrap();
        assert_eq!(labels["app.kubernetes.io/version"], "9.9.9");
    }
}
