//! Body digests: `Digest: SHA-256=<base64>` (draft-cavage era, RFC 3230) and
//! `Content-Digest: sha-256=:<base64>:` (RFC 9530, with RFC 9421 signatures).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest as _, Sha256, Sha512};

use super::SignatureError;

/// The `Digest` header value for `body`.
pub fn digest_header(body: &[u8]) -> String {
    format!("SHA-256={}", STANDARD.encode(Sha256::digest(body)))
}

/// Checks a `Digest` header against `body`: its SHA-256 entry must be present and match.
/// Other algorithms in the list are ignored (SHA-1 and MD5 are too weak to rely on).
pub fn check_digest(value: &str, body: &[u8]) -> Result<(), SignatureError> {
    let expected = Sha256::digest(body);
    for entry in value.split(',') {
        let Some((algorithm, encoded)) = entry.trim().split_once('=') else {
            continue;
        };
        if algorithm.trim().eq_ignore_ascii_case("sha-256") {
            let given = STANDARD
                .decode(encoded.trim())
                .map_err(|_| SignatureError::DigestMismatch)?;
            return if given[..] == expected[..] {
                Ok(())
            } else {
                Err(SignatureError::DigestMismatch)
            };
        }
    }
    Err(SignatureError::DigestUnsupported)
}

/// Checks a `Content-Digest` header (an RFC 8941 dictionary of byte sequences) against
/// `body`, on its SHA-256 or SHA-512 entry.
pub fn check_content_digest(value: &str, body: &[u8]) -> Result<(), SignatureError> {
    for entry in value.split(',') {
        let Some((algorithm, encoded)) = entry.trim().split_once('=') else {
            continue;
        };
        let expected: Vec<u8> = match algorithm.trim() {
            "sha-256" => Sha256::digest(body).to_vec(),
            "sha-512" => Sha512::digest(body).to_vec(),
            _ => continue,
        };
        let encoded = encoded
            .trim()
            .strip_prefix(':')
            .and_then(|e| e.strip_suffix(':'))
            .ok_or(SignatureError::DigestMismatch)?;
        let given = STANDARD
            .decode(encoded)
            .map_err(|_| SignatureError::DigestMismatch)?;
        return if given == expected {
            Ok(())
        } else {
            Err(SignatureError::DigestMismatch)
        };
    }
    Err(SignatureError::DigestUnsupported)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_of_the_body_matches_and_of_another_does_not() {
        let header = digest_header(b"{\"a\":1}");
        // RFC 3230 names are case-insensitive; Mastodon sends `SHA-256`.
        assert_eq!(check_digest(&header, b"{\"a\":1}"), Ok(()));
        assert_eq!(
            check_digest(&header.replacen("SHA-256", "sha-256", 1), b"{\"a\":1}"),
            Ok(())
        );
        assert_eq!(
            check_digest(&header, b"{\"a\":2}"),
            Err(SignatureError::DigestMismatch)
        );
        assert_eq!(
            check_digest("SHA=2jmj7l5rSw0yVb/vlWAYkK/YBwk=", b""),
            Err(SignatureError::DigestUnsupported)
        );
        assert_eq!(
            check_digest("SHA-256=!!!", b""),
            Err(SignatureError::DigestMismatch)
        );
    }

    #[test]
    fn content_digest_checks_sha256_and_sha512() {
        // RFC 9530 section B.1 example: `{"hello": "world"}`.
        let body = b"{\"hello\": \"world\"}";
        let v = "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:";
        assert_eq!(check_content_digest(v, body), Ok(()));
        let v512 = "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:";
        assert_eq!(check_content_digest(v512, body), Ok(()));
        assert_eq!(
            check_content_digest(v, b"{\"hello\": \"World\"}"),
            Err(SignatureError::DigestMismatch)
        );
        assert_eq!(
            check_content_digest("md5=:AAAA:", body),
            Err(SignatureError::DigestUnsupported)
        );
    }
}
