//! The instance's federation policy (`spec.federation`): which remote domains are
//! suspended, silenced or have their media rejected, and, in limited mode, which ones are
//! federated with at all. Every host is canonicalized (trailing dot, case, IDNA to
//! punycode) by the same function as the configured domains before it is compared, and a
//! rule on a domain covers its subdomains, as Mastodon's `DomainBlock.rule_for` does.

use std::sync::OnceLock;
use std::time::Duration;

use fedi_config::{DomainBlockSeverity, FederationConfig, FederationMode, canonical_domain};
use url::Url;

use crate::jobs::{JobError, Registry};
use crate::state::AppState;

/// What the policy says about one domain, strictest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Treatment {
    /// Suspended, or outside the allowlist of limited mode: nothing exchanged.
    Refused,
    /// Kept out of public timelines and of strangers' notifications; media hotlinked.
    Silenced {
        reject_media: bool,
    },
    /// Federated, with its attachments not fetched nor shown.
    RejectMedia,
    Open,
}

impl Treatment {
    pub fn refused(self) -> bool {
        self == Treatment::Refused
    }

    pub fn rejects_media(self) -> bool {
        matches!(
            self,
            Treatment::Refused
                | Treatment::RejectMedia
                | Treatment::Silenced { reject_media: true }
        )
    }

    pub fn silenced(self) -> bool {
        matches!(self, Treatment::Silenced { .. })
    }
}

#[derive(Debug, Clone, Default)]
pub struct DomainPolicy {
    limited: bool,
    allowed: Vec<String>,
    /// `(domain, severity)`, canonical.
    blocks: Vec<(String, DomainBlockSeverity)>,
}

/// Whether `host` is `domain` or one of its subdomains (both canonical; a port on `host`
/// is ignored, so that a block of `localhost` covers `localhost:8080`).
fn covers(domain: &str, host: &str) -> bool {
    let host = strip_port(host);
    let domain = strip_port(domain);
    host == domain
        || host
            .strip_suffix(domain)
            .is_some_and(|rest| rest.ends_with('.'))
}

fn strip_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((h, p))
            if p.bytes().all(|b| b.is_ascii_digit())
                && (!h.starts_with('[') || h.ends_with(']')) =>
        {
            h
        }
        _ => host,
    }
}

impl DomainPolicy {
    pub fn new(config: &FederationConfig) -> Self {
        Self {
            limited: config.mode == FederationMode::Limited,
            allowed: config.allowed_domains.clone(),
            blocks: config
                .domain_blocks
                .iter()
                .map(|b| (b.domain.clone(), b.severity))
                .collect(),
        }
    }

    /// The treatment of `domain` (a host, `host:port`, in any case, with a trailing dot or
    /// in Unicode). What cannot be read as a domain is refused.
    pub fn of_domain(&self, domain: &str) -> Treatment {
        let Some(host) = canonical_domain(domain) else {
            return Treatment::Refused;
        };
        if self.limited && !self.allowed.iter().any(|d| covers(d, &host)) {
            return Treatment::Refused;
        }
        let mut silenced = false;
        let mut reject_media = false;
        for (domain, severity) in &self.blocks {
            if !covers(domain, &host) {
                continue;
            }
            match severity {
                DomainBlockSeverity::Suspend => return Treatment::Refused,
                DomainBlockSeverity::Silence => silenced = true,
                DomainBlockSeverity::RejectMedia => reject_media = true,
            }
        }
        match (silenced, reject_media) {
            (true, reject_media) => Treatment::Silenced { reject_media },
            (false, true) => Treatment::RejectMedia,
            (false, false) => Treatment::Open,
        }
    }

    /// The treatment of the host of `url`; a URL without a host is refused.
    pub fn of_url(&self, url: &str) -> Treatment {
        match Url::parse(url).ok().as_ref().and_then(Url::host_str) {
            Some(host) => self.of_domain(host),
            None => Treatment::Refused,
        }
    }

    pub fn refuses_url(&self, url: &str) -> bool {
        self.of_url(url).refused()
    }
}

/// The process's policy (its configuration is the process's, as for the fetcher).
pub fn of(state: &AppState) -> &'static DomainPolicy {
    static POLICY: OnceLock<DomainPolicy> = OnceLock::new();
    POLICY.get_or_init(|| DomainPolicy::new(&state.config.federation))
}

/// The periodic job that applies the policy to stored accounts: settings change with a
/// restart of the pods, and the first run after it catches up.
pub const APPLY_KIND: &str = "federation.domain_policy";
const APPLY_EVERY: Duration = Duration::from_secs(300);

pub fn register(r: &mut Registry) {
    r.register(APPLY_KIND, 3, |state, _| async move {
        apply(&state, of(&state))
            .await
            .map(drop)
            .map_err(JobError::retry)
    });
    r.periodic(APPLY_KIND, APPLY_EVERY);
}

/// Suspends the stored accounts of suspended domains (and, in limited mode, of those not
/// allowed) and silences those of silenced domains; undoes what an earlier policy did and
/// this one no longer says. Returns how many accounts changed.
pub async fn apply(state: &AppState, policy: &DomainPolicy) -> Result<u64, sqlx::Error> {
    let domains: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT domain FROM accounts WHERE domain IS NOT NULL")
            .fetch_all(state.db.primary())
            .await?;
    let (mut refused, mut silenced) = (Vec::new(), Vec::new());
    for domain in domains {
        match policy.of_domain(&domain) {
            Treatment::Refused => refused.push(domain),
            Treatment::Silenced { .. } => silenced.push(domain),
            Treatment::RejectMedia | Treatment::Open => {}
        }
    }
    let mut changed = 0;
    for sql in [
        "UPDATE accounts SET suspended_at = now(), suspended_by_domain_policy = true \
         WHERE domain = ANY($1) AND suspended_at IS NULL",
        "UPDATE accounts SET suspended_at = NULL, suspended_by_domain_policy = false \
         WHERE suspended_by_domain_policy AND domain IS NOT NULL AND domain <> ALL($1)",
    ] {
        changed += sqlx::query(sql)
            .bind(&refused)
            .execute(state.db.primary())
            .await?
            .rows_affected();
    }
    for sql in [
        "UPDATE accounts SET silenced_at = now() \
         WHERE domain = ANY($1) AND silenced_at IS NULL",
        "UPDATE accounts SET silenced_at = NULL \
         WHERE silenced_at IS NOT NULL AND domain IS NOT NULL AND domain <> ALL($1)",
    ] {
        changed += sqlx::query(sql)
            .bind(&silenced)
            .execute(state.db.primary())
            .await?
            .rows_affected();
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedi_config::DomainBlock;

    fn policy(
        mode: FederationMode,
        blocks: &[(&str, DomainBlockSeverity)],
        allowed: &[&str],
    ) -> DomainPolicy {
        DomainPolicy::new(&FederationConfig {
            mode,
            domain_blocks: blocks
                .iter()
                .map(|(d, s)| DomainBlock {
                    domain: canonical_domain(d).unwrap(),
                    severity: *s,
                })
                .collect(),
            allowed_domains: allowed
                .iter()
                .map(|d| canonical_domain(d).unwrap())
                .collect(),
            authorized_fetch: false,
        })
    }

    #[test]
    fn blocks_cover_subdomains_whatever_the_spelling() {
        let p = policy(
            FederationMode::Open,
            &[
                ("Spam.Example.", DomainBlockSeverity::Suspend),
                ("bücher.example", DomainBlockSeverity::Suspend),
                ("loud.example", DomainBlockSeverity::Silence),
                ("pics.example", DomainBlockSeverity::RejectMedia),
                ("both.example", DomainBlockSeverity::Silence),
                ("both.example", DomainBlockSeverity::RejectMedia),
            ],
            &[],
        );
        for refused in [
            "spam.example",
            "SPAM.example.",
            "a.b.spam.example",
            "spam.example:8443",
            "xn--bcher-kva.example",
            "BÜCHER.example",
            "social.bücher.example",
        ] {
            assert_eq!(p.of_domain(refused), Treatment::Refused, "{refused}");
        }
        for open in [
            "notspam.example",
            "spam.example.org",
            "example",
            "bucher.example",
        ] {
            assert_eq!(p.of_domain(open), Treatment::Open, "{open}");
        }
        assert_eq!(
            p.of_domain("Sub.Loud.Example"),
            Treatment::Silenced {
                reject_media: false
            }
        );
        assert_eq!(p.of_domain("pics.example"), Treatment::RejectMedia);
        assert!(
            p.of_domain("both.example").rejects_media() && p.of_domain("both.example").silenced()
        );
        assert!(p.refuses_url("https://Social.Spam.Example./users/a"));
        assert!(!p.refuses_url("https://ok.example/users/a"));
        assert!(p.refuses_url("not a url"));
        assert!(!p.refuses_url("http://[::1]:8080/users/a"));
        let v6 = policy(
            FederationMode::Open,
            &[("[::1]", DomainBlockSeverity::Suspend)],
            &[],
        );
        assert!(v6.refuses_url("http://[::1]:8080/users/a"));
        assert!(!v6.refuses_url("http://[::2]/users/a"));
    }

    #[test]
    fn limited_mode_federates_with_the_allowlist_only() {
        let p = policy(
            FederationMode::Limited,
            &[("bad.friends.example", DomainBlockSeverity::Suspend)],
            &["friends.example", "localhost"],
        );
        assert_eq!(p.of_domain("friends.example"), Treatment::Open);
        assert_eq!(p.of_domain("m.Friends.Example."), Treatment::Open);
        assert_eq!(p.of_domain("localhost:3000"), Treatment::Open);
        assert_eq!(p.of_domain("bad.friends.example"), Treatment::Refused);
        assert_eq!(p.of_domain("stranger.example"), Treatment::Refused);
        assert_eq!(p.of_domain("friends.example.evil"), Treatment::Refused);
    }
}
