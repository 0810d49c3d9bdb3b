//! RFC 9421 HTTP Message Signatures: `Signature-Input` names the covered components and
//! parameters of each labelled signature, `Signature` carries the bytes. Only what the
//! fediverse uses: RSASSA-PKCS1-v1_5 SHA-256 keys, derived components `@method`,
//! `@target-uri`, `@authority`, `@path`, `@query`, `@request-target`, and plain headers.

use std::time::SystemTime;

use axum::http::Method;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::{
    Request, SignatureError, Signed, check_host, check_window, digest, header_value, unix,
};

/// A dictionary member: its label and its raw value text (kept verbatim, since the
/// `@signature-params` line of the signature base repeats it).
fn dictionary(value: &str) -> Result<Vec<(&str, &str)>, SignatureError> {
    let mut members = Vec::new();
    let (mut depth, mut quoted, mut start) = (0i32, false, 0usize);
    let bytes = value.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'"' if i == 0 || bytes[i - 1] != b'\\' => quoted = !quoted,
            b'(' if !quoted => depth += 1,
            b')' if !quoted => depth -= 1,
            b',' if !quoted && depth == 0 => {
                members.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    members.push(&value[start..]);
    members
        .into_iter()
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(|m| {
            m.split_once('=')
                .map(|(k, v)| (k.trim(), v.trim()))
                .ok_or_else(|| SignatureError::Malformed(format!("dictionary member {m:?}")))
        })
        .collect()
}

struct Input<'a> {
    components: Vec<String>,
    /// `;created=...;keyid="..."`, as sent.
    raw: &'a str,
    created: Option<SystemTime>,
    expires: Option<SystemTime>,
    key_id: Option<String>,
    alg: Option<String>,
}

fn parse_input(raw: &str) -> Result<Input<'_>, SignatureError> {
    let malformed = |what: &str| SignatureError::Malformed(format!("Signature-Input: {what}"));
    let inner = raw
        .strip_prefix('(')
        .ok_or_else(|| malformed("expected an inner list"))?;
    let close = inner.find(')').ok_or_else(|| malformed("unclosed list"))?;
    let mut components = Vec::new();
    for item in inner[..close].split_ascii_whitespace() {
        let name = item
            .strip_prefix('"')
            .and_then(|i| i.strip_suffix('"'))
            // `"@query-param";name="q"`, `"x";sf`...: component parameters change the value
            // in ways no fediverse signer uses; refused rather than half-understood.
            .ok_or_else(|| malformed("component parameters are not supported"))?;
        components.push(name.to_ascii_lowercase());
    }
    let mut input = Input {
        components,
        raw,
        created: None,
        expires: None,
        key_id: None,
        alg: None,
    };
    for param in inner[close + 1..]
        .split(';')
        .filter(|p| !p.trim().is_empty())
    {
        let (key, value) = param
            .split_once('=')
            .ok_or_else(|| malformed("parameter without value"))?;
        let unquoted = value
            .trim()
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'));
        match key.trim() {
            "created" => input.created = Some(unix(value)?),
            "expires" => input.expires = Some(unix(value)?),
            "keyid" => input.key_id = Some(unquoted.ok_or_else(|| malformed("keyid"))?.to_string()),
            "alg" => input.alg = Some(unquoted.ok_or_else(|| malformed("alg"))?.to_string()),
            _ => {}
        }
    }
    Ok(input)
}

pub fn parse(request: &Request, now: SystemTime) -> Result<Signed, SignatureError> {
    let inputs = header_value(request.headers, "signature-input")?;
    let signatures = header_value(request.headers, "signature")?;
    let inputs = dictionary(&inputs)?;
    let signatures = dictionary(&signatures)?;
    // The first labelled signature present in both headers; others (a proxy's) are ignored.
    let (label, raw_input) = inputs
        .iter()
        .find(|(label, _)| signatures.iter().any(|(l, _)| l == label))
        .ok_or_else(|| SignatureError::Malformed("no signature matches Signature-Input".into()))?;
    let raw_signature = signatures
        .iter()
        .find(|(l, _)| l == label)
        .map(|(_, v)| *v)
        .unwrap_or_default();
    let signature = raw_signature
        .strip_prefix(':')
        .and_then(|s| s.strip_suffix(':'))
        .and_then(|s| STANDARD.decode(s).ok())
        .ok_or_else(|| SignatureError::Malformed("signature is not a byte sequence".into()))?;
    let input = parse_input(raw_input)?;
    match input.alg.as_deref() {
        None | Some("rsa-v1_5-sha256") => {}
        Some(other) => return Err(SignatureError::UnsupportedAlgorithm(other.to_string())),
    }
    let key_id = input
        .key_id
        .clone()
        .ok_or_else(|| SignatureError::Malformed("keyid is missing".into()))?;
    let covers = |c: &str| input.components.iter().any(|x| x == c);
    if !covers("@method") {
        return Err(SignatureError::NotCovered("@method"));
    }
    if !covers("@target-uri") && !covers("@path") && !covers("@request-target") {
        return Err(SignatureError::NotCovered("@target-uri or @path"));
    }
    if !covers("@target-uri") && !covers("@authority") {
        return Err(SignatureError::NotCovered("@authority"));
    }
    let created = input.created.ok_or(SignatureError::NotCovered("created"))?;
    check_window(created, input.expires, now)?;
    let host = header_value(request.headers, "host")?;
    check_host(&host, request.expected_host)?;
    if request.method == Method::POST || !request.body.is_empty() {
        if !covers("content-digest") {
            return Err(SignatureError::NotCovered("content-digest"));
        }
        digest::check_content_digest(
            &header_value(request.headers, "content-digest")?,
            request.body,
        )?;
    }

    let authority = host.trim().to_ascii_lowercase();
    let (path, query) = match request.path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (request.path_and_query, None),
    };
    let mut base = String::new();
    for component in &input.components {
        let value = match component.as_str() {
            "@method" => request.method.as_str().to_string(),
            // Our public URLs are https whatever the hop from the proxy was.
            "@target-uri" => format!("https://{authority}{}", request.path_and_query),
            "@authority" => authority.clone(),
            "@scheme" => "https".to_string(),
            "@path" => path.to_string(),
            "@query" => format!("?{}", query.unwrap_or_default()),
            "@request-target" => request.path_and_query.to_string(),
            c if c.starts_with('@') => {
                return Err(SignatureError::Malformed(format!(
                    "unsupported component {c}"
                )));
            }
            header => header_value(request.headers, header)?,
        };
        base.push_str(&format!("\"{component}\": {value}\n"));
    }
    base.push_str("\"@signature-params\": ");
    base.push_str(input.raw);
    Ok(Signed {
        key_id,
        candidates: vec![base.into_bytes()],
        signature,
    })
}
