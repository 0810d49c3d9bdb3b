//! Emptying and removing a bucket. S3 removes only empty buckets, and "empty" includes
//! old versions, delete markers and the parts of incomplete multipart uploads.

use aws_sdk_s3::Client;
use aws_sdk_s3::types::{BucketVersioningStatus, Delete, ObjectIdentifier};

use super::error::{Failure, Scope, classify, failure, from_sdk};
use super::{Deleted, StorageError, head_bucket};

pub(super) async fn bucket(
    client: &Client,
    bucket: &str,
    page_size: i32,
    scope: Scope<'_>,
) -> Result<Deleted, StorageError> {
    let mut deleted = Deleted::default();
    match head_bucket(client, bucket, scope).await {
        Ok(()) => deleted.bucket_existed = true,
        Err(StorageError::BucketNotFound { .. }) => return Ok(deleted),
        Err(other) => return Err(other),
    }
    deleted.uploads_aborted = abort_uploads(client, bucket, page_size, scope).await?;
    let versioning = client
        .get_bucket_versioning()
        .bucket(bucket)
        .send()
        .await
        .map_err(|e| from_sdk("GetBucketVersioning", scope, &e))?;
    // A bucket that was ever versioned (even if suspended since) may hold old versions
    // that only ListObjectVersions shows.
    deleted.objects = match versioning.status() {
        Some(BucketVersioningStatus::Enabled | BucketVersioningStatus::Suspended) => {
            delete_versions(client, bucket, page_size, scope).await?
        }
        _ => delete_objects(client, bucket, page_size, scope).await?,
    };
    match client.delete_bucket().bucket(bucket).send().await {
        Ok(_) => {}
        // Removed meanwhile by another run of ours.
        Err(e) if failure(&e).code() == Some("NoSuchBucket") => {}
        Err(e) => return Err(from_sdk("DeleteBucket", scope, &e)),
    }
    tracing::info!(
        bucket,
        endpoint = scope.endpoint,
        objects = deleted.objects,
        uploads_aborted = deleted.uploads_aborted,
        "deleted the bucket"
    );
    Ok(deleted)
}

async fn abort_uploads(
    client: &Client,
    bucket: &str,
    page_size: i32,
    scope: Scope<'_>,
) -> Result<u64, StorageError> {
    let mut aborted = 0;
    let (mut key_marker, mut upload_id_marker) = (None, None);
    loop {
        let page = client
            .list_multipart_uploads()
            .bucket(bucket)
            .max_uploads(page_size)
            .set_key_marker(key_marker.take())
            .set_upload_id_marker(upload_id_marker.take())
            .send()
            .await
            .map_err(|e| from_sdk("ListMultipartUploads", scope, &e))?;
        for upload in page.uploads() {
            let (Some(key), Some(id)) = (upload.key(), upload.upload_id()) else {
                continue;
            };
            match client
                .abort_multipart_upload()
                .bucket(bucket)
                .key(key)
                .upload_id(id)
                .send()
                .await
            {
                Ok(_) => aborted += 1,
                // Completed or aborted meanwhile.
                Err(e) if failure(&e).code() == Some("NoSuchUpload") => {}
                Err(e) => return Err(from_sdk("AbortMultipartUpload", scope, &e)),
            }
        }
        if !page.is_truncated().unwrap_or(false) {
            return Ok(aborted);
        }
        key_marker = page.next_key_marker().map(str::to_owned);
        upload_id_marker = page.next_upload_id_marker().map(str::to_owned);
        // A store that says "truncated" without saying where to go on would loop forever.
        if key_marker.is_none() && upload_id_marker.is_none() {
            return Err(stuck("ListMultipartUploads", scope));
        }
    }
}

async fn delete_objects(
    client: &Client,
    bucket: &str,
    page_size: i32,
    scope: Scope<'_>,
) -> Result<u64, StorageError> {
    let mut deleted = 0;
    let mut token = None;
    loop {
        let page = client
            .list_objects_v2()
            .bucket(bucket)
            .max_keys(page_size)
            .set_continuation_token(token.take())
            .send()
            .await
            .map_err(|e| from_sdk("ListObjectsV2", scope, &e))?;
        let keys = page
            .contents()
            .iter()
            .filter_map(|o| o.key())
            .map(|key| {
                ObjectIdentifier::builder()
                    .key(key)
                    .build()
                    .expect("key is set")
            })
            .collect();
        deleted += delete_page(client, bucket, keys, scope).await?;
        if !page.is_truncated().unwrap_or(false) {
            return Ok(deleted);
        }
        token = page.next_continuation_token().map(str::to_owned);
        if token.is_none() {
            return Err(stuck("ListObjectsV2", scope));
        }
    }
}

async fn delete_versions(
    client: &Client,
    bucket: &str,
    page_size: i32,
    scope: Scope<'_>,
) -> Result<u64, StorageError> {
    let mut deleted = 0;
    let (mut key_marker, mut version_id_marker) = (None, None);
    loop {
        let page = client
            .list_object_versions()
            .bucket(bucket)
            .max_keys(page_size)
            .set_key_marker(key_marker.take())
            .set_version_id_marker(version_id_marker.take())
            .send()
            .await
            .map_err(|e| from_sdk("ListObjectVersions", scope, &e))?;
        let versions = page.versions().iter().map(|v| (v.key(), v.version_id()));
        let markers = page
            .delete_markers()
            .iter()
            .map(|m| (m.key(), m.version_id()));
        let ids = versions
            .chain(markers)
            .filter_map(|(key, version)| {
                let id = ObjectIdentifier::builder()
                    .key(key?)
                    .set_version_id(version.map(str::to_owned));
                Some(id.build().expect("key is set"))
            })
            .collect();
        deleted += delete_page(client, bucket, ids, scope).await?;
        if !page.is_truncated().unwrap_or(false) {
            return Ok(deleted);
        }
        key_marker = page.next_key_marker().map(str::to_owned);
        version_id_marker = page.next_version_id_marker().map(str::to_owned);
        if key_marker.is_none() && version_id_marker.is_none() {
            return Err(stuck("ListObjectVersions", scope));
        }
    }
}

/// One DeleteObjects request; S3 answers 200 even when some keys failed, so the per-key
/// errors are checked too.
async fn delete_page(
    client: &Client,
    bucket: &str,
    ids: Vec<ObjectIdentifier>,
    scope: Scope<'_>,
) -> Result<u64, StorageError> {
    if ids.is_empty() {
        return Ok(0);
    }
    let count = ids.len() as u64;
    let delete = Delete::builder()
        .set_objects(Some(ids))
        .quiet(true)
        .build()
        .expect("objects is set");
    let out = client
        .delete_objects()
        .bucket(bucket)
        .delete(delete)
        .send()
        .await
        .map_err(|e| from_sdk("DeleteObjects", scope, &e))?;
    if let Some(e) = out.errors().first() {
        let failure = Failure::Service {
            status: None,
            code: e.code().map(str::to_owned),
            message: Some(format!(
                "{} of {count} objects not deleted, first {:?}: {}",
                out.errors().len(),
                e.key().unwrap_or_default(),
                e.message().unwrap_or("no details")
            )),
        };
        return Err(classify("DeleteObjects", scope, failure));
    }
    Ok(count)
}

fn stuck(operation: &'static str, scope: Scope<'_>) -> StorageError {
    classify(
        operation,
        scope,
        Failure::Response {
            status: None,
            detail: "a truncated listing without a marker to continue from".into(),
        },
    )
}
