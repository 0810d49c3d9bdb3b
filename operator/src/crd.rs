//! The `fedi.dev/v1alpha1` `FediInstance` API. `crdgen` prints it into `crds/`.
//!
//! Every field carries a doc comment: it becomes the `description` that
//! `kubectl explain fedi.spec` shows, so write it for the person reading that.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

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
    printcolumn = r#"{"name":"Version","type":"string","jsonPath":".status.version"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
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

    /// Version of the fedi-server image to run (an image tag). Defaults to the version this
    /// operator was released with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub version: Option<String>,

    /// Who may create an account: `open` (anyone), `approval` (a moderator approves each
    /// sign-up) or `closed` (invitations and admins only).
    #[serde(default)]
    pub registrations: Registrations,
}

/// Who may create an account on the instance.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum Registrations {
    #[default]
    Open,
    Approval,
    Closed,
}

impl From<Registrations> for fedi_config::Registrations {
    fn from(r: Registrations) -> Self {
        match r {
            Registrations::Open => Self::Open,
            Registrations::Approval => Self::Approval,
            Registrations::Closed => Self::Closed,
        }
    }
}

/// What the operator last observed. Never contains a secret value.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FediInstanceStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Kubernetes-style conditions: `Ready`, and one per dependency and pipeline stage.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The server version running on every pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Where the instance is served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
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
