//! The accounts part of Mastodon's REST API: sign-up and e-mail confirmation, the user's own
//! profile, reading accounts, and the relations between them (follows, follow requests,
//! blocks, mutes).

mod chosen_languages;
mod credentials;
mod lookup;
pub(in crate::api) use lookup::{like_prefix, search_accounts, split_acct};
mod media;
mod registration;
mod relations;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, patch, post};

use crate::api::ApiError;
use crate::api::entities::AccountRow;
use crate::api::entities::account::account_columns;
use crate::auth::{MaybeAuth, Scope};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/accounts", post(registration::register))
        .route("/auth/confirmation", get(registration::confirm))
        .route(
            "/api/v1/accounts/verify_credentials",
            get(credentials::verify),
        )
        .route(
            "/api/v1/accounts/update_credentials",
            patch(credentials::update).layer(DefaultBodyLimit::max(credentials::UPDATE_BODY_LIMIT)),
        )
        .route("/api/v1/profile/avatar", delete(credentials::delete_avatar))
        .route("/api/v1/profile/header", delete(credentials::delete_header))
        .route("/api/v1/accounts/lookup", get(lookup::lookup))
        .route("/api/v1/accounts/search", get(lookup::search))
        .route(
            "/api/v1/accounts/relationships",
            get(lookup::relationships_of),
        )
        .route("/api/v1/accounts/{id}", get(lookup::show))
        .route("/api/v1/accounts/{id}/follow", post(relations::follow))
        .route("/api/v1/accounts/{id}/unfollow", post(relations::unfollow))
        .route("/api/v1/accounts/{id}/block", post(relations::block))
        .route("/api/v1/accounts/{id}/unblock", post(relations::unblock))
        .route("/api/v1/accounts/{id}/mute", post(relations::mute))
        .route("/api/v1/accounts/{id}/unmute", post(relations::unmute))
        .route("/api/v1/accounts/{id}/followers", get(relations::followers))
        .route("/api/v1/accounts/{id}/following", get(relations::following))
        .route("/api/v1/follow_requests", get(relations::follow_requests))
        .route(
            "/api/v1/follow_requests/{id}/authorize",
            post(relations::authorize),
        )
        .route(
            "/api/v1/follow_requests/{id}/reject",
            post(relations::reject),
        )
        .route("/api/v1/blocks", get(relations::blocks))
        .route("/api/v1/mutes", get(relations::mutes))
        .merge(media::routes())
}

/// An id from the path: anything but a number names no record.
fn parse_id(id: &str) -> Result<i64, ApiError> {
    id.parse().map_err(|_| ApiError::NotFound)
}

/// An account that exists and is not suspended.
async fn visible_account(db: impl sqlx::PgExecutor<'_>, id: i64) -> Result<AccountRow, ApiError> {
    sqlx::query_as(concat!(
        "SELECT ",
        account_columns!(),
        " FROM accounts a WHERE a.id = $1 AND a.suspended_at IS NULL"
    ))
    .bind(id)
    .fetch_optional(db)
    .await?
    .ok_or(ApiError::NotFound)
}

/// Public endpoints: anyone may call them, but a token must carry the scope (Mastodon's
/// `authorize_if_got_token!`).
fn require_if_token(auth: &MaybeAuth, scope: Scope) -> Result<(), ApiError> {
    match &auth.0 {
        Some(auth) => auth.require(scope),
        None => Ok(()),
    }
}
