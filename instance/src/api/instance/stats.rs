//! Usage figures for the instance entities, NodeInfo and the weekly activity, counted from
//! the tables as they are.
//!
//! "Active" has no sign-in timestamp to go by: a user counts as active in a period when one
//! of their tokens was issued (every sign-in issues one) or last used in it. `last_used_at`
//! keeps only the latest use, so older weeks can undercount users who were active then and
//! again later; they are never overcounted.

use serde::Serialize;
use sqlx::PgPool;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Users Mastodon counts: confirmed, with an account that is not suspended.
    pub users: i64,
    pub active_month: i64,
    pub active_halfyear: i64,
    pub local_posts: i64,
    /// Distinct hosts of known remote accounts.
    pub domains: i64,
}

pub async fn usage(db: &PgPool) -> Result<Usage, sqlx::Error> {
    let (users, active_month, active_halfyear, domains): (i64, i64, i64, i64) = sqlx::query_as(
        "WITH counted AS ( \
             SELECT u.id FROM users u JOIN accounts a ON a.id = u.account_id \
             WHERE u.confirmed_at IS NOT NULL AND a.suspended_at IS NULL), \
         last_seen AS ( \
             SELECT t.user_id, max(greatest(t.created_at, t.last_used_at)) AS at \
             FROM oauth_access_tokens t JOIN counted c ON c.id = t.user_id \
             GROUP BY t.user_id) \
         SELECT (SELECT count(*) FROM counted), \
                (SELECT count(*) FROM last_seen WHERE at >= now() - interval '30 days'), \
                (SELECT count(*) FROM last_seen WHERE at >= now() - interval '180 days'), \
                (SELECT count(DISTINCT domain) FROM accounts WHERE domain IS NOT NULL)",
    )
    .fetch_one(db)
    .await?;
    Ok(Usage {
        users,
        active_month,
        active_halfyear,
        // No statuses table exists yet: nothing has been posted.
        local_posts: 0,
        domains,
    })
}

/// One week of `/api/v1/instance/activity`; Mastodon sends the numbers as strings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Week {
    /// Unix time of the week's start (Monday 00:00 UTC).
    pub week: String,
    pub statuses: String,
    pub logins: String,
    pub registrations: String,
}

/// The current week and the eleven before it, newest first, as Mastodon answers.
pub async fn weekly_activity(db: &PgPool) -> Result<Vec<Week>, sqlx::Error> {
    let rows: Vec<(i64, i64, i64)> = sqlx::query_as(
        "WITH weeks AS ( \
             SELECT s AT TIME ZONE 'UTC' AS start, (s + interval '1 week') AT TIME ZONE 'UTC' AS until, \
                    extract(epoch FROM s)::bigint AS epoch \
             FROM generate_series(date_trunc('week', now() AT TIME ZONE 'UTC') - interval '11 weeks', \
                                  date_trunc('week', now() AT TIME ZONE 'UTC'), \
                                  interval '1 week') AS s) \
         SELECT w.epoch, \
                (SELECT count(DISTINCT t.user_id) FROM oauth_access_tokens t \
                 WHERE t.user_id IS NOT NULL \
                   AND ((t.created_at >= w.start AND t.created_at < w.until) \
                        OR (t.last_used_at >= w.start AND t.last_used_at < w.until))), \
                (SELECT count(*) FROM users u \
                 WHERE u.created_at >= w.start AND u.created_at < w.until) \
         FROM weeks w ORDER BY w.start DESC",
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(epoch, logins, registrations)| Week {
            week: epoch.to_string(),
            // No statuses table exists yet.
            statuses: "0".into(),
            logins: logins.to_string(),
            registrations: registrations.to_string(),
        })
        .collect())
}

/// The hosts of known remote accounts, for `/api/v1/instance/peers`.
pub async fn peers(db: &PgPool) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT DISTINCT domain FROM accounts WHERE domain IS NOT NULL ORDER BY domain",
    )
    .fetch_all(db)
    .await
}
