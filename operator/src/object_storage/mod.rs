//! Ensures an instance's media bucket on an S3-compatible store through `aws-sdk-s3`.
//!
//! Knows nothing of Kubernetes: the caller resolves the FediInstance and its credentials
//! Secret into a [`Target`] and [`BucketSettings`], and turns [`Changes`] and
//! [`StorageError::reason`] into events and the `StorageReady` condition.
//!
//! - [`ensure`]: the bucket exists with its CORS rules, its bucket policy (anonymous read of
//!   the public prefix only) and its lifecycle rules. Reads first and writes only what
//!   differs, so a second run writes nothing.
//! - [`check`]: a cheap readiness probe.
//! - [`delete_bucket`]: empties and removes the bucket (`deletionPolicy: Delete`).
//!
//! The pure parts, each with table tests: `policy`, `cors`, `lifecycle` (desired
//! configuration and semantic comparison), `error` (classification into reasons) and
//! `target` (validation).

mod cors;
mod delete;
mod ensure;
mod error;
mod lifecycle;
mod policy;
mod target;

use std::fmt;
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};

pub use error::StorageError;
pub use target::{BucketSettings, Target};

use error::Scope;

/// A store that does not answer the TCP handshake within this is not going to.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// One request, including reading the answer: a DeleteObjects of a full page on a slow store
/// fits, a hung store does not hold a reconcile for long.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(20);
/// Every attempt of one request together.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);
/// One retry for a transient failure; anything longer is the reconcile's requeue's job.
const MAX_ATTEMPTS: u32 = 2;
/// Keys per list and per DeleteObjects request: S3's maximum for both.
const PAGE_SIZE: i32 = 1000;

/// One configuration write made by [`ensure`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    BucketCreated,
    /// Block Public Access (an AWS setting) forbade public bucket policies; it now allows
    /// them, and still blocks public ACLs.
    PublicAccessBlockUpdated,
    CorsUpdated,
    PolicyUpdated,
    LifecycleUpdated,
}

impl Change {
    /// A stable reason for the Normal event that reports the change.
    pub fn reason(&self) -> &'static str {
        match self {
            Change::BucketCreated => "BucketCreated",
            Change::PublicAccessBlockUpdated => "BucketPublicAccessBlockUpdated",
            Change::CorsUpdated => "BucketCorsUpdated",
            Change::PolicyUpdated => "BucketPolicyUpdated",
            Change::LifecycleUpdated => "BucketLifecycleUpdated",
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Change::BucketCreated => "created the bucket",
            Change::PublicAccessBlockUpdated => {
                "allowed public bucket policies in the bucket's Block Public Access settings"
            }
            Change::CorsUpdated => "set the CORS rules (GET and HEAD from the web origin)",
            Change::PolicyUpdated => "set the bucket policy (anonymous read of the public prefix)",
            Change::LifecycleUpdated => {
                "set the lifecycle rules (media cache expiry, stale upload cleanup)"
            }
        })
    }
}

/// The writes [`ensure`] made, in the order it made them; empty when all was as desired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes(Vec<Change>);

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, change: Change) -> bool {
        self.0.contains(&change)
    }

    pub fn iter(&self) -> impl Iterator<Item = Change> + '_ {
        self.0.iter().copied()
    }
}

impl fmt::Display for Changes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("no changes");
        }
        for (i, change) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{change}")?;
        }
        Ok(())
    }
}

/// What [`delete_bucket`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Deleted {
    /// False when there was no bucket (already deleted): nothing was done.
    pub bucket_existed: bool,
    /// Objects deleted; in a versioned bucket, every version and delete marker counts.
    pub objects: u64,
    /// Incomplete multipart uploads aborted.
    pub uploads_aborted: u64,
}

/// Makes the bucket exist and look as `settings` say; returns what it had to write.
///
/// Idempotent: reads each part of the configuration, compares it semantically with the
/// desired one and writes only what differs, so a run on a prepared bucket writes nothing.
/// Configuration made by others (another policy statement, CORS rule or lifecycle rule) is
/// replaced: the operator owns the bucket.
pub async fn ensure(target: &Target, settings: &BucketSettings) -> Result<Changes, StorageError> {
    settings.validate()?;
    let client = client(target)?;
    let scope = scope(target);
    let bucket = target.bucket.as_str();

    let mut changes = Vec::new();
    if ensure::bucket(&client, target, scope).await? {
        changes.push(Change::BucketCreated);
    }
    let plan = ensure::plan(&client, bucket, settings, scope).await?;
    changes.extend(ensure::apply(&client, bucket, plan, scope).await?);
    for change in &changes {
        tracing::info!(bucket, endpoint = %target.endpoint, reason = change.reason(), "{change}");
    }
    Ok(Changes(changes))
}

/// Empties the bucket (objects, every version and delete marker, incomplete multipart
/// uploads) page by page and removes it. A missing bucket is success: the finalizer that
/// calls this may run again after a partial failure.
pub async fn delete_bucket(target: &Target) -> Result<Deleted, StorageError> {
    delete_bucket_paged(target, PAGE_SIZE).await
}

/// [`delete_bucket`] with `page_size` keys per list and per delete request (1 to 1000), for
/// stores with lower limits than S3's 1000.
pub async fn delete_bucket_paged(target: &Target, page_size: i32) -> Result<Deleted, StorageError> {
    if !(1..=PAGE_SIZE).contains(&page_size) {
        return Err(StorageError::InvalidConfiguration(format!(
            "the page size must be 1 to {PAGE_SIZE}, not {page_size}"
        )));
    }
    let client = client(target)?;
    delete::bucket(&client, &target.bucket, page_size, scope(target)).await
}

/// A cheap readiness probe: the store answers, the credentials are accepted and the bucket
/// exists (one HeadBucket).
pub async fn check(target: &Target) -> Result<(), StorageError> {
    let client = client(target)?;
    head_bucket(&client, &target.bucket, scope(target)).await
}

/// An S3 client for `target`, with this module's timeouts and retry limit, for callers that
/// need more than this module does (tests reading the configuration back, for example).
///
/// Every call builds a new client and so a new connection pool: fine at reconcile rates.
pub fn client(target: &Target) -> Result<Client, StorageError> {
    target.validate()?;
    let credentials = Credentials::new(
        &target.access_key_id,
        &target.secret_access_key,
        None,
        None,
        "fedi-operator",
    );
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(&target.endpoint)
        .region(Region::new(target.region.clone()))
        .credentials_provider(credentials)
        .http_client(https_client())
        .force_path_style(target.path_style)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .operation_timeout(OPERATION_TIMEOUT)
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
        // The SDK's default CRC32 checksums on every upload and download are newer than
        // many S3-compatible stores; checksums stay where the S3 API requires them.
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .build();
    Ok(Client::from_conf(config))
}

/// HTTPS through rustls on ring, with the system's root certificates.
fn https_client() -> aws_sdk_s3::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// HeadBucket, the cheapest request that proves the bucket exists and the credentials work.
async fn head_bucket(client: &Client, bucket: &str, scope: Scope<'_>) -> Result<(), StorageError> {
    let Err(e) = client.head_bucket().bucket(bucket).send().await else {
        return Ok(());
    };
    let head = error::failure(&e);
    if head.status() == Some(403) && head.code().is_none_or(|c| c == "Forbidden") {
        // An answer to HEAD has no body, hence no error code to tell a wrong key from a
        // wrong secret or a missing permission: a GET of the same bucket has one.
        if let Err(e) = client.get_bucket_location().bucket(bucket).send().await {
            let get = error::failure(&e);
            if get.status() == Some(403) && get.code().is_some() {
                return Err(error::classify("HeadBucket", scope, get));
            }
        }
    }
    Err(error::classify("HeadBucket", scope, head))
}

fn scope(target: &Target) -> Scope<'_> {
    Scope {
        endpoint: &target.endpoint,
        bucket: &target.bucket,
    }
}
