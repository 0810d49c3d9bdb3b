//! Link previews (Mastodon's `FetchLinkCardService`, run by its `LinkCrawlWorker`): after a
//! status is created, the worker fetches the first link it carries through the guarded
//! fetcher, reads the page's OpenGraph/Twitter tags, copies its image into the bucket's
//! cache prefix, stores the card (one per URL, shared by the statuses linking it) and sends
//! the status again as `status.update`, so clients show the card.
//!
//! A page that cannot be had (refused address, error, not HTML, no title) gives no card and
//! no retry, as Mastodon's worker does not retry either.

mod page;

use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use crate::federation::fetch::FetchError;
use crate::jobs::{self, JobError, Queue, Registry};
use crate::media::{self, Limits};
use crate::state::AppState;

pub const FETCH: &str = "preview_cards.fetch";

/// Bytes of a page read at most: the head, where the tags are, is at its top.
pub const PAGE_LIMIT: usize = 1024 * 1024;
/// A card's image (Mastodon: 10 MB), and its pixels before decoding.
const IMAGE_LIMITS: Limits = Limits {
    max_bytes: 10 * 1024 * 1024,
    max_pixels: crate::api::instance::limits::IMAGE_MATRIX_LIMIT,
};
/// A card younger than this is reused as it is (Mastodon: two weeks).
const FRESH_DAYS: i32 = 14;
/// Where card images go: under the cache prefix the bucket's lifecycle rule expires.
const IMAGE_PREFIX: &str = "media/cache/preview_cards/images";

const ACCEPT_HTML: &str = "text/html, application/xhtml+xml;q=0.9, */*;q=0.1";

#[derive(Debug, Serialize, Deserialize)]
struct Args {
    status_id: i64,
    /// After an edit: the card follows the status's first link, whatever it had.
    #[serde(default)]
    edited: bool,
}

pub fn register(r: &mut Registry) {
    r.register(FETCH, 0, |state, args| async move {
        let args: Args = jobs::args(args)?;
        let done = if args.edited {
            refresh_card(&state, args.status_id).await
        } else {
            fetch_card(&state, args.status_id).await
        };
        done.map(drop).map_err(JobError::retry)
    });
}

/// Queues the preview of status `id`, just created. A failure is logged: the status only
/// goes without its card.
pub async fn enqueue(state: &AppState, id: i64) {
    queue(
        state,
        Args {
            status_id: id,
            edited: false,
        },
    )
    .await;
}

/// Queues the preview of local status `id`, just created as `content_html`, only when the
/// job would have something to fetch: a link worth a card and no media (which take a
/// card's place). Most statuses have neither, and a job per status would load the `pull`
/// queue with no-ops.
pub async fn enqueue_if_linked(state: &AppState, id: i64, content_html: &str, has_media: bool) {
    if !has_media && page::first_link(content_html, &state.config.domain).is_some() {
        enqueue(state, id).await;
    }
}

/// Queues a new look at the card of status `id`, just edited (Mastodon's
/// `reset_preview_card!` when the text changed).
pub async fn enqueue_edited(state: &AppState, id: i64) {
    queue(
        state,
        Args {
            status_id: id,
            edited: true,
        },
    )
    .await;
}

async fn queue(state: &AppState, args: Args) {
    let id = args.status_id;
    let args = serde_json::to_value(args).expect("job arguments serialize");
    if let Err(e) = jobs::enqueue(state, Queue::Pull, FETCH, args).await {
        warn!(error = %e, status = id, "cannot queue a link preview");
    }
}

/// After an edit: keeps the card when the status still leads with the same link, else
/// drops it and fetches the new link's (a status left without a link loses its card).
/// Returns the card the status ends with.
pub async fn refresh_card(state: &AppState, status_id: i64) -> anyhow::Result<Option<i64>> {
    let current: Option<(String, Option<String>, Option<i64>)> = sqlx::query_as(
        "SELECT s.content_html, ps.url, ps.preview_card_id FROM statuses s \
         LEFT JOIN preview_cards_statuses ps ON ps.status_id = s.id WHERE s.id = $1",
    )
    .bind(status_id)
    .fetch_optional(state.db.primary())
    .await?;
    let Some((html, attached, card)) = current else {
        return Ok(None);
    };
    let wanted = page::first_link(&html, &state.config.domain).map(|mut u| {
        u.set_fragment(None);
        u.to_string()
    });
    if attached.is_some() && attached == wanted {
        return Ok(card);
    }
    let dropped = sqlx::query("DELETE FROM preview_cards_statuses WHERE status_id = $1")
        .bind(status_id)
        .execute(state.db.primary())
        .await?
        .rows_affected();
    let card = fetch_card(state, status_id).await?;
    if card.is_none() && dropped > 0 {
        crate::tasks::timeline::enqueue_update(state, status_id).await;
    }
    Ok(card)
}

#[derive(sqlx::FromRow)]
struct Facts {
    content_html: String,
    has_media: bool,
    has_card: bool,
}

/// Gives status `status_id` the card of its first link; returns the card's id, or `None`
/// when it has no link worth one, already has one, or the page gives none.
pub async fn fetch_card(state: &AppState, status_id: i64) -> anyhow::Result<Option<i64>> {
    let facts: Option<Facts> = sqlx::query_as(
        "SELECT content_html, cardinality(ordered_media_attachment_ids) > 0 AS has_media, \
                EXISTS (SELECT 1 FROM preview_cards_statuses p WHERE p.status_id = s.id) \
                    AS has_card \
         FROM statuses s WHERE id = $1 AND reblog_of_id IS NULL",
    )
    .bind(status_id)
    .fetch_optional(state.db.primary())
    .await?;
    // Media take a card's place in Mastodon's clients, which fetch none for them.
    let Some(facts) = facts.filter(|f| !f.has_media && !f.has_card) else {
        return Ok(None);
    };
    let Some(url) = page::first_link(&facts.content_html, &state.config.domain) else {
        return Ok(None);
    };
    let mut url = url;
    url.set_fragment(None);
    let fresh: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM preview_cards WHERE url = $1 \
         AND updated_at > now() - make_interval(days => $2)",
    )
    .bind(url.as_str())
    .bind(FRESH_DAYS)
    .fetch_optional(state.db.primary())
    .await?;
    let card = match fresh {
        Some(id) => id,
        None => match build(state, &url).await? {
            Some(id) => id,
            None => return Ok(None),
        },
    };
    let attached = sqlx::query(
        "INSERT INTO preview_cards_statuses (status_id, preview_card_id, url) \
         SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM statuses WHERE id = $1) \
         ON CONFLICT (status_id) DO NOTHING",
    )
    .bind(status_id)
    .bind(card)
    .bind(url.as_str())
    .execute(state.db.primary())
    .await?
    .rows_affected();
    if attached == 1 {
        crate::tasks::timeline::enqueue_update(state, status_id).await;
    }
    Ok(Some(card))
}

/// Fetches `url` and stores its card; `None` when the page gives none.
async fn build(state: &AppState, url: &url::Url) -> anyhow::Result<Option<i64>> {
    let fetcher = crate::federation::fetcher(state)?;
    let fetched = match fetcher
        .get_capped(url.as_str(), ACCEPT_HTML, PAGE_LIMIT)
        .await
    {
        Ok(f) => f,
        Err(e) => {
            debug!(error = %e, url = %url, "no link preview");
            return Ok(None);
        }
    };
    let essence = fetched
        .content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if !matches!(essence.as_str(), "text/html" | "application/xhtml+xml") {
        debug!(content_type = %essence, url = %url, "no link preview of a non-HTML page");
        return Ok(None);
    }
    let html = page::decode(&fetched.bytes, &fetched.content_type);
    let meta = page::meta(&html, &fetched.url);
    if meta.title.is_empty() {
        return Ok(None);
    }
    let image = match &meta.image {
        Some(image) => copy_image(state, image).await,
        None => None,
    };
    let provider_url = format!(
        "{}://{}",
        fetched.url.scheme(),
        fetched.url.host_str().unwrap_or_default()
    );
    let replaced: Option<String> =
        sqlx::query_scalar("SELECT image_key FROM preview_cards WHERE url = $1")
            .bind(url.as_str())
            .fetch_optional(state.db.primary())
            .await?
            .flatten();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO preview_cards (url, title, description, provider_name, provider_url, \
             author_name, language, image_key, image_remote_url, image_description, width, \
             height, blurhash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
         ON CONFLICT (url) DO UPDATE SET title = $2, description = $3, provider_name = $4, \
             provider_url = $5, author_name = $6, language = $7, image_key = $8, \
             image_remote_url = $9, image_description = $10, width = $11, height = $12, \
             blurhash = $13, updated_at = now() \
         RETURNING id",
    )
    .bind(url.as_str())
    .bind(&meta.title)
    .bind(&meta.description)
    .bind(&meta.provider_name)
    .bind(&provider_url)
    .bind(&meta.author_name)
    .bind(&meta.language)
    .bind(image.as_ref().map(|i| i.key.clone()))
    .bind(meta.image.as_ref().map(|i| i.to_string()))
    .bind(&meta.image_description)
    .bind(image.as_ref().map_or(meta.width, |i| i.width))
    .bind(image.as_ref().map_or(meta.height, |i| i.height))
    .bind(image.as_ref().map(|i| i.blurhash.clone()))
    .fetch_one(state.db.primary())
    .await?;
    // The refreshed card's former image: no row points at it any more.
    if let (Some(old), Some(storage)) = (replaced, &state.storage)
        && let Err(e) = storage.delete(&old).await
    {
        warn!(error = %e, "a replaced link preview image stays until the cache expires");
    }
    Ok(Some(id))
}

struct Image {
    key: String,
    width: i32,
    height: i32,
    blurhash: String,
}

/// The page's image, scaled down, with its blurhash, in the bucket; `None` when it cannot
/// be had (the card goes without).
async fn copy_image(state: &AppState, url: &url::Url) -> Option<Image> {
    let storage = state.storage.as_ref()?;
    let attempt = async {
        let fetcher = crate::federation::fetcher(state)?;
        let limit = IMAGE_LIMITS.max_bytes as usize;
        let fetched = fetcher.get_capped(url.as_str(), "image/*", limit).await?;
        if fetched.cut {
            return Err(FetchError::TooLarge.into());
        }
        let bytes = fetched.bytes;
        let (small, blurhash) =
            tokio::task::spawn_blocking(move || media::process_thumbnail(&bytes, &IMAGE_LIMITS))
                .await??;
        let key = format!(
            "{IMAGE_PREFIX}/{}.{}",
            random_name(),
            small.format.extension()
        );
        storage
            .put(&key, small.bytes.into(), small.format.mime())
            .await?;
        anyhow::Ok(Image {
            key,
            width: small.width as i32,
            height: small.height as i32,
            blurhash,
        })
    };
    attempt
        .await
        .inspect_err(|e| debug!(error = %e, url = %url, "link preview without its image"))
        .ok()
}

/// 128 random bits in hex: object names nobody can guess or enumerate.
pub(crate) fn random_name() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the OS random generator works");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
