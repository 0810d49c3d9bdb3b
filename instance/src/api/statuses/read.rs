//! Reading one status: itself, its thread, its edit history and its source text.

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use sqlx::types::chrono::{DateTime, Utc};

use super::{parse_id, viewer, visible_status};
use crate::api::ApiError;
use crate::api::entities::account::iso8601;
use crate::api::entities::load_accounts;
use crate::api::entities::media_attachment::load_media;
use crate::api::entities::status::{Status, StatusEdit, StatusSource, load_statuses};
use crate::auth::{Auth, MaybeAuth};
use crate::state::AppState;

/// Mastodon's bounds on a thread: anonymous callers get a short one, signed-in users up to
/// 4,096 statuses each way.
const ANCESTORS_ANONYMOUS: i64 = 40;
const DESCENDANTS_ANONYMOUS: i64 = 60;
const DESCENDANTS_DEPTH_ANONYMOUS: i32 = 20;
const CONTEXT_LIMIT: i64 = 4096;

pub async fn show(
    State(state): State<AppState>,
    auth: MaybeAuth,
    Path(id): Path<String>,
) -> Result<Json<Status>, ApiError> {
    let viewer = viewer(&auth, "read:statuses")?;
    let id = parse_id(&id)?;
    load_statuses(&state, &[id], viewer)
        .await?
        .pop()
        .map(Json)
        .ok_or(ApiError::NotFound)
}

#[derive(Debug, Serialize)]
pub struct Context {
    ancestors: Vec<Status>,
    descendants: Vec<Status>,
}

/// The thread around a status: its ancestors oldest first, its descendants in thread order
/// (depth first, each level by id). Statuses the viewer may not see are left out; the
/// replies below them are still shown, as in Mastodon.
pub async fn context(
    State(state): State<AppState>,
    auth: MaybeAuth,
    Path(id): Path<String>,
) -> Result<Json<Context>, ApiError> {
    let viewer = viewer(&auth, "read:statuses")?;
    let status = visible_status(state.db.reader(), parse_id(&id)?, viewer).await?;
    let (ancestors_limit, descendants_limit, depth) = match viewer {
        None => (
            ANCESTORS_ANONYMOUS,
            DESCENDANTS_ANONYMOUS,
            DESCENDANTS_DEPTH_ANONYMOUS,
        ),
        Some(_) => (CONTEXT_LIMIT, CONTEXT_LIMIT, i32::MAX),
    };
    // The outer LIMIT stops the recursion once enough rows are found, so a huge or
    // (remote, malformed) cyclic thread costs no more than the limit.
    let mut ancestors: Vec<(i64, i32)> = sqlx::query_as(
        "WITH RECURSIVE up(id, parent, depth) AS ( \
             SELECT s.id, s.in_reply_to_id, 1 FROM statuses s \
             WHERE s.id = (SELECT in_reply_to_id FROM statuses WHERE id = $1) \
           UNION ALL \
             SELECT s.id, s.in_reply_to_id, up.depth + 1 FROM statuses s \
             JOIN up ON s.id = up.parent) \
         SELECT id, depth FROM up LIMIT $2",
    )
    .bind(status.id)
    .bind(ancestors_limit)
    .fetch_all(state.db.reader())
    .await?;
    ancestors.sort_by_key(|(_, depth)| std::cmp::Reverse(*depth));
    let ancestor_ids: Vec<i64> = ancestors.iter().map(|(id, _)| *id).collect();
    let mut descendants: Vec<(i64, Vec<i64>)> = sqlx::query_as(
        "WITH RECURSIVE down(id, path) AS ( \
             SELECT s.id, ARRAY[s.id] FROM statuses s WHERE s.in_reply_to_id = $1 \
           UNION ALL \
             SELECT s.id, down.path || s.id FROM statuses s \
             JOIN down ON s.in_reply_to_id = down.id \
             WHERE cardinality(down.path) < $3) \
         SELECT id, path FROM down LIMIT $2",
    )
    .bind(status.id)
    .bind(descendants_limit)
    .bind(depth)
    .fetch_all(state.db.reader())
    .await?;
    descendants.sort_by(|(_, a), (_, b)| a.cmp(b));
    let descendant_ids: Vec<i64> = descendants.iter().map(|(id, _)| *id).collect();
    let (ancestors, descendants) = tokio::try_join!(
        load_statuses(&state, &ancestor_ids, viewer),
        load_statuses(&state, &descendant_ids, viewer)
    )?;
    Ok(Json(Context {
        ancestors,
        descendants,
    }))
}

#[derive(sqlx::FromRow)]
struct EditRow {
    content_html: String,
    spoiler_text: String,
    sensitive: bool,
    ordered_media_attachment_ids: Vec<i64>,
    media_descriptions: Vec<String>,
    created_at: DateTime<Utc>,
}

/// Every version of the status, oldest first; an unedited status has one, itself.
pub async fn history(
    State(state): State<AppState>,
    auth: MaybeAuth,
    Path(id): Path<String>,
) -> Result<Json<Vec<StatusEdit>>, ApiError> {
    let viewer = viewer(&auth, "read:statuses")?;
    let status = visible_status(state.db.reader(), parse_id(&id)?, viewer).await?;
    let mut rows: Vec<EditRow> = sqlx::query_as(
        "SELECT content_html, spoiler_text, sensitive, ordered_media_attachment_ids, \
                media_descriptions, created_at \
         FROM status_edits WHERE status_id = $1 ORDER BY id",
    )
    .bind(status.id)
    .fetch_all(state.db.reader())
    .await?;
    if rows.is_empty() {
        rows = sqlx::query_as(
            "SELECT s.content_html, s.spoiler_text, s.sensitive, s.ordered_media_attachment_ids, \
                    ARRAY(SELECT m.description FROM unnest(s.ordered_media_attachment_ids) \
                              WITH ORDINALITY AS o(id, n) \
                          JOIN media_attachments m ON m.id = o.id ORDER BY o.n) \
                        AS media_descriptions, \
                    coalesce(s.edited_at, s.created_at) AS created_at \
             FROM statuses s WHERE s.id = $1",
        )
        .bind(status.id)
        .fetch_all(state.db.reader())
        .await?;
    }
    let account = load_accounts(state.db.reader(), &[status.account_id], &state)
        .await?
        .pop()
        .ok_or(ApiError::NotFound)?;
    let mut media_ids: Vec<i64> = rows
        .iter()
        .flat_map(|r| r.ordered_media_attachment_ids.iter().copied())
        .collect();
    media_ids.sort_unstable();
    media_ids.dedup();
    let media = load_media(&state, &media_ids).await?;
    let edits = rows
        .into_iter()
        .map(|row| StatusEdit {
            content: row.content_html,
            spoiler_text: row.spoiler_text,
            sensitive: row.sensitive,
            created_at: iso8601(row.created_at),
            account: account.clone(),
            poll: None,
            // Each attachment with the description it had in that version.
            media_attachments: row
                .ordered_media_attachment_ids
                .iter()
                .enumerate()
                .filter_map(|(i, id)| {
                    let mut m = media.iter().find(|m| m.id == id.to_string())?.clone();
                    if let Some(d) = row.media_descriptions.get(i) {
                        m.description = (!d.is_empty()).then(|| d.clone());
                    }
                    Some(m)
                })
                .collect(),
            emojis: Vec::new(),
        })
        .collect();
    Ok(Json(edits))
}

/// The text as typed, for editing. Mastodon gives it to anyone who may see the status.
pub async fn source(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<StatusSource>, ApiError> {
    auth.require("read:statuses")?;
    let viewer = auth.user.as_ref().map(|u| u.account_id);
    let status = visible_status(state.db.primary(), parse_id(&id)?, viewer).await?;
    let (text, spoiler_text): (String, String) =
        sqlx::query_as("SELECT text, spoiler_text FROM statuses WHERE id = $1")
            .bind(status.id)
            .fetch_one(state.db.primary())
            .await?;
    Ok(Json(StatusSource {
        id: status.id.to_string(),
        text,
        spoiler_text,
    }))
}
