//! What the SMTP sink of the test services received, decoded, and the environment that
//! makes a server send there.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::PathBuf;

use base64::Engine;

use crate::common::service_env;

/// One stored message.
#[derive(Debug, Clone)]
pub struct Mail {
    pub subject: String,
    /// Decoded from its transfer encoding.
    pub body: String,
    /// The message as stored, headers included.
    pub raw: String,
}

/// Messages the sink stored for `address` (matched on the envelope's recipient).
pub fn received(address: &str) -> Vec<Mail> {
    let dir = PathBuf::from(service_env("FEDI_TEST_SMTP_MAILDIR"));
    let needle = format!("X-Fedi-Envelope-To: {address}").to_lowercase();
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("the sink's mail directory") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "eml") {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if text.to_lowercase().contains(&needle) {
                found.push(parse(&text));
            }
        }
    }
    found
}

fn parse(raw: &str) -> Mail {
    let raw = raw.replace("\r\n", "\n");
    let (head, body) = raw.split_once("\n\n").unwrap_or((&raw, ""));
    let header = |name: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap_or("")
            .to_string()
    };
    let body = match header("Content-Transfer-Encoding").as_str() {
        "quoted-printable" => quoted_printable(body),
        "base64" => String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(body.split_whitespace().collect::<String>())
                .unwrap(),
        )
        .unwrap(),
        _ => body.to_string(),
    };
    Mail {
        subject: header("Subject"),
        body,
        raw: raw.clone(),
    }
}

/// RFC 2045 §6.7: soft line breaks dropped, `=XX` bytes decoded.
fn quoted_printable(text: &str) -> String {
    let joined = text.replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && let Some(hex) = joined.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

/// A unique address per run: the sink's directory is shared by every test run.
pub fn address(name: &str) -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{name}-{}-{n}@mail.example", std::process::id())
}

/// The environment of a server (api or worker) on `domain` that mails through the sink.
pub fn smtp_env(domain: &str) -> Vec<(&'static str, String)> {
    vec![
        ("FEDI_DOMAIN", domain.to_string()),
        ("FEDI_SMTP_HOST", service_env("FEDI_TEST_SMTP_HOST")),
        ("FEDI_SMTP_PORT", service_env("FEDI_TEST_SMTP_PORT")),
        ("FEDI_SMTP_TLS", "none".to_string()),
        ("FEDI_SMTP_FROM", "notifications@test.example".to_string()),
    ]
}
