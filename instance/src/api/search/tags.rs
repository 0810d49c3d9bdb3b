//! Mastodon's `Tag` entity with its week of history, hashtag search, and
//! `GET /api/v1/tags/:name`.

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;

use crate::api::ApiError;
use crate::api::accounts::like_prefix;
use crate::auth::MaybeAuth;
use crate::state::AppState;

#[derive(Clone, Debug, Serialize)]
pub struct TagHistory {
    /// The day's start, as a UNIX timestamp in a string.
    pub day: String,
    pub uses: String,
    pub accounts: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Tag {
    pub id: String,
    pub name: String,
    pub url: String,
    /// The last 7 days, today first.
    pub history: Vec<TagHistory>,
}

#[derive(sqlx::FromRow)]
struct TagRow {
    id: i64,
    name: String,
}

/// Tag names are compared without `#` and without case.
pub fn normalize(name: &str) -> String {
    name.trim().trim_start_matches('#').to_lowercase()
}

/// The tags as entities, in the order given, with the public statuses and distinct
/// accounts that used them on each of the last 7 days (UTC).
async fn tags_json(state: &AppState, rows: &[TagRow]) -> Result<Vec<Tag>, ApiError> {
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let history: Vec<(i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT t.id, extract(epoch FROM d.day)::bigint, h.uses, h.accounts \
         FROM unnest($1::bigint[]) AS t(id) \
         CROSS JOIN generate_series(date_trunc('day', now() AT TIME ZONE 'UTC'), \
                                    date_trunc('day', now() AT TIME ZONE 'UTC') - interval '6 days', \
                                    interval '-1 day') AS d(day) \
         CROSS JOIN LATERAL (SELECT count(*) AS uses, count(DISTINCT s.account_id) AS accounts \
                             FROM statuses_tags st JOIN statuses s ON s.id = st.status_id \
                             WHERE st.tag_id = t.id AND s.visibility = 'public' \
                               AND s.created_at >= d.day AT TIME ZONE 'UTC' \
                               AND s.created_at < (d.day + interval '1 day') AT TIME ZONE 'UTC') h \
         ORDER BY t.id, d.day DESC",
    )
    .bind(&ids)
    .fetch_all(state.db.reader())
    .await?;
    let base = state.base_url();
    Ok(rows
        .iter()
        .map(|r| Tag {
            id: r.id.to_string(),
            url: format!("{base}/tags/{}", crate::text::percent_encode(&r.name)),
            name: r.name.clone(),
            history: history
                .iter()
                .filter(|h| h.0 == r.id)
                .map(|h| TagHistory {
                    day: h.1.to_string(),
                    uses: h.2.to_string(),
                    accounts: h.3.to_string(),
                })
                .collect(),
        })
        .collect())
}

/// Hashtags starting with `q` (without `#`): the exact name first, then shorter names.
/// Tags are not reviewed by moderators here, so `exclude_unreviewed` changes nothing.
pub async fn search(
    state: &AppState,
    q: &str,
    limit: i64,
    offset: i64,
) -> Result<Vec<Tag>, ApiError> {
    let needle = normalize(q);
    if needle.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<TagRow> = sqlx::query_as(
        "SELECT id, name FROM tags WHERE lower(name) LIKE $1 \
         ORDER BY lower(name) = $2 DESC, length(name), lower(name) LIMIT $3 OFFSET $4",
    )
    .bind(like_prefix(&needle))
    .bind(&needle)
    .bind(limit)
    .bind(offset)
    .fetch_all(state.db.reader())
    .await?;
    tags_json(state, &rows).await
}

/// `GET /api/v1/tags/:name`.
pub async fn show(
    State(state): State<AppState>,
    auth: MaybeAuth,
    Path(name): Path<String>,
) -> Result<Json<Tag>, ApiError> {
    if let Some(auth) = &auth.0 {
        auth.require("read")?;
    }
    let row: Option<TagRow> = sqlx::query_as("SELECT id, name FROM tags WHERE lower(name) = $1")
        .bind(normalize(&name))
        .fetch_optional(state.db.reader())
        .await?;
    let row = row.ok_or(ApiError::NotFound)?;
    let mut tags = tags_json(&state, std::slice::from_ref(&row)).await?;
    Ok(Json(tags.remove(0)))
}
