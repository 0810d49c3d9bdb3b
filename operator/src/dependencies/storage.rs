//! StorageReady: the media bucket exists with its CORS rules, its public-read policy on the
//! media prefix and the expiry of the remote-media cache (`object_storage::ensure`, which
//! writes only what differs). The managed store is first waited for.

use super::probe;
use super::{Action, Readiness, Scope};
use crate::build::{S3_ACCESS_KEY_ID_KEY, S3_SECRET_ACCESS_KEY_KEY, managed};
use crate::object_storage::{self, BucketSettings, Target};

/// Objects under this prefix are readable by anyone (browsers load media from there).
pub const PUBLIC_PREFIX: &str = "media/";
/// Copies of other servers' media: public too, and expired after `remoteMediaCacheDays`
/// (on the managed store: `MaintenanceSpec::managed_cache_expiry_days`).
pub const CACHE_PREFIX: &str = "media/cache/";

pub async fn observe(scope: &Scope<'_>) -> (Readiness, Vec<Action>) {
    let (target, cache_days) = match target(scope).await {
        Ok(t) => t,
        Err(readiness) => return (readiness, Vec::new()),
    };
    let settings = BucketSettings {
        web_origin: format!("https://{}", scope.fedi.spec.domain),
        public_prefix: PUBLIC_PREFIX.into(),
        cache_prefix: CACHE_PREFIX.into(),
        cache_days,
    };
    match object_storage::ensure(&target, &settings).await {
        Ok(changes) => {
            let actions = changes
                .iter()
                .map(|c| Action {
                    reason: c.reason().into(),
                    note: format!("bucket {}: {c}", target.bucket),
                })
                .collect();
            let readiness = Readiness::ready(
                "BucketReady",
                format!(
                    "Bucket {} at {} has its CORS rules, public-read policy on {PUBLIC_PREFIX} \
                     and cache expiry.",
                    target.bucket, target.endpoint
                ),
            );
            (readiness, actions)
        }
        Err(e) => (Readiness::waiting(e.reason(), e.to_string()), Vec::new()),
    }
}

/// The external bucket of `fedi` and the keys to reach it (for its deletion).
pub async fn external_target(
    client: &kube::Client,
    fedi: &crate::crd::FediInstance,
    namespace: &str,
) -> Result<Target, Readiness> {
    use kube::ResourceExt;
    let scope = Scope {
        client,
        fedi,
        namespace,
        name: fedi.name_any(),
        capabilities: Default::default(),
    };
    if fedi.spec.object_storage.external.is_none() {
        return Err(Readiness::waiting(
            "NotExternal",
            "the instance's object storage is not external.",
        ));
    }
    target(&scope).await.map(|(t, _)| t)
}

/// Where the bucket is and the keys to reach it, once the store can be asked.
async fn target(scope: &Scope<'_>) -> Result<(Target, i32), Readiness> {
    let spec = &scope.fedi.spec.object_storage;
    let key = |secret: String, key: &'static str| async move {
        probe::secret_value(scope, &secret, key).await
    };
    if let Some(s3) = &spec.external {
        let secret = &s3.credentials_secret_ref.name;
        let target = Target {
            endpoint: s3.endpoint.clone(),
            region: s3.region.clone(),
            bucket: s3.bucket.clone(),
            path_style: s3.path_style,
            access_key_id: key(secret.clone(), S3_ACCESS_KEY_ID_KEY).await?,
            secret_access_key: key(secret.clone(), S3_SECRET_ACCESS_KEY_KEY).await?,
        };
        return Ok((target, s3.remote_media_cache_days));
    }
    let service = managed::s3_secret(&scope.name);
    if let Some(waiting) = probe::statefulset(scope, &service, "the object store").await {
        return Err(waiting);
    }
    let target = Target {
        endpoint: format!(
            "http://{service}.{}.svc:{}",
            scope.namespace,
            managed::S3_PORT
        ),
        region: "us-east-1".into(),
        bucket: managed::S3_BUCKET.into(),
        path_style: true,
        access_key_id: key(service.clone(), S3_ACCESS_KEY_ID_KEY).await?,
        secret_access_key: key(service.clone(), S3_SECRET_ACCESS_KEY_KEY).await?,
    };
    Ok((
        target,
        scope.fedi.spec.maintenance.managed_cache_expiry_days(),
    ))
}
