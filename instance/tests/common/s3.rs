//! The test object store: a client set up as the operator's, and a bucket per test, removed
//! when the test is done with it (the test SeaweedFS spends a volume and disk on each bucket).

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::service_env;

/// An S3 client on the test store, as the operator would be.
pub fn s3_client() -> aws_sdk_s3::Client {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    let credentials = aws_sdk_s3::config::Credentials::new(
        service_env("FEDI_TEST_S3_ACCESS_KEY"),
        service_env("FEDI_TEST_S3_SECRET_KEY"),
        None,
        None,
        "test",
    );
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new(service_env(
            "FEDI_TEST_S3_REGION",
        )))
        .endpoint_url(service_env("FEDI_TEST_S3_ENDPOINT"))
        .credentials_provider(credentials)
        .http_client(
            aws_smithy_http_client::Builder::new()
                .tls_provider(Provider::Rustls(CryptoMode::Ring))
                .build_https(),
        )
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// A bucket of its own for one test, emptied and removed on drop (also when the test fails).
pub struct TestBucket {
    pub s3: aws_sdk_s3::Client,
    pub name: String,
}

impl TestBucket {
    /// A new, empty, private bucket named `{prefix}-…`.
    pub async fn new(prefix: &str) -> Self {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!(
            "{prefix}-{}-{}-{nanos}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let s3 = s3_client();
        s3.create_bucket()
            .bucket(&name)
            .send()
            .await
            .expect("create test bucket");
        Self { s3, name }
    }

    /// A new bucket whose `media/` anyone may read: what the operator sets up in production.
    pub async fn public(prefix: &str) -> Self {
        let bucket = Self::new(prefix).await;
        let policy = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "PublicRead", "Effect": "Allow", "Principal": "*",
                "Action": ["s3:GetObject"],
                "Resource": [format!("arn:aws:s3:::{}/media/*", bucket.name)]
            }]
        });
        bucket
            .s3
            .put_bucket_policy()
            .bucket(&bucket.name)
            .policy(policy.to_string())
            .send()
            .await
            .expect("make media/ public");
        bucket
    }

    /// Where the bucket's objects are fetched from, with a trailing slash.
    pub fn public_url(&self) -> String {
        format!("{}/{}/", service_env("FEDI_TEST_S3_ENDPOINT"), self.name)
    }

    /// The server's settings for this bucket.
    pub fn server_env(&self) -> Vec<(&'static str, String)> {
        let endpoint = service_env("FEDI_TEST_S3_ENDPOINT");
        vec![
            ("FEDI_S3_ENDPOINT", endpoint.clone()),
            ("FEDI_S3_REGION", service_env("FEDI_TEST_S3_REGION")),
            ("FEDI_S3_BUCKET", self.name.clone()),
            ("FEDI_S3_PATH_STYLE", "true".into()),
            ("FEDI_S3_PUBLIC_URL", format!("{endpoint}/{}", self.name)),
            (
                "FEDI_S3_ACCESS_KEY_ID",
                service_env("FEDI_TEST_S3_ACCESS_KEY"),
            ),
            (
                "FEDI_S3_SECRET_ACCESS_KEY",
                service_env("FEDI_TEST_S3_SECRET_KEY"),
            ),
        ]
    }

    /// Every key in the bucket, sorted.
    pub async fn keys(&self) -> Vec<String> {
        let mut keys = object_keys(&self.s3, &self.name).await;
        keys.sort();
        keys
    }
}

/// `[(name, value)]` borrowed, the form `start_api_with` takes.
pub fn env_refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

async fn object_keys(s3: &aws_sdk_s3::Client, bucket: &str) -> Vec<String> {
    let listed = s3
        .list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .expect("list the test bucket");
    listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(String::from))
        .collect()
}

async fn remove(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<(), String> {
    loop {
        let keys = object_keys(s3, bucket).await;
        if keys.is_empty() {
            break;
        }
        for key in keys {
            s3.delete_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .map_err(|e| format!("delete an object of {bucket}: {e:?}"))?;
        }
    }
    s3.delete_bucket()
        .bucket(bucket)
        .send()
        .await
        .map_err(|e| format!("delete {bucket}: {e:?}"))?;
    Ok(())
}

impl Drop for TestBucket {
    fn drop(&mut self) {
        // Drop cannot await, and the test's runtime may be the current thread: the removal
        // runs on a thread with a runtime (and a client) of its own.
        let name = std::mem::take(&mut self.name);
        let outcome = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime to remove the test bucket")
                .block_on(async { remove(&s3_client(), &name).await })
        })
        .join();
        match outcome {
            Ok(Ok(())) => {}
            // A second panic while a failed test unwinds would abort and hide its message.
            _ if std::thread::panicking() => {}
            Ok(Err(e)) => panic!("removing the test bucket: {e}"),
            Err(_) => panic!("removing the test bucket panicked"),
        }
    }
}
