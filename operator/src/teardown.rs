//! The data of an instance under `deletionPolicy: Delete`, removed before its finalizer goes:
//! the external bucket, the managed services' StatefulSets and volumes, CloudNativePG's
//! Cluster and the generated Secrets. Each step deletes what still exists and ignores what is
//! gone, so that running it again (after an operator restart, or while volumes are still
//! held) is harmless. Secrets the user refers to are never deleted: they are not ours.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ObjectReference, PersistentVolumeClaim, Secret};
use kube::api::{DeleteParams, DynamicObject, ListParams};
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use tracing::{info, warn};

use crate::controller::Context;
use crate::crd::FediInstance;
use crate::dependencies::{self, Readiness};
use crate::{Error, Result, build, dereference, object_storage};

/// The labels every object the operator made for `fedi` carries, the volumes of its
/// StatefulSets included (they copy their claim template's labels).
fn selector(fedi: &FediInstance) -> String {
    format!(
        "app.kubernetes.io/instance={},app.kubernetes.io/managed-by=fedi-operator",
        fedi.name_any()
    )
}

/// Deletes the data of `fedi`; true once nothing of it is left.
pub async fn run(ctx: &Context, fedi: &FediInstance, namespace: &str) -> Result<bool> {
    delete_bucket(ctx, fedi, namespace).await?;
    let client = &ctx.client;
    let list = ListParams::default().labels(&selector(fedi));
    let mut deleted = Vec::new();
    // The StatefulSets first: their pods hold the volumes, which only go once the pods do.
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), namespace);
    for s in sets.list(&list).await.map_err(Error::Kube)? {
        if delete(
            &sets,
            &s.name_any(),
            s.metadata.deletion_timestamp.is_some(),
        )
        .await?
        {
            deleted.push(format!("StatefulSet/{}", s.name_any()));
        }
    }
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let mut left = Vec::new();
    for c in claims.list(&list).await.map_err(Error::Kube)? {
        let name = c.name_any();
        if delete(&claims, &name, c.metadata.deletion_timestamp.is_some()).await? {
            deleted.push(format!("PersistentVolumeClaim/{name}"));
        }
        left.push(format!("PersistentVolumeClaim/{name}"));
    }
    if ctx.capabilities.cloudnative_pg {
        let clusters: Api<DynamicObject> = Api::namespaced_with(
            client.clone(),
            namespace,
            &build::database::cluster_resource(),
        );
        for c in clusters.list(&list).await.map_err(Error::Kube)? {
            let name = c.name_any();
            if delete(&clusters, &name, c.metadata.deletion_timestamp.is_some()).await? {
                deleted.push(format!("Cluster/{name}"));
            }
            left.push(format!("Cluster/{name}"));
        }
    }
    // Last: a volume that cannot be deleted yet still opens with its credentials.
    if left.is_empty() {
        let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
        for name in dereference::generated_secret_names(fedi) {
            if delete(&secrets, &name, false).await? {
                deleted.push(format!("Secret/{name}"));
            }
        }
    }
    if !deleted.is_empty() {
        let note = format!("deleted {}", deleted.join(", "));
        info!(namespace, name = fedi.name_any(), %note, "instance data deleted");
        ctx.event(fedi, EventType::Normal, "DataDeleted", note, None)
            .await;
    }
    if !left.is_empty() {
        info!(namespace, name = fedi.name_any(), waiting_for = ?left, "data still terminating");
    }
    Ok(left.is_empty())
}

/// Deletes `name` unless it is going already; true when this call deleted it.
async fn delete<K>(api: &Api<K>, name: &str, terminating: bool) -> Result<bool>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    if terminating {
        return Ok(false);
    }
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(e) => Err(Error::Kube(e)),
    }
}

async fn delete_bucket(ctx: &Context, fedi: &FediInstance, namespace: &str) -> Result<()> {
    if fedi.spec.object_storage.external.is_none() {
        // A managed store keeps the bucket on its volume, which goes with the StatefulSet's.
        return Ok(());
    }
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
