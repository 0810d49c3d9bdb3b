//! What happens when an instance is deleted, beyond garbage collection by owner references.
//! Under `deletionPolicy: Delete` a finalizer holds the deletion until `teardown` has removed
//! the data: the external bucket, the managed services' volumes, CloudNativePG's Cluster and
//! the generated Secrets. Explicitly rather than by owner references alone: objects created
//! under `Retain` have no owner (switching the policy later does not give them one), and the
//! instance must not be gone while its volumes still are (a new instance of the same name
//! would bind to them). Under `Retain` there is no finalizer at all, so deleting an instance
//! never waits for the operator.

use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use crate::controller::Context;
use crate::crd::{DeletionPolicy, FediInstance};
use crate::{Error, Result, teardown};

pub const FINALIZER: &str = "fedi.dev/delete-data";
/// The finalizer's name when it covered only the external bucket; still honoured, and
/// replaced by `FINALIZER` at the next reconcile.
pub const LEGACY_FINALIZER: &str = "fedi.dev/delete-media-bucket";

fn ours(f: &str) -> bool {
    f == FINALIZER || f == LEGACY_FINALIZER
}

/// Whether `fedi` needs the finalizer: only when its data goes with it.
pub fn wanted(fedi: &FediInstance) -> bool {
    fedi.spec.deletion_policy == DeletionPolicy::Delete
}

/// What the reconcile does next.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    Reconcile,
    /// The instance is being deleted: nothing else to do.
    Stop,
    /// Deletion waits for data objects to go (volumes held by pods, a terminating Cluster):
    /// look again shortly.
    Wait,
}

/// The finalizers `fedi` should carry, or None when they are right as they are.
fn desired_finalizers(fedi: &FediInstance, on: bool) -> Option<Vec<String>> {
    let current = fedi.finalizers();
    let correct = if on {
        current.iter().any(|f| f == FINALIZER) && !current.iter().any(|f| f == LEGACY_FINALIZER)
    } else {
        !current.iter().any(|f| ours(f))
    };
    if correct {
        return None;
    }
    let mut out: Vec<String> = current.iter().filter(|f| !ours(f)).cloned().collect();
    if on {
        out.push(FINALIZER.into());
    }
    Some(out)
}

/// Adds or removes the finalizer as the spec wants; on deletion, tears the data down, then
/// lets go. Every step of the teardown is idempotent, so an operator restarted mid-way
/// simply runs it again.
pub async fn run(ctx: &Context, fedi: &FediInstance, namespace: &str) -> Result<Next> {
    let has = fedi.finalizers().iter().any(|f| ours(f));
    if fedi.meta().deletion_timestamp.is_some() {
        if !has {
            return Ok(Next::Stop);
        }
        // The policy may have been switched to Retain after the deletion began: then the
        // data stays, as the spec now says.
        if wanted(fedi) && !teardown::run(ctx, fedi, namespace).await? {
            return Ok(Next::Wait);
        }
        if let Some(finalizers) = desired_finalizers(fedi, false) {
            set(ctx, fedi, namespace, finalizers).await?;
        }
        return Ok(Next::Stop);
    }
    if let Some(finalizers) = desired_finalizers(fedi, wanted(fedi)) {
        set(ctx, fedi, namespace, finalizers).await?;
    }
    Ok(Next::Reconcile)
}

/// Stores `finalizers`. The resourceVersion makes it a compare-and-swap: a concurrent change
/// fails it, and the next reconcile starts from what is stored.
async fn set(
    ctx: &Context,
    fedi: &FediInstance,
    namespace: &str,
    finalizers: Vec<String>,
) -> Result<()> {
    let patch = json!({"metadata": {
        "finalizers": finalizers,
        "resourceVersion": fedi.resource_version(),
    }});
    let api: Api<FediInstance> = Api::namespaced(ctx.client.clone(), namespace);
    api.patch(
        &fedi.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map_err(Error::Kube)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::fixtures::instance;

    fn with_finalizers(policy: &str, finalizers: &[&str]) -> FediInstance {
        let mut f = instance(json!({"domain": "social.example", "deletionPolicy": policy}));
        f.metadata.finalizers = Some(finalizers.iter().map(|s| s.to_string()).collect());
        f
    }

    #[test]
    fn only_the_delete_policy_wants_the_finalizer() {
        assert!(wanted(&with_finalizers("Delete", &[])));
        assert!(!wanted(&with_finalizers("Retain", &[])));
    }

    #[test]
    fn the_finalizer_is_added_once_and_others_are_kept() {
        let f = with_finalizers("Delete", &["other.example/x"]);
        assert_eq!(
            desired_finalizers(&f, true).unwrap(),
            ["other.example/x", FINALIZER]
        );
        let done = with_finalizers("Delete", &["other.example/x", FINALIZER]);
        assert_eq!(desired_finalizers(&done, true), None);
    }

    #[test]
    fn the_legacy_finalizer_is_replaced_or_removed() {
        let f = with_finalizers("Delete", &[LEGACY_FINALIZER]);
        assert_eq!(desired_finalizers(&f, true).unwrap(), [FINALIZER]);
        let both = with_finalizers("Retain", &[LEGACY_FINALIZER, FINALIZER, "a/b"]);
        assert_eq!(desired_finalizers(&both, false).unwrap(), ["a/b"]);
        assert_eq!(
            desired_finalizers(&with_finalizers("Retain", &[]), false),
            None
        );
    }
}
