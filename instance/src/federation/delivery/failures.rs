//! Per-domain delivery health, Mastodon's `DeliveryFailureTracker`: each day on which a
//! delivery to a domain failed is recorded; a domain with failures on [`FAILURE_DAYS`]
//! distinct days is unavailable, and deliveries to it are dropped instead of queued, until it
//! answers again (a delivery that gets any answer, or an activity it sends us).

use crate::db::Database;

/// Mastodon's `FAILURE_DAYS_THRESHOLD`.
pub const FAILURE_DAYS: i64 = 7;

/// Records today's failure for `domain`; returns whether the domain is now unavailable.
pub async fn record_failure(db: &Database, domain: &str) -> Result<bool, sqlx::Error> {
    let unavailable: bool = sqlx::query_scalar(
        "WITH day AS (INSERT INTO delivery_failure_days (domain, day) \
                      VALUES ($1, current_date) ON CONFLICT DO NOTHING) \
         SELECT count(*) + (NOT EXISTS (SELECT 1 FROM delivery_failure_days \
                                        WHERE domain = $1 AND day = current_date))::int \
                >= $2 \
         FROM delivery_failure_days WHERE domain = $1",
    )
    .bind(domain)
    .bind(FAILURE_DAYS)
    .fetch_one(db.primary())
    .await?;
    if unavailable {
        sqlx::query("INSERT INTO unavailable_domains (domain) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind(domain)
            .execute(db.primary())
            .await?;
    }
    Ok(unavailable)
}

/// `domain` answered: its failures are forgotten and it is available again. Called after a
/// delivery that got an answer, and by the inbox for each activity a domain sends us.
pub async fn reset(db: &Database, domain: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "WITH d AS (DELETE FROM delivery_failure_days WHERE domain = $1) \
         DELETE FROM unavailable_domains WHERE domain = $1",
    )
    .bind(domain)
    .execute(db.primary())
    .await
    .map(drop)
}

/// Whether deliveries to `domain` are dropped.
pub async fn is_unavailable(db: &Database, domain: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM unavailable_domains WHERE domain = $1)")
        .bind(domain)
        .fetch_one(db.reader())
        .await
}
