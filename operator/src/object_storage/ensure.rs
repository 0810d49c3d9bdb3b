//! The steps of `ensure`: read each part of the bucket's configuration, compare it with
//! the desired one (see `cors`, `policy`, `lifecycle`), then write only what differs.
//!
//! Every read finishes before the first write, and the writes go one after another:
//! SeaweedFS's gateway caches a bucket's configuration, and a read that races a write can
//! put the configuration from before the write back into that cache, where it stays (an
//! hour) and serves stale CORS headers; a second run then "repairs" what was already right.

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

/// What the bucket's configuration needs: one entry per part that differs from the desired
/// one, holding what to write.
#[derive(Debug, Default)]
pub(super) struct Plan {
    cors: Option<CorsConfiguration>,
    public_access_block: Option<PublicAccessBlockConfiguration>,
    policy: Option<String>,
    lifecycle: Option<BucketLifecycleConfiguration>,
}

/// Reads every part (at the same time) and compares it with `settings`.
pub(super) async fn plan(
    client: &Client,
    bucket: &str,
    settings: &BucketSettings,
    scope: Scope<'_>,
) -> Result<Plan, StorageError> {
    let (cors, public_access_block, policy, lifecycle) = tokio::try_join!(
        plan_cors(client, bucket, &settings.web_origin, scope),
        plan_public_access_block(client, bucket, scope),
        plan_policy(client, bucket, &settings.public_prefix, scope),
        plan_lifecycle(client, bucket, settings, scope),
    )?;
    Ok(Plan {
        cors,
        public_access_block,
        policy,
        lifecycle,
    })
}

/// Writes what `plan` found different, one part at a time; returns what it wrote, in order.
/// The public access block goes before the policy it would refuse.
pub(super) async fn apply(
    client: &Client,
    bucket: &str,
    plan: Plan,
    scope: Scope<'_>,
) -> Result<Vec<Change>, StorageError> {
    let mut changes = Vec::new();
    if let Some(configuration) = plan.cors {
        client
            .put_bucket_cors()
            .bucket(bucket)
            .cors_configuration(configuration)
            .send()
            .await
            .map_err(|e| from_sdk("PutBucketCors", scope, &e))?;
        changes.push(Change::CorsUpdated);
    }
    if let Some(relaxed) = plan.public_access_block {
        client
            .put_public_access_block()
            .bucket(bucket)
            .public_access_block_configuration(relaxed)
            .send()
            .await
            .map_err(|e| from_sdk("PutPublicAccessBlock", scope, &e))?;
        changes.push(Change::PublicAccessBlockUpdated);
    }
    if let Some(policy) = plan.policy {
        client
            .put_bucket_policy()
            .bucket(bucket)
            .policy(policy)
            .send()
            .await
            .map_err(|e| from_sdk("PutBucketPolicy", scope, &e))?;
        changes.push(Change::PolicyUpdated);
    }
    if let Some(configuration) = plan.lifecycle {
        client
            .put_bucket_lifecycle_configuration()
            .bucket(bucket)
            .lifecycle_configuration(configuration)
            .send()
            .await
            .map_err(|e| from_sdk("PutBucketLifecycleConfiguration", scope, &e))?;
        changes.push(Change::LifecycleUpdated);
    }
    Ok(changes)
}

async fn plan_cors(
    client: &Client,
    bucket: &str,
    web_origin: &str,
    scope: Scope<'_>,
) -> Result<Option<CorsConfiguration>, StorageError> {
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
        return Ok(None);
    }
    let configuration = CorsConfiguration::builder()
        .set_cors_rules(Some(desired))
        .build()
        .expect("cors_rules is set");
    Ok(Some(configuration))
}

async fn plan_policy(
    client: &Client,
    bucket: &str,
    public_prefix: &str,
    scope: Scope<'_>,
) -> Result<Option<String>, StorageError> {
    let desired = policy::desired(bucket, public_prefix);
    let current = read(
        "GetBucketPolicy",
        scope,
        &["NoSuchBucketPolicy"],
        client.get_bucket_policy().bucket(bucket).send(),
    )
    .await?;
    let current = current.as_ref().and_then(|c| c.policy());
    if current.is_some_and(|p| policy::same(p, &desired)) {
        return Ok(None);
    }
    Ok(Some(desired.to_string()))
}

/// AWS blocks public bucket policies by default (Block Public Access), which would refuse
/// the policy. Only the two policy switches are turned off; public ACLs stay blocked. The
/// relaxed block, if the current one blocks policies.
async fn plan_public_access_block(
    client: &Client,
    bucket: &str,
    scope: Scope<'_>,
) -> Result<Option<PublicAccessBlockConfiguration>, StorageError> {
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
                return Ok(None);
            }
            return Err(classify("GetPublicAccessBlock", scope, f));
        }
    };
    let Some(current) = current.public_access_block_configuration() else {
        return Ok(None);
    };
    let blocks = |v: Option<bool>| v.unwrap_or(false);
    if !blocks(current.block_public_policy()) && !blocks(current.restrict_public_buckets()) {
        return Ok(None);
    }
    Ok(Some(
        PublicAccessBlockConfiguration::builder()
            .block_public_acls(blocks(current.block_public_acls()))
            .ignore_public_acls(blocks(current.ignore_public_acls()))
            .block_public_policy(false)
            .restrict_public_buckets(false)
            .build(),
    ))
}

async fn plan_lifecycle(
    client: &Client,
    bucket: &str,
    settings: &BucketSettings,
    scope: Scope<'_>,
) -> Result<Option<BucketLifecycleConfiguration>, StorageError> {
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
        return Ok(None);
    }
    let configuration = BucketLifecycleConfiguration::builder()
        .set_rules(Some(desired))
        .build()
        .expect("rules is set");
    Ok(Some(configuration))
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
