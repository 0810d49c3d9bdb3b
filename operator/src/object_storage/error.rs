//! What can go wrong talking to an S3-compatible store, as reasons a person can act on.
//!
//! The SDK's errors are first reduced to a [`Failure`] (status, code, message: plain data),
//! then [`classify`] turns that into a [`StorageError`]. Only the first step touches SDK
//! types; the second is pure and table-tested.

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

/// Every way preparing or removing a bucket can fail. None of the messages contains the
/// secret key: they are built from the endpoint, the bucket and the store's answer only.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// Unknown access key, wrong secret key, or an action the credentials may not do.
    #[error("{message}")]
    AccessDenied { code: String, message: String },
    #[error("bucket {bucket} does not exist at {endpoint}")]
    BucketNotFound { endpoint: String, bucket: String },
    /// No answer: nothing listening, DNS, TLS, or a timeout.
    #[error("{0}")]
    EndpointUnreachable(String),
    /// Refused before any request, or by the store for a reason in the settings (bucket
    /// name, region, a name taken by another account).
    #[error("invalid object storage configuration: {0}")]
    InvalidConfiguration(String),
    /// Anything else the store answered, with its code and message.
    #[error("{message}")]
    Api {
        status: Option<u16>,
        code: String,
        message: String,
    },
}

impl StorageError {
    /// The stable `reason` of the StorageReady condition and of the Warning event.
    pub fn reason(&self) -> &'static str {
        match self {
            StorageError::AccessDenied { .. } => "AccessDenied",
            StorageError::BucketNotFound { .. } => "BucketNotFound",
            StorageError::EndpointUnreachable(_) => "EndpointUnreachable",
            StorageError::InvalidConfiguration(_) => "InvalidConfiguration",
            StorageError::Api { .. } => "StorageApiError",
        }
    }

    /// The S3 error code when the store answered with one (`NoSuchBucket`, ...).
    pub fn code(&self) -> Option<&str> {
        match self {
            StorageError::AccessDenied { code, .. } | StorageError::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// Where a request went: enough to name it in a message, and nothing secret.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scope<'a> {
    pub endpoint: &'a str,
    pub bucket: &'a str,
}

/// An SDK error reduced to plain data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The store answered with an error status.
    Service {
        status: Option<u16>,
        code: Option<String>,
        message: Option<String>,
    },
    /// No answer: connection refused, DNS, TLS handshake, timeout.
    Unreachable(String),
    /// The request could not be built (an endpoint or a name the SDK refuses).
    Request(String),
    /// An answer that is not an S3 response.
    Response { status: Option<u16>, detail: String },
}

impl Failure {
    pub fn code(&self) -> Option<&str> {
        match self {
            Failure::Service { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            Failure::Service { status, .. } | Failure::Response { status, .. } => *status,
            _ => None,
        }
    }
}

pub(crate) fn failure<E>(err: &SdkError<E, HttpResponse>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    match err {
        SdkError::ServiceError(_) => Failure::Service {
            status,
            code: err.code().map(str::to_owned),
            message: err.message().map(str::to_owned),
        },
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
            Failure::Unreachable(chain(err))
        }
        SdkError::ConstructionFailure(_) => Failure::Request(chain(err)),
        _ => Failure::Response {
            status,
            detail: chain(err),
        },
    }
}

/// The SDK's top-level messages ("dispatch failure") say little; the cause chain says
/// what actually happened ("Connection refused"). `DisplayErrorContext` would add the
/// Debug form of every layer, too much for a condition message.
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        let part = e.to_string();
        if parts.last() != Some(&part) {
            parts.push(part);
        }
        next = e.source();
    }
    parts.join(": ")
}

pub(crate) fn from_sdk<E>(
    operation: &'static str,
    scope: Scope<'_>,
    err: &SdkError<E, HttpResponse>,
) -> StorageError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    classify(operation, scope, failure(err))
}

pub(crate) fn classify(
    operation: &'static str,
    scope: Scope<'_>,
    failure: Failure,
) -> StorageError {
    let Scope { endpoint, bucket } = scope;
    match failure {
        Failure::Unreachable(detail) => StorageError::EndpointUnreachable(format!(
            "cannot reach the S3 endpoint {endpoint} ({operation}: {detail}); check the \
             endpoint URL and that the store is running and reachable from the operator"
        )),
        Failure::Request(detail) => StorageError::InvalidConfiguration(format!(
            "cannot build an S3 {operation} request for bucket {bucket} at {endpoint}: {detail}"
        )),
        Failure::Response { status, detail } => StorageError::Api {
            status,
            code: "InvalidResponse".into(),
            message: format!(
                "S3 {operation} on bucket {bucket} at {endpoint} got an answer that is not an \
                 S3 response ({detail}); is this an S3 endpoint?"
            ),
        },
        Failure::Service {
            status,
            code,
            message,
        } => {
            let code_str = code.as_deref().unwrap_or("");
            let message = message.unwrap_or_else(|| match status {
                Some(s) => format!("HTTP {s} without an error body"),
                None => "no details".into(),
            });
            let code = code
                .clone()
                .unwrap_or_else(|| status.map_or("Unknown".into(), |s| format!("HTTP{s}")));
            if let Some(hint) = access_hint(code_str, status, operation) {
                return StorageError::AccessDenied {
                    message: format!(
                        "S3 {operation} on bucket {bucket} at {endpoint} was refused \
                         ({code}: {message}); {hint}"
                    ),
                    code,
                };
            }
            if code_str == "NoSuchBucket"
                || (status == Some(404) && matches!(code_str, "" | "NotFound"))
            {
                return StorageError::BucketNotFound {
                    endpoint: endpoint.to_owned(),
                    bucket: bucket.to_owned(),
                };
            }
            if let Some(hint) = configuration_hint(code_str) {
                return StorageError::InvalidConfiguration(format!(
                    "S3 {operation} on bucket {bucket} at {endpoint} was rejected \
                     ({code}: {message}); {hint}"
                ));
            }
            StorageError::Api {
                message: format!(
                    "S3 {operation} on bucket {bucket} at {endpoint} failed: {code}: {message}"
                ),
                status,
                code,
            }
        }
    }
}

fn access_hint(code: &str, status: Option<u16>, operation: &str) -> Option<&'static str> {
    Some(match code {
        "InvalidAccessKeyId" => {
            "the store does not know this access key ID: check accessKeyId in the credentials Secret"
        }
        "SignatureDoesNotMatch" => {
            "the secret key does not match the access key ID: check secretAccessKey in the \
             credentials Secret (and the region)"
        }
        "AccessDenied" | "AllAccessDisabled" if operation == "PutBucketPolicy" => {
            "the credentials may not set the bucket policy, or Block Public Access (bucket or \
             account level) forbids public policies: grant s3:PutBucketPolicy and allow public \
             bucket policies"
        }
        "AccessDenied" | "AllAccessDisabled" => {
            "the credentials are valid but may not do this: grant them this action on the bucket"
        }
        _ if status == Some(403) => {
            "the store refused the request: check the credentials, their permissions on the \
             bucket and the clock of the operator's node"
        }
        _ => return None,
    })
}

fn configuration_hint(code: &str) -> Option<&'static str> {
    Some(match code {
        "InvalidBucketName" => "choose a valid bucket name",
        "BucketAlreadyExists" => {
            "another account owns a bucket of this name: choose another bucket name"
        }
        "PermanentRedirect"
        | "AuthorizationHeaderMalformed"
        | "IllegalLocationConstraintException"
        | "InvalidLocationConstraint"
        | "InvalidRegion" => {
            "the bucket or the endpoint belongs to another region: set the region the store expects"
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCOPE: Scope<'static> = Scope {
        endpoint: "https://s3.example.net",
        bucket: "social-media",
    };

    fn service(status: u16, code: Option<&str>) -> Failure {
        Failure::Service {
            status: Some(status),
            code: code.map(str::to_owned),
            message: Some("the store's words".into()),
        }
    }

    #[test]
    fn reasons() {
        let cases = [
            ("HeadBucket", service(403, None), "AccessDenied"),
            (
                "GetBucketCors",
                service(403, Some("AccessDenied")),
                "AccessDenied",
            ),
            (
                "ListBuckets",
                service(403, Some("InvalidAccessKeyId")),
                "AccessDenied",
            ),
            (
                "PutBucketCors",
                service(403, Some("SignatureDoesNotMatch")),
                "AccessDenied",
            ),
            (
                "CreateBucket",
                service(403, Some("RequestTimeTooSkewed")),
                "AccessDenied",
            ),
            // Some stores answer access errors with 400 or 401; the code decides.
            (
                "CreateBucket",
                service(400, Some("InvalidAccessKeyId")),
                "AccessDenied",
            ),
            ("HeadBucket", service(404, None), "BucketNotFound"),
            (
                "HeadBucket",
                service(404, Some("NotFound")),
                "BucketNotFound",
            ),
            (
                "GetBucketPolicy",
                service(404, Some("NoSuchBucket")),
                "BucketNotFound",
            ),
            (
                "GetBucketPolicy",
                service(404, Some("NoSuchBucketPolicy")),
                "StorageApiError",
            ),
            (
                "CreateBucket",
                service(400, Some("InvalidBucketName")),
                "InvalidConfiguration",
            ),
            (
                "CreateBucket",
                service(409, Some("BucketAlreadyExists")),
                "InvalidConfiguration",
            ),
            (
                "HeadBucket",
                service(301, Some("PermanentRedirect")),
                "InvalidConfiguration",
            ),
            (
                "HeadBucket",
                service(400, Some("AuthorizationHeaderMalformed")),
                "InvalidConfiguration",
            ),
            (
                "PutBucketLifecycleConfiguration",
                service(501, Some("NotImplemented")),
                "StorageApiError",
            ),
            (
                "DeleteBucket",
                service(409, Some("BucketNotEmpty")),
                "StorageApiError",
            ),
            ("HeadBucket", service(500, None), "StorageApiError"),
            (
                "HeadBucket",
                Failure::Unreachable("Connection refused".into()),
                "EndpointUnreachable",
            ),
            (
                "HeadBucket",
                Failure::Request("bad URI".into()),
                "InvalidConfiguration",
            ),
            (
                "HeadBucket",
                Failure::Response {
                    status: Some(200),
                    detail: "html".into(),
                },
                "StorageApiError",
            ),
        ];
        for (operation, failure, reason) in cases {
            let err = classify(operation, SCOPE, failure.clone());
            assert_eq!(err.reason(), reason, "{operation} {failure:?}: {err}");
        }
    }

    #[test]
    fn messages_name_what_to_fix() {
        let cases = [
            (
                service(403, Some("InvalidAccessKeyId")),
                "check accessKeyId",
            ),
            (
                service(403, Some("SignatureDoesNotMatch")),
                "check secretAccessKey",
            ),
            (service(403, None), "HTTP403"),
            (
                service(404, None),
                "bucket social-media does not exist at https://s3.example.net",
            ),
            (
                Failure::Unreachable("Connection refused".into()),
                "https://s3.example.net",
            ),
            (
                Failure::Unreachable("Connection refused".into()),
                "Connection refused",
            ),
            (
                service(409, Some("BucketNotEmpty")),
                "BucketNotEmpty: the store's words",
            ),
            (
                Failure::Service {
                    status: Some(500),
                    code: None,
                    message: None,
                },
                "HTTP 500 without an error body",
            ),
        ];
        for (failure, expected) in cases {
            let message = classify("HeadBucket", SCOPE, failure.clone()).to_string();
            assert!(
                message.contains(expected),
                "{failure:?}: {message:?} lacks {expected:?}"
            );
        }
    }

    #[test]
    fn the_cause_chain_reads_as_one_sentence() {
        #[derive(Debug)]
        struct Layer(&'static str, Option<Box<Layer>>);
        impl std::fmt::Display for Layer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.0)
            }
        }
        impl std::error::Error for Layer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                self.1.as_deref().map(|l| l as _)
            }
        }
        let refused = Layer("Connection refused (os error 111)", None);
        let connect = Layer("tcp connect error", Some(Box::new(refused)));
        let repeated = Layer("tcp connect error", Some(Box::new(connect)));
        let top = Layer("dispatch failure", Some(Box::new(repeated)));
        assert_eq!(
            chain(&top),
            "dispatch failure: tcp connect error: Connection refused (os error 111)"
        );
    }

    #[test]
    fn a_refused_policy_mentions_block_public_access() {
        let message =
            classify("PutBucketPolicy", SCOPE, service(403, Some("AccessDenied"))).to_string();
        assert!(message.contains("Block Public Access"), "{message}");
    }
}
