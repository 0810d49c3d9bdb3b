//! `fedi-operator`: reconciles `FediInstance` resources into running fediverse servers.
//!
//! The reconcile is a pipeline (see `controller`); each stage lives in its own module so
//! that the pure parts (status computation, and later the child builders) are tested with
//! plain fixtures, without a cluster.

pub mod build;
pub mod controller;
pub mod crd;
pub mod metrics;
pub mod status;
pub mod telemetry;

/// Every way a reconcile can fail. Each variant has a stable metric label so that
/// `fedi_operator_reconcile_errors_total{error=...}` tells an SRE what is going wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API error: {0}")]
    Kube(#[source] kube::Error),
    #[error("FediInstance has no namespace: it is a namespaced resource")]
    MissingNamespace,
    #[error("serializing the status patch: {0}")]
    Serialize(#[source] serde_json::Error),
}

impl Error {
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::MissingNamespace => "missing_namespace",
            Error::Serialize(_) => "serialize",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
