//! Test vectors: each rule of the verifier gets a request that breaks exactly that rule.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

use super::*;
use crate::federation::keys::{self, PublicKey, Signer};

const HOST: &str = "ours.example";
const KEY_ID: &str = "https://remote.example/users/bob#main-key";
const BODY: &[u8] = br#"{"type":"Follow","actor":"https://remote.example/users/bob"}"#;

struct Keys {
    signer: Signer,
    public: PublicKey,
    other: Signer,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let pair = keys::generate().unwrap();
        let other = keys::generate().unwrap();
        Keys {
            signer: Signer::new(KEY_ID.into(), &pair.private_pem).unwrap(),
            public: PublicKey::from_pem(&pair.public_pem).unwrap(),
            other: Signer::new(KEY_ID.into(), &other.private_pem).unwrap(),
        }
    })
}

fn now() -> SystemTime {
    // A whole second, as HTTP dates are.
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn headers(pairs: &[(&str, String)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

fn digest(body: &[u8]) -> String {
    format!("SHA-256={}", STANDARD.encode(Sha256::digest(body)))
}

/// An independent cavage signer for the tests (not the production one), so that a bug in
/// the production signing string cannot hide the same bug in the verifier.
fn cavage(
    signer: &Signer,
    method: &str,
    target: &str,
    covered: &[&str],
    pairs: &[(&str, String)],
    extra_params: &str,
) -> String {
    let lines: Vec<String> = covered
        .iter()
        .map(|name| match *name {
            "(request-target)" => format!("(request-target): {method} {target}"),
            "(created)" | "(expires)" => {
                let key = &name[1..name.len() - 1];
                let v = extra_params
                    .split(',')
                    .find_map(|p| p.strip_prefix(&format!("{key}=")))
                    .unwrap();
                format!("{name}: {v}")
            }
            h => format!(
                "{h}: {}",
                pairs.iter().find(|(n, _)| n == &h).unwrap().1.clone()
            ),
        })
        .collect();
    let sig = STANDARD.encode(signer.sign(lines.join("\n").as_bytes()));
    let extra = if extra_params.is_empty() {
        String::new()
    } else {
        format!(",{extra_params}")
    };
    format!(
        "keyId=\"{}\",algorithm=\"rsa-sha256\",headers=\"{}\",signature=\"{sig}\"{extra}",
        signer.key_id,
        covered.join(" ")
    )
}

fn post_pairs(date: SystemTime, body: &[u8]) -> Vec<(&'static str, String)> {
    vec![
        ("host", HOST.to_string()),
        ("date", httpdate::fmt_http_date(date)),
        ("digest", digest(body)),
        ("content-type", "application/activity+json".to_string()),
    ]
}

const FULL: &[&str] = &["(request-target)", "host", "date", "digest", "content-type"];

fn check(
    method: &Method,
    target: &str,
    map: &HeaderMap,
    body: &[u8],
) -> Result<bool, SignatureError> {
    let request = Request {
        method,
        path_and_query: target,
        headers: map,
        body,
        expected_host: HOST,
    };
    let signed = parse(&request, now())?;
    assert_eq!(signed.key_id, KEY_ID);
    Ok(signed.verify(&keys().public))
}

fn signed_post(date: SystemTime, covered: &[&str], signed_body: &[u8]) -> HeaderMap {
    let mut pairs = post_pairs(date, signed_body);
    let sig = cavage(&keys().signer, "post", "/inbox", covered, &pairs, "");
    pairs.push(("signature", sig));
    headers(&pairs)
}

#[test]
fn a_correct_cavage_post_verifies() {
    let map = signed_post(now(), FULL, BODY);
    assert_eq!(check(&Method::POST, "/inbox", &map, BODY), Ok(true));
}

#[test]
fn a_forged_signature_does_not_verify() {
    let mut pairs = post_pairs(now(), BODY);
    let sig = cavage(&keys().other, "post", "/inbox", FULL, &pairs, "");
    pairs.push(("signature", sig));
    assert_eq!(
        check(&Method::POST, "/inbox", &headers(&pairs), BODY),
        Ok(false)
    );
}

#[test]
fn a_signed_header_changed_after_signing_does_not_verify() {
    let mut pairs = post_pairs(now(), BODY);
    let sig = cavage(&keys().signer, "post", "/inbox", FULL, &pairs, "");
    pairs.push(("signature", sig));
    pairs[3].1 = "application/ld+json".into();
    assert_eq!(
        check(&Method::POST, "/inbox", &headers(&pairs), BODY),
        Ok(false)
    );
    // The same signature presented for another path.
    let map = signed_post(now(), FULL, BODY);
    assert_eq!(
        check(&Method::POST, "/users/alice/inbox", &map, BODY),
        Ok(false)
    );
}

#[test]
fn a_body_that_does_not_match_its_signed_digest_is_refused() {
    let map = signed_post(now(), FULL, BODY);
    let tampered = br#"{"type":"Delete","actor":"https://remote.example/users/bob"}"#;
    assert_eq!(
        check(&Method::POST, "/inbox", &map, tampered),
        Err(SignatureError::DigestMismatch)
    );
}

#[test]
fn a_post_must_cover_digest_host_target_and_a_date() {
    for (missing, expected) in [
        ("digest", "digest"),
        ("host", "host"),
        ("(request-target)", "(request-target)"),
        ("date", "date or (created)"),
    ] {
        let covered: Vec<&str> = FULL.iter().copied().filter(|h| *h != missing).collect();
        let map = signed_post(now(), &covered, BODY);
        assert_eq!(
            check(&Method::POST, "/inbox", &map, BODY),
            Err(SignatureError::NotCovered(expected)),
            "without {missing}"
        );
    }
    // Covered but absent from the request.
    let mut map = signed_post(now(), FULL, BODY);
    map.remove("digest");
    assert_eq!(
        check(&Method::POST, "/inbox", &map, BODY),
        Err(SignatureError::MissingHeader("digest".into()))
    );
}

#[test]
fn a_digest_without_sha256_is_refused() {
    let mut pairs = post_pairs(now(), BODY);
    pairs[2].1 = "SHA=aGVsbG8=".into();
    let sig = cavage(&keys().signer, "post", "/inbox", FULL, &pairs, "");
    pairs.push(("signature", sig));
    assert_eq!(
        check(&Method::POST, "/inbox", &headers(&pairs), BODY),
        Err(SignatureError::DigestUnsupported)
    );
}

#[test]
fn the_time_window_follows_mastodon() {
    let minutes = |m: u64| Duration::from_secs(m * 60);
    // Replay window: five minutes of validity plus an hour of clock skew.
    for (date, expected) in [
        (now() - minutes(30), Ok(true)),
        (now() - minutes(64), Ok(true)),
        (now() - minutes(66), Err(SignatureError::Expired)),
        (now() - minutes(13 * 60), Err(SignatureError::Expired)),
        (now() + minutes(59), Ok(true)),
        (now() + minutes(61), Err(SignatureError::FromTheFuture)),
    ] {
        let map = signed_post(date, FULL, BODY);
        assert_eq!(
            check(&Method::POST, "/inbox", &map, BODY),
            expected,
            "{date:?}"
        );
    }
    let mut map = signed_post(now(), FULL, BODY);
    map.insert("date", HeaderValue::from_static("yesterday"));
    assert_eq!(
        check(&Method::POST, "/inbox", &map, BODY),
        Err(SignatureError::InvalidDate)
    );
}

#[test]
fn hs2019_with_created_and_expires_is_capped_at_twelve_hours() {
    let secs = |d: SystemTime| d.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    let hours = |h: u64| Duration::from_secs(h * 3600);
    let covered = [
        "(request-target)",
        "host",
        "(created)",
        "(expires)",
        "digest",
    ];
    for (created, expires, expected) in [
        (now() - hours(6), now() + hours(1), Ok(true)),
        // Claims a day of validity: only twelve hours (plus skew) are granted.
        (
            now() - hours(14),
            now() + hours(10),
            Err(SignatureError::Expired),
        ),
    ] {
        let mut pairs = post_pairs(now(), BODY);
        let params = format!("created={},expires={}", secs(created), secs(expires));
        let sig = cavage(&keys().signer, "post", "/inbox", &covered, &pairs, &params)
            .replace("rsa-sha256", "hs2019");
        pairs.push(("signature", sig));
        assert_eq!(
            check(&Method::POST, "/inbox", &headers(&pairs), BODY),
            expected
        );
    }
}

#[test]
fn the_signed_host_must_be_ours() {
    let mut pairs = post_pairs(now(), BODY);
    pairs[0].1 = "other.example".into();
    let sig = cavage(&keys().signer, "post", "/inbox", FULL, &pairs, "");
    pairs.push(("signature", sig));
    assert_eq!(
        check(&Method::POST, "/inbox", &headers(&pairs), BODY),
        Err(SignatureError::WrongHost)
    );
}

#[test]
fn unsupported_algorithms_and_garbage_are_refused_with_a_reason() {
    let map = signed_post(now(), FULL, BODY);
    let sig = map["signature"]
        .to_str()
        .unwrap()
        .replace("rsa-sha256", "hmac-sha256");
    let mut map2 = map.clone();
    map2.insert("signature", HeaderValue::from_str(&sig).unwrap());
    assert_eq!(
        check(&Method::POST, "/inbox", &map2, BODY),
        Err(SignatureError::UnsupportedAlgorithm("hmac-sha256".into()))
    );
    for garbage in ["keyId", "keyId=\"unterminated", "signature=\"AAAA\""] {
        map2.insert("signature", HeaderValue::from_static(garbage));
        assert!(matches!(
            check(&Method::POST, "/inbox", &map2, BODY),
            Err(SignatureError::Malformed(_))
        ));
    }
    assert_eq!(
        check(&Method::POST, "/inbox", &HeaderMap::new(), BODY),
        Err(SignatureError::Missing)
    );
}

#[test]
fn get_with_a_query_verifies_whether_or_not_the_signer_included_it() {
    let pairs = vec![
        ("host", HOST.to_string()),
        ("date", httpdate::fmt_http_date(now())),
        ("accept", "application/activity+json".to_string()),
    ];
    let covered = ["(request-target)", "host", "date", "accept"];
    for target in ["/users/alice/outbox?page=true", "/users/alice/outbox"] {
        let mut pairs = pairs.clone();
        pairs.push((
            "signature",
            cavage(&keys().signer, "get", target, &covered, &pairs, ""),
        ));
        let map = headers(&pairs);
        assert_eq!(
            check(&Method::GET, "/users/alice/outbox?page=true", &map, b""),
            Ok(true),
            "signed over {target}"
        );
    }
    // `Authorization: Signature ...` carries the same parameters.
    let mut pairs = pairs.clone();
    let sig = cavage(&keys().signer, "get", "/users/alice", &covered, &pairs, "");
    pairs.push(("authorization", format!("Signature {sig}")));
    assert_eq!(
        check(&Method::GET, "/users/alice", &headers(&pairs), b""),
        Ok(true)
    );
}

#[test]
fn our_outgoing_signatures_verify_with_the_independent_verifier() {
    let url = url::Url::parse(&format!("https://{HOST}/users/alice/inbox")).unwrap();
    let out = sign(
        &keys().signer,
        &Method::POST,
        &url,
        Some(BODY),
        "application/activity+json",
        now(),
    );
    let map = headers(&[
        ("host", out.host.clone()),
        ("date", out.date.clone()),
        ("digest", out.digest.clone().unwrap()),
        ("content-type", "application/activity+json".into()),
        ("signature", out.signature.clone()),
    ]);
    assert_eq!(
        check(&Method::POST, "/users/alice/inbox", &map, BODY),
        Ok(true)
    );
    assert!(
        out.signature
            .contains("headers=\"(request-target) host date digest content-type\"")
    );
}

// RFC 9421.

fn rfc9421(
    signer: &Signer,
    components: &[(&str, String)],
    params: &str,
    pairs: &mut Vec<(&'static str, String)>,
) {
    let names: Vec<String> = components.iter().map(|(n, _)| format!("\"{n}\"")).collect();
    let sig_params = format!("({}){params}", names.join(" "));
    let mut base = String::new();
    for (n, v) in components {
        base.push_str(&format!("\"{n}\": {v}\n"));
    }
    base.push_str(&format!("\"@signature-params\": {sig_params}"));
    let sig = STANDARD.encode(signer.sign(base.as_bytes()));
    pairs.push(("signature-input", format!("sig1={sig_params}")));
    pairs.push(("signature", format!("sig1=:{sig}:")));
}

fn content_digest(body: &[u8]) -> String {
    format!("sha-256=:{}:", STANDARD.encode(Sha256::digest(body)))
}

fn rfc9421_post(signer: &Signer, components: &[&str], params: &str, body: &[u8]) -> HeaderMap {
    let mut pairs = vec![
        ("host", HOST.to_string()),
        ("content-digest", content_digest(body)),
    ];
    let values: Vec<(&str, String)> = components
        .iter()
        .map(|c| {
            let v = match *c {
                "@method" => "POST".to_string(),
                "@target-uri" => format!("https://{HOST}/inbox"),
                "@authority" => HOST.to_string(),
                "@path" => "/inbox".to_string(),
                "content-digest" => content_digest(body),
                other => panic!("{other}"),
            };
            (*c, v)
        })
        .collect();
    rfc9421(signer, &values, params, &mut pairs);
    headers(&pairs)
}

fn created(offset_secs: i64) -> String {
    let t = now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        + offset_secs;
    format!(";created={t};keyid=\"{KEY_ID}\";alg=\"rsa-v1_5-sha256\"")
}

#[test]
fn rfc9421_signatures_verify_and_break_on_each_rule() {
    let full = ["@method", "@target-uri", "content-digest"];
    let map = rfc9421_post(&keys().signer, &full, &created(-10), BODY);
    assert_eq!(check(&Method::POST, "/inbox", &map, BODY), Ok(true));
    let split = ["@method", "@path", "@authority", "content-digest"];
    let map = rfc9421_post(&keys().signer, &split, &created(-10), BODY);
    assert_eq!(check(&Method::POST, "/inbox", &map, BODY), Ok(true));

    let forged = rfc9421_post(&keys().other, &full, &created(-10), BODY);
    assert_eq!(check(&Method::POST, "/inbox", &forged, BODY), Ok(false));
    assert_eq!(
        check(&Method::POST, "/inbox", &map, b"{}"),
        Err(SignatureError::DigestMismatch)
    );
    let no_digest = rfc9421_post(
        &keys().signer,
        &["@method", "@target-uri"],
        &created(-10),
        BODY,
    );
    assert_eq!(
        check(&Method::POST, "/inbox", &no_digest, BODY),
        Err(SignatureError::NotCovered("content-digest"))
    );
    let no_method = rfc9421_post(
        &keys().signer,
        &["@target-uri", "content-digest"],
        &created(-10),
        BODY,
    );
    assert_eq!(
        check(&Method::POST, "/inbox", &no_method, BODY),
        Err(SignatureError::NotCovered("@method"))
    );
    let no_authority = rfc9421_post(
        &keys().signer,
        &["@method", "@path", "content-digest"],
        &created(-10),
        BODY,
    );
    assert_eq!(
        check(&Method::POST, "/inbox", &no_authority, BODY),
        Err(SignatureError::NotCovered("@authority"))
    );
    let stale = rfc9421_post(&keys().signer, &full, &created(-2 * 3600), BODY);
    assert_eq!(
        check(&Method::POST, "/inbox", &stale, BODY),
        Err(SignatureError::Expired)
    );
    let future = rfc9421_post(&keys().signer, &full, &created(2 * 3600), BODY);
    assert_eq!(
        check(&Method::POST, "/inbox", &future, BODY),
        Err(SignatureError::FromTheFuture)
    );
    let no_created = rfc9421_post(&keys().signer, &full, &format!(";keyid=\"{KEY_ID}\""), BODY);
    assert_eq!(
        check(&Method::POST, "/inbox", &no_created, BODY),
        Err(SignatureError::NotCovered("created"))
    );
    let pss = rfc9421_post(
        &keys().signer,
        &full,
        &created(-10).replace("rsa-v1_5-sha256", "rsa-pss-sha512"),
        BODY,
    );
    assert_eq!(
        check(&Method::POST, "/inbox", &pss, BODY),
        Err(SignatureError::UnsupportedAlgorithm(
            "rsa-pss-sha512".into()
        ))
    );
    // The signature parameters are signed too: changing the key id breaks it.
    let mut changed = rfc9421_post(&keys().signer, &full, &created(-10), BODY);
    let input = changed["signature-input"]
        .to_str()
        .unwrap()
        .replace(";alg=", ";nonce=\"x\";alg=");
    changed.insert("signature-input", HeaderValue::from_str(&input).unwrap());
    assert_eq!(check(&Method::POST, "/inbox", &changed, BODY), Ok(false));
}
