//! Mastodon's `PreviewCard` entity (a status's `card`), from `preview_cards`.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::types::chrono::{DateTime, Utc};

use super::account::iso8601;
use crate::state::AppState;

#[derive(Clone, Debug, Serialize)]
pub struct PreviewCard {
    pub url: String,
    pub title: String,
    pub description: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub author_name: String,
    pub author_url: String,
    pub provider_name: String,
    pub provider_url: String,
    pub html: String,
    pub width: i32,
    pub height: i32,
    /// Our copy; null once the retention removed it (Mastodon keeps the card without).
    pub image: Option<String>,
    pub image_description: String,
    pub embed_url: String,
    pub blurhash: Option<String>,
    pub language: Option<String>,
    pub published_at: Option<String>,
    /// Mastodon 4.3's authors: as Mastodon, the one named by the page (`account` is set
    /// only for a `fediverse:creator` tag, which is not read).
    pub authors: Vec<Value>,
}

#[derive(sqlx::FromRow)]
struct CardRow {
    status_id: i64,
    url: String,
    title: String,
    description: String,
    #[sqlx(rename = "type")]
    kind: String,
    author_name: String,
    author_url: String,
    provider_name: String,
    provider_url: String,
    html: String,
    width: i32,
    height: i32,
    image_key: Option<String>,
    image_description: String,
    embed_url: String,
    blurhash: Option<String>,
    language: Option<String>,
    published_at: Option<DateTime<Utc>>,
}

/// The cards of these statuses, by status id (statuses without one are absent).
pub async fn load_cards(
    db: &PgPool,
    state: &AppState,
    status_ids: &[i64],
) -> Result<HashMap<i64, PreviewCard>, sqlx::Error> {
    if status_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<CardRow> = sqlx::query_as(
        "SELECT ps.status_id, c.url, c.title, c.description, c.type, c.author_name, \
                c.author_url, c.provider_name, c.provider_url, c.html, c.width, c.height, \
                c.image_key, c.image_description, c.embed_url, c.blurhash, c.language, \
                c.published_at \
         FROM preview_cards_statuses ps JOIN preview_cards c ON c.id = ps.preview_card_id \
         WHERE ps.status_id = ANY($1)",
    )
    .bind(status_ids)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let image = match (&r.image_key, &state.storage) {
                (Some(key), Some(storage)) => Some(storage.public_url(key)),
                _ => None,
            };
            let card = PreviewCard {
                url: r.url,
                title: r.title,
                description: r.description,
                kind: r.kind,
                author_name: r.author_name.clone(),
                author_url: r.author_url.clone(),
                provider_name: r.provider_name,
                provider_url: r.provider_url,
                html: r.html,
                width: r.width,
                height: r.height,
                blurhash: image.as_ref().and(r.blurhash),
                image,
                image_description: r.image_description,
                embed_url: r.embed_url,
                language: r.language,
                published_at: r.published_at.map(iso8601),
                authors: vec![json!({
                    "name": r.author_name,
                    "url": r.author_url,
                    "account": null,
                })],
            };
            (r.status_id, card)
        })
        .collect())
}
