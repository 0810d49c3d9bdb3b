//! Direct conversations (Mastodon's `/api/v1/conversations`): the threads of direct
//! statuses each user takes part in, newest activity first, with their unread mark. The
//! worker's fan-out records a direct status into them (see [`store::record`]).

pub(crate) mod store;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::response::Response;
use axum::routing::{delete, get, post};
use serde_json::{Value, json};

use self::store::{Conversation, Row, render, row_columns};
use super::statuses::paged;
use crate::api::ApiError;
use crate::api::pagination::PageQuery;
use crate::api::params::Params;
use crate::auth::{Auth, Scope};
use crate::state::AppState;

pub use self::store::record;

const DEFAULT: i64 = 20;
const MAX: i64 = 40;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/conversations", get(index))
        .route("/api/v1/conversations/{id}", delete(remove))
        .route("/api/v1/conversations/{id}/read", post(read))
}

fn me(auth: &Auth, scope: Scope) -> Result<i64, ApiError> {
    auth.require(scope)?;
    Ok(auth.user()?.account_id)
}

fn parse_id(id: &str) -> Result<i64, ApiError> {
    id.parse().map_err(|_| ApiError::NotFound)
}

/// A page of the caller's conversations by `last_status_id` (Mastodon's cursor for them),
/// leaving out those whose statuses are all deleted.
macro_rules! page_sql {
    ($order:literal) => {
        concat!(
            "SELECT * FROM (SELECT ",
            row_columns!(),
            " FROM account_conversations c WHERE c.account_id = $1 \
               AND ($2::bigint IS NULL OR c.last_status_id < $2) \
               AND ($3::bigint IS NULL OR c.last_status_id > $3) \
             ORDER BY c.last_status_id ",
            $order,
            ") AS page WHERE shown_status_id IS NOT NULL LIMIT $4"
        )
    };
}

pub async fn index(
    State(state): State<AppState>,
    auth: Auth,
    uri: Uri,
    Params { value: q, .. }: Params<PageQuery>,
) -> Result<Response, ApiError> {
    let me = me(&auth, "read:statuses")?;
    let page = q.page(DEFAULT, MAX)?;
    let sql = if page.ascending() {
        page_sql!("ASC")
    } else {
        page_sql!("DESC")
    };
    let mut rows: Vec<Row> = sqlx::query_as(sql)
        .bind(me)
        .bind(page.max_id)
        .bind(page.lower())
        .bind(page.limit)
        .fetch_all(state.db.reader())
        .await?;
    if page.ascending() {
        rows.reverse();
    }
    let cursors: Vec<i64> = rows.iter().map(|r| r.last_status_id).collect();
    let conversations = render(&state, state.db.reader(), me, &rows).await?;
    Ok(paged(&state, &uri, &cursors, conversations))
}

/// Marks the conversation read and answers with it.
pub async fn read(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Conversation>, ApiError> {
    let me = me(&auth, "write:conversations")?;
    let id = parse_id(&id)?;
    let row: Row = sqlx::query_as(concat!(
        "WITH c AS (UPDATE account_conversations SET unread = false \
                    WHERE id = $1 AND account_id = $2 RETURNING *) \
         SELECT ",
        row_columns!(),
        " FROM c"
    ))
    .bind(id)
    .bind(me)
    .fetch_optional(state.db.primary())
    .await?
    .ok_or(ApiError::NotFound)?;
    let mut rendered = render(&state, state.db.primary(), me, &[row]).await?;
    rendered.pop().map(Json).ok_or(ApiError::NotFound)
}

/// Removes the conversation from the caller's list (the statuses stay); a new direct
/// status in the thread brings it back.
pub async fn remove(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let me = me(&auth, "write:conversations")?;
    let id = parse_id(&id)?;
    let deleted =
        sqlx::query("DELETE FROM account_conversations WHERE id = $1 AND account_id = $2")
            .bind(id)
            .bind(me)
            .execute(state.db.primary())
            .await?
            .rows_affected();
    if deleted == 0 {
        return Err(ApiError::NotFound);
    }
    Ok(Json(json!({})))
}
