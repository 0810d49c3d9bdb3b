//! The controller: the shared `Context`, `reconcile` and `error_policy`, and `run`, which
//! wires them into kube-runtime's `Controller`.
//!
//! Reconcile is a pipeline read top to bottom. Today it has two stages, observe and update
//! status; the issue "FediInstance API and core reconcile" adds build and apply between them.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use crate::crd::FediInstance;
use crate::metrics::Metrics;
use crate::{Error, Result, status};

/// The field manager for every server-side apply this operator makes.
pub const FIELD_MANAGER: &str = "fedi-operator";

/// How often an instance is reconciled without any change, to catch what watches miss.
const RESYNC: Duration = Duration::from_secs(300);

pub struct Context {
    pub client: Client,
    pub metrics: Arc<Metrics>,
}

pub async fn reconcile(fedi: Arc<FediInstance>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.reconcile_started();
    let namespace = fedi.namespace().ok_or(Error::MissingNamespace)?;

    let desired = status::desired(&fedi, Timestamp::now());
    if fedi.status.as_ref() != Some(&desired) {
        let api: Api<FediInstance> = Api::namespaced(ctx.client.clone(), &namespace);
        let patch = json!({
            "apiVersion": FediInstance::api_version(&()),
            "kind": FediInstance::kind(&()),
            "status": desired,
        });
        api.patch_status(
            &fedi.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(Error::Kube)?;
        ctx.metrics.status_written();
    }
    Ok(Action::requeue(RESYNC))
}

pub fn error_policy(fedi: Arc<FediInstance>, error: &Error, ctx: Arc<Context>) -> Action {
    warn!(
        namespace = fedi.namespace().unwrap_or_default(),
        name = fedi.name_any(),
        %error,
        "reconcile failed"
    );
    ctx.metrics.reconcile_failed(error);
    Action::requeue(Duration::from_secs(15))
}

/// Runs the controller until SIGTERM or Ctrl-C. Fails fast with an actionable message when
/// the CRD is not installed, instead of retrying forever.
pub async fn run(client: Client, metrics: Arc<Metrics>) -> anyhow::Result<()> {
    let api: Api<FediInstance> = Api::all(client.clone());
    if let Err(e) = api.list(&ListParams::default().limit(1)).await {
        anyhow::bail!(
            "cannot list FediInstances ({e}); is the CRD installed? Apply crds/fediinstances.yaml \
             (make crds-install) and check the operator's RBAC"
        );
    }
    let ctx = Arc::new(Context { client, metrics });
    info!("controller started");
    Controller::new(api, watcher::Config::default().any_semantic())
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                // Reconcile errors are logged by error_policy; these are watch/queue errors.
                tracing::debug!(error = %e, "controller event");
            }
        })
        .await;
    info!("controller stopped");
    Ok(())
}
