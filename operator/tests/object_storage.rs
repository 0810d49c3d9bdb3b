//! `object_storage` against the SeaweedFS S3 server of `make services-up`.
//!
//! Every test uses a bucket of its own. Anonymous requests are made over a bare TCP
//! connection, so that nothing signs them by accident.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketVersioningStatus, CorsConfiguration, CorsRule, PublicAccessBlockConfiguration,
    VersioningConfiguration,
};
use fedi_operator::object_storage::{self, BucketSettings, Change, Deleted, StorageError, Target};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ORIGIN: &str = "https://social.fedi.test";

fn service_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: start the test services with `make services-up` and run tests \
             through `make test-unit` (or `set -a; . .local/services.env; set +a` first)"
        )
    })
}

/// A bucket name no other test (in this process or another) uses.
fn unique_bucket(name: &str) -> String {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    format!("it-{name}-{}-{seq}-{nanos}", std::process::id())
}

fn target(bucket: &str) -> Target {
    Target {
        endpoint: service_env("FEDI_TEST_S3_ENDPOINT"),
        region: service_env("FEDI_TEST_S3_REGION"),
        bucket: bucket.into(),
        path_style: true,
        access_key_id: service_env("FEDI_TEST_S3_ACCESS_KEY"),
        secret_access_key: service_env("FEDI_TEST_S3_SECRET_KEY"),
    }
}

fn settings() -> BucketSettings {
    BucketSettings {
        web_origin: ORIGIN.into(),
        public_prefix: "media/".into(),
        cache_prefix: "cache/".into(),
        cache_days: 7,
    }
}

fn client(target: &Target) -> Client {
    object_storage::client(target).unwrap()
}

async fn put(client: &Client, bucket: &str, key: &str, body: &str) {
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .content_type("text/plain")
        .body(ByteStream::from(body.as_bytes().to_vec()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("PutObject {key}: {e:?}"));
}

async fn bucket_exists(client: &Client, bucket: &str) -> bool {
    match client.head_bucket().bucket(bucket).send().await {
        Ok(_) => true,
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => false,
        Err(e) => panic!("HeadBucket {bucket}: {e:?}"),
    }
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// An unsigned request, as a browser or another server sends it. HTTP/1.0 so that the answer
/// is never chunked and ends when the connection closes.
async fn anonymous(method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    let endpoint = service_env("FEDI_TEST_S3_ENDPOINT");
    let host = endpoint
        .strip_prefix("http://")
        .expect("the test store is served over plain http")
        .trim_end_matches('/');
    let mut stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(host))
        .await
        .expect("connect timed out")
        .unwrap();
    let mut request = format!("{method} {path} HTTP/1.0\r\nHost: {host}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("the answer took over 10 s")
        .unwrap();
    let raw = String::from_utf8_lossy(&raw);
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {raw:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Response {
        status,
        headers,
        body: body.to_owned(),
    }
}

fn changes_of(changes: &object_storage::Changes) -> Vec<Change> {
    changes.iter().collect()
}

async fn cleanup(target: &Target) {
    object_storage::delete_bucket(target).await.unwrap();
}

#[tokio::test]
async fn ensure_prepares_a_new_bucket() {
    let bucket = unique_bucket("new");
    let target = target(&bucket);
    let s3 = client(&target);

    let changes = object_storage::ensure(&target, &settings()).await.unwrap();
    assert_eq!(
        changes_of(&changes),
        [
            Change::BucketCreated,
            Change::CorsUpdated,
            Change::PolicyUpdated,
            Change::LifecycleUpdated
        ],
        "{changes}"
    );
    assert!(bucket_exists(&s3, &bucket).await);
    object_storage::check(&target).await.unwrap();

    // The policy: one statement, anonymous GetObject on the public prefix.
    let policy = s3.get_bucket_policy().bucket(&bucket).send().await.unwrap();
    let policy: serde_json::Value = serde_json::from_str(policy.policy().unwrap()).unwrap();
    let statements = policy["Statement"].as_array().unwrap();
    assert_eq!(statements.len(), 1, "{policy}");
    let statement = &statements[0];
    assert_eq!(statement["Effect"], "Allow", "{policy}");
    assert_eq!(statement["Principal"], "*", "{policy}");
    let one = |v: &serde_json::Value| match v {
        serde_json::Value::Array(a) if a.len() == 1 => a[0].clone(),
        other => other.clone(),
    };
    assert_eq!(one(&statement["Action"]), "s3:GetObject", "{policy}");
    assert_eq!(
        one(&statement["Resource"]),
        format!("arn:aws:s3:::{bucket}/media/*"),
        "{policy}"
    );

    // CORS: GET and HEAD from the web origin only.
    let cors = s3.get_bucket_cors().bucket(&bucket).send().await.unwrap();
    let [rule] = cors.cors_rules() else {
        panic!("one CORS rule expected: {cors:?}");
    };
    assert_eq!(rule.allowed_origins(), [ORIGIN]);
    let mut methods = rule.allowed_methods().to_vec();
    methods.sort();
    assert_eq!(methods, ["GET", "HEAD"]);

    // Lifecycle: the cache expires, stale uploads are aborted.
    // Read right after the run: every write is visible (the run reads nothing while it
    // writes, which could leave a store's cache stale).
    let lifecycle = s3
        .get_bucket_lifecycle_configuration()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let rules = lifecycle.rules();
    assert_eq!(rules.len(), 2, "{rules:?}");
    let expire = rules
        .iter()
        .find(|r| r.expiration().is_some())
        .expect("an expiration rule");
    assert_eq!(expire.filter().and_then(|f| f.prefix()), Some("cache/"));
    assert_eq!(expire.expiration().and_then(|e| e.days()), Some(7));
    let abort = rules
        .iter()
        .find_map(|r| r.abort_incomplete_multipart_upload())
        .expect("an abort rule");
    assert_eq!(abort.days_after_initiation(), Some(1));

    // Anonymous access: the public prefix only, read only.
    put(&s3, &bucket, "media/a.txt", "public media").await;
    put(&s3, &bucket, "cache/b.txt", "cached remote media").await;
    put(&s3, &bucket, "private/c.txt", "not for you").await;
    let public = anonymous("GET", &format!("/{bucket}/media/a.txt"), &[]).await;
    assert_eq!((public.status, public.body.as_str()), (200, "public media"));
    for key in ["cache/b.txt", "private/c.txt", "media"] {
        let refused = anonymous("GET", &format!("/{bucket}/{key}"), &[]).await;
        assert_eq!(refused.status, 403, "anonymous GET {key}: {}", refused.body);
    }
    let listing = anonymous("GET", &format!("/{bucket}/?list-type=2"), &[]).await;
    assert_eq!(listing.status, 403, "anonymous listing: {}", listing.body);
    let write = anonymous(
        "PUT",
        &format!("/{bucket}/media/evil.txt"),
        &[("Content-Length", "0")],
    )
    .await;
    assert_eq!(write.status, 403, "anonymous PUT: {}", write.body);

    // A browser's preflight from the web origin is answered; from another origin it is not.
    let path = format!("/{bucket}/media/a.txt");
    let preflight = |origin| {
        let path = path.clone();
        async move {
            anonymous(
                "OPTIONS",
                &path,
                &[("Origin", origin), ("Access-Control-Request-Method", "GET")],
            )
            .await
        }
    };
    let ours = preflight(ORIGIN).await;
    assert_eq!(ours.header("Access-Control-Allow-Origin"), Some(ORIGIN));
    let theirs = preflight("https://elsewhere.example").await;
    assert_ne!(
        theirs.header("Access-Control-Allow-Origin"),
        Some("https://elsewhere.example")
    );

    cleanup(&target).await;
}

/// Over several fresh buckets at once: a store that loses one of the first run's writes (two
/// PUTs of one bucket's configuration at the same time, on SeaweedFS) shows up as a write in
/// the second run.
#[tokio::test]
async fn a_second_ensure_writes_nothing() {
    let targets: Vec<Target> = (0..8).map(|_| target(&unique_bucket("again"))).collect();
    let ensure_all = || {
        futures::future::join_all(
            targets
                .iter()
                .map(|t| async move { object_storage::ensure(t, &settings()).await.unwrap() }),
        )
    };

    let start = Instant::now();
    for first in ensure_all().await {
        assert!(first.contains(Change::BucketCreated), "{first}");
    }
    let first_took = start.elapsed();

    let start = Instant::now();
    for (second, target) in ensure_all().await.iter().zip(&targets) {
        assert!(
            second.is_empty(),
            "{}: second run wrote: {second}",
            target.bucket
        );
        assert_eq!(second.to_string(), "no changes");
    }
    let second_took = start.elapsed();
    eprintln!("ensure of 8 buckets: first run {first_took:?}, no-op run {second_took:?}");

    for target in &targets {
        cleanup(target).await;
    }
}

#[tokio::test]
async fn ensure_repairs_drift_and_follows_settings() {
    let bucket = unique_bucket("drift");
    let target = target(&bucket);
    let s3 = client(&target);
    object_storage::ensure(&target, &settings()).await.unwrap();
    put(&s3, &bucket, "private/c.txt", "not for you").await;

    // Someone makes the whole bucket public, opens CORS to any origin and drops the
    // lifecycle rules.
    let everything = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                       "Resource": format!("arn:aws:s3:::{bucket}/*")}],
    });
    s3.put_bucket_policy()
        .bucket(&bucket)
        .policy(everything.to_string())
        .send()
        .await
        .unwrap();
    let any_origin = CorsRule::builder()
        .allowed_origins("*")
        .allowed_methods("GET")
        .build()
        .unwrap();
    s3.put_bucket_cors()
        .bucket(&bucket)
        .cors_configuration(
            CorsConfiguration::builder()
                .cors_rules(any_origin)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    s3.delete_bucket_lifecycle()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let path = format!("/{bucket}/private/c.txt");
    assert_eq!(
        anonymous("GET", &path, &[]).await.status,
        200,
        "drift in place"
    );

    let repaired = object_storage::ensure(&target, &settings()).await.unwrap();
    assert_eq!(
        changes_of(&repaired),
        [
            Change::CorsUpdated,
            Change::PolicyUpdated,
            Change::LifecycleUpdated
        ],
        "{repaired}"
    );
    assert_eq!(anonymous("GET", &path, &[]).await.status, 403, "repaired");

    // A changed setting rewrites only its own part.
    let longer = BucketSettings {
        cache_days: 30,
        ..settings()
    };
    let changed = object_storage::ensure(&target, &longer).await.unwrap();
    assert_eq!(
        changes_of(&changed),
        [Change::LifecycleUpdated],
        "{changed}"
    );
    let rules = s3
        .get_bucket_lifecycle_configuration()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    assert!(
        rules
            .rules()
            .iter()
            .any(|r| r.expiration().and_then(|e| e.days()) == Some(30)),
        "{rules:?}"
    );
    assert!(
        object_storage::ensure(&target, &longer)
            .await
            .unwrap()
            .is_empty()
    );

    cleanup(&target).await;
}

#[tokio::test]
async fn ensure_adopts_an_existing_bucket_that_blocks_public_policies() {
    let bucket = unique_bucket("adopt");
    let target = target(&bucket);
    let s3 = client(&target);
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    // AWS's default for new buckets.
    let block_all = PublicAccessBlockConfiguration::builder()
        .block_public_acls(true)
        .ignore_public_acls(true)
        .block_public_policy(true)
        .restrict_public_buckets(true)
        .build();
    s3.put_public_access_block()
        .bucket(&bucket)
        .public_access_block_configuration(block_all)
        .send()
        .await
        .unwrap();

    let changes = object_storage::ensure(&target, &settings()).await.unwrap();
    assert_eq!(
        changes_of(&changes),
        [
            Change::CorsUpdated,
            Change::PublicAccessBlockUpdated,
            Change::PolicyUpdated,
            Change::LifecycleUpdated
        ],
        "{changes}"
    );
    let block = s3
        .get_public_access_block()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let block = block.public_access_block_configuration().unwrap();
    assert_eq!(block.block_public_policy(), Some(false));
    assert_eq!(block.restrict_public_buckets(), Some(false));
    assert_eq!(block.block_public_acls(), Some(true), "ACLs stay blocked");
    assert_eq!(block.ignore_public_acls(), Some(true), "ACLs stay blocked");
    assert!(
        object_storage::ensure(&target, &settings())
            .await
            .unwrap()
            .is_empty()
    );

    cleanup(&target).await;
}

fn assert_access_denied(result: Result<impl std::fmt::Debug, StorageError>, secret: &str) {
    let err = result.expect_err("bad credentials must fail");
    eprintln!("{err}");
    assert_eq!(err.reason(), "AccessDenied", "{err}");
    let message = err.to_string();
    assert!(
        !message.contains(secret),
        "the message shows the secret: {message}"
    );
    assert!(
        !format!("{err:?}").contains(secret),
        "the debug form shows the secret"
    );
}

#[tokio::test]
async fn a_wrong_secret_key_is_access_denied() {
    let bucket = unique_bucket("badsecret");
    let mut target = target(&bucket);
    target.secret_access_key = "not-the-right-secret-key".into();
    assert_access_denied(
        object_storage::ensure(&target, &settings()).await,
        &target.secret_access_key,
    );
    assert_access_denied(
        object_storage::check(&target).await,
        &target.secret_access_key,
    );
    assert_access_denied(
        object_storage::delete_bucket(&target).await,
        &target.secret_access_key,
    );
    let err = object_storage::ensure(&target, &settings())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("secretAccessKey"), "{err}");
}

#[tokio::test]
async fn an_unknown_access_key_is_access_denied() {
    let bucket = unique_bucket("badkey");
    let mut target = target(&bucket);
    target.access_key_id = "unknown-access-key".into();
    assert_access_denied(
        object_storage::ensure(&target, &settings()).await,
        &target.secret_access_key,
    );
    assert_access_denied(
        object_storage::check(&target).await,
        &target.secret_access_key,
    );
    let err = object_storage::ensure(&target, &settings())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("accessKeyId"), "{err}");
}

#[tokio::test]
async fn an_endpoint_with_nothing_listening_is_unreachable_quickly() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut target = target(&unique_bucket("nowhere"));
    target.endpoint = format!("http://127.0.0.1:{port}");

    let start = Instant::now();
    let err = object_storage::ensure(&target, &settings())
        .await
        .unwrap_err();
    let took = start.elapsed();
    assert_eq!(err.reason(), "EndpointUnreachable", "{err}");
    assert!(err.to_string().contains(&target.endpoint), "{err}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    let err = object_storage::check(&target).await.unwrap_err();
    assert_eq!(err.reason(), "EndpointUnreachable", "{err}");
    eprintln!("unreachable after {took:?}: {err}");
}

#[tokio::test]
async fn check_reports_a_missing_bucket() {
    let target = target(&unique_bucket("missing"));
    let err = object_storage::check(&target).await.unwrap_err();
    assert_eq!(err.reason(), "BucketNotFound", "{err}");
    assert!(err.to_string().contains(&target.bucket), "{err}");
}

#[tokio::test]
async fn invalid_settings_are_refused_before_any_request() {
    let mut bad_bucket = target("Not_A_Bucket");
    // Nothing listens there: a request would be EndpointUnreachable instead.
    bad_bucket.endpoint = "http://127.0.0.1:1".into();
    let err = object_storage::ensure(&bad_bucket, &settings())
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "InvalidConfiguration", "{err}");

    let no_days = BucketSettings {
        cache_days: 0,
        ..settings()
    };
    let err = object_storage::ensure(&target("fine-bucket"), &no_days)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "InvalidConfiguration", "{err}");
}

#[tokio::test]
async fn delete_bucket_empties_it_page_by_page() {
    let bucket = unique_bucket("delete");
    let target = target(&bucket);
    let s3 = client(&target);
    object_storage::ensure(&target, &settings()).await.unwrap();
    for i in 0..30 {
        let prefix = ["media", "cache", "private"][i % 3];
        put(&s3, &bucket, &format!("{prefix}/{i:02}.txt"), "x").await;
    }
    // An upload that was started and never completed.
    let upload = s3
        .create_multipart_upload()
        .bucket(&bucket)
        .key("media/big.bin")
        .send()
        .await
        .unwrap();
    s3.upload_part()
        .bucket(&bucket)
        .key("media/big.bin")
        .upload_id(upload.upload_id().unwrap())
        .part_number(1)
        .body(ByteStream::from(vec![0u8; 1024]))
        .send()
        .await
        .unwrap();

    // The store honours small pages, so deleting takes several.
    let first_page = s3
        .list_objects_v2()
        .bucket(&bucket)
        .max_keys(7)
        .send()
        .await
        .unwrap();
    assert_eq!(first_page.contents().len(), 7);
    assert_eq!(first_page.is_truncated(), Some(true));

    let start = Instant::now();
    let deleted = object_storage::delete_bucket_paged(&target, 7)
        .await
        .unwrap();
    eprintln!("deleted {deleted:?} in {:?}", start.elapsed());
    assert_eq!(
        deleted,
        Deleted {
            bucket_existed: true,
            objects: 30,
            uploads_aborted: 1
        }
    );
    assert!(!bucket_exists(&s3, &bucket).await);

    let again = object_storage::delete_bucket(&target).await.unwrap();
    assert_eq!(again, Deleted::default(), "a missing bucket is success");
}

#[tokio::test]
async fn delete_bucket_removes_every_version() {
    let bucket = unique_bucket("versions");
    let target = target(&bucket);
    let s3 = client(&target);
    object_storage::ensure(&target, &settings()).await.unwrap();
    s3.put_bucket_versioning()
        .bucket(&bucket)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
    put(&s3, &bucket, "media/a.txt", "one").await;
    put(&s3, &bucket, "media/a.txt", "two").await;
    put(&s3, &bucket, "media/b.txt", "three").await;
    s3.delete_object()
        .bucket(&bucket)
        .key("media/b.txt")
        .send()
        .await
        .unwrap();

    // Two versions of a, one of b and b's delete marker, two per page.
    let first_page = s3
        .list_object_versions()
        .bucket(&bucket)
        .max_keys(2)
        .send()
        .await
        .unwrap();
    assert_eq!(first_page.is_truncated(), Some(true), "{first_page:?}");
    let deleted = object_storage::delete_bucket_paged(&target, 2)
        .await
        .unwrap();
    assert_eq!(
        deleted,
        Deleted {
            bucket_existed: true,
            objects: 4,
            uploads_aborted: 0
        }
    );
    assert!(!bucket_exists(&s3, &bucket).await);
}
