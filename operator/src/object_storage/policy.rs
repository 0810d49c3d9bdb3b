//! The bucket policy: anonymous read of the public prefix and nothing else.
//!
//! Stores re-serialize policies (SeaweedFS and AWS both do), so the one read back is rarely
//! the text that was written: comparison is on a canonical form that keeps only meaning.

use serde_json::{Map, Value, json};

/// Media are served straight from the bucket to browsers and to other servers, so objects
/// under the public prefix must be readable without credentials. Listing is not granted:
/// object names stay unguessable.
pub(crate) fn desired(bucket: &str, public_prefix: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "PublicReadMedia",
            "Effect": "Allow",
            "Principal": "*",
            "Action": ["s3:GetObject"],
            "Resource": [format!("arn:aws:s3:::{bucket}/{public_prefix}*")],
        }],
    })
}

/// Whether the policy text read from the store means the same as `desired`. Text that is
/// not a policy never does, so it is overwritten.
pub(crate) fn same(current: &str, desired: &Value) -> bool {
    let Ok(current) = serde_json::from_str::<Value>(current) else {
        return false;
    };
    match (canonical(&current), canonical(desired)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

fn canonical(policy: &Value) -> Option<Value> {
    let policy = policy.as_object()?;
    // IAM's default when Version is absent; it changes how ${...} variables are read.
    let version = match policy.get("Version") {
        None => "2008-10-17",
        Some(v) => v.as_str()?,
    };
    let statements = match policy.get("Statement")? {
        Value::Array(all) => all.iter().map(statement).collect::<Option<Vec<_>>>()?,
        one @ Value::Object(_) => vec![statement(one)?],
        _ => return None,
    };
    Some(json!({ "Version": version, "Statement": sorted_set(statements) }))
}

fn statement(statement: &Value) -> Option<Value> {
    let mut out = Map::new();
    for (key, value) in statement.as_object()? {
        let value = match key.as_str() {
            // A label only.
            "Sid" => continue,
            // Action names are case-insensitive, ARNs are not.
            "Action" | "NotAction" => strings(value, true)?,
            "Resource" | "NotResource" => strings(value, false)?,
            "Principal" | "NotPrincipal" => principal(value)?,
            "Condition" => condition(value)?,
            _ => value.clone(),
        };
        out.insert(key.clone(), value);
    }
    Some(Value::Object(out))
}

/// `"x"` and `["x"]` mean the same; so do lists in any order.
fn strings(value: &Value, lowercase: bool) -> Option<Value> {
    let one = |v: &Value| {
        v.as_str().map(|s| {
            Value::String(if lowercase {
                s.to_ascii_lowercase()
            } else {
                s.to_owned()
            })
        })
    };
    let all = match value {
        Value::Array(items) => items.iter().map(one).collect::<Option<Vec<_>>>()?,
        single => vec![one(single)?],
    };
    Some(sorted_set(all))
}

/// `"*"` is shorthand for `{"AWS": "*"}`: everyone, including anonymous requests.
fn principal(value: &Value) -> Option<Value> {
    match value {
        Value::String(s) if s == "*" => Some(json!({ "AWS": ["*"] })),
        Value::Object(map) => map
            .iter()
            .map(|(kind, who)| Some((kind.clone(), strings(who, false)?)))
            .collect::<Option<Map<_, _>>>()
            .map(Value::Object),
        _ => None,
    }
}

fn condition(value: &Value) -> Option<Value> {
    let operators = value.as_object()?;
    let mut out = Map::new();
    for (operator, keys) in operators {
        let mut keys_out = Map::new();
        for (key, values) in keys.as_object()? {
            let values = match values {
                Value::Array(items) => items.clone(),
                single => vec![single.clone()],
            };
            // Condition keys are case-insensitive; their values are not.
            keys_out.insert(key.to_ascii_lowercase(), sorted_set(values));
        }
        out.insert(operator.clone(), Value::Object(keys_out));
    }
    Some(Value::Object(out))
}

fn sorted_set(mut values: Vec<Value>) -> Value {
    values.sort_by_cached_key(Value::to_string);
    values.dedup();
    Value::Array(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted() -> Value {
        desired("social-media", "media/")
    }

    #[test]
    fn grants_anonymous_read_of_the_public_prefix_only() {
        let policy = wanted();
        let statements = policy["Statement"].as_array().unwrap();
        assert_eq!(statements.len(), 1);
        let s = &statements[0];
        assert_eq!(s["Effect"], "Allow");
        assert_eq!(s["Principal"], "*");
        assert_eq!(s["Action"], json!(["s3:GetObject"]));
        assert_eq!(s["Resource"], json!(["arn:aws:s3:::social-media/media/*"]));
    }

    #[test]
    fn equivalent_forms_are_the_same() {
        let cases = [
            ("as written", wanted().to_string()),
            (
                "strings instead of lists, no Sid (SeaweedFS's and AWS's form)",
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*",
                    "Action":"s3:GetObject","Resource":"arn:aws:s3:::social-media/media/*"}]}"#
                    .into(),
            ),
            (
                "Principal as {AWS: [*]}, action in another case, keys reordered",
                r#"{"Statement":{"Resource":["arn:aws:s3:::social-media/media/*"],
                    "Action":["S3:GetObject"],"Principal":{"AWS":["*"]},"Effect":"Allow",
                    "Sid":"other label"},"Version":"2012-10-17","Id":"x"}"#
                    .into(),
            ),
            (
                "the same statement twice",
                r#"{"Version":"2012-10-17","Statement":[
                    {"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::social-media/media/*"},
                    {"Effect":"Allow","Principal":{"AWS":"*"},"Action":["s3:GetObject"],"Resource":"arn:aws:s3:::social-media/media/*"}]}"#
                    .into(),
            ),
        ];
        for (name, current) in cases {
            assert!(same(&current, &wanted()), "{name}: {current}");
        }
    }

    #[test]
    fn different_meanings_differ() {
        let cases = [
            ("not JSON", "<Policy/>"),
            ("empty", ""),
            ("no statements", r#"{"Version":"2012-10-17"}"#),
            (
                "the whole bucket is public",
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*",
                    "Action":"s3:GetObject","Resource":"arn:aws:s3:::social-media/*"}]}"#,
            ),
            (
                "listing granted too",
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*",
                    "Action":["s3:GetObject","s3:ListBucket"],"Resource":["arn:aws:s3:::social-media/media/*","arn:aws:s3:::social-media"]}]}"#,
            ),
            (
                "an extra statement",
                r#"{"Version":"2012-10-17","Statement":[
                    {"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::social-media/media/*"},
                    {"Effect":"Allow","Principal":"*","Action":"s3:PutObject","Resource":"arn:aws:s3:::social-media/media/*"}]}"#,
            ),
            (
                "another principal",
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::1:root"},
                    "Action":"s3:GetObject","Resource":"arn:aws:s3:::social-media/media/*"}]}"#,
            ),
            (
                "a condition",
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject",
                    "Resource":"arn:aws:s3:::social-media/media/*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}]}"#,
            ),
            (
                "the old policy language",
                r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject",
                    "Resource":"arn:aws:s3:::social-media/media/*"}]}"#,
            ),
            (
                "another bucket",
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*",
                    "Action":"s3:GetObject","Resource":"arn:aws:s3:::other/media/*"}]}"#,
            ),
        ];
        for (name, current) in cases {
            assert!(!same(current, &wanted()), "{name}: {current}");
        }
    }

    #[test]
    fn condition_keys_compare_without_case_and_order() {
        let a = json!({"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:*",
            "Resource":"arn:aws:s3:::b/*","Condition":{"Bool":{"aws:SecureTransport":"false"},
            "IpAddress":{"aws:SourceIp":["10.0.0.0/8","192.168.0.0/16"]}}}]});
        let b = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:*",
            "Resource":"arn:aws:s3:::b/*","Condition":{"IpAddress":{"AWS:SourceIp":["192.168.0.0/16","10.0.0.0/8"]},
            "Bool":{"aws:securetransport":["false"]}}}]}"#;
        assert!(same(b, &a));
    }
}
