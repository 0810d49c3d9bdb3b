//! Home feeds, as Mastodon keeps them: one Redis sorted set per account, `feed:home:<id>`,
//! of status ids scored by themselves, capped at [`FEED_MAX`]. Writes fan out into the
//! feeds of the author and their local followers; reading pages through the set and
//! filters what the viewer may see; a missing feed (new account, evicted key) is rebuilt
//! from PostgreSQL.
//!
//! Redis is a cache here: a failed feed write is logged, never fails the request, and the
//! worst outcome is a feed missing an entry until it is rebuilt.

use tracing::warn;

use crate::state::AppState;

/// Mastodon's `FeedManager::MAX_ITEMS`.
pub const FEED_MAX: usize = 400;

pub fn key(account_id: i64) -> String {
    format!("feed:home:{account_id}")
}

/// Whose home feeds status `id` belongs in: its author and the local accounts following
/// them (for a reblog, those who did not turn the author's reblogs off; for a direct
/// status, only followers it mentions, as Mastodon's fan-out does).
async fn recipients(state: &AppState, id: i64) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT s.account_id FROM statuses s WHERE s.id = $1 \
         UNION \
         SELECT f.account_id FROM statuses s \
           JOIN follows f ON f.target_account_id = s.account_id \
           JOIN accounts a ON a.id = f.account_id AND a.domain IS NULL \
          WHERE s.id = $1 AND (s.reblog_of_id IS NULL OR f.show_reblogs) \
            AND (s.visibility <> 'direct' OR EXISTS (SELECT 1 FROM mentions m \
                 WHERE m.status_id = s.id AND m.account_id = f.account_id))",
    )
    .bind(id)
    .fetch_all(state.db.primary())
    .await
}

/// Adds the new status (or reblog) `id` to the feeds it belongs in. Feeds not built yet are
/// left alone: their rebuild will include it.
// TODO(issue 6): inline for now; a post by an account with thousands of followers must go
// through the worker's fan-out queue instead of holding the request.
pub async fn fan_out(state: &AppState, id: i64) {
    let accounts = match recipients(state, id).await {
        Ok(a) => a,
        Err(e) => {
            warn!(error = %e, status = id, "cannot list the feeds of a new status");
            return;
        }
    };
    for account in accounts {
        if let Err(e) = state
            .redis
            .zadd_capped(&key(account), &[id], FEED_MAX, true)
            .await
        {
            warn!(error = %e, status = id, "cannot add a status to a home feed");
        }
    }
}

/// Before statuses `ids` are deleted (with the reblogs of them, which go along): removes
/// them from every feed they were fanned out to. Reading filters unknown ids anyway; this
/// keeps feeds from filling with holes.
pub async fn remove(state: &AppState, ids: &[i64]) {
    let rows: Result<Vec<(i64, i64)>, _> = sqlx::query_as(
        "WITH gone AS (SELECT id, account_id FROM statuses \
                       WHERE id = ANY($1) OR reblog_of_id = ANY($1)) \
         SELECT g.id, g.account_id FROM gone g \
         UNION \
         SELECT g.id, f.account_id FROM gone g \
           JOIN follows f ON f.target_account_id = g.account_id \
           JOIN accounts a ON a.id = f.account_id AND a.domain IS NULL",
    )
    .bind(ids)
    .fetch_all(state.db.primary())
    .await;
    let rows = match rows {
        Ok(r) => r,
        Err(e) => {
            warn!(error = %e, "cannot list the feeds of deleted statuses");
            return;
        }
    };
    let mut by_feed: std::collections::BTreeMap<i64, Vec<i64>> = Default::default();
    for (status, account) in rows {
        by_feed.entry(account).or_default().push(status);
    }
    for (account, statuses) in by_feed {
        if let Err(e) = state.redis.zrem(&key(account), &statuses).await {
            warn!(error = %e, "cannot remove statuses from a home feed");
        }
    }
}

/// After `me` stops following `target`: their statuses and reblogs leave `me`'s feed
/// (Mastodon's `unmerge_from_home`). Reblogs of them by others stay, as in Mastodon.
pub async fn unmerge(state: &AppState, me: i64, target: i64) {
    let feed = key(me);
    let result = async {
        let members = state.redis.zmembers(&feed).await?;
        if members.is_empty() {
            return Ok(());
        }
        let theirs: Vec<i64> =
            sqlx::query_scalar("SELECT id FROM statuses WHERE id = ANY($1) AND account_id = $2")
                .bind(&members)
                .bind(target)
                .fetch_all(state.db.primary())
                .await?;
        state.redis.zrem(&feed, &theirs).await?;
        Ok::<_, anyhow::Error>(())
    }
    .await;
    if let Err(e) = result {
        warn!(error = %e, "cannot remove an unfollowed account from a home feed");
    }
}

/// After `me` starts following someone: the feed is dropped and rebuilt on the next read,
/// which merges the new account's statuses in their place (simpler than Mastodon's
/// `merge_into_home`, and exact).
pub async fn invalidate(state: &AppState, me: i64) {
    if let Err(e) = state.redis.del(&key(me)).await {
        warn!(error = %e, "cannot drop a home feed");
    }
}

/// The newest [`FEED_MAX`] statuses of `me`'s home, by its definition: their own statuses
/// and those of the accounts they follow, reblogs included unless turned off. What the
/// viewer may not see, or has muted or blocked since, is filtered when reading.
pub async fn rebuild(state: &AppState, me: i64) -> anyhow::Result<()> {
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT s.id FROM statuses s \
         WHERE s.account_id = $1 \
         UNION ALL \
         SELECT s.id FROM follows f JOIN statuses s ON s.account_id = f.target_account_id \
         WHERE f.account_id = $1 AND (s.reblog_of_id IS NULL OR f.show_reblogs) \
         ORDER BY id DESC LIMIT $2",
    )
    .bind(me)
    .bind(FEED_MAX as i64)
    .fetch_all(state.db.primary())
    .await?;
    // Status 0 does not exist: it marks the feed as built, so that an account with an empty
    // home still gets fan-out instead of a rebuild at every read (Redis drops empty sets).
    let mut ids = ids;
    ids.push(0);
    state
        .redis
        .zadd_capped(&key(me), &ids, FEED_MAX, false)
        .await?;
    Ok(())
}
