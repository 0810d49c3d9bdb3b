//! The instance's namespace on Redis. Hosting providers point many instances at one Redis
//! (the operator's external Redis mode allows it): every key and pub/sub channel the server
//! touches starts with `fedi:<domain>:` (the domain as in `FEDI_DOMAIN`, port included), so
//! that one tenant's feeds, counters and streams are never another's.
//!
//! Features name their keys and channels as before (`feed:home:{42}`, Mastodon's
//! `timeline:public`); the prefix goes in front, outside any Redis Cluster hash tag `{...}`,
//! so that the keys a script uses together still share a slot. Channels carry no hash tag:
//! sharded pub/sub spreads them over the cluster by their whole name.
//!
//! Job queues keep their older form `{fedi:jobs:<domain>:<queue>}` (see [`Namespace::jobs`]):
//! it was namespaced already, and renaming it would strand the jobs queued before an upgrade.

/// The prefix of one instance's keys and channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    domain: String,
    prefix: String,
}

impl Namespace {
    pub fn new(domain: &str) -> Self {
        Self {
            domain: domain.to_string(),
            prefix: format!("fedi:{domain}:"),
        }
    }

    /// `fedi:<domain>:<name>`, for a key.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// `fedi:<domain>:<channel>`, for a pub/sub channel named as Mastodon names it.
    pub fn channel(&self, name: &str) -> String {
        self.key(name)
    }

    /// The name of one of our channels without the prefix; `None` for another instance's.
    pub fn channel_name<'a>(&self, channel: &'a str) -> Option<&'a str> {
        channel.strip_prefix(&self.prefix)
    }

    /// The hash tag of a job queue's keys: `{fedi:jobs:<domain>:<queue>}`.
    pub fn jobs(&self, queue: impl std::fmt::Display) -> String {
        format!("{{fedi:jobs:{}:{queue}}}", self.domain)
    }

    /// Whether `key` belongs to this instance (either form).
    pub fn owns(&self, key: &str) -> bool {
        key.starts_with(&self.prefix) || key.starts_with(&format!("{{fedi:jobs:{}:", self.domain))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prefix_stays_outside_hash_tags_and_names_the_domain_with_its_port() {
        let ns = Namespace::new("social.example:8443");
        assert_eq!(
            ns.key("feed:home:{42}"),
            "fedi:social.example:8443:feed:home:{42}"
        );
        assert_eq!(
            ns.channel("timeline:public"),
            "fedi:social.example:8443:timeline:public"
        );
        assert_eq!(
            ns.channel_name("fedi:social.example:8443:timeline:7"),
            Some("timeline:7")
        );
        assert_eq!(ns.channel_name("fedi:other.example:timeline:7"), None);
        assert_eq!(
            ns.jobs("default"),
            "{fedi:jobs:social.example:8443:default}"
        );
        assert!(ns.owns("{fedi:jobs:social.example:8443:default}:stream"));
    }
}
