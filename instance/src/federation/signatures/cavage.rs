//! draft-cavage-http-signatures (version 12, as the fediverse uses it): a `Signature`
//! header (or `Authorization: Signature ...`) of `keyId`, `algorithm`, `headers`,
//! `signature`, and optionally `created` / `expires`.

use std::collections::HashMap;
use std::time::SystemTime;

use axum::http::{HeaderMap, Method};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::{
    Request, SignatureError, Signed, check_host, check_window, digest, header_value, unix,
};

/// Parameters and signed header lists beyond any real signer's are refused before work.
const MAX_HEADER_LEN: usize = 8192;

/// The signature parameters, from `Signature` or `Authorization: Signature`.
pub fn header(headers: &HeaderMap) -> Option<Result<&str, SignatureError>> {
    fn text(v: &axum::http::HeaderValue) -> Result<&str, SignatureError> {
        v.to_str()
            .map_err(|_| SignatureError::Malformed("signature header is not text".into()))
    }
    if let Some(v) = headers.get("signature") {
        return Some(text(v));
    }
    let auth = headers.get(axum::http::header::AUTHORIZATION)?;
    match text(auth) {
        Ok(a) => a.strip_prefix("Signature ").map(|params| Ok(params.trim())),
        Err(e) => Some(Err(e)),
    }
}

/// `k1="v1",k2=v2`: quoted values may hold commas; numbers (`created`) come unquoted.
pub fn parse_params(value: &str) -> Result<HashMap<String, String>, SignatureError> {
    let malformed = || SignatureError::Malformed("expected key=\"value\" pairs".into());
    if value.len() > MAX_HEADER_LEN {
        return Err(SignatureError::Malformed(
            "signature header too long".into(),
        ));
    }
    let mut params = HashMap::new();
    let mut rest = value.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=').ok_or_else(malformed)?;
        let key = key.trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (val, after) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"').ok_or_else(malformed)?;
            (&quoted[..end], &quoted[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim(), &after[end..])
        };
        if params.insert(key, val.to_string()).is_some() {
            return Err(SignatureError::Malformed("repeated parameter".into()));
        }
        rest = after.trim_start();
        rest = match rest.strip_prefix(',') {
            Some(r) => r.trim_start(),
            None if rest.is_empty() => rest,
            None => return Err(malformed()),
        };
    }
    Ok(params)
}

pub fn parse(request: &Request, value: &str, now: SystemTime) -> Result<Signed, SignatureError> {
    let params = parse_params(value)?;
    let get = |k: &'static str| {
        params
            .get(k)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| SignatureError::Malformed(format!("{k} is missing")))
    };
    let key_id = get("keyid")?.clone();
    let signature = STANDARD
        .decode(get("signature")?)
        .map_err(|_| SignatureError::Malformed("signature is not base64".into()))?;
    // hs2019 leaves the algorithm to the key; for the RSA keys of this field that is
    // RSASSA-PKCS1-v1_5 with SHA-256, the same as rsa-sha256.
    match params.get("algorithm").map(|a| a.to_ascii_lowercase()) {
        None => {}
        Some(a) if a == "rsa-sha256" || a == "hs2019" => {}
        Some(a) => return Err(SignatureError::UnsupportedAlgorithm(a)),
    }
    // The draft's default when `headers` is absent.
    let covered: Vec<String> = params
        .get("headers")
        .map_or("date", String::as_str)
        .split_ascii_whitespace()
        .map(str::to_ascii_lowercase)
        .collect();
    let covers = |h: &str| covered.iter().any(|c| c == h);

    if !covers("(request-target)") {
        return Err(SignatureError::NotCovered("(request-target)"));
    }
    if !covers("host") {
        return Err(SignatureError::NotCovered("host"));
    }
    check_host(
        &header_value(request.headers, "host")?,
        request.expected_host,
    )?;
    let created = if covers("(created)") {
        Some(unix(get("created")?)?)
    } else if covers("date") {
        let date = header_value(request.headers, "date")?;
        Some(httpdate::parse_http_date(&date).map_err(|_| SignatureError::InvalidDate)?)
    } else {
        None
    };
    let created = created.ok_or(SignatureError::NotCovered("date or (created)"))?;
    let expires = if covers("(expires)") {
        Some(unix(get("expires")?)?)
    } else {
        None
    };
    check_window(created, expires, now)?;
    if request.method == Method::POST || !request.body.is_empty() {
        if !covers("digest") {
            return Err(SignatureError::NotCovered("digest"));
        }
        digest::check_digest(&header_value(request.headers, "digest")?, request.body)?;
    }

    let with_query = signing_string(request, &params, &covered, request.path_and_query)?;
    let mut candidates = vec![with_query.into_bytes()];
    if let Some((path, _)) = request.path_and_query.split_once('?') {
        candidates.push(signing_string(request, &params, &covered, path)?.into_bytes());
    }
    Ok(Signed {
        key_id,
        candidates,
        signature,
    })
}

fn signing_string(
    request: &Request,
    params: &HashMap<String, String>,
    covered: &[String],
    target: &str,
) -> Result<String, SignatureError> {
    let mut lines = Vec::with_capacity(covered.len());
    for name in covered {
        let value = match name.as_str() {
            "(request-target)" => {
                format!("{} {target}", request.method.as_str().to_ascii_lowercase())
            }
            "(created)" | "(expires)" => params
                .get(&name[1..name.len() - 1])
                .cloned()
                .ok_or_else(|| SignatureError::Malformed(format!("{name} has no value")))?,
            header => header_value(request.headers, header)?,
        };
        lines.push(format!("{name}: {value}"));
    }
    Ok(lines.join("\n"))
}

/// The signing string of an outgoing request: `(request-target)` then the named headers.
pub fn outgoing_signing_string(
    method: &Method,
    path_and_query: &str,
    headers: &[(&str, &str)],
) -> String {
    let mut s = format!(
        "(request-target): {} {path_and_query}",
        method.as_str().to_ascii_lowercase()
    );
    for (name, value) in headers {
        s.push('\n');
        s.push_str(name);
        s.push_str(": ");
        s.push_str(value);
    }
    s
}
