//! Mastodon's v1 filters as Mastodon 4 serves them: a read-only view in which each keyword
//! of a v2 filter is one v1 filter (its id the keyword's, `irreversible` for `hide`).

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use sqlx::types::chrono::{DateTime, Utc};

use super::{me, parse_id};
use crate::api::ApiError;
use crate::api::entities::account::iso8601;
use crate::auth::Auth;
use crate::state::AppState;

/// Mastodon's `V1::Filter`.
#[derive(Debug, Serialize)]
pub struct V1Filter {
    id: String,
    phrase: String,
    context: Vec<String>,
    whole_word: bool,
    expires_at: Option<String>,
    irreversible: bool,
}

/// keyword id, keyword, whole_word, context, action, expires_at.
type Row = (
    i64,
    String,
    bool,
    Vec<String>,
    String,
    Option<DateTime<Utc>>,
);

async fn rows(state: &AppState, owner: i64, only: Option<i64>) -> Result<Vec<V1Filter>, ApiError> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT k.id, k.keyword, k.whole_word, f.context, f.action, f.expires_at \
         FROM custom_filter_keywords k JOIN custom_filters f ON f.id = k.custom_filter_id \
         WHERE f.account_id = $1 AND ($2::bigint IS NULL OR k.id = $2) ORDER BY k.id",
    )
    .bind(owner)
    .bind(only)
    .fetch_all(state.db.reader())
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(id, phrase, whole_word, context, action, expires_at)| V1Filter {
                id: id.to_string(),
                phrase,
                context,
                whole_word,
                expires_at: expires_at.map(iso8601),
                irreversible: action == "hide",
            },
        )
        .collect())
}

pub async fn index(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<Json<Vec<V1Filter>>, ApiError> {
    let me = me(&auth, "read:filters")?;
    Ok(Json(rows(&state, me, None).await?))
}

pub async fn show(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<V1Filter>, ApiError> {
    let me = me(&auth, "read:filters")?;
    rows(&state, me, Some(parse_id(&id)?))
        .await?
        .pop()
        .map(Json)
        .ok_or(ApiError::NotFound)
}
