//! What the caller tells this module: where the bucket is, and what it should look like.
//! Validated here, before any request, so that a typo gives `InvalidConfiguration` with
//! the field's name instead of a puzzling answer from the store.

use std::fmt;

use super::StorageError;

/// A bucket on an S3-compatible store, and the credentials to manage it.
#[derive(Clone, PartialEq, Eq)]
pub struct Target {
    /// `https://s3.example.net` or `http://minio.storage:9000`.
    pub endpoint: String,
    /// Signing region; stores that ignore regions accept any, conventionally `us-east-1`.
    pub region: String,
    pub bucket: String,
    /// `https://endpoint/bucket/key` rather than `https://bucket.endpoint/key`: what most
    /// self-hosted stores (SeaweedFS, MinIO, Ceph RGW without wildcard DNS) need.
    pub path_style: bool,
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("path_style", &self.path_style)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

/// How the instance uses its bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketSettings {
    /// The origin of the instance's web UI, `https://<domain>`: the only origin CORS allows.
    pub web_origin: String,
    /// Keys under this prefix (e.g. `media/`) are readable by anyone; nothing else is.
    pub public_prefix: String,
    /// Keys under this prefix (e.g. `cache/`, the remote media cache) expire.
    pub cache_prefix: String,
    /// Days after which cached remote media are deleted.
    pub cache_days: i32,
}

impl Target {
    pub(crate) fn validate(&self) -> Result<(), StorageError> {
        let invalid = |m: String| Err(StorageError::InvalidConfiguration(m));
        if let Err(why) = check_url(&self.endpoint, true) {
            return invalid(format!("endpoint {:?} {why}", self.endpoint));
        }
        if self.region.is_empty() || self.region.contains(char::is_whitespace) {
            return invalid(format!(
                "region {:?} is not a region name (stores without regions accept us-east-1)",
                self.region
            ));
        }
        if let Err(why) = check_bucket_name(&self.bucket) {
            return invalid(format!("bucket name {:?} {why}", self.bucket));
        }
        if self.access_key_id.trim().is_empty() {
            return invalid("the access key ID is empty".into());
        }
        if self.secret_access_key.is_empty() {
            return invalid(format!(
                "the secret access key of access key {} is empty",
                self.access_key_id
            ));
        }
        Ok(())
    }
}

impl BucketSettings {
    pub(crate) fn validate(&self) -> Result<(), StorageError> {
        let invalid = |m: String| Err(StorageError::InvalidConfiguration(m));
        if let Err(why) = check_url(&self.web_origin, false) {
            return invalid(format!("web origin {:?} {why}", self.web_origin));
        }
        for (name, prefix) in [
            ("public prefix", &self.public_prefix),
            ("cache prefix", &self.cache_prefix),
        ] {
            if let Err(why) = check_prefix(prefix) {
                return invalid(format!("{name} {prefix:?} {why}"));
            }
        }
        if self.cache_days < 1 {
            return invalid(format!(
                "the media cache must be kept at least 1 day, not {}",
                self.cache_days
            ));
        }
        Ok(())
    }
}

/// `http(s)://host[:port]`, plus a path for endpoints (some stores live under one). An
/// origin never has a path, not even `/`: browsers send it without, and CORS compares
/// exactly.
fn check_url(url: &str, path_allowed: bool) -> Result<(), &'static str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or("must start with https:// or http://")?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if authority.is_empty() {
        return Err("has no host");
    }
    if url.contains(|c: char| c.is_whitespace() || matches!(c, '?' | '#' | '@')) {
        return Err("must be a plain URL without spaces, user, query or fragment");
    }
    if !path.is_empty() && !path_allowed {
        return Err("must be only scheme, host and port, with no path or trailing slash");
    }
    Ok(())
}

/// The rules every S3 implementation accepts (AWS's for new buckets).
fn check_bucket_name(name: &str) -> Result<(), &'static str> {
    if !(3..=63).contains(&name.len()) {
        return Err("must be 3 to 63 characters long");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    {
        return Err("may contain only lowercase letters, digits, '-' and '.'");
    }
    let alnum = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_alphanumeric());
    if !alnum(name.bytes().next()) || !alnum(name.bytes().last()) {
        return Err("must start and end with a letter or a digit");
    }
    if name.contains("..") || name.contains(".-") || name.contains("-.") {
        return Err("must not have '..', '.-' or '-.'");
    }
    if name.split('.').count() == 4 && name.split('.').all(|p| p.parse::<u8>().is_ok()) {
        return Err("must not look like an IP address");
    }
    Ok(())
}

/// A prefix becomes part of a policy ARN and of a lifecycle filter: an empty one would make
/// the whole bucket public or expiring, and `*`/`?` are wildcards in policies.
fn check_prefix(prefix: &str) -> Result<(), &'static str> {
    if prefix.is_empty() {
        return Err("is empty, which would cover the whole bucket");
    }
    if prefix.starts_with('/') {
        return Err("must not start with '/' (object keys do not)");
    }
    if prefix.contains(['*', '?']) || prefix.contains(char::is_control) {
        return Err("must not contain '*', '?' or control characters");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target {
            endpoint: "https://s3.example.net".into(),
            region: "us-east-1".into(),
            bucket: "social-media".into(),
            path_style: true,
            access_key_id: "AKIAEXAMPLE".into(),
            secret_access_key: "very-secret-value".into(),
        }
    }

    fn settings() -> BucketSettings {
        BucketSettings {
            web_origin: "https://social.example.com".into(),
            public_prefix: "media/".into(),
            cache_prefix: "cache/".into(),
            cache_days: 7,
        }
    }

    #[test]
    fn debug_redacts_the_secret_key() {
        let shown = format!("{:?}", target());
        assert!(!shown.contains("very-secret-value"), "{shown}");
        assert!(
            shown.contains("<redacted>") && shown.contains("AKIAEXAMPLE"),
            "{shown}"
        );
    }

    #[test]
    fn targets() {
        type Case = (&'static str, fn(&mut Target), Option<&'static str>);
        let cases: &[Case] = &[
            ("valid", |_| {}, None),
            (
                "http with port",
                |t| t.endpoint = "http://127.0.0.1:18333".into(),
                None,
            ),
            (
                "endpoint with path",
                |t| t.endpoint = "https://example.net/s3/".into(),
                None,
            ),
            (
                "dotted bucket",
                |t| t.bucket = "media.social-example".into(),
                None,
            ),
            (
                "no scheme",
                |t| t.endpoint = "s3.example.net".into(),
                Some("endpoint"),
            ),
            (
                "other scheme",
                |t| t.endpoint = "ftp://s3.example.net".into(),
                Some("endpoint"),
            ),
            (
                "no host",
                |t| t.endpoint = "https:///x".into(),
                Some("no host"),
            ),
            (
                "query",
                |t| t.endpoint = "https://s3.example.net?x=1".into(),
                Some("query"),
            ),
            ("empty region", |t| t.region = String::new(), Some("region")),
            ("short bucket", |t| t.bucket = "ab".into(), Some("3 to 63")),
            (
                "long bucket",
                |t| t.bucket = "a".repeat(64),
                Some("3 to 63"),
            ),
            (
                "upper case",
                |t| t.bucket = "Social".into(),
                Some("lowercase"),
            ),
            (
                "underscore",
                |t| t.bucket = "social_media".into(),
                Some("lowercase"),
            ),
            (
                "leading dash",
                |t| t.bucket = "-social".into(),
                Some("start and end"),
            ),
            (
                "double dot",
                |t| t.bucket = "social..media".into(),
                Some("'..'"),
            ),
            (
                "IP address",
                |t| t.bucket = "192.168.1.1".into(),
                Some("IP address"),
            ),
            (
                "no access key",
                |t| t.access_key_id = " ".into(),
                Some("access key ID"),
            ),
            (
                "no secret",
                |t| t.secret_access_key = String::new(),
                Some("secret access key"),
            ),
        ];
        for (name, change, error) in cases {
            let mut t = target();
            change(&mut t);
            match (t.validate(), error) {
                (Ok(()), None) => {}
                (Err(e), Some(expected)) => {
                    let message = e.to_string();
                    assert_eq!(e.reason(), "InvalidConfiguration", "{name}");
                    assert!(message.contains(expected), "{name}: {message:?}");
                    assert!(
                        !message.contains("very-secret-value"),
                        "{name}: {message:?}"
                    );
                }
                (result, _) => panic!("{name}: {result:?}"),
            }
        }
    }

    #[test]
    fn bucket_settings() {
        type Case = (&'static str, fn(&mut BucketSettings), Option<&'static str>);
        let cases: &[Case] = &[
            ("valid", |_| {}, None),
            (
                "origin with port",
                |s| s.web_origin = "http://localhost:3000".into(),
                None,
            ),
            (
                "cache inside public",
                |s| s.cache_prefix = "media/cache/".into(),
                None,
            ),
            (
                "origin with slash",
                |s| s.web_origin = "https://social.example.com/".into(),
                Some("trailing slash"),
            ),
            (
                "origin without scheme",
                |s| s.web_origin = "social.example.com".into(),
                Some("https://"),
            ),
            (
                "empty public prefix",
                |s| s.public_prefix = String::new(),
                Some("public prefix"),
            ),
            (
                "wildcard public prefix",
                |s| s.public_prefix = "media/*".into(),
                Some("'*'"),
            ),
            (
                "absolute cache prefix",
                |s| s.cache_prefix = "/cache/".into(),
                Some("start with '/'"),
            ),
            (
                "empty cache prefix",
                |s| s.cache_prefix = String::new(),
                Some("cache prefix"),
            ),
            ("zero days", |s| s.cache_days = 0, Some("at least 1 day")),
        ];
        for (name, change, error) in cases {
            let mut s = settings();
            change(&mut s);
            match (s.validate(), error) {
                (Ok(()), None) => {}
                (Err(e), Some(expected)) => {
                    assert!(e.to_string().contains(expected), "{name}: {e}");
                }
                (result, _) => panic!("{name}: {result:?}"),
            }
        }
    }
}
