//! The `fedi.dev/v1alpha1` `FediInstance` API. `crdgen` prints it into `crds/`.
//!
//! Every field carries a doc comment: it becomes the `description` that
//! `kubectl explain fedi.spec...` shows, so it is written for the person reading that.
//! Bounds and enums are in the schema; rules across fields are CEL (`x_kube(validation)`),
//! so the API server refuses a bad manifest before the operator ever sees it.

mod dependencies;
mod ingress;
mod maintenance;
mod settings;
mod workloads;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

pub use dependencies::*;
pub use ingress::*;
pub use maintenance::*;
pub use settings::*;
pub use workloads::*;

/// A Mastodon-compatible fediverse server and everything it runs on.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "fedi.dev",
    version = "v1alpha1",
    kind = "FediInstance",
    plural = "fediinstances",
    shortname = "fedi",
    namespaced,
    doc = "A Mastodon-compatible fediverse server and everything it runs on: one manifest, reconciled into its workloads, data services and ingress.",
    status = "FediInstanceStatus",
    printcolumn = r#"{"name":"Domain","type":"string","jsonPath":".spec.domain"}"#,
    printcolumn = r#"{"name":"Version","type":"string","jsonPath":".status.version.current"}"#,
    printcolumn = r#"{"name":"Upgrade","type":"string","jsonPath":".status.version.phase"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new("!has(self.objectStorage) || !has(self.objectStorage.external) || !has(self.maintenance) || (self.maintenance.mediaCacheRetentionDays <= self.objectStorage.external.remoteMediaCacheDays && self.maintenance.previewCardRetentionDays <= self.objectStorage.external.remoteMediaCacheDays)").message("maintenance.mediaCacheRetentionDays and previewCardRetentionDays must not exceed objectStorage.external.remoteMediaCacheDays: the bucket would expire cached files the server still refers to"))]
#[serde(rename_all = "camelCase")]
pub struct FediInstanceSpec {
    /// The domain of the server's accounts (`@user@domain`), lower case, without scheme or
    /// path. It is part of every account's identity on the fediverse, so it cannot be changed
    /// once set: create a new instance instead.
    #[x_kube(validation = Rule::new("self == oldSelf").message("domain is immutable: it is part of every account's identity; create a new FediInstance instead"))]
    #[schemars(
        length(min = 1, max = 253),
        regex(
            pattern = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
        )
    )]
    pub domain: String,

    /// Version of fedi-server to run: the image tag. Defaults to the version this operator
    /// was released with. Changing it upgrades the instance (migrations first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 128),
        regex(pattern = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
    )]
    pub version: Option<String>,

    /// Overrides of the server image, for mirrors and private registries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageSpec>,

    /// Who may create an account: `open` (anyone), `approval` (a moderator approves each
    /// sign-up) or `closed` (invitations and admins only).
    #[serde(default)]
    pub registrations: Registrations,

    /// The first admin account, created once when the instance is first ready. Its password
    /// reset link is sent by e-mail; no password is ever stored in the manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<AdminSpec>,

    /// Name of a Secret in this namespace holding the instance's keys (see the
    /// documentation for its keys). When unset, the operator generates one once and never
    /// overwrites it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub existing_secret: Option<String>,

    /// A preset of replicas and CPU/memory for the api, streamer and worker pods:
    /// `small`, `medium` or `large`. Any replicas or resource set explicitly below wins, field
    /// by field. Unset: one pod per role, no requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<Size>,

    /// The REST API, OAuth and ActivityPub role.
    #[serde(default)]
    pub api: ComponentSpec,

    /// The streaming API role (WebSocket and server-sent events).
    #[serde(default)]
    pub streamer: ComponentSpec,

    /// Background job processing, as pools of workers with their own queues.
    #[serde(default)]
    pub worker: WorkerSpec,

    /// Where autoscalers read the server's metrics (worker pools with `autoscaling`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<AutoscalingSettings>,

    /// PostgreSQL: the permanent record of the instance.
    #[serde(default)]
    pub database: DatabaseSpec,

    /// Redis: job queue, home feeds and streaming pub/sub.
    #[serde(default)]
    pub redis: RedisSpec,

    /// S3-compatible object storage for media.
    #[serde(default)]
    pub object_storage: ObjectStorageSpec,

    /// Optional full-text search. Without it, search uses PostgreSQL. With it, every new
    /// server image runs a Job `fedi-server admin search migrate` once its pre-deployment
    /// migrations are done: it reindexes only when the image's index mappings changed, and
    /// costs one request otherwise. The Job never holds the rollout back (search uses
    /// PostgreSQL until the indexes match); the `SearchIndexed` condition names it, and a
    /// failed one is reported (a `SearchReindexFailed` Warning event) and run again 10
    /// minutes later, or at once when deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<SearchSpec>,

    /// Outgoing e-mail (confirmations, password resets, notifications).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp: Option<SmtpSpec>,

    /// How the instance is reached from outside the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressSpec>,

    /// Which servers this instance federates with.
    #[serde(default)]
    pub federation: FederationSpec,

    /// Limits on what users can post.
    #[serde(default)]
    pub limits: LimitsSpec,

    /// Retention of orphaned uploads, cached remote media and link preview images.
    #[serde(default)]
    pub maintenance: MaintenanceSpec,

    /// Scales every workload to zero while keeping all data; unsuspend to restore.
    #[serde(default)]
    pub suspend: bool,

    /// What happens to data (databases, volumes, buckets) when the FediInstance is deleted:
    /// `Retain` (the default) keeps it, `Delete` removes it.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

/// What the operator last observed. Never contains a secret value.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FediInstanceStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Kubernetes-style conditions: `Ready`, `Progressing`, `Degraded`, and one per
    /// dependency and pipeline stage.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Ready and desired pods of each workload.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<ComponentStatus>,
    /// The version every pod runs and the one the spec asks for; `phase` says where an
    /// upgrade between them stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<VersionStatus>,
    /// Where the instance is served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The server image whose pre-deployment migrations have completed: the Deployments
    /// may run it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrated_image: Option<String>,
    /// The server image whose post-deployment migrations have completed, after every pod
    /// ran it: the upgrade to it is finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_migrated_image: Option<String>,
    /// The server image and index prefix whose search index migration (`fedi-server admin
    /// search migrate`) has completed, as `<image> (index prefix <prefix>)`. It runs once
    /// per image and prefix when search is configured, and reindexes only when the image's
    /// index mappings changed or the prefix did (new indexes start empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search_indexed_image: Option<String>,
    /// The value of the `fedi.dev/rotate-secrets` annotation last handled: a different one
    /// rotates the generated secrets that can rotate safely and rolls the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets_rotation: Option<String>,
}

/// Versions of the server: what runs, what is wanted.
#[derive(Serialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionStatus {
    /// The version every pod runs, its migrations done. Unset until the first install
    /// completes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    /// The version the spec asks for.
    pub target: String,
    /// Where the change from `current` to `target` stands; unset when they are equal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<UpgradePhase>,
}

/// The steps of an upgrade, in order; `Failed` stops it (and the fleet's rollout).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum UpgradePhase {
    /// Waiting for a slot under the operator's `--max-concurrent-upgrades`.
    Queued,
    /// The pre-deployment migration Job runs; the old version serves.
    PreMigration,
    /// The Deployments roll to the new version.
    RollingOut,
    /// The post-deployment migration Job runs, every pod on the new version.
    PostMigration,
    /// A step failed or was refused; see the `Migrated` condition.
    Failed,
}

impl UpgradePhase {
    /// Holds one of the fleet's upgrade slots.
    pub fn in_progress(self) -> bool {
        matches!(
            self,
            UpgradePhase::PreMigration | UpgradePhase::RollingOut | UpgradePhase::PostMigration
        )
    }
}

impl<'de> Deserialize<'de> for VersionStatus {
    /// Also reads the earlier form, a plain string (the running version), so that a status
    /// written by an older operator is understood.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Fields {
            #[serde(default)]
            current: Option<String>,
            #[serde(default)]
            target: String,
            #[serde(default)]
            phase: Option<UpgradePhase>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Any {
            Old(String),
            New(Fields),
        }
        Ok(match Any::deserialize(d)? {
            Any::Old(v) => VersionStatus {
                current: Some(v.clone()),
                target: v,
                phase: None,
            },
            Any::New(f) => VersionStatus {
                current: f.current,
                target: f.target,
                phase: f.phase,
            },
        })
    }
}

/// Pods of one workload (`api`, `streamer`, `worker-<pool>`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentStatus {
    pub name: String,
    pub ready: i32,
    pub desired: i32,
}

impl FediInstance {
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.status
            .as_ref()?
            .conditions
            .iter()
            .find(|c| c.type_ == type_)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_with_only_a_domain_gets_every_default() {
        let spec: FediInstanceSpec =
            serde_json::from_value(serde_json::json!({"domain": "social.example"})).unwrap();
        assert_eq!(spec.registrations, Registrations::Open);
        assert_eq!(spec.deletion_policy, DeletionPolicy::Retain);
        assert!(spec.database.managed.is_some() && spec.database.external.is_none());
        assert!(spec.redis.managed.is_some() && spec.object_storage.managed.is_some());
        let pools = &spec.worker.pools;
        assert_eq!(pools.len(), 1);
        assert!(pools[0].scheduler, "the default pool runs the scheduler");
        assert_eq!(pools[0].queues.len(), Queue::ALL.len());
        assert_eq!(spec.limits.max_post_length, 500);
        for q in Queue::ALL {
            let wire = serde_json::to_value(q).unwrap();
            assert_eq!(
                wire.as_str(),
                Some(q.as_str()),
                "as_str matches the manifest's name"
            );
        }
    }
}
