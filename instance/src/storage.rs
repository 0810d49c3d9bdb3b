//! The media bucket (S3 or compatible): uploads go in under `media/`, which the operator
//! makes publicly readable, and browsers fetch them straight from the bucket or its CDN.
//!
//! Building the client does no I/O: a store that is down only fails the requests that need
//! it, never the start of the process.

use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::primitives::ByteStream;
use fedi_config::StorageConfig;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// An 8 MB image over a slow link to the store still fits; a hung store does not hold the
/// request (and the client waiting on it) for long.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
const OPERATION_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_ATTEMPTS: u32 = 2;
/// Object keys are random and never rewritten, so caches may keep them forever.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

pub struct Storage {
    client: Client,
    bucket: String,
    /// Without a trailing slash; a key is appended after one.
    public_base: String,
}

impl Storage {
    pub fn new(config: &StorageConfig) -> Self {
        let credentials = Credentials::new(
            config.access_key_id.expose(),
            config.secret_access_key.expose(),
            None,
            None,
            "fedi-server",
        );
        let s3 = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(&config.endpoint)
            .region(Region::new(config.region.clone()))
            .credentials_provider(credentials)
            .http_client(https_client())
            .force_path_style(config.path_style)
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                    .operation_timeout(OPERATION_TIMEOUT)
                    .build(),
            )
            .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
            // Default CRC32 checksums are newer than many S3-compatible stores support.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .build();
        Self {
            client: Client::from_conf(s3),
            bucket: config.bucket.clone(),
            public_base: public_base(config),
        }
    }

    /// Where browsers fetch `key` from.
    pub fn public_url(&self, key: &str) -> String {
        format!("{}/{key}", self.public_base)
    }

    /// Stores `bytes` under `key`, served later with `content_type`.
    pub async fn put(
        &self,
        key: &str,
        bytes: axum::body::Bytes,
        content_type: &str,
    ) -> anyhow::Result<()> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .cache_control(IMMUTABLE)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "storing {key}: {}",
                    aws_sdk_s3::error::DisplayErrorContext(e)
                )
            })?;
        Ok(())
    }

    /// The bytes stored under `key` (the worker reads uploads back to process them).
    pub async fn get(&self, key: &str) -> anyhow::Result<axum::body::Bytes> {
        let object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "reading {key}: {}",
                    aws_sdk_s3::error::DisplayErrorContext(e)
                )
            })?;
        let body = object
            .body
            .collect()
            .await
            .map_err(|e| anyhow::anyhow!("reading {key}: {e}"))?;
        Ok(body.into_bytes())
    }

    /// Removes `key`; a key already gone is no error (S3 answers 204 either way).
    pub async fn delete(&self, key: &str) -> anyhow::Result<()> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "deleting {key}: {}",
                    aws_sdk_s3::error::DisplayErrorContext(e)
                )
            })?;
        Ok(())
    }
}

/// The configured public URL (a CDN), else the bucket's own URL in the addressing style the
/// server uses to write to it.
fn public_base(config: &StorageConfig) -> String {
    if let Some(url) = &config.public_url {
        return url.trim_end_matches('/').to_string();
    }
    let endpoint = config.endpoint.trim_end_matches('/');
    if !config.path_style
        && let Ok(mut url) = url::Url::parse(endpoint)
        && let Some(host) = url.host_str().map(str::to_string)
        && url
            .set_host(Some(&format!("{}.{host}", config.bucket)))
            .is_ok()
    {
        return url.as_str().trim_end_matches('/').to_string();
    }
    format!("{endpoint}/{}", config.bucket)
}

/// HTTPS through rustls on ring, with the system's root certificates (as the operator does:
/// the SDK's default client would link aws-lc-rs as a second crypto library).
fn https_client() -> aws_sdk_s3::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedi_config::Secret;

    fn config(path_style: bool, public_url: Option<&str>) -> StorageConfig {
        StorageConfig {
            endpoint: "https://s3.example.net/".into(),
            region: "us-east-1".into(),
            bucket: "media-bucket".into(),
            path_style,
            public_url: public_url.map(String::from),
            access_key_id: Secret::new("k"),
            secret_access_key: Secret::new("s"),
        }
    }

    #[test]
    fn public_urls_follow_the_cdn_or_the_addressing_style() {
        let cases = [
            (true, None, "https://s3.example.net/media-bucket"),
            (false, None, "https://media-bucket.s3.example.net"),
            (
                false,
                Some("https://cdn.example.com/"),
                "https://cdn.example.com",
            ),
        ];
        for (path_style, public, want) in cases {
            assert_eq!(public_base(&config(path_style, public)), want);
        }
    }
}
