//! The remote media cache (Mastodon's `media_attachment.file` of a remote status, which it
//! downloads in `ProcessStatusService`): after a remote status is stored, the worker copies
//! its attachments into the bucket's cache prefix, which the operator's lifecycle rule
//! expires, so clients load them from us rather than from their server (Mastodon: `url`
//! ours, `remote_url` theirs). Until then, and after the retention job drops the copy,
//! `url` is the remote address, as before.
//!
//! Images are decoded and re-encoded as uploads are (metadata stripped, a small preview and
//! a blurhash made); video and audio are kept as they came, served under the content type
//! their bytes show. Fetches go through the guarded fetcher, never in the inbox request; a
//! file that cannot be had, is too large or is not what it claims stays hotlinked.

use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use crate::api::instance::limits;
use crate::jobs::{self, JobError, Queue, Registry};
use crate::media::{self, Kind, Limits};
use crate::state::AppState;

pub const CACHE: &str = "media.cache_remote";

/// Under the prefix the bucket's lifecycle rule expires (operator `CACHE_PREFIX`).
pub const KEY_PREFIX: &str = "media/cache/media_attachments";

const IMAGE_LIMITS: Limits = Limits {
    max_bytes: limits::IMAGE_SIZE_LIMIT,
    max_pixels: limits::IMAGE_MATRIX_LIMIT,
};

#[derive(Debug, Serialize, Deserialize)]
struct Args {
    status_id: i64,
}

pub fn register(r: &mut Registry) {
    r.register(CACHE, 3, |state, args| async move {
        let args: Args = jobs::args(args)?;
        cache_status_media(&state, args.status_id)
            .await
            .map(drop)
            .map_err(JobError::retry)
    });
}

/// Queues the copy of the media of remote status `id`, just stored. A failure is logged:
/// its media stay hotlinked.
pub async fn enqueue(state: &AppState, id: i64) {
    if state.storage.is_none() {
        return;
    }
    let args = serde_json::to_value(Args { status_id: id }).expect("job arguments serialize");
    if let Err(e) = jobs::enqueue(state, Queue::Pull, CACHE, args).await {
        warn!(error = %e, status = id, "cannot queue the remote media copy");
    }
}

#[derive(sqlx::FromRow)]
struct Remote {
    id: i64,
    kind: String,
    remote_url: String,
}

/// Copies the not yet cached attachments of status `status_id`; returns how many.
pub async fn cache_status_media(state: &AppState, status_id: i64) -> anyhow::Result<usize> {
    let Some(storage) = state.storage.as_ref() else {
        return Ok(0);
    };
    // `unknown` attachments (unsupported, or a domain whose media are rejected) stay links.
    let wanted: Vec<Remote> = sqlx::query_as(
        "SELECT id, type AS kind, remote_url FROM media_attachments \
         WHERE status_id = $1 AND remote_url IS NOT NULL AND file_key IS NULL \
           AND type <> 'unknown' ORDER BY id",
    )
    .bind(status_id)
    .fetch_all(state.db.primary())
    .await?;
    let mut cached = 0;
    for m in wanted {
        let Some(copy) = download(state, &m).await else {
            continue;
        };
        let dir = format!(
            "{KEY_PREFIX}/{}/{}",
            crate::api::media::store::partition(m.id),
            crate::tasks::preview_cards::random_name()
        );
        let file_key = format!("{dir}/original.{}", copy.file.1);
        let preview_key = copy
            .preview
            .as_ref()
            .map(|p| format!("{dir}/small.{}", p.1));
        storage
            .put(&file_key, copy.file.0.clone().into(), copy.mime)
            .await?;
        if let (Some(key), Some((bytes, _, mime))) = (&preview_key, &copy.preview) {
            storage.put(key, bytes.clone().into(), mime).await?;
        }
        // Only a row still without a copy takes this one (two runs of the job may race).
        let taken = sqlx::query(
            "UPDATE media_attachments SET file_key = $2, preview_key = $3, cached_at = now(), \
                 content_type = $4, file_size = $5, blurhash = coalesce(blurhash, $6), \
                 meta = CASE WHEN meta = '{}'::jsonb THEN $7 ELSE meta END \
             WHERE id = $1 AND file_key IS NULL",
        )
        .bind(m.id)
        .bind(&file_key)
        .bind(&preview_key)
        .bind(copy.mime)
        .bind(copy.file.0.len() as i64)
        .bind(&copy.blurhash)
        .bind(&copy.meta)
        .execute(state.db.primary())
        .await?
        .rows_affected();
        if taken == 1 {
            cached += 1;
        } else {
            for key in std::iter::once(&file_key).chain(&preview_key) {
                storage.delete(key).await?;
            }
        }
    }
    Ok(cached)
}

/// A file ready to store: its bytes with their extension, the small preview (images), and
/// what the row learns from it.
struct Copy {
    file: (Vec<u8>, &'static str),
    mime: &'static str,
    preview: Option<(Vec<u8>, &'static str, &'static str)>,
    blurhash: Option<String>,
    meta: serde_json::Value,
}

/// The attachment's file, checked and (images) processed; `None` when it stays remote.
async fn download(state: &AppState, m: &Remote) -> Option<Copy> {
    let image = m.kind == "image";
    let limit = if image {
        limits::IMAGE_SIZE_LIMIT
    } else {
        limits::VIDEO_SIZE_LIMIT
    } as usize;
    let fetcher = crate::federation::fetcher(state).ok()?;
    let fetched = match fetcher.get_capped(&m.remote_url, "*/*", limit).await {
        Ok(f) if !f.cut => f,
        Ok(_) => {
            debug!(
                media = m.id,
                "remote media larger than the limit stay remote"
            );
            return None;
        }
        Err(e) => {
            debug!(error = %e, media = m.id, "remote media not cached");
            return None;
        }
    };
    let bytes = fetched.bytes;
    let format = media::detect(&bytes)?;
    match (image, format.kind()) {
        (true, Kind::Image) => {
            let processed =
                tokio::task::spawn_blocking(move || media::process_image(&bytes, &IMAGE_LIMITS))
                    .await
                    .ok()?
                    .inspect_err(|e| debug!(error = %e, media = m.id, "remote image not cached"))
                    .ok()?;
            let (original, small) = (processed.original, processed.small);
            Some(Copy {
                meta: serde_json::json!({
                    "original": original.geometry(),
                    "small": small.geometry(),
                }),
                mime: original.format.mime(),
                file: (original.bytes, original.format.extension()),
                preview: Some((small.bytes, small.format.extension(), small.format.mime())),
                blurhash: Some(processed.blurhash),
            })
        }
        // Video and audio as their server made them, when the bytes are what the type says.
        (false, Kind::Video | Kind::Audio) => Some(Copy {
            file: (bytes, format.extension()),
            mime: format.mime(),
            preview: None,
            blurhash: None,
            meta: serde_json::json!({}),
        }),
        _ => {
            debug!(media = m.id, kind = %m.kind, "remote media not of the type announced");
            None
        }
    }
}
