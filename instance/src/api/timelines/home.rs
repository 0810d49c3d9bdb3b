//! `GET /api/v1/timelines/home`: a page of the viewer's Redis feed (see `feed`).
//!
//! A missing feed is rebuilt inline, and the answer is 200: the rebuild is one indexed
//! query of at most 400 ids, so there is no need for Mastodon's 206 "still rebuilding"
//! answer, which clients handle by polling.

use axum::extract::State;
use axum::http::Uri;
use axum::response::Response;

use super::feed::{self, FEED_MAX};
use super::{STATUSES_DEFAULT, STATUSES_MAX};
use crate::api::ApiError;
use crate::api::entities::status::{load_statuses, status_visible};
use crate::api::pagination::{Page, PageQuery};
use crate::api::params::Params;
use crate::api::statuses::paged;
use crate::auth::Auth;
use crate::state::AppState;

/// Scores are doubles: up to this many neighbouring ids share one, so each read asks for
/// that many more than it needs and compares the ids exactly.
const SCORE_SLACK: usize = 16;

/// Which of `ids` (in that order) the viewer may see in their home: visible to them, with a
/// visible original for a reblog, and from no account they mute or block or that blocks
/// them (the author or, for a reblog, the original's author); no boost of a status from a
/// domain they block (Mastodon's `filter_from_home`).
async fn keep_shown(state: &AppState, ids: &[i64], me: i64) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar(concat!(
        "SELECT s.id FROM unnest($1::bigint[]) WITH ORDINALITY AS u(id, ord) \
           JOIN statuses s ON s.id = u.id \
           LEFT JOIN statuses o ON o.id = s.reblog_of_id \
         WHERE ",
        status_visible!("s", "$2::bigint"),
        " AND (o.id IS NULL OR ",
        status_visible!("o", "$2::bigint"),
        ") AND NOT EXISTS (SELECT 1 FROM mutes m WHERE m.account_id = $2 \
                  AND m.target_account_id IN (s.account_id, o.account_id) \
                  AND (m.expires_at IS NULL OR m.expires_at > now())) \
           AND NOT EXISTS (SELECT 1 FROM blocks b \
                  WHERE (b.account_id = $2 AND b.target_account_id IN (s.account_id, o.account_id)) \
                     OR (b.target_account_id = $2 AND b.account_id IN (s.account_id, o.account_id))) \
           AND NOT EXISTS (SELECT 1 FROM account_domain_blocks d JOIN accounts da ON da.domain = d.domain \
                  WHERE d.account_id = $2 AND da.id = o.account_id) \
         ORDER BY u.ord"
    ))
    .bind(ids)
    .bind(me)
    .fetch_all(state.db.reader())
    .await
}

fn internal(e: redis::RedisError) -> ApiError {
    ApiError::Internal(e.into())
}

pub async fn home(
    State(state): State<AppState>,
    auth: Auth,
    uri: Uri,
    Params { value: q, .. }: Params<PageQuery>,
) -> Result<Response, ApiError> {
    auth.require("read:statuses")?;
    let me = auth.user()?.account_id;
    let page = q.page(STATUSES_DEFAULT, STATUSES_MAX)?;
    // The read is recorded alongside the first feed read: both go out on the multiplexed
    // Redis connection together, one round trip instead of two.
    let touch = async {
        if let Err(e) = feed::touch(&state.redis, me).await {
            tracing::warn!(error = %e, "cannot record a home feed read");
        }
    };
    let ((), ids) = tokio::join!(touch, shown_ids(&state, me, &page));
    let mut ids = ids?;
    if page.ascending() {
        ids.reverse();
    }
    let statuses = load_statuses(&state, &ids, Some(me)).await?;
    let statuses = crate::api::filters::matching::drop_hidden(statuses, "home");
    Ok(paged(&state, &uri, &ids, statuses))
}

/// The ids of the page, in feed order (oldest first for an ascending page), at most
/// `page.limit`, of the entries `me` may see.
async fn shown_ids(state: &AppState, me: i64, page: &Page) -> Result<Vec<i64>, ApiError> {
    let limit = page.limit as usize;
    let key = feed::key(&state.redis, me);
    // Exclusive bounds, moved past each batch read: filtering can leave a batch short, and
    // the page is filled from the next one.
    let (mut low, mut high) = (page.lower(), page.max_id);
    let count = limit + SCORE_SLACK;
    let mut ids = Vec::new();
    // Whether the feed is known to exist. Only a short read asks: a missing feed reads as
    // empty, and a full batch proves it is there, which spares the usual page a round trip.
    let mut known = false;
    // A feed holds at most FEED_MAX entries: this many batches read it all, plus one read
    // again after a rebuild.
    for _ in 0..=FEED_MAX / limit.max(1) + 1 {
        let raw = state
            .redis
            .zrange_by_score(&key, low, high, count, page.ascending())
            .await
            .map_err(internal)?;
        let mut exhausted = raw.len() < count;
        if exhausted && !known {
            known = true;
            if !state.redis.exists(&key).await.map_err(internal)? {
                feed::rebuild(state, me).await.map_err(ApiError::Internal)?;
                continue;
            }
        }
        let mut batch: Vec<i64> = raw
            .into_iter()
            .filter(|id| *id > 0 && low.is_none_or(|l| *id > l) && high.is_none_or(|h| *id < h))
            .collect();
        // The slack only makes the bounds exact: filtering looks at no more than the page
        // needs (the next batch starts after the last id looked at when some are hidden).
        if batch.len() > limit {
            batch.truncate(limit);
            exhausted = false;
        }
        let Some(&last) = batch.last() else { break };
        if page.ascending() {
            low = Some(last);
        } else {
            high = Some(last);
        }
        ids.extend(keep_shown(state, &batch, me).await?);
        if ids.len() >= limit || exhausted {
            break;
        }
    }
    ids.truncate(limit);
    Ok(ids)
}
