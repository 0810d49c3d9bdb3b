//! Mastodon's `Relationship`: how one account stands towards others.

use serde::Serialize;

#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct Relationship {
    #[sqlx(try_from = "i64")]
    pub id: IdString,
    pub following: bool,
    pub showing_reblogs: bool,
    pub notifying: bool,
    pub languages: Option<Vec<String>>,
    pub followed_by: bool,
    pub blocking: bool,
    pub blocked_by: bool,
    pub muting: bool,
    pub muting_notifications: bool,
    pub requested: bool,
    pub requested_by: bool,
    pub domain_blocking: bool,
    pub endorsed: bool,
    pub note: String,
}

/// An id as clients see it: a string.
#[derive(Clone, Debug, Serialize)]
#[serde(transparent)]
pub struct IdString(pub String);

impl From<i64> for IdString {
    fn from(id: i64) -> Self {
        IdString(id.to_string())
    }
}

/// The relationships of `account_id` towards each of `targets` that exists and is not
/// suspended, in the order given. Expired mutes count as absent.
pub async fn relationships(
    db: impl sqlx::PgExecutor<'_>,
    account_id: i64,
    targets: &[i64],
) -> Result<Vec<Relationship>, sqlx::Error> {
    sqlx::query_as(
        "SELECT t.id, \
            f.id IS NOT NULL AS following, \
            coalesce(f.show_reblogs, r.show_reblogs, false) AS showing_reblogs, \
            coalesce(f.notify, r.notify, false) AS notifying, \
            coalesce(f.languages, r.languages) AS languages, \
            EXISTS (SELECT 1 FROM follows x WHERE x.account_id = t.id AND x.target_account_id = $1) \
                AS followed_by, \
            EXISTS (SELECT 1 FROM blocks b WHERE b.account_id = $1 AND b.target_account_id = t.id) \
                AS blocking, \
            EXISTS (SELECT 1 FROM blocks b WHERE b.account_id = t.id AND b.target_account_id = $1) \
                AS blocked_by, \
            m.id IS NOT NULL AS muting, \
            coalesce(m.hide_notifications, false) AS muting_notifications, \
            r.id IS NOT NULL AS requested, \
            EXISTS (SELECT 1 FROM follow_requests x \
                    WHERE x.account_id = t.id AND x.target_account_id = $1) AS requested_by, \
            EXISTS (SELECT 1 FROM account_domain_blocks d \
                    WHERE d.account_id = $1 AND d.domain = t.domain) AS domain_blocking, \
            false AS endorsed, '' AS note \
         FROM unnest($2::bigint[]) WITH ORDINALITY AS wanted(id, ord) \
         JOIN accounts t ON t.id = wanted.id AND t.suspended_at IS NULL \
         LEFT JOIN follows f ON f.account_id = $1 AND f.target_account_id = t.id \
         LEFT JOIN follow_requests r ON r.account_id = $1 AND r.target_account_id = t.id \
         LEFT JOIN mutes m ON m.account_id = $1 AND m.target_account_id = t.id \
                          AND (m.expires_at IS NULL OR m.expires_at > now()) \
         ORDER BY wanted.ord",
    )
    .bind(account_id)
    .bind(targets)
    .fetch_all(db)
    .await
}
