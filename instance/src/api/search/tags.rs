//! Mastodon's `Tag` entity with its week of history, hashtag search, `GET /api/v1/tags/:name`,
//! and followed hashtags (follow, unfollow, `GET /api/v1/followed_tags`). What following a
//! tag brings into the home feed is the feed's business (`tag_follows`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::response::Response;
use serde::Serialize;

use crate::api::ApiError;
use crate::api::accounts::like_prefix;
use crate::api::pagination::PageQuery;
use crate::api::params::Params;
use crate::api::statuses::paged;
use crate::auth::{Auth, MaybeAuth};
use crate::state::AppState;

/// Mastodon's page of followed tags.
const FOLLOWED_DEFAULT: i64 = 100;
const FOLLOWED_MAX: i64 = 200;

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
    /// Whether the viewer follows it: only for signed-in users, as in Mastodon.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub following: Option<bool>,
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
/// accounts that used them on each of the last 7 days (UTC), and whether `viewer` follows
/// them. Read from the primary: a follow just made must show.
async fn tags_json(
    state: &AppState,
    rows: &[TagRow],
    viewer: Option<i64>,
) -> Result<Vec<Tag>, ApiError> {
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let followed: Vec<i64> = match viewer {
        Some(viewer) => {
            sqlx::query_scalar(
                "SELECT tag_id FROM tag_follows WHERE account_id = $1 AND tag_id = ANY($2)",
            )
            .bind(viewer)
            .bind(&ids)
            .fetch_all(state.db.primary())
            .await?
        }
        None => Vec::new(),
    };
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
            following: viewer.map(|_| followed.contains(&r.id)),
        })
        .collect())
}

/// Hashtags starting with `q` (without `#`): the exact name first, then shorter names.
/// Tags are not reviewed by moderators here, so `exclude_unreviewed` changes nothing.
pub async fn search(
    state: &AppState,
    viewer: Option<i64>,
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
    tags_json(state, &rows, viewer).await
}

/// `GET /api/v1/tags/:name`.
pub async fn show(
    State(state): State<AppState>,
    auth: MaybeAuth,
    Path(name): Path<String>,
) -> Result<Json<Tag>, ApiError> {
    let viewer = match &auth.0 {
        Some(auth) => {
            auth.require("read:follows")?;
            auth.user.as_ref().map(|u| u.account_id)
        }
        None => None,
    };
    let row = find(&state, &name).await?.ok_or(ApiError::NotFound)?;
    one(&state, row, viewer).await
}

async fn find(state: &AppState, name: &str) -> Result<Option<TagRow>, ApiError> {
    Ok(
        sqlx::query_as("SELECT id, name FROM tags WHERE lower(name) = $1")
            .bind(normalize(name))
            .fetch_optional(state.db.primary())
            .await?,
    )
}

async fn one(state: &AppState, row: TagRow, viewer: Option<i64>) -> Result<Json<Tag>, ApiError> {
    let mut tags = tags_json(state, std::slice::from_ref(&row), viewer).await?;
    Ok(Json(tags.remove(0)))
}

/// A name a status could tag: what the status text scanner reads as a whole hashtag.
fn valid_name(name: &str) -> bool {
    let written = format!("#{name}");
    let tokens: Vec<_> = crate::text::tokens(&written).collect();
    tokens == [crate::text::Token::Hashtag(name)]
}

/// `POST /api/v1/tags/:name/follow`: the tag is created if no status used it yet, as in
/// Mastodon. Following twice changes nothing.
pub async fn follow(
    State(state): State<AppState>,
    auth: Auth,
    Path(name): Path<String>,
) -> Result<Json<Tag>, ApiError> {
    auth.require("write:follows")?;
    let me = auth.user()?.account_id;
    let name = name.trim().trim_start_matches('#');
    if !valid_name(name) {
        return Err(ApiError::validation("name", "is not a valid hashtag"));
    }
    sqlx::query("INSERT INTO tags (name) VALUES ($1) ON CONFLICT ((lower(name))) DO NOTHING")
        .bind(name)
        .execute(state.db.primary())
        .await?;
    let row = find(&state, name).await?.ok_or(ApiError::NotFound)?;
    sqlx::query(
        "INSERT INTO tag_follows (account_id, tag_id) VALUES ($1, $2) \
         ON CONFLICT (account_id, tag_id) DO NOTHING",
    )
    .bind(me)
    .bind(row.id)
    .execute(state.db.primary())
    .await?;
    // The home feed changes under the tag: the next read rebuilds it with the tag's statuses
    // (as after following an account).
    crate::api::timelines::feed::invalidate(&state, me).await;
    one(&state, row, Some(me)).await
}

/// `POST /api/v1/tags/:name/unfollow`.
pub async fn unfollow(
    State(state): State<AppState>,
    auth: Auth,
    Path(name): Path<String>,
) -> Result<Json<Tag>, ApiError> {
    auth.require("write:follows")?;
    let me = auth.user()?.account_id;
    let row = find(&state, &name).await?.ok_or(ApiError::NotFound)?;
    sqlx::query("DELETE FROM tag_follows WHERE account_id = $1 AND tag_id = $2")
        .bind(me)
        .bind(row.id)
        .execute(state.db.primary())
        .await?;
    crate::api::timelines::feed::invalidate(&state, me).await;
    one(&state, row, Some(me)).await
}

#[derive(sqlx::FromRow)]
struct FollowedRow {
    cursor: i64,
    id: i64,
    name: String,
}

/// `GET /api/v1/followed_tags`: newest follow first, paged by the follow (Link headers).
pub async fn followed(
    State(state): State<AppState>,
    auth: Auth,
    uri: Uri,
    Params { value: q, .. }: Params<PageQuery>,
) -> Result<Response, ApiError> {
    auth.require("read:follows")?;
    let me = auth.user()?.account_id;
    let page = q.page(FOLLOWED_DEFAULT, FOLLOWED_MAX)?;
    let sql = if page.ascending() {
        "SELECT f.id AS cursor, t.id, t.name FROM tag_follows f JOIN tags t ON t.id = f.tag_id \
         WHERE f.account_id = $1 AND ($2::bigint IS NULL OR f.id < $2) \
           AND ($3::bigint IS NULL OR f.id > $3) ORDER BY f.id ASC LIMIT $4"
    } else {
        "SELECT f.id AS cursor, t.id, t.name FROM tag_follows f JOIN tags t ON t.id = f.tag_id \
         WHERE f.account_id = $1 AND ($2::bigint IS NULL OR f.id < $2) \
           AND ($3::bigint IS NULL OR f.id > $3) ORDER BY f.id DESC LIMIT $4"
    };
    let mut rows: Vec<FollowedRow> = sqlx::query_as(sql)
        .bind(me)
        .bind(page.max_id)
        .bind(page.lower())
        .bind(page.limit)
        .fetch_all(state.db.primary())
        .await?;
    if page.ascending() {
        rows.reverse();
    }
    let cursors: Vec<i64> = rows.iter().map(|r| r.cursor).collect();
    let tags: Vec<TagRow> = rows
        .into_iter()
        .map(|r| TagRow {
            id: r.id,
            name: r.name,
        })
        .collect();
    let body = tags_json(&state, &tags, Some(me)).await?;
    Ok(paged(&state, &uri, &cursors, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_names_are_what_statuses_could_tag() {
        for ok in ["rust", "Rust_lang", "café", "2024_", "_"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "2024", "two words", "a#b", "a-b", "#", "a/b"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
