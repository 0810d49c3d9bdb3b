//! HTTP Signatures, pure: no I/O, the clock passed in.
//!
//! Incoming requests carry either a draft-cavage `Signature` header (what Mastodon,
//! Pleroma, Misskey and GoToSocial send) or RFC 9421 `Signature-Input` + `Signature` (Mastodon
//! 4.5 and newer software). [`parse`] checks everything that does not need the key: the
//! signature covers enough of the request (Misskey CVE-2023-49079 verified signatures that
//! left the digest and host out), the body matches its digest, the time window holds. The
//! caller then fetches the key named by [`Signed::key_id`] and calls [`Signed::verify`].
//!
//! Outgoing requests are signed the cavage way ([`sign`]), which every peer still accepts.

mod cavage;
mod digest;
mod rfc9421;
mod sign;
#[cfg(test)]
mod tests;

use std::time::{Duration, SystemTime};

use axum::http::{HeaderMap, Method};

use super::keys::PublicKey;

pub use digest::digest_header;
pub use sign::{SignedHeaders, sign};

/// How far in the future a signature's creation may lie (clocks drift), and how far past its
/// expiry it is still accepted: Mastodon's `CLOCK_SKEW_MARGIN`.
pub const CLOCK_SKEW: Duration = Duration::from_secs(3600);
/// Without an explicit expiry, a signature expires this long after its creation (Mastodon).
pub const DEFAULT_EXPIRY: Duration = Duration::from_secs(300);
/// No signature lives longer than this, whatever expiry it claims (Mastodon's
/// `EXPIRATION_WINDOW_LIMIT`).
pub const MAX_AGE: Duration = Duration::from_secs(12 * 3600);

/// The parts of an incoming request a signature can cover.
pub struct Request<'a> {
    pub method: &'a Method,
    /// As received: `/users/alice/inbox?x=1`.
    pub path_and_query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    /// Our own host (`FEDI_DOMAIN`): the signed `Host` / `@authority` must name it, or a
    /// request signed for another server could be replayed here.
    pub expected_host: &'a str,
}

/// A signature whose coverage, digest and time window passed; the key decides the rest.
#[derive(Debug)]
pub struct Signed {
    pub key_id: String,
    /// The strings the signature may have been made over: cavage signers disagree on
    /// whether `(request-target)` includes the query string, so both are tried (Mastodon).
    candidates: Vec<Vec<u8>>,
    signature: Vec<u8>,
}

impl Signed {
    pub fn verify(&self, key: &PublicKey) -> bool {
        self.candidates
            .iter()
            .any(|message| key.verify(message, &self.signature))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("Request not signed")]
    Missing,
    #[error("Malformed signature header: {0}")]
    Malformed(String),
    #[error("Unsupported signature algorithm: {0}")]
    UnsupportedAlgorithm(String),
    #[error("Signature does not cover {0}")]
    NotCovered(&'static str),
    #[error("Signed header {0} is missing from the request")]
    MissingHeader(String),
    #[error("Signed host does not match this server")]
    WrongHost,
    #[error("Invalid Date header")]
    InvalidDate,
    #[error("Signed date is too far in the future")]
    FromTheFuture,
    #[error("Signature has expired")]
    Expired,
    #[error("Body does not match the signed digest")]
    DigestMismatch,
    #[error("Digest must include SHA-256")]
    DigestUnsupported,
    #[error("Verification failed for {0}")]
    Invalid(String),
}

/// Checks a request's signature as far as possible without its key.
pub fn parse(request: &Request, now: SystemTime) -> Result<Signed, SignatureError> {
    if request.headers.contains_key("signature-input") {
        rfc9421::parse(request, now)
    } else if let Some(value) = cavage::header(request.headers) {
        cavage::parse(request, value?, now)
    } else {
        Err(SignatureError::Missing)
    }
}

/// Mastodon's window: not created more than [`CLOCK_SKEW`] ahead of `now`, not used more
/// than [`CLOCK_SKEW`] after it expired, and never alive longer than [`MAX_AGE`].
fn check_window(
    created: SystemTime,
    expires: Option<SystemTime>,
    now: SystemTime,
) -> Result<(), SignatureError> {
    if created > now + CLOCK_SKEW {
        return Err(SignatureError::FromTheFuture);
    }
    let expires = expires
        .unwrap_or(created + DEFAULT_EXPIRY)
        .min(created + MAX_AGE);
    if now > expires + CLOCK_SKEW {
        return Err(SignatureError::Expired);
    }
    Ok(())
}

fn unix(seconds: &str) -> Result<SystemTime, SignatureError> {
    let s: u64 = seconds
        .trim()
        .parse()
        .map_err(|_| SignatureError::Malformed(format!("not a timestamp: {seconds:?}")))?;
    Ok(SystemTime::UNIX_EPOCH + Duration::from_secs(s))
}

/// The value of header `name` as signers see it: several fields joined by `, `, trimmed.
fn header_value(headers: &HeaderMap, name: &str) -> Result<String, SignatureError> {
    let values: Vec<&str> = headers
        .get_all(name)
        .iter()
        .map(|v| {
            v.to_str()
                .map(str::trim)
                .map_err(|_| SignatureError::Malformed(format!("header {name} is not text")))
        })
        .collect::<Result<_, _>>()?;
    if values.is_empty() {
        return Err(SignatureError::MissingHeader(name.to_string()));
    }
    Ok(values.join(", "))
}

/// `Host` without a default port, lower-cased, compared with our domain.
fn check_host(host: &str, expected: &str) -> Result<(), SignatureError> {
    let host = host.trim().to_ascii_lowercase();
    let bare = host
        .strip_suffix(":443")
        .or_else(|| host.strip_suffix(":80"))
        .unwrap_or(&host);
    if bare == expected.to_ascii_lowercase() {
        Ok(())
    } else {
        Err(SignatureError::WrongHost)
    }
}
