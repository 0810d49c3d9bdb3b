//! Signing our outgoing requests, draft-cavage style: Mastodon (and everything that
//! interoperates with it) verifies these. POSTs are signed over
//! `(request-target) host date digest content-type`, GETs over
//! `(request-target) host date accept`, as Mastodon signs its own.

use std::time::SystemTime;

use axum::http::Method;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::cavage::outgoing_signing_string;
use super::digest::digest_header;
use crate::federation::keys::Signer;

/// The headers to send; `host` must be sent exactly as signed.
#[derive(Debug, Clone)]
pub struct SignedHeaders {
    pub date: String,
    pub host: String,
    pub digest: Option<String>,
    pub signature: String,
}

/// `body` is `Some` for a POST, whose `content_type` is signed; for a GET, `accept` is.
/// The name of the header (`content-type` or `accept`) follows from `body`.
pub fn sign(
    signer: &Signer,
    method: &Method,
    url: &url::Url,
    body: Option<&[u8]>,
    content_type_or_accept: &str,
    now: SystemTime,
) -> SignedHeaders {
    let date = httpdate::fmt_http_date(now);
    let host = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_string(),
    };
    let path_and_query = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    let digest = body.map(digest_header);
    let mut headers = vec![("host", host.as_str()), ("date", date.as_str())];
    let names = match &digest {
        Some(d) => {
            headers.push(("digest", d));
            headers.push(("content-type", content_type_or_accept));
            "(request-target) host date digest content-type"
        }
        None => {
            headers.push(("accept", content_type_or_accept));
            "(request-target) host date accept"
        }
    };
    let signing_string = outgoing_signing_string(method, &path_and_query, &headers);
    let signature = STANDARD.encode(signer.sign(signing_string.as_bytes()));
    SignedHeaders {
        signature: format!(
            "keyId=\"{}\",algorithm=\"rsa-sha256\",headers=\"{names}\",signature=\"{signature}\"",
            signer.key_id
        ),
        date,
        host,
        digest,
    }
}
