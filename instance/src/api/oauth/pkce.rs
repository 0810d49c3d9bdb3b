//! PKCE (RFC 7636), S256 only: `plain` would hand the verifier to whoever sees the
//! authorization request, which is what PKCE exists to prevent.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// §4.1: 43 to 128 characters of `[A-Za-z0-9-._~]`.
pub(super) fn valid_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// An S256 challenge is the base64url SHA-256 of a verifier: exactly 43 characters.
pub(super) fn valid_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && URL_SAFE_NO_PAD
            .decode(challenge)
            .is_ok_and(|bytes| bytes.len() == 32)
}

/// §4.6: `BASE64URL(SHA256(verifier)) == challenge`.
pub(super) fn s256_matches(verifier: &str, challenge: &str) -> bool {
    valid_verifier(verifier) && URL_SAFE_NO_PAD.encode(Sha256::digest(verifier)) == challenge
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_7636_example_verifies() {
        // Appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(valid_verifier(verifier));
        assert!(valid_challenge(challenge));
        assert!(s256_matches(verifier, challenge));
        assert!(!s256_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXK",
            challenge
        ));
        // `plain` would compare the verifier itself.
        assert!(!s256_matches(verifier, verifier));
    }

    #[test]
    fn verifiers_and_challenges_have_their_rfc_shapes() {
        assert!(!valid_verifier(&"a".repeat(42)));
        assert!(valid_verifier(&"a".repeat(128)));
        assert!(!valid_verifier(&"a".repeat(129)));
        assert!(!valid_verifier(&format!("{}+", "a".repeat(43))));
        assert!(valid_verifier(&format!("{}~._-", "a".repeat(43))));
        assert!(!valid_challenge(&"a".repeat(42)));
        assert!(!valid_challenge(&format!("{}=", "a".repeat(42))));
        assert!(!valid_challenge(&"a".repeat(44)));
    }
}
