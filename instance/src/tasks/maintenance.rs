//! Periodic clean-up, each with its retention setting:
//! - media uploaded and never attached to a status (abandoned drafts, and the media of
//!   statuses deleted long enough ago that no redraft will take them) leave the bucket and
//!   the database once `FEDI_ORPHANED_MEDIA_RETENTION_HOURS` old;
//! - copies of remote media (`tasks::remote_media`) are deleted once
//!   `FEDI_MEDIA_CACHE_RETENTION_DAYS` old, the attachment served from its server again
//!   (Mastodon's `media_cache_retention_period`);
//! - link preview images are deleted once `FEDI_PREVIEW_CARD_RETENTION_DAYS` old, the card
//!   kept without (Mastodon's `tootctl preview_cards remove`).
//!
//! All three are mass deletions: they start only inside `FEDI_MAINTENANCE_WINDOW` when one
//! is set (`spec.maintenance.window`), once an hour within it.
//!
//! The bucket's lifecycle rule on the cache prefix is the backstop: these run first so that
//! no row points at an expired object.

use std::time::Duration;

use tracing::info;

use crate::jobs::{JobError, Registry};
use crate::state::AppState;

pub const ORPHANED_MEDIA: &str = "maintenance.orphaned_media";
pub const MEDIA_CACHE: &str = "maintenance.media_cache";
pub const PREVIEW_CARD_IMAGES: &str = "maintenance.preview_card_images";

const EVERY: Duration = Duration::from_secs(3600);
/// Rows deleted (and their objects) per transaction.
const BATCH: i64 = 100;

pub fn register(r: &mut Registry) {
    r.register(ORPHANED_MEDIA, 3, |state, _| async move {
        orphaned_media(&state)
            .await
            .map(drop)
            .map_err(JobError::retry)
    });
    r.periodic_in_maintenance_window(ORPHANED_MEDIA, EVERY);
    r.register(MEDIA_CACHE, 3, |state, _| async move {
        media_cache(&state).await.map(drop).map_err(JobError::retry)
    });
    r.periodic_in_maintenance_window(MEDIA_CACHE, EVERY);
    r.register(PREVIEW_CARD_IMAGES, 3, |state, _| async move {
        preview_card_images(&state)
            .await
            .map(drop)
            .map_err(JobError::retry)
    });
    r.periodic_in_maintenance_window(PREVIEW_CARD_IMAGES, EVERY);
}

/// The objects of a deleted attachment.
#[derive(sqlx::FromRow)]
struct Orphan {
    file_key: Option<String>,
    preview_key: Option<String>,
    thumbnail_key: Option<String>,
}

/// Deletes orphaned media, a batch at a time; returns how many. Each batch's rows are
/// deleted first and committed only once their objects are gone: a failure leaves both for
/// the next run, and a status attaching one of them meanwhile waits on the row lock, then
/// finds it gone (never a row pointing at deleted objects).
pub async fn orphaned_media(state: &AppState) -> anyhow::Result<u64> {
    let retention = state.config.orphaned_media_retention.as_secs_f64();
    let mut removed = 0;
    loop {
        let mut tx = state.db.begin().await?;
        let rows: Vec<Orphan> = sqlx::query_as(
            "DELETE FROM media_attachments WHERE id IN ( \
                 SELECT id FROM media_attachments \
                 WHERE status_id IS NULL AND created_at < now() - make_interval(secs => $1) \
                 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED) \
             RETURNING file_key, preview_key, thumbnail_key",
        )
        .bind(retention)
        .bind(BATCH)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            break;
        }
        let keys: Vec<String> = rows
            .iter()
            .flat_map(|o| {
                [
                    o.file_key.clone(),
                    o.preview_key.clone(),
                    o.thumbnail_key.clone(),
                ]
            })
            .flatten()
            .collect();
        delete_objects(state, &keys).await?;
        tx.commit().await?;
        removed += rows.len() as u64;
        if (rows.len() as i64) < BATCH {
            break;
        }
    }
    if removed > 0 {
        info!(removed, "orphaned media deleted");
    }
    Ok(removed)
}

/// Forgets the cached copies of remote media older than the retention, a batch at a time,
/// and deletes their objects; returns how many. The rows go back to their remote URL in
/// the same transaction, committed once the objects are gone (as [`orphaned_media`]).
pub async fn media_cache(state: &AppState) -> anyhow::Result<u64> {
    let retention = state.config.media_cache_retention;
    expire(
        state,
        "cached remote media",
        retention,
        "UPDATE media_attachments m SET file_key = NULL, preview_key = NULL, cached_at = NULL \
         FROM (SELECT id, file_key, preview_key FROM media_attachments \
               WHERE cached_at < now() - make_interval(secs => $1) \
               ORDER BY cached_at LIMIT $2 FOR UPDATE SKIP LOCKED) old \
         WHERE m.id = old.id \
         RETURNING old.file_key, old.preview_key",
    )
    .await
}

/// Deletes the images of link previews older than the retention; the cards stay, without
/// an image. Returns how many.
pub async fn preview_card_images(state: &AppState) -> anyhow::Result<u64> {
    let retention = state.config.preview_card_retention;
    expire(
        state,
        "preview card images",
        retention,
        "UPDATE preview_cards c SET image_key = NULL, blurhash = NULL \
         FROM (SELECT id, image_key FROM preview_cards \
               WHERE image_key IS NOT NULL AND updated_at < now() - make_interval(secs => $1) \
               ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED) old \
         WHERE c.id = old.id \
         RETURNING old.image_key, NULL::text",
    )
    .await
}

/// Runs `update` (which clears rows older than `retention`, a batch at a time, and returns
/// the two object keys each no longer uses) until it finds nothing, deleting the objects
/// before each commit: a failure leaves rows and objects for the next run.
async fn expire(
    state: &AppState,
    what: &str,
    retention: Duration,
    update: &'static str,
) -> anyhow::Result<u64> {
    let mut removed = 0;
    loop {
        let mut tx = state.db.begin().await?;
        let rows: Vec<(Option<String>, Option<String>)> = sqlx::query_as(update)
            .bind(retention.as_secs_f64())
            .bind(BATCH)
            .fetch_all(&mut *tx)
            .await?;
        if rows.is_empty() {
            break;
        }
        let keys: Vec<String> = rows
            .iter()
            .flat_map(|(a, b)| [a.clone(), b.clone()])
            .flatten()
            .collect();
        delete_objects(state, &keys).await?;
        tx.commit().await?;
        removed += rows.len() as u64;
        if (rows.len() as i64) < BATCH {
            break;
        }
    }
    if removed > 0 {
        info!(removed, what, "cache expired");
    }
    Ok(removed)
}

/// Removes a batch's objects from the bucket (none without one). Deleting a missing object
/// succeeds, so a retried batch goes through.
async fn delete_objects(state: &AppState, keys: &[String]) -> anyhow::Result<()> {
    if let Some(storage) = &state.storage {
        for key in keys {
            storage.delete(key).await?;
        }
    }
    Ok(())
}
