//! Notifications: the user's list (filtered by type and account, paged with `Link`), one
//! notification, dismissing one or all, and the unread count. [`notify`] creates them.
//!
//! Notifications from accounts the user blocks are not shown, and one about a status the
//! user may no longer see is left out, as Mastodon does.

pub mod notify;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::ApiError;
use crate::api::entities::notification::{Notification, NotificationRow, notifications_json};
use crate::api::pagination::PageQuery;
use crate::api::params::{Params, flex};
use crate::auth::Auth;
use crate::state::AppState;

pub use notify::{Cause, notify};

/// Mastodon's defaults for notifications.
const PAGE_DEFAULT: i64 = 40;
const PAGE_MAX: i64 = 80;
const UNREAD_DEFAULT: i64 = 100;
const UNREAD_MAX: i64 = 1000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/notifications", get(list))
        .route("/api/v1/notifications/clear", post(clear))
        .route("/api/v1/notifications/unread_count", get(unread_count))
        .route("/api/v1/notifications/{id}", get(show))
        .route("/api/v1/notifications/{id}/dismiss", post(dismiss))
}

#[derive(Debug, Default, Deserialize)]
pub struct Filters {
    #[serde(default, deserialize_with = "flex::list")]
    types: Vec<String>,
    #[serde(default, deserialize_with = "flex::list")]
    exclude_types: Vec<String>,
    #[serde(default)]
    account_id: Option<Value>,
}

fn not_an_id() -> ApiError {
    ApiError::validation("account_id", "is not an ID")
}

/// The filters as query parameters.
struct Bound {
    /// None: every type.
    types: Option<Vec<String>>,
    exclude: Vec<String>,
    /// Only notifications caused by this account.
    account: Option<i64>,
}

impl Filters {
    fn sql(&self) -> Result<Bound, ApiError> {
        // Unknown types simply match nothing, as in Mastodon (`types & TYPES`).
        let types = (!self.types.is_empty()).then(|| self.types.clone());
        let account = match &self.account_id {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) => Some(s.parse().map_err(|_| not_an_id())?),
            Some(Value::Number(n)) => Some(n.as_i64().ok_or_else(not_an_id)?),
            Some(_) => return Err(not_an_id()),
        };
        Ok(Bound {
            types,
            exclude: self.exclude_types.clone(),
            account,
        })
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct ListParams {
    #[serde(flatten)]
    page: PageQuery,
    #[serde(flatten)]
    filters: Filters,
}

/// `WHERE` shared by the list and the count: `$1` the user, `$2` types, `$3` excluded
/// types, `$4` the actor. Nothing from a domain the user blocks, unless they follow the
/// sender (Mastodon's `NotifyService#blocked_domain?`).
macro_rules! filtered {
    () => {
        "n.account_id = $1 AND ($2::text[] IS NULL OR n.type = ANY($2)) \
         AND NOT (n.type = ANY($3::text[])) \
         AND ($4::bigint IS NULL OR n.from_account_id = $4) \
         AND NOT EXISTS (SELECT 1 FROM blocks b WHERE b.account_id = n.account_id \
                         AND b.target_account_id = n.from_account_id) \
         AND NOT EXISTS (SELECT 1 FROM account_domain_blocks d \
                         JOIN accounts da ON da.domain = d.domain \
                         WHERE d.account_id = n.account_id AND da.id = n.from_account_id \
                           AND NOT EXISTS (SELECT 1 FROM follows df \
                                WHERE df.account_id = n.account_id \
                                  AND df.target_account_id = n.from_account_id))"
    };
}

fn me(auth: &Auth, scope: crate::auth::Scope) -> Result<i64, ApiError> {
    auth.require(scope)?;
    Ok(auth.user()?.account_id)
}

fn parse_id(id: &str) -> Result<i64, ApiError> {
    id.parse().map_err(|_| ApiError::NotFound)
}

pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
    uri: Uri,
    Params { value: p, .. }: Params<ListParams>,
) -> Result<Response, ApiError> {
    let me = me(&auth, "read:notifications")?;
    let page = p.page.page(PAGE_DEFAULT, PAGE_MAX)?;
    let filters = p.filters.sql()?;
    crate::api::polls::notify_ended(&state).await;
    let sql = if page.ascending() {
        concat!(
            "SELECT n.id, n.account_id, n.from_account_id, n.type, n.status_id, n.created_at \
             FROM notifications n WHERE ",
            filtered!(),
            " AND ($5::bigint IS NULL OR n.id < $5) AND ($6::bigint IS NULL OR n.id > $6) \
             ORDER BY n.id ASC LIMIT $7"
        )
    } else {
        concat!(
            "SELECT n.id, n.account_id, n.from_account_id, n.type, n.status_id, n.created_at \
             FROM notifications n WHERE ",
            filtered!(),
            " AND ($5::bigint IS NULL OR n.id < $5) AND ($6::bigint IS NULL OR n.id > $6) \
             ORDER BY n.id DESC LIMIT $7"
        )
    };
    let mut rows: Vec<NotificationRow> = sqlx::query_as(sql)
        .bind(me)
        .bind(filters.types)
        .bind(filters.exclude)
        .bind(filters.account)
        .bind(page.max_id)
        .bind(page.lower())
        .bind(page.limit)
        .fetch_all(state.db.primary())
        .await?;
    if page.ascending() {
        rows.reverse();
    }
    // The cursors are the rows read, shown or not, so that paging never stalls.
    let cursors: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let body = notifications_json(state.db.primary(), &state, &rows).await?;
    Ok(crate::api::statuses::paged(&state, &uri, &cursors, body))
}

/// One notification of the caller's, if it can still be shown.
async fn find(state: &AppState, me: i64, id: i64) -> Result<Notification, ApiError> {
    let rows: Vec<NotificationRow> = sqlx::query_as(
        "SELECT n.id, n.account_id, n.from_account_id, n.type, n.status_id, n.created_at \
         FROM notifications n WHERE n.id = $1 AND n.account_id = $2 \
           AND NOT EXISTS (SELECT 1 FROM blocks b WHERE b.account_id = n.account_id \
                           AND b.target_account_id = n.from_account_id)",
    )
    .bind(id)
    .bind(me)
    .fetch_all(state.db.primary())
    .await?;
    notifications_json(state.db.primary(), state, &rows)
        .await?
        .pop()
        .ok_or(ApiError::NotFound)
}

pub async fn show(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Notification>, ApiError> {
    let me = me(&auth, "read:notifications")?;
    Ok(Json(find(&state, me, parse_id(&id)?).await?))
}

pub async fn dismiss(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let me = me(&auth, "write:notifications")?;
    let deleted = sqlx::query("DELETE FROM notifications WHERE id = $1 AND account_id = $2")
        .bind(parse_id(&id)?)
        .bind(me)
        .execute(state.db.primary())
        .await?;
    if deleted.rows_affected() == 0 {
        return Err(ApiError::NotFound);
    }
    Ok(Json(json!({})))
}

pub async fn clear(State(state): State<AppState>, auth: Auth) -> Result<Json<Value>, ApiError> {
    let me = me(&auth, "write:notifications")?;
    sqlx::query("DELETE FROM notifications WHERE account_id = $1")
        .bind(me)
        .execute(state.db.primary())
        .await?;
    Ok(Json(json!({})))
}

#[derive(Debug, Default, Deserialize)]
pub struct CountParams {
    #[serde(default, deserialize_with = "flex::opt_u64")]
    limit: Option<u64>,
    #[serde(flatten)]
    filters: Filters,
}

/// Notifications newer than the user's `notifications` marker, counted up to `limit`.
pub async fn unread_count(
    State(state): State<AppState>,
    auth: Auth,
    Params { value: p, .. }: Params<CountParams>,
) -> Result<Json<Value>, ApiError> {
    let me = me(&auth, "read:notifications")?;
    let user = auth.user()?.user_id;
    let limit = match p.limit {
        None | Some(0) => UNREAD_DEFAULT,
        Some(n) => i64::try_from(n).unwrap_or(UNREAD_MAX).min(UNREAD_MAX),
    };
    let filters = p.filters.sql()?;
    crate::api::polls::notify_ended(&state).await;
    let (count,): (i64,) = sqlx::query_as(concat!(
        "SELECT count(*) FROM (SELECT 1 FROM notifications n WHERE ",
        filtered!(),
        " AND n.id > coalesce((SELECT last_read_id FROM markers \
                               WHERE user_id = $5 AND timeline = 'notifications'), 0) \
          LIMIT $6) AS unread"
    ))
    .bind(me)
    .bind(filters.types)
    .bind(filters.exclude)
    .bind(filters.account)
    .bind(user)
    .bind(limit)
    .fetch_one(state.db.primary())
    .await?;
    Ok(Json(json!({ "count": count })))
}
