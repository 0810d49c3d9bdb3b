//! The statuses part of Mastodon's REST API: posting, editing and deleting, reading a status
//! with its thread, history and source, favourites, reblogs, bookmarks and pins, and the
//! lists built on them (an account's statuses, the user's favourites and bookmarks).
//!
//! One rule decides who sees what (`entities::status::status_visible!`); a status the caller
//! may not see is "not found", whatever the reason, so that nothing tells it exists.

mod actions;
mod lists;
mod read;
mod write;

use axum::Json;
use axum::Router;
use axum::http::Uri;
use axum::http::header::LINK;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;

use crate::api::ApiError;
use crate::api::entities::status::{Status, load_statuses_from, status_visible};
use crate::api::pagination::link_header;
use crate::auth::{Auth, MaybeAuth, Scope};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/statuses", post(write::create))
        .route(
            "/api/v1/statuses/{id}",
            get(read::show).delete(write::delete).put(write::edit),
        )
        .route("/api/v1/statuses/{id}/context", get(read::context))
        .route("/api/v1/statuses/{id}/history", get(read::history))
        .route("/api/v1/statuses/{id}/source", get(read::source))
        .route("/api/v1/statuses/{id}/favourite", post(actions::favourite))
        .route(
            "/api/v1/statuses/{id}/unfavourite",
            post(actions::unfavourite),
        )
        .route("/api/v1/statuses/{id}/reblog", post(actions::reblog))
        .route("/api/v1/statuses/{id}/unreblog", post(actions::unreblog))
        .route("/api/v1/statuses/{id}/bookmark", post(actions::bookmark))
        .route(
            "/api/v1/statuses/{id}/unbookmark",
            post(actions::unbookmark),
        )
        .route("/api/v1/statuses/{id}/pin", post(actions::pin))
        .route("/api/v1/statuses/{id}/unpin", post(actions::unpin))
        .route(
            "/api/v1/statuses/{id}/favourited_by",
            get(lists::favourited_by),
        )
        .route(
            "/api/v1/statuses/{id}/reblogged_by",
            get(lists::reblogged_by),
        )
        .route("/api/v1/favourites", get(lists::favourites))
        .route("/api/v1/bookmarks", get(lists::bookmarks))
        .route(
            "/api/v1/accounts/{id}/statuses",
            get(lists::account_statuses),
        )
}

/// An id from the path: anything but a number names no record.
fn parse_id(id: &str) -> Result<i64, ApiError> {
    id.parse().map_err(|_| ApiError::NotFound)
}

/// Public endpoints: anyone may call them, but a token must carry the scope (Mastodon's
/// `authorize_if_got_token!`). Returns the viewer's account, if any.
fn viewer(auth: &MaybeAuth, scope: Scope) -> Result<Option<i64>, ApiError> {
    match &auth.0 {
        Some(auth) => {
            auth.require(scope)?;
            Ok(auth.user.as_ref().map(|u| u.account_id))
        }
        None => Ok(None),
    }
}

/// A user token with `scope`: the caller's account.
fn me(auth: &Auth, scope: Scope) -> Result<i64, ApiError> {
    auth.require(scope)?;
    Ok(auth.user()?.account_id)
}

/// The fields of a status that decide what may be done with it.
#[derive(Clone, Debug, sqlx::FromRow)]
struct StatusRef {
    id: i64,
    account_id: i64,
    visibility: String,
    reblog_of_id: Option<i64>,
}

/// The status `id` if `viewer` may see it (a reblog only with its original), else 404.
async fn visible_status(
    db: impl sqlx::PgExecutor<'_>,
    id: i64,
    viewer: Option<i64>,
) -> Result<StatusRef, ApiError> {
    sqlx::query_as(concat!(
        "SELECT s.id, s.account_id, s.visibility, s.reblog_of_id FROM statuses s \
         WHERE s.id = $1 AND ",
        status_visible!("s", "$2::bigint"),
        " AND (s.reblog_of_id IS NULL OR EXISTS (SELECT 1 FROM statuses o \
               WHERE o.id = s.reblog_of_id AND ",
        status_visible!("o", "$2::bigint"),
        "))"
    ))
    .bind(id)
    .bind(viewer)
    .fetch_optional(db)
    .await?
    .ok_or(ApiError::NotFound)
}

/// The status `id` as `viewer` sees it, read from the primary (the caller has usually just
/// changed it); 404 if they may not see it.
async fn status_json(state: &AppState, id: i64, viewer: Option<i64>) -> Result<Status, ApiError> {
    load_statuses_from(state.db.primary(), state, &[id], viewer)
        .await?
        .pop()
        .ok_or(ApiError::NotFound)
}

/// A page of a list as JSON, with the `Link` header of its `cursors` (newest first).
pub(in crate::api) fn paged<T: Serialize>(
    state: &AppState,
    uri: &Uri,
    cursors: &[i64],
    body: T,
) -> Response {
    let mut response = Json(body).into_response();
    // A token given in the query stays out of the links: they end up in logs and histories.
    let keep: Vec<(String, String)> =
        serde_urlencoded::from_str::<Vec<(String, String)>>(uri.query().unwrap_or_default())
            .unwrap_or_default()
            .into_iter()
            .filter(|(k, _)| k != "access_token")
            .collect();
    let url = format!("{}{}", state.base_url(), uri.path());
    if let Some(link) = link_header(&url, &keep, cursors) {
        response.headers_mut().insert(LINK, link);
    }
    response
}
