//! Paged lists of statuses and of the accounts that acted on one: who favourited or
//! reblogged a status, the user's favourites and bookmarks (paged by the favourite or
//! bookmark row, as in Mastodon: in the order things were marked), and an account's
//! statuses (paged by status id).

use axum::extract::{Path, State};
use axum::http::Uri;
use axum::response::Response;
use serde::Deserialize;

use super::{me, paged, parse_id, viewer, visible_status};
use crate::api::ApiError;
use crate::api::entities::account::account_columns;
use crate::api::entities::status::{load_statuses, status_visible};
use crate::api::entities::{AccountRow, account_json};
use crate::api::pagination::{Page, PageQuery};
use crate::api::params::{Params, flex};
use crate::auth::{Auth, MaybeAuth};
use crate::state::AppState;

const STATUSES_DEFAULT: i64 = 20;
const STATUSES_MAX: i64 = 40;
const ACCOUNTS_DEFAULT: i64 = 40;
const ACCOUNTS_MAX: i64 = 80;

/// Newest first, or oldest first when the page is asked with `min_id`.
macro_rules! both_orders {
    ($($part:expr),+ $(,)?) => {
        (
            concat!($($part),+, " DESC LIMIT $4"),
            concat!($($part),+, " ASC LIMIT $4"),
        )
    };
}

/// Runs one of a pair of paged queries (`$1` the owner, `$2` max_id, `$3` the lower bound,
/// `$4` the limit, `$5` the viewer) and returns its rows newest first.
async fn page_rows<T>(
    state: &AppState,
    sql: (&'static str, &'static str),
    owner: i64,
    page: &Page,
    viewer: Option<i64>,
) -> Result<Vec<T>, ApiError>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    let query = if page.ascending() { sql.1 } else { sql.0 };
    let mut rows: Vec<T> = sqlx::query_as(query)
        .bind(owner)
        .bind(page.max_id)
        .bind(page.lower())
        .bind(page.limit)
        .bind(viewer)
        .fetch_all(state.db.reader())
        .await?;
    if page.ascending() {
        rows.reverse();
    }
    Ok(rows)
}

#[derive(sqlx::FromRow)]
struct AccountCursor {
    cursor: i64,
    #[sqlx(flatten)]
    account: AccountRow,
}

async fn accounts_page(
    state: &AppState,
    sql: (&'static str, &'static str),
    status_id: i64,
    query: &PageQuery,
    viewer: Option<i64>,
    uri: &Uri,
) -> Result<Response, ApiError> {
    let page = query.page(ACCOUNTS_DEFAULT, ACCOUNTS_MAX)?;
    let rows: Vec<AccountCursor> = page_rows(state, sql, status_id, &page, viewer).await?;
    let cursors: Vec<i64> = rows.iter().map(|r| r.cursor).collect();
    let accounts: Vec<_> = rows
        .iter()
        .map(|r| account_json(&r.account, state))
        .collect();
    Ok(paged(state, uri, &cursors, accounts))
}

pub async fn favourited_by(
    State(state): State<AppState>,
    auth: MaybeAuth,
    Path(id): Path<String>,
    uri: Uri,
    Params { value, .. }: Params<PageQuery>,
) -> Result<Response, ApiError> {
    let viewer = viewer(&auth, "read:accounts")?;
    let status = visible_status(state.db.reader(), parse_id(&id)?, viewer).await?;
    let sql = both_orders!(
        "SELECT f.id AS cursor, ",
        account_columns!(),
        " FROM favourites f JOIN accounts a ON a.id = f.account_id \
          WHERE f.status_id = $1 AND a.suspended_at IS NULL \
            AND NOT EXISTS (SELECT 1 FROM blocks b WHERE b.account_id = $5 \
                            AND b.target_account_id = a.id) \
            AND ($2::bigint IS NULL OR f.id < $2) AND ($3::bigint IS NULL OR f.id > $3) \
          ORDER BY f.id"
    );
    accounts_page(&state, sql, status.id, &value, viewer, &uri).await
}

/// Only reblogs the viewer may see themselves count: a private reblog (an author sharing
/// their own followers-only post again) names no one to strangers. Accounts the viewer
/// blocks are left out of both lists.
pub async fn reblogged_by(
    State(state): State<AppState>,
    auth: MaybeAuth,
    Path(id): Path<String>,
    uri: Uri,
    Params { value, .. }: Params<PageQuery>,
) -> Result<Response, ApiError> {
    let viewer = viewer(&auth, "read:accounts")?;
    let status = visible_status(state.db.reader(), parse_id(&id)?, viewer).await?;
    let sql = both_orders!(
        "SELECT r.id AS cursor, ",
        account_columns!(),
        " FROM statuses r JOIN accounts a ON a.id = r.account_id \
          WHERE r.reblog_of_id = $1 AND a.suspended_at IS NULL \
            AND NOT EXISTS (SELECT 1 FROM blocks b WHERE b.account_id = $5 \
                            AND b.target_account_id = a.id) AND ",
        status_visible!("r", "$5::bigint"),
        " AND ($2::bigint IS NULL OR r.id < $2) AND ($3::bigint IS NULL OR r.id > $3) \
          ORDER BY r.id"
    );
    accounts_page(&state, sql, status.id, &value, viewer, &uri).await
}

#[derive(sqlx::FromRow)]
struct StatusCursor {
    cursor: i64,
    status_id: i64,
}

/// The caller's favourites or bookmarks, newest mark first; statuses they may no longer
/// see are left out.
async fn marked(
    state: &AppState,
    me: i64,
    table_sql: (&'static str, &'static str),
    query: &PageQuery,
    uri: &Uri,
) -> Result<Response, ApiError> {
    let page = query.page(STATUSES_DEFAULT, STATUSES_MAX)?;
    let rows: Vec<StatusCursor> = page_rows(state, table_sql, me, &page, Some(me)).await?;
    let cursors: Vec<i64> = rows.iter().map(|r| r.cursor).collect();
    let ids: Vec<i64> = rows.iter().map(|r| r.status_id).collect();
    let statuses = load_statuses(state, &ids, Some(me)).await?;
    Ok(paged(state, uri, &cursors, statuses))
}

macro_rules! marked_sql {
    ($table:literal) => {
        both_orders!(
            "SELECT m.id AS cursor, m.status_id FROM ",
            $table,
            " m JOIN statuses s ON s.id = m.status_id WHERE m.account_id = $1 AND ",
            status_visible!("s", "$5::bigint"),
            " AND ($2::bigint IS NULL OR m.id < $2) AND ($3::bigint IS NULL OR m.id > $3) \
              ORDER BY m.id"
        )
    };
}

pub async fn favourites(
    State(state): State<AppState>,
    auth: Auth,
    uri: Uri,
    Params { value, .. }: Params<PageQuery>,
) -> Result<Response, ApiError> {
    let me = me(&auth, "read:favourites")?;
    marked(&state, me, marked_sql!("favourites"), &value, &uri).await
}

pub async fn bookmarks(
    State(state): State<AppState>,
    auth: Auth,
    uri: Uri,
    Params { value, .. }: Params<PageQuery>,
) -> Result<Response, ApiError> {
    let me = me(&auth, "read:bookmarks")?;
    marked(&state, me, marked_sql!("bookmarks"), &value, &uri).await
}

#[derive(Debug, Default, Deserialize)]
pub struct AccountStatusesQuery {
    #[serde(flatten)]
    page: PageQuery,
    #[serde(default, deserialize_with = "flex::bool")]
    pinned: bool,
    #[serde(default, deserialize_with = "flex::bool")]
    exclude_replies: bool,
    #[serde(default, deserialize_with = "flex::bool")]
    exclude_reblogs: bool,
    #[serde(default, deserialize_with = "flex::bool")]
    only_media: bool,
    #[serde(default)]
    tagged: Option<String>,
}

/// The statuses of an account that the viewer may see, newest first; a user the account
/// blocks sees none, as in Mastodon. Replies to oneself (threads) stay with
/// `exclude_replies`; pinned statuses come in the order they were pinned.
pub async fn account_statuses(
    State(state): State<AppState>,
    auth: MaybeAuth,
    Path(id): Path<String>,
    uri: Uri,
    Params { value: q, .. }: Params<AccountStatusesQuery>,
) -> Result<Response, ApiError> {
    let viewer = viewer(&auth, "read:statuses")?;
    let account_id = parse_id(&id)?;
    let (exists, blocked): (bool, bool) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM accounts WHERE id = $1 AND suspended_at IS NULL), \
                EXISTS (SELECT 1 FROM blocks WHERE account_id = $1 AND target_account_id = $2)",
    )
    .bind(account_id)
    .bind(viewer)
    .fetch_one(state.db.reader())
    .await?;
    if !exists {
        return Err(ApiError::NotFound);
    }
    if blocked {
        return Ok(paged(&state, &uri, &[], Vec::<()>::new()));
    }
    let page = q.page.page(STATUSES_DEFAULT, STATUSES_MAX)?;
    let tagged = q
        .tagged
        .as_deref()
        .map(|t| t.trim_start_matches('#').to_lowercase())
        .filter(|t| !t.is_empty());
    let (newest_first, oldest_first) = both_orders!(
        "SELECT s.id FROM statuses s \
         WHERE s.account_id = $1 AND ",
        status_visible!("s", "$5::bigint"),
        " AND (s.reblog_of_id IS NULL OR EXISTS (SELECT 1 FROM statuses o \
               WHERE o.id = s.reblog_of_id AND ",
        status_visible!("o", "$5::bigint"),
        ")) \
           AND (NOT $6 OR EXISTS (SELECT 1 FROM status_pins p \
                                  WHERE p.status_id = s.id AND p.account_id = $1)) \
           AND (NOT $7 OR s.in_reply_to_id IS NULL OR s.in_reply_to_account_id = s.account_id) \
           AND (NOT $8 OR s.reblog_of_id IS NULL) \
           AND (NOT $9 OR cardinality(s.ordered_media_attachment_ids) > 0) \
           AND ($10::text IS NULL OR EXISTS (SELECT 1 FROM statuses_tags st \
                JOIN tags t ON t.id = st.tag_id WHERE st.status_id = s.id \
                AND lower(t.name) = $10)) \
           AND ($2::bigint IS NULL OR s.id < $2) AND ($3::bigint IS NULL OR s.id > $3) \
         ORDER BY s.id"
    );
    let query = if page.ascending() {
        oldest_first
    } else {
        newest_first
    };
    let mut ids: Vec<i64> = sqlx::query_scalar(query)
        .bind(account_id)
        .bind(page.max_id)
        .bind(page.lower())
        .bind(page.limit)
        .bind(viewer)
        .bind(q.pinned)
        .bind(q.exclude_replies)
        .bind(q.exclude_reblogs)
        .bind(q.only_media)
        .bind(tagged)
        .fetch_all(state.db.reader())
        .await?;
    if page.ascending() {
        ids.reverse();
    }
    if q.pinned {
        // In pin order, newest pin first (there are at most a handful).
        let order: Vec<i64> = sqlx::query_scalar(
            "SELECT status_id FROM status_pins WHERE account_id = $1 AND status_id = ANY($2) \
             ORDER BY id DESC",
        )
        .bind(account_id)
        .bind(&ids)
        .fetch_all(state.db.reader())
        .await?;
        let statuses = load_statuses(&state, &order, viewer).await?;
        return Ok(paged(&state, &uri, &ids, statuses));
    }
    let statuses = load_statuses(&state, &ids, viewer).await?;
    Ok(paged(&state, &uri, &ids, statuses))
}
