//! A domain as users type it, in the form accounts store theirs: trimmed, without a final
//! dot, lower-case ASCII (internationalized names in punycode), as Mastodon's
//! `TagManager#normalize_domain` and `DomainValidator` do.

use crate::api::ApiError;

pub fn normalize(given: &str) -> Result<String, ApiError> {
    let given = given.trim().trim_end_matches('.');
    if given.is_empty() {
        return Err(ApiError::validation("domain", "can't be blank"));
    }
    let invalid = || ApiError::validation("domain", "is invalid");
    // Only a bare host: a URL, a path or a port names no domain.
    if given.contains(['/', ':', '@', '?', '#', ' ']) {
        return Err(invalid());
    }
    let domain = match url::Host::parse(given).map_err(|_| invalid())? {
        url::Host::Domain(d) => d,
        _ => return Err(invalid()),
    };
    let labels_ok = domain.split('.').all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    });
    if domain.len() > 253 || !labels_ok {
        return Err(invalid());
    }
    Ok(domain)
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn domains_are_lowercased_ascii_without_a_final_dot() {
        assert_eq!(normalize(" Evil.Example. ").unwrap(), "evil.example");
        assert_eq!(
            normalize("bücher.example").unwrap(),
            "xn--bcher-kva.example"
        );
    }

    #[test]
    fn anything_but_a_domain_is_refused() {
        for bad in [
            "",
            "  ",
            "https://evil.example",
            "evil.example/path",
            "evil.example:443",
            "user@evil.example",
            "127.0.0.1",
            "a..b",
            "-a.example",
            &format!("{}.example", "a".repeat(64)),
        ] {
            assert!(normalize(bad).is_err(), "{bad:?} accepted");
        }
    }
}
