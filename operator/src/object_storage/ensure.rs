//! The steps of `ensure`: each reads one part of the bucket's configuration, compares it
//! with the desired one (see `cors`, `policy`, `lifecycle`) and writes it only if it differs.

use std::future::Future;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, BucketLocationConstraint, CorsConfiguration,
    CreateBucketConfiguration, PublicAccessBlockConfiguration,
};

use super::error::{Scope, classify, failure, from_sdk};
use super::{BucketSettings, Change, StorageError, Target, cors, head_bucket, lifecycle, policy};

/// Creates the bucket if it is missing; true if it did.
pub(super) async fn bucket(
    client: &Client,
    target: &Target,
    scope: Scope<'_>,
) -> Result<bool, StorageError> {
    match head_bucket(client, &target.bucket, scope).await {
        Ok(()) => return Ok(false),
        Err(StorageError::BucketNotFound { .. }) => {}
        Err(other) => return Err(other),
    }
    let mut create = client.create_bucket().bucket(&target.bucket);
    // us-east-1 is S3's default location and AWS refuses it as an explicit constraint.
    if target.region != "us-east-1" {
        create = create.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(target.region.as_str()))
                .build(),
        );
    }
    match create.send().await {
        Ok(_) => Ok(true),
        // Created meanwhile by another reconcile of ours: as good as existing.
        Err(e) if failure(&e).code() == Some("BucketAlreadyOwnedByYou") => Ok(false),
        Err(e) => Err(from_sdk("CreateBucket", scope, &e)),
    }
}

pub(super) async fn cors(
    client: &Client,
    bucket: &str,
    web_origin: &str,
    scope: Scope<'_>,
) -> Result<bool, StorageError> {
    let desired = cors::desired(web_origin);
    let current = read(
        "GetBucketCors",
        scope,
        &["NoSuchCORSConfiguration"],
        client.get_bucket_cors().bucket(bucket).send(),
    )
    .await?;
    let current = current.as_ref().map_or(&[][..], |c| c.cors_rules());
    if cors::same(current, &desired) {
        return Ok(false);
    }
    let configuration = CorsConfiguration::builder()
        .set_cors_rules(Some(desired))
        .build()
        .expect("cors_rules is set");
    client
        .put_bucket_cors()
        .bucket(bucket)
        .cors_configuration(configuration)
        .send()
        .await
        .map_err(|e| from_sdk("PutBucketCors", scope, &e))?;
    Ok(true)
}

pub(super) async fn policy(
    client: &Client,
    bucket: &str,
    public_prefix: &str,
    scope: Scope<'_>,
) -> Result<Vec<Change>, StorageError> {
    let mut changes = Vec::new();
    if allow_public_policies(client, bucket, scope).await? {
        changes.push(Change::PublicAccessBlockUpdated);
    }
    let desired = policy::desired(bucket, public_prefix);
    let current = read(
        "GetBucketPolicy",
        scope,
        &["NoSuchBucketPolicy"],
        client.get_bucket_policy().bucket(bucket).send(),
    )
    .await?;
    let current = current.as_ref().and_then(|c| c.policy());
    if !current.is_some_and(|p| policy::same(p, &desired)) {
        client
            .put_bucket_policy()
            .bucket(bucket)
            .policy(desired.to_string())
            .send()
            .await
            .map_err(|e| from_sdk("PutBucketPolicy", scope, &e))?;
        changes.push(Change::PolicyUpdated);
    }
    Ok(changes)
}

/// AWS blocks public bucket policies by default (Block Public Access), which would refuse
/// the policy. Only the two policy switches are turned off; public ACLs stay blocked. True
/// if it had to write.
async fn allow_public_policies(
    client: &Client,
    bucket: &str,
    scope: Scope<'_>,
) -> Result<bool, StorageError> {
    let current = match client.get_public_access_block().bucket(bucket).send().await {
        Ok(out) => out,
        Err(e) => {
            let f = failure(&e);
            // Stores without the setting, or credentials that may not read it: then
            // PutBucketPolicy's own answer tells whether something blocks.
            let skip = matches!(
                f.code(),
                Some(
                    "NoSuchPublicAccessBlockConfiguration"
                        | "NotImplemented"
                        | "MethodNotAllowed"
                        | "AccessDenied"
                )
            ) || matches!(f.status(), Some(405 | 501));
            if skip {
                return Ok(false);
            }
            return Err(classify("GetPublicAccessBlock", scope, f));
        }
    };
    let Some(current) = current.public_access_block_configuration() else {
        return Ok(false);
    };
    let blocks = |v: Option<bool>| v.unwrap_or(false);
    if !blocks(current.block_public_policy()) && !blocks(current.restrict_public_buckets()) {
        return Ok(false);
    }
    let relaxed = PublicAccessBlockConfiguration::builder()
        .block_public_acls(blocks(current.block_public_acls()))
        .ignore_public_acls(blocks(current.ignore_public_acls()))
        .block_public_policy(false)
        .restrict_public_buckets(false)
        .build();
    client
        .put_public_access_block()
        .bucket(bucket)
        .public_access_block_configuration(relaxed)
        .send()
        .await
        .map_err(|e| from_sdk("PutPublicAccessBlock", scope, &e))?;
    Ok(true)
}

pub(super) async fn lifecycle(
    client: &Client,
    bucket: &str,
    settings: &BucketSettings,
    scope: Scope<'_>,
) -> Result<bool, StorageError> {
    let desired = lifecycle::desired(&settings.cache_prefix, settings.cache_days);
    let current = read(
        "GetBucketLifecycleConfiguration",
        scope,
        &["NoSuchLifecycleConfiguration"],
        client
            .get_bucket_lifecycle_configuration()
            .bucket(bucket)
            .send(),
    )
    .await?;
    let current = current.as_ref().map_or(&[][..], |c| c.rules());
    if lifecycle::same(current, &desired) {
        return Ok(false);
    }
    let configuration = BucketLifecycleConfiguration::builder()
        .set_rules(Some(desired))
        .build()
        .expect("rules is set");
    client
        .put_bucket_lifecycle_configuration()
        .bucket(bucket)
        .lifecycle_configuration(configuration)
        .send()
        .await
        .map_err(|e| from_sdk("PutBucketLifecycleConfiguration", scope, &e))?;
    Ok(true)
}

/// Reads a configuration that may not exist: `None` when the store answers with one of the
/// `absent` codes (S3 has one per kind of configuration).
async fn read<T, E>(
    operation: &'static str,
    scope: Scope<'_>,
    absent: &[&str],
    request: impl Future<Output = Result<T, SdkError<E, HttpResponse>>>,
) -> Result<Option<T>, StorageError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match request.await {
        Ok(out) => Ok(Some(out)),
        Err(e) => {
            let f = failure(&e);
            if f.code().is_some_and(|code| absent.contains(&code)) {
                Ok(None)
            } else {
                Err(classify(operation, scope, f))
            }
        }
    }
}
