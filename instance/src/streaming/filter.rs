//! Per-viewer filtering before an event leaves the process: blocks (either way), mutes
//! (for notifications, only those that hide notifications), domain blocks, and on public
//! streams the viewer's chosen languages. The author always sees their own statuses.
//! Which events on which streams: `applies`.
//!
//! One query per event for every viewer on this process, not one per connection: a public
//! status reaching a thousand connections costs one round trip.

use std::collections::HashSet;

use serde_json::Value;

use super::schema::Schema;
use crate::state::AppState;

/// What filtering needs to know about an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// The status's author (the booster for a boost), or the notification's account.
    pub author: i64,
    /// Everyone a viewer's block or mute of whom hides the event: the author, the boosted
    /// author, mentioned accounts.
    pub targets: Vec<i64>,
    /// Remote domains involved (from `acct`), for domain blocks.
    pub domains: Vec<String>,
    pub language: Option<String>,
    /// A notification: only mutes that also hide notifications count.
    pub notification: bool,
}

/// Whether an event on a stream is filtered here. Notifications always are. Statuses are on
/// public and hashtag streams, which every viewer shares; on a home, list or direct stream
/// the fan-out already decided, per recipient and with the same relations
/// (`tasks::timeline`), that this viewer gets it, and checking again would cost a query per
/// follower per post, as Mastodon also knows. The rest (`delete`, `filters_changed`,
/// `conversation`...) passes through.
pub fn applies(event: &str, public: bool) -> bool {
    match event {
        "notification" => true,
        "update" | "status.update" => public,
        _ => false,
    }
}

/// Reads the facts from a payload; `None` when it is not the entity the event promises
/// (a publisher bug: the caller drops the event rather than deliver it unfiltered).
pub fn facts(event: &str, payload: &str) -> Option<Facts> {
    let v: Value = serde_json::from_str(payload).ok()?;
    let account = |entity: &Value| -> Option<(i64, Option<String>)> {
        let a = entity.get("account")?;
        let id = id(a.get("id")?)?;
        let domain = a
            .get("acct")
            .and_then(Value::as_str)
            .and_then(|acct| acct.split_once('@'))
            .map(|(_, d)| d.to_lowercase());
        Some((id, domain))
    };
    let (author, domain) = account(&v)?;
    let mut facts = Facts {
        author,
        targets: vec![author],
        domains: domain.into_iter().collect(),
        language: None,
        notification: event == "notification",
    };
    if facts.notification {
        return Some(facts);
    }
    let mut statuses = vec![&v];
    if let Some(reblog) = v.get("reblog").filter(|r| r.is_object()) {
        let (boosted, domain) = account(reblog)?;
        facts.targets.push(boosted);
        facts.domains.extend(domain);
        statuses.push(reblog);
    }
    for status in &statuses {
        for mention in status
            .get("mentions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            facts.targets.extend(mention.get("id").and_then(id));
        }
    }
    // A boost is in the boosted status's language.
    facts.language = statuses
        .last()
        .and_then(|s| s.get("language"))
        .and_then(Value::as_str)
        .map(str::to_string);
    facts.targets.sort_unstable();
    facts.targets.dedup();
    facts.domains.sort();
    facts.domains.dedup();
    Some(facts)
}

/// Entity ids are strings in Mastodon's JSON; numbers are accepted too.
fn id(v: &Value) -> Option<i64> {
    match v {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

/// Whether a viewer with `languages` chosen sees a status in `language` on a public stream.
/// A status without a language is shown to everyone.
pub fn language_allowed(languages: Option<&[String]>, language: Option<&str>) -> bool {
    match (languages, language) {
        (Some(chosen), Some(l)) => chosen.iter().any(|c| c == l),
        _ => true,
    }
}

/// A viewer list up to this long goes to the database to narrow its answer; a longer one
/// does not: ten thousand ids cost more to send and read (milliseconds per event, before
/// any client gets it) than the rows they would leave out, which only those who block or
/// mute the event's accounts can make.
const VIEWERS_SENT_UP_TO: usize = 1000;

/// Of `viewers` (account ids), those who must not receive the event. The answer may name
/// others too (accounts that are not viewers): callers ask it about their viewers.
pub async fn excluded(
    state: &AppState,
    schema: Schema,
    viewers: &[i64],
    facts: &Facts,
) -> Result<HashSet<i64>, sqlx::Error> {
    if viewers.is_empty() {
        return Ok(HashSet::new());
    }
    // Asked from the side of those who block or mute (few, found by index), each row then
    // checked against the viewers when they were sent: the cost follows the blockers, not
    // the 10,000 viewers a busy streamer has.
    const BASE: &str = "SELECT b.account_id FROM blocks b \
         WHERE b.target_account_id = ANY($2) AND ($1::bigint[] IS NULL OR b.account_id = ANY($1)) \
         UNION SELECT b.target_account_id FROM blocks b \
         WHERE b.account_id = $3 AND ($1::bigint[] IS NULL OR b.target_account_id = ANY($1)) \
         UNION SELECT m.account_id FROM mutes m \
         WHERE m.target_account_id = ANY($2) AND ($1::bigint[] IS NULL OR m.account_id = ANY($1)) \
           AND (m.expires_at IS NULL OR m.expires_at > now()) \
           AND (NOT $4 OR m.hide_notifications)";
    const DOMAINS: &str = " UNION SELECT d.account_id FROM account_domain_blocks d \
         WHERE d.domain = ANY($5) AND ($1::bigint[] IS NULL OR d.account_id = ANY($1))";
    let with_domains = schema.domain_blocks && !facts.domains.is_empty();
    let sql = if with_domains {
        format!("{BASE}{DOMAINS}")
    } else {
        BASE.to_string()
    };
    let narrowed = (viewers.len() <= VIEWERS_SENT_UP_TO).then_some(viewers);
    // The statement is one of two fixed strings above; every value is a bind parameter.
    let mut query = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
        .bind(narrowed)
        .bind(&facts.targets)
        .bind(facts.author)
        .bind(facts.notification);
    if with_domains {
        query = query.bind(&facts.domains);
    }
    // The replica: a mute made a moment ago is there within the lag bound the database
    // layer enforces, and filtering runs for every event.
    let rows = query.fetch_all(state.db.reader()).await?;
    Ok(rows.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_status_names_its_author_mentions_and_boosted_author() {
        let status = json!({
            "id": "1", "language": "en",
            "account": {"id": "10", "acct": "alice"},
            "mentions": [{"id": "11"}, {"id": "12"}],
            "reblog": null,
        });
        let f = facts("update", &status.to_string()).unwrap();
        assert_eq!((f.author, f.targets.clone()), (10, vec![10, 11, 12]));
        assert_eq!(f.language.as_deref(), Some("en"));
        assert!(f.domains.is_empty() && !f.notification);

        let boost = json!({
            "id": "2", "language": null,
            "account": {"id": "20", "acct": "bob"},
            "mentions": [],
            "reblog": {"id": "3", "language": "de",
                       "account": {"id": "30", "acct": "carol@Remote.example"},
                       "mentions": [{"id": "31"}]},
        });
        let f = facts("status.update", &boost.to_string()).unwrap();
        assert_eq!((f.author, f.targets.clone()), (20, vec![20, 30, 31]));
        assert_eq!(f.domains, ["remote.example"]);
        assert_eq!(f.language.as_deref(), Some("de"));
    }

    #[test]
    fn a_notification_names_its_account_only() {
        let n = json!({"id": "5", "type": "mention",
                       "account": {"id": "40", "acct": "dave@x.example"},
                       "status": {"mentions": [{"id": "41"}]}});
        let f = facts("notification", &n.to_string()).unwrap();
        assert_eq!((f.author, f.targets, f.notification), (40, vec![40], true));
        assert_eq!(f.domains, ["x.example"]);
        assert_eq!(facts("update", "not json"), None);
        assert_eq!(facts("update", r#"{"id":"1"}"#), None);
    }

    #[test]
    fn languages_filter_only_statuses_with_a_language() {
        let chosen = vec!["en".to_string(), "fr".to_string()];
        assert!(language_allowed(Some(&chosen), Some("fr")));
        assert!(!language_allowed(Some(&chosen), Some("de")));
        assert!(language_allowed(Some(&chosen), None));
        assert!(language_allowed(None, Some("de")));
        assert!(applies("status.update", true) && applies("notification", false));
        assert!(!applies("update", false) && !applies("delete", true));
    }
}
