//! Periodic clean-up: media uploaded and never attached to a status (abandoned drafts, and
//! the media of statuses deleted long enough ago that no redraft will take them) leave the
//! bucket and the database once `FEDI_ORPHANED_MEDIA_RETENTION_HOURS` old.
//!
//! There is no remote media cache yet (federation stores no remote files), so there is no
//! cache expiry either.

use std::time::Duration;

use tracing::info;

use crate::jobs::{JobError, Registry};
use crate::state::AppState;

pub const ORPHANED_MEDIA: &str = "maintenance.orphaned_media";

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
    r.periodic(ORPHANED_MEDIA, EVERY);
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
        let mut tx = state.db.primary().begin().await?;
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
        if let Some(storage) = &state.storage {
            for key in &keys {
                // Deleting a missing object succeeds: a retried batch goes through.
                storage.delete(key).await?;
            }
        }
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
