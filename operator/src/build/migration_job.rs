//! The schema migration Jobs: `fedi-server migrate --pre` before the server's Deployments
//! roll to an image, `--post` once every pod runs it; against the primary (never the
//! pooler: the server's `FEDI_DATABASE_MIGRATION_URL`). Its pod is the api pod's, minus what
//! only a long-running server needs (probes, ports, spreading), so that it sees exactly the
//! configuration the new version will run with.

use k8s_openapi::api::batch::v1::{
    Job, JobSpec, PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement, PodFailurePolicyRule,
};
use sha2::{Digest, Sha256};

use super::Ctx;
use super::deployments::{self, Workload};

/// Label naming the phase (`pre`, `post`) of a migration Job.
pub const PHASE_LABEL: &str = "fedi.dev/migration-phase";
/// `fedi-server migrate`'s exit code for a database migrated by a later release.
pub const EXIT_SCHEMA_NEWER: i32 = 4;

/// The two phases of a version's migrations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Pre,
    Post,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pre => "pre",
            Phase::Post => "post",
        }
    }
}

/// A Job name per phase and change of image (`from` -> `image`): a new step gets a new Job
/// (Jobs are immutable), a re-applied one finds its own, and going back to an image migrated
/// long ago runs again instead of finding that old, completed Job.
pub fn name(instance: &str, phase: Phase, from: Option<&str>, image: &str) -> String {
    format!(
        "{instance}-migrate-{}-{}",
        phase.as_str(),
        step_hash(from, image)
    )
}

pub(crate) fn build(ctx: &Ctx, config_checksum: &str, phase: Phase, from: Option<&str>) -> Job {
    let mut job = one_shot(
        ctx,
        config_checksum,
        OneShot {
            container: "migrate",
            args: vec!["migrate".into(), format!("--{}", phase.as_str())],
            label: (PHASE_LABEL, phase.as_str()),
            name: &|image| name(&ctx.name, phase, from, image),
        },
    );
    if let Some(spec) = job.spec.as_mut() {
        // Retries with the Job's exponential back-off (10 s, 20 s): a lock timeout or
        // a database restart passes; a migration that failed three times needs a person.
        spec.backoff_limit = Some(2);
        // A refused downgrade fails at once: retrying cannot change the schema's age.
        spec.pod_failure_policy = Some(PodFailurePolicy {
            rules: vec![PodFailurePolicyRule {
                action: "FailJob".into(),
                on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                    container_name: Some("migrate".into()),
                    operator: "In".into(),
                    values: vec![EXIT_SCHEMA_NEWER],
                }),
                on_pod_conditions: None,
            }],
        });
    }
    job
}

/// What differs between the one-shot Jobs of the upgrade pipeline (migrations, search
/// reindex): the command, and the name and label of the step.
pub(crate) struct OneShot<'a> {
    pub container: &'static str,
    pub args: Vec<String>,
    /// A label saying which step the Job is (key, value).
    pub label: (&'static str, &'a str),
    /// The Job's name, from the image it runs.
    pub name: &'a dyn Fn(&str) -> String,
}

/// A Job running `fedi-server <args>` once in the api pod, minus what only a long-running
/// server needs.
pub(crate) fn one_shot(ctx: &Ctx, config_checksum: &str, step: OneShot) -> Job {
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
            c.name = step.container.into();
            c.args = Some(step.args.clone());
            c.ports = None;
            c.startup_probe = None;
            c.readiness_probe = None;
            c.liveness_probe = None;
            // The end of the log becomes the termination message, which the operator quotes
            // in its condition without needing access to pod logs.
            c.termination_message_policy = Some("FallbackToLogsOnError".into());
        }
    }
    let mut labels = ctx.labels(Some(step.container));
    labels.insert("app.kubernetes.io/version".into(), image_tag(&image));
    labels.insert(step.label.0.into(), step.label.1.into());
    if let Some(meta) = template.metadata.as_mut() {
        meta.labels = Some(labels.clone());
    }
    let mut metadata = ctx.metadata((step.name)(&image), Some(step.container));
    metadata.labels = Some(labels);
    Job {
        metadata,
        spec: Some(JobSpec {
            template,
            active_deadline_seconds: Some(3600),
            // Kept a week for its logs; the status remembers the outcome after that.
            ttl_seconds_after_finished: Some(7 * 24 * 3600),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A short hash of a step's origin and image, for Job names.
pub(crate) fn step_hash(from: Option<&str>, image: &str) -> String {
    let hash = Sha256::digest(format!("{}\n{image}", from.unwrap_or("")).as_bytes());
    hash.iter().take(5).map(|b| format!("{b:02x}")).collect()
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
        let job = build(
            &Ctx::new(&fedi, &defaults).unwrap(),
            "sum",
            Phase::Pre,
            None,
        );
        let spec = job.spec.unwrap();
        let pod = spec.template.spec.unwrap();
        let c = &pod.containers[0];
        assert_eq!(
            c.args.as_deref(),
            Some(&["migrate".to_string(), "--pre".to_string()][..])
        );
        assert_eq!(
            c.termination_message_policy.as_deref(),
            Some("FallbackToLogsOnError")
        );
        let rule = &spec.pod_failure_policy.as_ref().unwrap().rules[0];
        assert_eq!(
            (
                rule.action.as_str(),
                &rule.on_exit_codes.as_ref().unwrap().values
            ),
            ("FailJob", &vec![EXIT_SCHEMA_NEWER])
        );
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
        assert_eq!(
            job.metadata.name.unwrap(),
            name("social", Phase::Pre, None, &image)
        );

        let newer = instance(json!({"domain": "social.example", "version": "9.9.9"}));
        let job2 = build(
            &Ctx::new(&newer, &defaults).unwrap(),
            "sum",
            Phase::Post,
            Some(&image),
        );
        let labels = job2.metadata.labels.clone().unwrap();
        assert_eq!(labels["app.kubernetes.io/version"], "9.9.9");
        assert_eq!(labels[PHASE_LABEL], "post");
        let new_image = format!("{}:9.9.9", defaults.image_repository);
        assert_eq!(
            job2.metadata.name.unwrap(),
            name("social", Phase::Post, Some(&image), &new_image)
        );
        // Another phase, another origin: another Job; the same step: the same Job.
        let names = [
            name("social", Phase::Pre, Some(&image), &new_image),
            name("social", Phase::Post, Some(&image), &new_image),
            name("social", Phase::Pre, None, &new_image),
            name("social", Phase::Pre, Some(&new_image), &image),
        ];
        let unique: std::collections::BTreeSet<_> = names.iter().collect();
        assert_eq!(unique.len(), names.len(), "{names:?}");
    }
}
