//! Verified bearer tokens kept in memory, so that a request costs PostgreSQL no token
//! statement (a third of its CPU on a home timeline page).
//!
//! Kept only as long as it is known to be right. PostgreSQL announces every change that can
//! end or narrow a token (migration `token_change_notifications`: revocation, deletion,
//! password reset, suspension, role, confirmation and approval, cascades), and
//! `token_changes` drops the entries it names. An entry is served only while a heartbeat
//! sent through the same path proves, at most `TRUST_FOR` ago, that those announcements
//! arrive; when they may not have, the cache is emptied before it is used again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::token::Auth;

/// How long after a heartbeat was sent the cache may be served on its strength: the
/// longest a listener that stopped hearing anything goes unnoticed.
pub const TRUST_FOR: Duration = Duration::from_secs(5);
/// Enough for every active token of a large instance; past it, the cache starts over.
const MAX_ENTRIES: usize = 100_000;

/// What a notification says changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Token(i64),
    User(i64),
    Account(i64),
    /// A payload this version does not know: everything goes.
    Unknown,
}

impl Change {
    /// `t <id>`, `u <id>` or `a <id>`, as the migration's trigger writes them.
    pub fn parse(payload: &str) -> Self {
        let Some((kind, id)) = payload.split_once(' ') else {
            return Change::Unknown;
        };
        let Ok(id) = id.parse() else {
            return Change::Unknown;
        };
        match kind {
            "t" => Change::Token(id),
            "u" => Change::User(id),
            "a" => Change::Account(id),
            _ => Change::Unknown,
        }
    }
}

pub struct TokenCache {
    /// Zero: nothing is ever kept.
    ttl: Duration,
    inner: Mutex<Inner>,
    /// Woken by every announced change and by a lost listener: the streamer re-validates
    /// its connections' tokens then (`changed`).
    changes: tokio::sync::Notify,
}

#[derive(Default)]
struct Inner {
    /// By the token's digest: the cache holds nothing a memory dump could replay.
    entries: HashMap<String, Entry>,
    /// Bumped by every change: a lookup of the database that began before one is not kept,
    /// as it may have read the row before the change committed.
    generation: u64,
    /// Entries are served only before this instant (see `confirmed`); `None` until the
    /// first heartbeat arrives.
    trusted_until: Option<Instant>,
}

struct Entry {
    auth: Auth,
    expires_at: Option<DateTime<Utc>>,
    kept_until: Instant,
}

impl TokenCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            inner: Mutex::default(),
            changes: tokio::sync::Notify::new(),
        }
    }

    pub fn enabled(&self) -> bool {
        !self.ttl.is_zero()
    }

    /// The caller of the token with this digest, if it is kept and may be trusted now.
    pub fn get(&self, digest: &str) -> Option<Auth> {
        let now = Instant::now();
        let inner = self.lock();
        if inner.trusted_until.is_none_or(|t| now >= t) {
            return None;
        }
        let entry = inner.entries.get(digest)?;
        let live = now < entry.kept_until && entry.expires_at.is_none_or(|at| Utc::now() < at);
        live.then(|| entry.auth.clone())
    }

    /// To be read before the database is asked about a token, and handed to `insert`.
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Keeps a token the database found valid, unless anything changed since `generation`
    /// was read.
    pub fn insert(
        &self,
        digest: String,
        auth: Auth,
        expires_at: Option<DateTime<Utc>>,
        generation: u64,
    ) {
        if !self.enabled() {
            return;
        }
        let now = Instant::now();
        let mut inner = self.lock();
        if inner.generation != generation {
            return;
        }
        if inner.entries.len() >= MAX_ENTRIES {
            inner.entries.retain(|_, e| now < e.kept_until);
            if inner.entries.len() >= MAX_ENTRIES {
                inner.entries.clear();
            }
        }
        let kept_until = now + self.ttl;
        inner.entries.insert(
            digest,
            Entry {
                auth,
                expires_at,
                kept_until,
            },
        );
    }

    /// Drops what `change` may have made wrong.
    pub fn invalidate(&self, change: Change) {
        let mut inner = self.lock();
        inner.generation += 1;
        match change {
            Change::Token(id) => inner.entries.retain(|_, e| e.auth.token_id != id),
            Change::User(id) => inner
                .entries
                .retain(|_, e| e.auth.user.as_ref().is_none_or(|u| u.user_id != id)),
            Change::Account(id) => inner
                .entries
                .retain(|_, e| e.auth.user.as_ref().is_none_or(|u| u.account_id != id)),
            Change::Unknown => inner.entries.clear(),
        }
        drop(inner);
        self.changes.notify_one();
    }

    /// Resolves after the next announced change, or after the listener was lost (changes
    /// may have been missed). One waiter: a change while nobody waits is kept for it.
    pub async fn changed(&self) {
        self.changes.notified().await
    }

    /// A heartbeat sent at `sent_at` arrived: every change committed before it has been
    /// applied. After a gap in trust, changes may have been missed, so the cache starts over.
    pub fn confirmed(&self, sent_at: Instant) {
        let now = Instant::now();
        let mut inner = self.lock();
        if inner.trusted_until.is_none_or(|t| now >= t) {
            inner.generation += 1;
            inner.entries.clear();
        }
        let until = sent_at + TRUST_FOR;
        inner.trusted_until = Some(inner.trusted_until.map_or(until, |t| t.max(until)));
    }

    /// Changes may go unheard from now on (the listener is gone): nothing is served, and
    /// nothing kept so far will be.
    pub fn distrust(&self) {
        let mut inner = self.lock();
        inner.trusted_until = None;
        inner.generation += 1;
        inner.entries.clear();
        drop(inner);
        self.changes.notify_one();
    }

    /// Whether entries are served now (a heartbeat arrived less than `TRUST_FOR` after it
    /// was sent, and no longer ago than that).
    pub fn trusted(&self) -> bool {
        self.lock()
            .trusted_until
            .is_some_and(|t| Instant::now() < t)
    }

    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Nothing panics while holding it; a poisoned map is still a valid map.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Scopes;
    use crate::auth::token::AuthUser;

    fn auth(token_id: i64, user_id: i64, account_id: i64) -> Auth {
        Auth {
            token_id,
            application_id: 1,
            user: Some(AuthUser {
                user_id,
                account_id,
                role: "user".into(),
            }),
            scopes: Scopes::parse("read").unwrap(),
        }
    }

    fn trusted_cache() -> TokenCache {
        let cache = TokenCache::new(Duration::from_secs(60));
        cache.confirmed(Instant::now());
        cache
    }

    fn keep(cache: &TokenCache, digest: &str, auth: Auth) {
        cache.insert(digest.into(), auth, None, cache.generation());
    }

    #[test]
    fn payloads_name_what_changed() {
        assert_eq!(Change::parse("t 12"), Change::Token(12));
        assert_eq!(Change::parse("u 7"), Change::User(7));
        assert_eq!(Change::parse("a 9"), Change::Account(9));
        for other in ["", "t", "t x", "x 1", "t 1 2", "t  1"] {
            assert_eq!(Change::parse(other), Change::Unknown, "{other:?}");
        }
    }

    #[test]
    fn nothing_is_served_before_the_first_heartbeat_nor_after_trust_lapses() {
        let cache = TokenCache::new(Duration::from_secs(60));
        keep(&cache, "d1", auth(1, 1, 1));
        assert!(cache.get("d1").is_none(), "no heartbeat yet");

        cache.confirmed(Instant::now());
        keep(&cache, "d1", auth(1, 1, 1));
        assert!(cache.get("d1").is_some());

        // A heartbeat that took longer than TRUST_FOR to arrive proves nothing about now.
        cache.distrust();
        cache.confirmed(Instant::now() - TRUST_FOR - Duration::from_millis(1));
        keep(&cache, "d1", auth(1, 1, 1));
        assert!(cache.get("d1").is_none());
    }

    #[test]
    fn regaining_trust_starts_over() {
        let cache = trusted_cache();
        keep(&cache, "d1", auth(1, 1, 1));
        cache.distrust();
        assert!(cache.is_empty());
        keep(&cache, "d2", auth(2, 2, 2));
        assert_eq!(cache.len(), 1, "kept while untrusted");
        cache.confirmed(Instant::now());
        assert!(cache.is_empty(), "what was kept while changes went unheard");
    }

    #[test]
    fn each_change_drops_exactly_its_tokens() {
        let cache = trusted_cache();
        keep(&cache, "a", auth(1, 10, 100));
        keep(&cache, "b", auth(2, 10, 100));
        keep(&cache, "c", auth(3, 20, 200));
        keep(&cache, "d", auth(4, 30, 300));
        let app_token = Auth {
            user: None,
            ..auth(5, 0, 0)
        };
        keep(&cache, "e", app_token);

        cache.invalidate(Change::Token(3));
        assert!(cache.get("c").is_none());
        cache.invalidate(Change::User(10));
        assert!(cache.get("a").is_none() && cache.get("b").is_none());
        assert!(cache.get("d").is_some() && cache.get("e").is_some());
        cache.invalidate(Change::Account(300));
        assert!(cache.get("d").is_none());
        assert!(cache.get("e").is_some());
        cache.invalidate(Change::Unknown);
        assert!(cache.is_empty());
    }

    #[test]
    fn a_lookup_that_raced_a_change_is_not_kept() {
        let cache = trusted_cache();
        let before = cache.generation();
        // The database was asked, then a change arrived before the answer was kept.
        cache.invalidate(Change::User(99));
        cache.insert("d".into(), auth(1, 1, 1), None, before);
        assert!(cache.get("d").is_none());
    }

    #[test]
    fn expired_tokens_and_old_entries_are_not_served() {
        let cache = trusted_cache();
        let past = Utc::now() - chrono::TimeDelta::seconds(1);
        cache.insert("d".into(), auth(1, 1, 1), Some(past), cache.generation());
        assert!(cache.get("d").is_none(), "the token expired");

        let brief = TokenCache::new(Duration::from_millis(1));
        brief.confirmed(Instant::now());
        keep(&brief, "d", auth(1, 1, 1));
        std::thread::sleep(Duration::from_millis(5));
        assert!(brief.get("d").is_none(), "kept past the ttl");
    }

    #[test]
    fn a_disabled_cache_keeps_nothing() {
        let cache = TokenCache::new(Duration::ZERO);
        cache.confirmed(Instant::now());
        keep(&cache, "d", auth(1, 1, 1));
        assert!(cache.is_empty());
    }
}
