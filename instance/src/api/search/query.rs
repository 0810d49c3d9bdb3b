//! Mastodon's search operators, taken out of a query before its words go to the full-text
//! engine: `from:`, `has:`, `is:`, `language:`, `before:`, `after:`, `during:`, `in:`, each
//! `has:`/`is:` negated with a leading `-`. Anything else (words, "quoted phrases", `-word`,
//! `or`) is the text, which `websearch_to_tsquery` reads.

use sqlx::types::chrono::{DateTime, NaiveDate, Utc};

/// Where statuses are looked for (`in:`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Scope {
    /// Public statuses, and those the viewer wrote or interacted with.
    #[default]
    All,
    /// Only the viewer's own statuses and those they interacted with.
    Library,
    /// Only public statuses.
    Public,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatusQuery {
    /// The words, for the full-text engine; empty when only operators were given.
    pub text: String,
    /// `from:` as written (`user`, `@user@domain` or `me`).
    pub from: Option<String>,
    /// `has:media` (`Some(false)` for `-has:media`).
    pub has_media: Option<bool>,
    pub has_poll: Option<bool>,
    pub is_reply: Option<bool>,
    pub is_sensitive: Option<bool>,
    pub language: Option<String>,
    /// Created strictly before this instant (`before:`, or the end of `during:`).
    pub before: Option<DateTime<Utc>>,
    /// Created at or after this instant (`after:` is the day after, as in Mastodon).
    pub after: Option<DateTime<Utc>>,
    pub scope: Scope,
}

fn day(value: &str) -> Option<DateTime<Utc>> {
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

const ONE_DAY: std::time::Duration = std::time::Duration::from_secs(86_400);

impl StatusQuery {
    pub fn parse(q: &str) -> Self {
        let mut query = StatusQuery::default();
        let mut words = Vec::new();
        for token in split_keeping_quotes(q) {
            if !query.operator(&token) {
                words.push(token);
            }
        }
        query.text = words.join(" ");
        query
    }

    /// Takes `token` if it is an operator this parser knows; false leaves it as a word.
    fn operator(&mut self, token: &str) -> bool {
        let (negated, body) = match token.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, token),
        };
        let Some((name, value)) = body.split_once(':') else {
            return false;
        };
        let value = value.trim_matches('"');
        let value_lower = value.to_lowercase();
        let flag = Some(!negated);
        match (name.to_lowercase().as_str(), value_lower.as_str()) {
            ("has", "media" | "image" | "video" | "audio") => self.has_media = flag,
            ("has", "poll") => self.has_poll = flag,
            ("is", "reply") => self.is_reply = flag,
            ("is", "sensitive") => self.is_sensitive = flag,
            _ if negated => return false,
            ("from", v) if !v.is_empty() => self.from = Some(value.to_string()),
            ("language", v) if !v.is_empty() && v.len() <= 16 => {
                self.language = Some(v.to_string())
            }
            ("before", v) => match day(v) {
                Some(d) => self.before = Some(d),
                None => return false,
            },
            ("after", v) => match day(v) {
                Some(d) => self.after = Some(d + ONE_DAY),
                None => return false,
            },
            ("during", v) => match day(v) {
                Some(d) => {
                    self.after = Some(d);
                    self.before = Some(d + ONE_DAY);
                }
                None => return false,
            },
            ("in", "library") => self.scope = Scope::Library,
            ("in", "public") => self.scope = Scope::Public,
            ("in", "all") => self.scope = Scope::All,
            _ => return false,
        }
        true
    }
}

/// Whitespace-separated tokens, a double-quoted run (with any prefix, as `from:"x"` or
/// `"two words"`) kept as one.
fn split_keeping_quotes(q: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in q.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            c if c.is_whitespace() && !quoted => {
                if !current.is_empty() {
                    tokens.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operators_are_taken_out_and_words_kept() {
        let q = StatusQuery::parse(
            "cats \"big dogs\" from:@bob has:media -is:reply language:EN -fish in:library",
        );
        assert_eq!(q.text, "cats \"big dogs\" -fish");
        assert_eq!(q.from.as_deref(), Some("@bob"));
        assert_eq!(q.has_media, Some(true));
        assert_eq!(q.is_reply, Some(false));
        assert_eq!(q.is_sensitive, None);
        assert_eq!(q.language.as_deref(), Some("en"));
        assert_eq!(q.scope, Scope::Library);
    }

    #[test]
    fn dates_bound_the_creation_time() {
        let q = StatusQuery::parse("during:2026-11-27");
        assert_eq!(q.text, "");
        assert_eq!(q.after, day("2026-11-27"));
        assert_eq!(q.before, day("2026-11-28"));
        let q = StatusQuery::parse("after:2026-11-27 before:2026-12-01");
        assert_eq!(q.after, day("2026-11-28"));
        assert_eq!(q.before, day("2026-12-01"));
    }

    #[test]
    fn unknown_or_malformed_operators_stay_words() {
        let q = StatusQuery::parse("http://x.example before:someday -from:bob has:cake a:b");
        assert_eq!(
            q.text,
            "http://x.example before:someday -from:bob has:cake a:b"
        );
        assert_eq!(
            q,
            StatusQuery {
                text: q.text.clone(),
                ..Default::default()
            }
        );
    }
}
