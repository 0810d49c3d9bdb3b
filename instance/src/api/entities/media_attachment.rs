//! Mastodon's `MediaAttachment` entity, built from `media_attachments` rows.
//!
//! Queries select `media_columns!()` into a [`MediaRow`], then call [`media_json`]; statuses
//! load their attachments in one query with [`load_media`].

use serde::Serialize;
use serde_json::{Value, json};
use sqlx::types::Json;

use crate::state::AppState;

/// The columns of a [`MediaRow`], for `SELECT ... FROM media_attachments`. A macro so that
/// queries stay `&'static str` literals (`concat!`), as sqlx wants.
macro_rules! media_columns {
    () => {
        "id, account_id, status_id, type, file_key, preview_key, thumbnail_key, meta, \
         description, blurhash, state, remote_url, preview_remote_url"
    };
}
pub(crate) use media_columns;

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct MediaRow {
    pub id: i64,
    pub account_id: i64,
    pub status_id: Option<i64>,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub file_key: Option<String>,
    pub preview_key: Option<String>,
    pub thumbnail_key: Option<String>,
    pub meta: Json<Value>,
    pub description: String,
    pub blurhash: Option<String>,
    /// 'processing', 'ready' or 'failed'.
    pub state: String,
    /// Remote attachments: where their author's server keeps them (no file of ours).
    pub remote_url: Option<String>,
    pub preview_remote_url: Option<String>,
}

impl MediaRow {
    pub fn processing(&self) -> bool {
        self.state == "processing"
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MediaAttachment {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// Null until the file is processed (Mastodon's async media: 202, then 206).
    pub url: Option<String>,
    pub preview_url: Option<String>,
    /// The original's address on its server; local media have none.
    pub remote_url: Option<String>,
    pub preview_remote_url: Option<String>,
    /// Deprecated by Mastodon (a link to a page of the media alone); always null.
    pub text_url: Option<String>,
    pub meta: Value,
    pub description: Option<String>,
    pub blurhash: Option<String>,
}

pub fn media_json(row: &MediaRow, state: &AppState) -> MediaAttachment {
    let url = |key: &Option<String>| match (key, &state.storage) {
        (Some(key), Some(storage)) => Some(storage.public_url(key)),
        _ => None,
    };
    // The upload waiting for the worker is not for anyone to fetch: unprocessed, it may
    // still carry the uploader's metadata.
    let file_url = if row.processing() {
        None
    } else {
        url(&row.file_key)
    };
    let meta = match &row.meta.0 {
        Value::Object(_) => row.meta.0.clone(),
        _ => json!({}),
    };
    MediaAttachment {
        id: row.id.to_string(),
        kind: row.kind.clone(),
        url: file_url.or_else(|| row.remote_url.clone()),
        preview_url: url(&row.thumbnail_key)
            .or_else(|| url(&row.preview_key))
            .or_else(|| row.preview_remote_url.clone())
            .or_else(|| row.remote_url.clone().filter(|_| row.kind == "image")),
        remote_url: row.remote_url.clone(),
        preview_remote_url: row.preview_remote_url.clone(),
        text_url: None,
        meta,
        description: (!row.description.is_empty()).then(|| row.description.clone()),
        blurhash: row.blurhash.clone(),
    }
}

/// The attachments with these ids, in the order given; unknown ids are left out. On the
/// primary: a status is rendered right after its media were attached, before a replica may
/// have caught up, and these are lookups by primary key.
pub async fn load_media(
    state: &AppState,
    ids: &[i64],
) -> Result<Vec<MediaAttachment>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<MediaRow> = sqlx::query_as(concat!(
        "SELECT ",
        media_columns!(),
        " FROM unnest($1::bigint[]) WITH ORDINALITY AS wanted(id, ord) \
          JOIN media_attachments USING (id) ORDER BY wanted.ord"
    ))
    .bind(ids)
    .fetch_all(state.db.primary())
    .await?;
    Ok(rows.iter().map(|row| media_json(row, state)).collect())
}
