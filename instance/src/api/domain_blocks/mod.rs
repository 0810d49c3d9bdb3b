//! A user's own domain blocks (Mastodon's `/api/v1/domain_blocks`): list, block, unblock.
//! What a block hides is applied where content is read or fanned out (public and hashtag
//! timelines, boosts in home feeds, notifications, the streamer), each against
//! `account_domain_blocks`.

mod domain;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::Uri;
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use super::statuses::paged;
use crate::api::ApiError;
use crate::api::pagination::PageQuery;
use crate::api::params::Params;
use crate::auth::{Auth, Scope};
use crate::state::AppState;

/// Mastodon's `Api::V1::DomainBlocksController::BLOCK_LIMIT`, and its cap.
const DEFAULT: i64 = 100;
const MAX: i64 = 200;

pub fn routes() -> Router<AppState> {
    Router::new().route(
        "/api/v1/domain_blocks",
        get(index).post(block).delete(unblock),
    )
}

fn me(auth: &Auth, scope: Scope) -> Result<i64, ApiError> {
    auth.require(scope)?;
    Ok(auth.user()?.account_id)
}

/// The caller's blocked domains, newest block first, as bare strings; the `Link` header
/// pages by the blocks' ids.
pub async fn index(
    State(state): State<AppState>,
    auth: Auth,
    uri: Uri,
    Params { value: q, .. }: Params<PageQuery>,
) -> Result<Response, ApiError> {
    let me = me(&auth, "read:blocks")?;
    let page = q.page(DEFAULT, MAX)?;
    let sql = if page.ascending() {
        "SELECT id, domain FROM account_domain_blocks WHERE account_id = $1 \
           AND ($2::bigint IS NULL OR id < $2) AND ($3::bigint IS NULL OR id > $3) \
         ORDER BY id ASC LIMIT $4"
    } else {
        "SELECT id, domain FROM account_domain_blocks WHERE account_id = $1 \
           AND ($2::bigint IS NULL OR id < $2) AND ($3::bigint IS NULL OR id > $3) \
         ORDER BY id DESC LIMIT $4"
    };
    let mut rows: Vec<(i64, String)> = sqlx::query_as(sql)
        .bind(me)
        .bind(page.max_id)
        .bind(page.lower())
        .bind(page.limit)
        .fetch_all(state.db.reader())
        .await?;
    if page.ascending() {
        rows.reverse();
    }
    let (cursors, domains): (Vec<i64>, Vec<String>) = rows.into_iter().unzip();
    Ok(paged(&state, &uri, &cursors, domains))
}

#[derive(Debug, Deserialize)]
pub struct DomainParam {
    #[serde(default)]
    domain: Option<String>,
}

/// Blocks the domain (again: nothing changes) and removes the caller's followers on it, as
/// Mastodon's `BlockDomainFromAccountService` does.
pub async fn block(
    State(state): State<AppState>,
    auth: Auth,
    Params { value: p, .. }: Params<DomainParam>,
) -> Result<Json<Value>, ApiError> {
    let me = me(&auth, "write:blocks")?;
    let domain = domain::normalize(p.domain.as_deref().unwrap_or_default())?;
    if domain == state.config.domain.to_ascii_lowercase() {
        return Err(ApiError::validation(
            "domain",
            "is this server's own domain",
        ));
    }
    let mut tx = state.db.begin().await?;
    sqlx::query(
        "INSERT INTO account_domain_blocks (account_id, domain) VALUES ($1, $2) \
         ON CONFLICT (account_id, domain) DO NOTHING",
    )
    .bind(me)
    .bind(&domain)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "DELETE FROM follows f USING accounts a \
         WHERE f.target_account_id = $1 AND a.id = f.account_id AND a.domain = $2",
    )
    .bind(me)
    .bind(&domain)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "DELETE FROM follow_requests r USING accounts a \
         WHERE r.target_account_id = $1 AND a.id = r.account_id AND a.domain = $2",
    )
    .bind(me)
    .bind(&domain)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Json(json!({})))
}

/// Unblocks the domain; unblocking one that is not blocked is not an error (Mastodon).
pub async fn unblock(
    State(state): State<AppState>,
    auth: Auth,
    Params { value: p, .. }: Params<DomainParam>,
) -> Result<Json<Value>, ApiError> {
    let me = me(&auth, "write:blocks")?;
    let domain = domain::normalize(p.domain.as_deref().unwrap_or_default())?;
    sqlx::query("DELETE FROM account_domain_blocks WHERE account_id = $1 AND domain = $2")
        .bind(me)
        .bind(&domain)
        .execute(state.db.primary())
        .await?;
    Ok(Json(json!({})))
}
