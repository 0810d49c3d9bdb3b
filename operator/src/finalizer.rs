//! What happens when an instance is deleted, beyond garbage collection by owner references:
//! under `deletionPolicy: Delete` with an external bucket, the bucket is emptied and removed
//! before the instance goes (a finalizer holds the deletion until then). Under `Retain`
//! there is no finalizer at all, so deleting an instance never waits for the operator.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use crate::controller::Context;
use crate::crd::{DeletionPolicy, FediInstance};
use crate::dependencies::{self, Readiness};
use crate::{Error, Result, object_storage};

pub const FINALIZER: &str = "fedi.dev/delete-media-bucket";

/// Whether `fedi` needs the finalizer: only what the operator must delete itself.
pub fn wanted(fedi: &FediInstance) -> bool {
    fedi.spec.deletion_policy == DeletionPolicy::Delete
        && fedi.spec.object_storage.external.is_some()
}

/// What the reconcile does next.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    Reconcile,
    /// The instance is being deleted: nothing else to do.
    Stop,
}

/// Adds or removes the finalizer as the spec wants; on deletion, cleans up, then lets go.
pub async fn run(ctx: &Context, fedi: &FediInstance, namespace: &str) -> Result<Next> {
    let has = fedi.finalizers().iter().any(|f| f == FINALIZER);
    if fedi.meta().deletion_timestamp.is_some() {
        if has {
            delete_bucket(ctx, fedi, namespace).await?;
            set(ctx, fedi, namespace, false).await?;
        }
        return Ok(Next::Stop);
    }
    match (wanted(fedi), has) {
        (true, false) => set(ctx, fedi, namespace, true).await?,
        (false, true) => set(ctx, fedi, namespace, false).await?,
        _ => {}
    }
    Ok(Next::Reconcile)
}

async fn delete_bucket(ctx: &Context, fedi: &FediInstance, namespace: &str) -> Result<()> {
    let target = match dependencies::storage_target(&ctx.client, fedi, namespace).await {
        Ok(t) => t,
        Err(Readiness {
            reason, message, ..
        }) if reason == "SecretNotFound" || reason == "SecretKeyMissing" => {
            // Deleting a namespace deletes the Secret too: waiting for it would keep the
            // namespace terminating forever. The bucket stays; say so, and where.
            let bucket = fedi
                .spec
                .object_storage
                .external
                .as_ref()
                .map(|s| s.bucket.clone())
                .unwrap_or_default();
            let note = format!(
                "bucket {bucket} was NOT deleted: {message} Delete it with the store's own tools."
            );
            warn!(namespace, name = fedi.name_any(), %note, "cannot delete the media bucket");
            ctx.event(fedi, EventType::Warning, "BucketNotDeleted", note, None)
                .await;
            return Ok(());
        }
        Err(r) => {
            return Err(Error::BucketCleanup {
                reason: r.reason,
                message: r.message,
            });
        }
    };
    let deleted =
        object_storage::delete_bucket(&target)
            .await
            .map_err(|e| Error::BucketCleanup {
                reason: e.reason().to_string(),
                message: format!(
                    "{e} The instance stays until the bucket is deleted; to keep the bucket \
                 instead, set spec.deletionPolicy to Retain."
                ),
            })?;
    if deleted.bucket_existed {
        let note = format!(
            "deleted bucket {} ({} objects, {} unfinished uploads)",
            target.bucket, deleted.objects, deleted.uploads_aborted
        );
        info!(namespace, name = fedi.name_any(), %note, "media bucket deleted");
        let related = ObjectReference {
            kind: Some("Bucket".into()),
            name: Some(target.bucket.clone()),
            ..Default::default()
        };
        ctx.event(
            fedi,
            EventType::Normal,
            "BucketDeleted",
            note,
            Some(related),
        )
        .await;
    }
    Ok(())
}

/// Adds (`on`) or removes the finalizer. The resourceVersion makes it a compare-and-swap:
/// a concurrent change fails it, and the next reconcile starts from what is stored.
async fn set(ctx: &Context, fedi: &FediInstance, namespace: &str, on: bool) -> Result<()> {
    let mut finalizers: Vec<String> = fedi
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    if on {
        finalizers.push(FINALIZER.into());
    }
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
