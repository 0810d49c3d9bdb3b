//! Mastodon's `Poll` entity, built for any number of statuses in two queries.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;
use sqlx::types::chrono::{DateTime, Utc};

use super::account::iso8601;

#[derive(Clone, Debug, Serialize)]
pub struct PollOption {
    pub title: String,
    /// None while the totals are hidden (`hide_totals` and the poll still running).
    pub votes_count: Option<i64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Poll {
    pub id: String,
    pub expires_at: Option<String>,
    pub expired: bool,
    pub multiple: bool,
    pub votes_count: i64,
    pub voters_count: Option<i64>,
    pub options: Vec<PollOption>,
    pub emojis: Vec<Value>,
    /// The viewer's part: absent for anonymous callers, as in Mastodon.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voted: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub own_votes: Option<Vec<i32>>,
}

#[derive(sqlx::FromRow)]
struct PollRow {
    id: i64,
    status_id: i64,
    account_id: i64,
    options: Vec<String>,
    multiple: bool,
    hide_totals: bool,
    expires_at: Option<DateTime<Utc>>,
    expired: bool,
    voters_count: i64,
    /// Votes per option index, the same length as `options`.
    tallies: Vec<i64>,
    own_votes: Vec<i32>,
}

/// The polls of `status_ids` as `viewer` sees them, keyed by status id. The caller has
/// already decided the viewer may see the statuses.
pub async fn load_polls(
    db: impl sqlx::PgExecutor<'_>,
    status_ids: &[i64],
    viewer: Option<i64>,
) -> Result<HashMap<i64, Poll>, sqlx::Error> {
    if status_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<PollRow> = sqlx::query_as(
        "SELECT p.id, p.status_id, p.account_id, p.options, p.multiple, p.hide_totals, \
                p.expires_at, coalesce(p.expires_at <= now(), false) AS expired, \
                (SELECT count(DISTINCT v.account_id) FROM poll_votes v WHERE v.poll_id = p.id) \
                    AS voters_count, \
                ARRAY(SELECT (SELECT count(*) FROM poll_votes v \
                              WHERE v.poll_id = p.id AND v.choice = o.n - 1) \
                      FROM unnest(p.options) WITH ORDINALITY AS o(title, n) ORDER BY o.n) \
                    AS tallies, \
                ARRAY(SELECT v.choice FROM poll_votes v \
                      WHERE v.poll_id = p.id AND v.account_id = $2 ORDER BY v.choice) \
                    AS own_votes \
         FROM polls p WHERE p.status_id = ANY($1)",
    )
    .bind(status_ids)
    .bind(viewer)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.status_id, poll_json(r, viewer)))
        .collect())
}

fn poll_json(r: PollRow, viewer: Option<i64>) -> Poll {
    // Mastodon's `show_totals_now?`: hidden totals stay hidden from everyone, the author
    // included, until the poll ends.
    let show_totals = r.expired || !r.hide_totals;
    Poll {
        id: r.id.to_string(),
        expires_at: r.expires_at.map(iso8601),
        expired: r.expired,
        multiple: r.multiple,
        votes_count: r.tallies.iter().sum(),
        voters_count: Some(r.voters_count),
        options: r
            .options
            .into_iter()
            .zip(r.tallies)
            .map(|(title, votes)| PollOption {
                title,
                votes_count: show_totals.then_some(votes),
            })
            .collect(),
        emojis: Vec::new(),
        // The author counts as having voted (Mastodon's `Poll#voted?`): they cannot vote.
        voted: viewer.map(|v| v == r.account_id || !r.own_votes.is_empty()),
        own_votes: viewer.map(|_| r.own_votes),
    }
}
