//! Which servers the instance federates with (`spec.federation` of the FediInstance):
//! the mode, the domain blocks with their severities, the allowlist of limited mode, and
//! authorized fetch. Domains are canonicalized here, once, with the same function the
//! server applies to every host it compares with them.

use std::fmt;
use std::str::FromStr;

use crate::values::keyword_enum;

keyword_enum!(
    /// `open`: every server that is not suspended; `limited`: only the allowed ones.
    FederationMode, default Open, { Open => "open", Limited => "limited" }
);

keyword_enum!(
    /// Mastodon's domain block severities: `suspend` (nothing exchanged, content hidden),
    /// `silence` (kept out of public timelines and of strangers' notifications),
    /// `reject_media` (attachments neither fetched nor shown).
    Severity, default Suspend, {
        Suspend => "suspend", Silence => "silence", RejectMedia => "reject_media",
    }
);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainBlock {
    /// Canonical (see [`canonical_domain`]); its subdomains are blocked too.
    pub domain: String,
    pub severity: Severity,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FederationConfig {
    pub mode: FederationMode,
    pub domain_blocks: Vec<DomainBlock>,
    /// Limited mode only: the servers (and their subdomains) federated with. Canonical.
    pub allowed_domains: Vec<String>,
    /// Secure mode: actors, statuses and collections are served to signed requests only.
    pub authorized_fetch: bool,
}

/// The form every comparison of domains uses: trimmed, without a trailing dot, IDNA to
/// punycode, lower case. A `host:port` keeps its port (test peers on loopback). `None` for
/// what is not a host name (a URL, a path, spaces, an empty label).
pub fn canonical_domain(s: &str) -> Option<String> {
    let s = s.trim();
    if let Some(rest) = s.strip_prefix('[') {
        // An IPv6 literal, as URLs write it: `[::1]` or `[::1]:8080`.
        let (ip, after) = rest.split_once(']')?;
        let ip: std::net::Ipv6Addr = ip.parse().ok()?;
        let port = after.strip_prefix(':');
        if !after.is_empty()
            && !port.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        {
            return None;
        }
        return Some(match port {
            Some(p) => format!("[{ip}]:{p}"),
            None => format!("[{ip}]"),
        });
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p))
            if !h.contains(':') && !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) =>
        {
            (h, Some(p))
        }
        _ => (s, None),
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() || host.contains(['/', '@', ':', '*', '?', '#', ' ']) {
        return None;
    }
    let ascii = idna::domain_to_ascii(host).ok()?;
    if ascii.is_empty() || ascii.len() > 253 || ascii.split('.').any(str::is_empty) {
        return None;
    }
    Some(match port {
        Some(p) => format!("{ascii}:{p}"),
        None => ascii,
    })
}

fn domain(s: &str) -> Result<String, String> {
    canonical_domain(s).ok_or_else(|| format!("{s:?} is not a domain name"))
}

/// `spam.example,loud.example=silence,pics.example=reject_media`: a domain alone is
/// suspended. A domain listed twice is a mistake worth refusing (which severity wins?).
pub(crate) fn parse_domain_blocks(s: &str) -> Result<Vec<DomainBlock>, String> {
    let mut out: Vec<DomainBlock> = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (name, severity) = match item.split_once('=') {
            Some((d, sev)) => (
                d,
                sev.trim()
                    .parse()
                    .map_err(|e| format!("severity of {d:?}: {e}"))?,
            ),
            None => (item, Severity::Suspend),
        };
        let domain = domain(name)?;
        if out.iter().any(|b| b.domain == domain) {
            return Err(format!("{domain} is listed twice"));
        }
        out.push(DomainBlock { domain, severity });
    }
    Ok(out)
}

pub(crate) fn render_domain_blocks(blocks: &[DomainBlock]) -> String {
    blocks
        .iter()
        .map(|b| match b.severity {
            Severity::Suspend => b.domain.clone(),
            s => format!("{}={s}", b.domain),
        })
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) fn parse_domains(s: &str) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let d = domain(item)?;
        if !out.contains(&d) {
            out.push(d);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_canonicalized_before_any_comparison() {
        for (raw, canonical) in [
            ("Spam.Example.", "spam.example"),
            (" spam.example ", "spam.example"),
            ("bücher.example", "xn--bcher-kva.example"),
            ("BÜCHER.example.", "xn--bcher-kva.example"),
            ("xn--bcher-kva.example", "xn--bcher-kva.example"),
            ("LocalHost:8080", "localhost:8080"),
            ("127.0.0.1", "127.0.0.1"),
            ("[::1]", "[::1]"),
            ("[0:0::1]:8080", "[::1]:8080"),
        ] {
            assert_eq!(canonical_domain(raw).as_deref(), Some(canonical), "{raw}");
        }
        for bad in [
            "",
            ".",
            "https://spam.example",
            "spam.example/x",
            "a..b",
            "*.spam.example",
            "a b",
        ] {
            assert_eq!(canonical_domain(bad), None, "{bad}");
        }
    }

    #[test]
    fn blocks_parse_with_severities_and_round_trip() {
        let blocks =
            parse_domain_blocks("Spam.Example., loud.example=silence,pics.example=REJECT_MEDIA")
                .unwrap();
        assert_eq!(
            blocks,
            vec![
                DomainBlock {
                    domain: "spam.example".into(),
                    severity: Severity::Suspend
                },
                DomainBlock {
                    domain: "loud.example".into(),
                    severity: Severity::Silence
                },
                DomainBlock {
                    domain: "pics.example".into(),
                    severity: Severity::RejectMedia
                },
            ]
        );
        assert_eq!(
            parse_domain_blocks(&render_domain_blocks(&blocks)).unwrap(),
            blocks
        );
        for (bad, expected) in [
            ("a.example=ban", "expected suspend, silence or reject_media"),
            ("https://a.example", "is not a domain name"),
            ("a.example,A.example.", "listed twice"),
        ] {
            let err = parse_domain_blocks(bad).unwrap_err();
            assert!(err.contains(expected), "{bad}: {err}");
        }
    }
}
