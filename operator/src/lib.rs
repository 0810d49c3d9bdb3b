//! `fedi-operator`: reconciles `FediInstance` resources into running fediverse servers.
//!
//! The reconcile is a pipeline, one module per stage (see `controller`): `build` (pure: spec
//! in, desired children out) -> `apply` (writes only what differs) -> `status` (pure:
//! observed children in, conditions out).

pub mod apply;
pub mod build;
pub mod busy;
pub mod cache;
pub mod capabilities;
pub mod controller;
pub mod crd;
pub mod dependencies;
pub mod dereference;
pub mod events;
pub mod finalizer;
pub mod health;
pub mod keys;
pub mod leader;
pub mod metrics;
pub mod migrations;
pub mod object_storage;
pub mod redis_cluster;
pub mod reference;
pub mod search_index;
pub mod secret_rotation;
pub mod slots;
pub mod status;
pub mod teardown;
pub mod telemetry;
pub mod upgrade;
pub mod volume_resize;

/// Makes ring the process's TLS provider. The Kubernetes client takes the process default,
/// and rustls has none as soon as a second crypto library is linked (aws-sdk-s3's default
/// HTTPS client brings aws-lc-rs): being explicit keeps a dependency change from breaking
/// every client at start. Call it first in every process that builds a client.
pub fn install_tls_provider() {
    // Err means a provider is installed already, which is all this wants.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Every way a reconcile can fail. Each variant has a stable metric label (the `error`
/// label of `fedi_operator_reconcile_errors_total`) and a condition reason.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API error: {0}")]
    Kube(#[source] kube::Error),
    #[error("cannot build the instance's objects: {0}")]
    Build(#[from] build::BuildError),
    #[error("cannot apply {}: {}", .0, short(.1))]
    Apply(String, #[source] kube::Error),
    #[error("serializing an object: {0}")]
    Serialize(#[source] serde_json::Error),
    #[error("Secret {0} is referenced by the FediInstance but does not exist in its namespace")]
    SecretNotFound(String),
    #[error("Secret {name} lacks the key(s) {}", keys.join(", "))]
    SecretKeyMissing { name: String, keys: Vec<String> },
    #[error(
        "spec.ingress.kind is HTTPRoute but the Gateway API CRDs are not installed; install \
         them (standard channel, gateway.networking.k8s.io/v1) or use kind: Ingress"
    )]
    GatewayApiMissing,
    #[error(transparent)]
    Random(#[from] keys::RandomError),
    #[error("cannot delete the media bucket ({reason}): {message}")]
    BucketCleanup { reason: String, message: String },
    #[error("{message}")]
    VolumeResize {
        reason: &'static str,
        message: String,
    },
}

impl Error {
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Build(_) => "build",
            Error::Apply(..) => "apply",
            Error::Serialize(_) => "serialize",
            Error::SecretNotFound(_) | Error::SecretKeyMissing { .. } => "secret_reference",
            Error::Random(_) => "random",
            Error::GatewayApiMissing => "gateway_api_missing",
            Error::BucketCleanup { .. } => "bucket_cleanup",
            Error::VolumeResize { .. } => "volume_resize",
        }
    }

    /// The `reason` of the Degraded condition and of the Warning event.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube(_) => "KubernetesApiError",
            Error::Build(_) => "InvalidSpec",
            Error::Apply(..) => "ApplyFailed",
            Error::Serialize(_) | Error::Random(_) => "InternalError",
            Error::SecretNotFound(_) => "SecretNotFound",
            Error::SecretKeyMissing { .. } => "SecretKeyMissing",
            Error::GatewayApiMissing => "GatewayAPINotInstalled",
            Error::BucketCleanup { .. } => "BucketDeletionFailed",
            Error::VolumeResize { reason, .. } => reason,
        }
    }

    /// Errors only a person can fix: retried slowly, so that a broken instance costs little
    /// while it waits, and quickly enough to notice the fix.
    pub fn needs_a_person(&self) -> bool {
        matches!(
            self,
            Error::SecretNotFound(_)
                | Error::SecretKeyMissing { .. }
                | Error::Build(_)
                | Error::GatewayApiMissing
                | Error::VolumeResize { .. }
        )
    }
}

/// The API server's own message when there is one: it names the field and the rule, and it
/// is what a person reads in a condition. The debug form of the whole error is for logs.
fn short(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) if !status.message.is_empty() => status.message.clone(),
        other => other.to_string(),
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
