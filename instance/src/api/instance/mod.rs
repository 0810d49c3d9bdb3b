//! The instance's description of itself: `/api/v1/instance` and `/api/v2/instance` (the
//! first thing every client fetches, to learn the version, limits and streaming URL), rules,
//! peers, weekly activity, custom emojis, and NodeInfo.
//!
//! All of it is public and cached by intermediaries for a few minutes, as Mastodon does;
//! an admin's change of title or rules shows within that time.

mod nodeinfo;
pub mod settings;
mod stats;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use fedi_config::Registrations;
use serde::Serialize;
use serde_json::{Value, json};

use self::settings::Site;
use crate::api::ApiError;
use crate::api::entities::load_accounts;
use crate::state::AppState;

/// Clients compare the first token with Mastodon versions to decide which endpoints exist
/// (Mastodon.py parses it); the rest names what actually runs.
pub const VERSION: &str = concat!("4.3.0 (compatible; fedi ", env!("CARGO_PKG_VERSION"), ")");

/// `api_versions.mastodon`: what this server implements, never more. Phanpy switches to
/// grouped notifications (`/api/v2/notifications`) at 2.
pub const MASTODON_API_VERSION: u32 = 1;

/// The crate does not inherit the workspace's `repository` key; this is the same address.
const SOURCE_URL: &str = if env!("CARGO_PKG_REPOSITORY").is_empty() {
    "https://example.invalid/fedi-operator"
} else {
    env!("CARGO_PKG_REPOSITORY")
};

/// Served by the instance itself until admins can upload one: clients show it on the
/// "about" page and would otherwise show a broken image.
const THUMBNAIL_PATH: &str = "/instance/thumbnail.png";
const THUMBNAIL: &[u8] = include_bytes!("thumbnail.png");

/// Mastodon's `expires_in 3.minutes, public: true` on its instance endpoints.
const MAX_AGE: u32 = 180;

/// The limits the instance advertises; the endpoints that enforce them use these too.
pub mod limits {
    pub const MAX_STATUS_CHARACTERS: u32 = 500;
    pub const MAX_MEDIA_ATTACHMENTS: u32 = 4;
    /// Every URL in a status counts as this many characters, whatever its length.
    pub const CHARACTERS_RESERVED_PER_URL: u32 = 23;
    pub const MAX_FEATURED_TAGS: u32 = 10;
    pub const MAX_PINNED_STATUSES: u32 = 5;
    pub const POLL_MAX_OPTIONS: u32 = 4;
    pub const POLL_MAX_CHARACTERS_PER_OPTION: u32 = 50;
    /// Seconds: five minutes to a month, as Mastodon.
    pub const POLL_MIN_EXPIRATION: u32 = 300;
    pub const POLL_MAX_EXPIRATION: u32 = 2_629_746;
    pub const IMAGE_SIZE_LIMIT: u64 = 16 * 1024 * 1024;
    /// Pixels: 7680 x 4320.
    pub const IMAGE_MATRIX_LIMIT: u64 = 33_177_600;
    pub const VIDEO_SIZE_LIMIT: u64 = 99 * 1024 * 1024;
    pub const VIDEO_FRAME_RATE_LIMIT: u32 = 120;
    /// Pixels: 3840 x 2160.
    pub const VIDEO_MATRIX_LIMIT: u64 = 8_294_400;
    pub const MEDIA_DESCRIPTION_LIMIT: u32 = 1500;
    pub const SUPPORTED_MIME_TYPES: &[&str] = &[
        "image/jpeg",
        "image/png",
        "image/gif",
        "image/webp",
        "video/mp4",
        "video/webm",
        "video/quicktime",
        "audio/mpeg",
        "audio/mp3",
        "audio/ogg",
        "audio/vorbis",
        "audio/wav",
        "audio/wave",
        "audio/x-wav",
        "audio/flac",
        "audio/aac",
        "audio/m4a",
        "audio/x-m4a",
        "audio/mp4",
        "audio/webm",
    ];
}

pub fn routes() -> Router<AppState> {
    // `/api/v1/instance/` (Mastodon.py) reaches these too: `api::serve` trims the slash.
    Router::new()
        .route("/api/v1/instance", get(v1))
        .route("/api/v2/instance", get(v2))
        .route("/api/v1/instance/rules", get(rules))
        .route("/api/v1/instance/peers", get(peers))
        .route("/api/v1/instance/activity", get(activity))
        .route(
            "/api/v1/instance/extended_description",
            get(extended_description),
        )
        .route("/api/v1/custom_emojis", get(custom_emojis))
        .route(THUMBNAIL_PATH, get(thumbnail))
        .merge(nodeinfo::routes())
}

/// A public JSON response that shared caches may keep for `max_age` seconds.
fn cached(max_age: u32, body: impl Serialize) -> Response {
    let mut response = axum::Json(body).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_str(&format!("max-age={max_age}, public")).expect("ASCII"),
    );
    response
}

async fn v1(State(state): State<AppState>) -> Result<Response, ApiError> {
    let db = state.db.reader();
    let (site, usage) = tokio::try_join!(Site::load(db, &state.config.domain), stats::usage(db))?;
    let contact = contact_account(&state, &site).await?;
    let domain = &state.config.domain;
    let registrations = state.config.registrations;
    Ok(cached(
        MAX_AGE,
        json!({
            "uri": domain,
            "title": site.title,
            "short_description": site.description,
            "description": site.description,
            "email": site.contact_email,
            "version": VERSION,
            "urls": {"streaming_api": state.streaming_url()},
            "stats": {
                "user_count": usage.users,
                "status_count": usage.local_posts,
                "domain_count": usage.domains,
            },
            "thumbnail": format!("{}{THUMBNAIL_PATH}", state.base_url()),
            "languages": site.languages,
            "registrations": registrations != Registrations::Closed,
            "approval_required": registrations == Registrations::Approval,
            "invites_enabled": false,
            "configuration": {
                "accounts": {"max_featured_tags": limits::MAX_FEATURED_TAGS},
                "statuses": statuses_configuration(),
                "media_attachments": media_configuration(false),
                "polls": polls_configuration(),
            },
            "contact_account": contact,
            "rules": site.rules,
        }),
    ))
}

async fn v2(State(state): State<AppState>) -> Result<Response, ApiError> {
    let db = state.db.reader();
    let (site, usage) = tokio::try_join!(Site::load(db, &state.config.domain), stats::usage(db))?;
    let contact = contact_account(&state, &site).await?;
    let domain = &state.config.domain;
    let registrations = state.config.registrations;
    Ok(cached(
        MAX_AGE,
        json!({
            "domain": domain,
            "title": site.title,
            "version": VERSION,
            "source_url": SOURCE_URL,
            "description": site.description,
            "usage": {"users": {"active_month": usage.active_month}},
            "thumbnail": {"url": format!("{}{THUMBNAIL_PATH}", state.base_url())},
            "icon": [],
            "languages": site.languages,
            "configuration": {
                // Elk and Phanpy find the streaming server here, not in v1's `urls`.
                "urls": {"streaming": state.streaming_url(), "status": null},
                // No Web Push keys are configured yet; Elk reads the field, so it is
                // present and empty.
                "vapid": {"public_key": ""},
                "accounts": {
                    "max_featured_tags": limits::MAX_FEATURED_TAGS,
                    "max_pinned_statuses": limits::MAX_PINNED_STATUSES,
                },
                "statuses": statuses_configuration(),
                "media_attachments": media_configuration(true),
                "polls": polls_configuration(),
                "translation": {"enabled": false},
            },
            "registrations": {
                "enabled": registrations != Registrations::Closed,
                "approval_required": registrations == Registrations::Approval,
                "message": null,
                "url": null,
            },
            "api_versions": {"mastodon": MASTODON_API_VERSION},
            "contact": {
                "email": site.contact_email,
                "account": contact,
            },
            "rules": site.rules,
        }),
    ))
}

fn statuses_configuration() -> Value {
    json!({
        "max_characters": limits::MAX_STATUS_CHARACTERS,
        "max_media_attachments": limits::MAX_MEDIA_ATTACHMENTS,
        "characters_reserved_per_url": limits::CHARACTERS_RESERVED_PER_URL,
    })
}

/// v2 adds the description limit.
fn media_configuration(v2: bool) -> Value {
    let mut media = json!({
        "supported_mime_types": limits::SUPPORTED_MIME_TYPES,
        "image_size_limit": limits::IMAGE_SIZE_LIMIT,
        "image_matrix_limit": limits::IMAGE_MATRIX_LIMIT,
        "video_size_limit": limits::VIDEO_SIZE_LIMIT,
        "video_frame_rate_limit": limits::VIDEO_FRAME_RATE_LIMIT,
        "video_matrix_limit": limits::VIDEO_MATRIX_LIMIT,
    });
    if v2 {
        media["description_limit"] = json!(limits::MEDIA_DESCRIPTION_LIMIT);
    }
    media
}

fn polls_configuration() -> Value {
    json!({
        "max_options": limits::POLL_MAX_OPTIONS,
        "max_characters_per_option": limits::POLL_MAX_CHARACTERS_PER_OPTION,
        "min_expiration": limits::POLL_MIN_EXPIRATION,
        "max_expiration": limits::POLL_MAX_EXPIRATION,
    })
}

/// The Account entity of the instance's contact: the account `site.contact_username` names,
/// else the first owner, else the first admin; null while there is none (a new instance).
async fn contact_account(state: &AppState, site: &Site) -> Result<Value, ApiError> {
    let db = state.db.reader();
    let id: Option<i64> = sqlx::query_scalar(
        "SELECT a.id FROM accounts a JOIN users u ON u.account_id = a.id \
         WHERE a.domain IS NULL AND a.suspended_at IS NULL \
           AND (lower(a.username) = lower($1) OR u.role IN ('owner', 'admin')) \
         ORDER BY lower(a.username) = lower($1) DESC NULLS LAST, u.role = 'owner' DESC, a.id \
         LIMIT 1",
    )
    .bind(site.contact_username.as_deref())
    .fetch_optional(db)
    .await?;
    let Some(id) = id else {
        return Ok(Value::Null);
    };
    let account = load_accounts(db, &[id], state).await?.into_iter().next();
    serde_json::to_value(account).map_err(|e| ApiError::Internal(e.into()))
}

async fn rules(State(state): State<AppState>) -> Result<Response, ApiError> {
    let site = Site::load(state.db.reader(), &state.config.domain).await?;
    Ok(cached(MAX_AGE, site.rules))
}

async fn extended_description(State(state): State<AppState>) -> Result<Response, ApiError> {
    let site = Site::load(state.db.reader(), &state.config.domain).await?;
    let (content, updated_at) = match site.extended_description {
        Some((content, updated_at)) => (content, Some(updated_at)),
        None => (String::new(), None),
    };
    Ok(cached(
        MAX_AGE,
        json!({"updated_at": updated_at, "content": content}),
    ))
}

async fn peers(State(state): State<AppState>) -> Result<Response, ApiError> {
    Ok(cached(MAX_AGE, stats::peers(state.db.reader()).await?))
}

async fn activity(State(state): State<AppState>) -> Result<Response, ApiError> {
    // Mastodon caches the weekly figures for a day; an hour keeps this week's current.
    Ok(cached(
        3600,
        stats::weekly_activity(state.db.reader()).await?,
    ))
}

async fn custom_emojis() -> Response {
    // No custom emoji exist until admins can upload them.
    cached(MAX_AGE, Vec::<Value>::new())
}

async fn thumbnail() -> Response {
    let mut response = THUMBNAIL.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=86400, public"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_starts_with_a_mastodon_version_clients_can_parse() {
        let first = VERSION.split(' ').next().unwrap();
        let parts: Vec<u32> = first.split('.').map(|p| p.parse().unwrap()).collect();
        assert_eq!(parts.len(), 3, "{VERSION}");
        assert!(parts[0] >= 4, "{VERSION}");
        assert_eq!(
            VERSION,
            format!("{first} (compatible; fedi {})", env!("CARGO_PKG_VERSION"))
        );
    }
}
