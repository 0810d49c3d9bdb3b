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
use crate::api::entities::status::{Status, load_home_statuses};
use crate::api::pagination::{Page, PageQuery};
use crate::api::params::Params;
use crate::api::statuses::paged;
use crate::auth::Auth;
use crate::state::AppState;

/// Scores are doubles: up to this many neighbouring ids share one, so each read asks for
/// that many more than it needs and compares the ids exactly.
const SCORE_SLACK: usize = 16;

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
    let ((), shown) = tokio::join!(touch, shown(&state, me, &page));
    let mut statuses = shown?;
    if page.ascending() {
        statuses.reverse();
    }
    // The page's cursors: the feed entries shown (filters below may hide some of them).
    let ids: Vec<i64> = statuses.iter().filter_map(|s| s.id.parse().ok()).collect();
    let statuses = crate::api::filters::matching::drop_hidden(statuses, "home");
    Ok(paged(&state, &uri, &ids, statuses))
}

/// The page's statuses, in feed order (oldest first for an ascending page), at most
/// `page.limit`, of the entries `me` may see in their home.
async fn shown(state: &AppState, me: i64, page: &Page) -> Result<Vec<Status>, ApiError> {
    let limit = page.limit as usize;
    let key = feed::key(&state.redis, me);
    // Exclusive bounds, moved past each batch read: filtering can leave a batch short, and
    // the page is filled from the next one.
    let (mut low, mut high) = (page.lower(), page.max_id);
    let count = limit + SCORE_SLACK;
    let mut statuses = Vec::new();
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
        statuses.extend(load_home_statuses(state, &batch, me).await?);
        if statuses.len() >= limit || exhausted {
            break;
        }
    }
    statuses.truncate(limit);
    Ok(statuses)
}
