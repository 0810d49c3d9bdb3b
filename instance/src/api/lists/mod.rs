//! Lists (Mastodon's `/api/v1/lists`): named sets of followed accounts with a timeline of
//! their own; and, beside them, the markers and preferences clients read with them.
//!
//! A list timeline is read from PostgreSQL at each request, not from a Redis feed as home is:
//! lists are read far less often than home, and one indexed query keeps them exact with no
//! fan-out to maintain. The worker's fan-out only publishes their streaming events.
//!
//! The members of an `exclusive` list are left out of their owner's home; changing who that
//! is (the flag, members of such a list, deleting it) rebuilds the owner's home feed.

mod markers;
mod preferences;
mod timeline;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::response::Response;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::ApiError;
use super::entities::account::account_columns;
use super::entities::{AccountRow, account_json};
use super::pagination::PageQuery;
use super::params::{Params, flex};
use super::statuses::paged;
use crate::auth::Auth;
use crate::state::AppState;

const TITLE_MAX: usize = 100;
const ACCOUNTS_DEFAULT: i64 = 40;
const ACCOUNTS_MAX: i64 = 80;
const REPLIES_POLICIES: [&str; 3] = ["followed", "list", "none"];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/lists", get(index).post(create))
        .route("/api/v1/lists/{id}", get(show).put(update).delete(destroy))
        .route(
            "/api/v1/lists/{id}/accounts",
            get(members).post(add_members).delete(remove_members),
        )
        .route("/api/v1/accounts/{id}/lists", get(lists_of_account))
        .route("/api/v1/timelines/list/{id}", get(timeline::list_timeline))
        .route("/api/v1/markers", get(markers::show).post(markers::update))
        .route("/api/v1/preferences", get(preferences::show))
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct ListRow {
    #[serde(serialize_with = "id_string")]
    pub id: i64,
    pub title: String,
    pub replies_policy: String,
    pub exclusive: bool,
}

/// Mastodon sends every id as a string: JavaScript clients lose precision on 64-bit numbers.
fn id_string<S: serde::Serializer>(id: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&id.to_string())
}

/// An id from the path: anything but a number names no record.
fn parse_id(id: &str) -> Result<i64, ApiError> {
    id.parse().map_err(|_| ApiError::NotFound)
}

/// The caller's list `id`; another user's list is indistinguishable from a missing one.
pub(super) async fn owned_list(
    db: impl sqlx::PgExecutor<'_>,
    id: &str,
    me: i64,
) -> Result<ListRow, ApiError> {
    sqlx::query_as(
        "SELECT id, title, replies_policy, exclusive FROM lists \
         WHERE id = $1 AND account_id = $2",
    )
    .bind(parse_id(id)?)
    .bind(me)
    .fetch_optional(db)
    .await?
    .ok_or(ApiError::NotFound)
}

/// The signed-in account behind a token carrying `scope`.
fn caller(auth: &Auth, scope: &'static str) -> Result<i64, ApiError> {
    auth.require(scope)?;
    Ok(auth.user()?.account_id)
}

#[derive(Debug, Default, Deserialize)]
pub struct ListParams {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    replies_policy: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    exclusive: Option<bool>,
}

impl ListParams {
    fn check(&self) -> Result<(), ApiError> {
        if let Some(title) = &self.title {
            if title.trim().is_empty() {
                return Err(ApiError::validation("Title", "can't be blank"));
            }
            if title.chars().count() > TITLE_MAX {
                return Err(ApiError::validation(
                    "Title",
                    "is too long (maximum is 100 characters)",
                ));
            }
        }
        if let Some(policy) = &self.replies_policy
            && !REPLIES_POLICIES.contains(&policy.as_str())
        {
            return Err(ApiError::validation(
                "Replies policy",
                "is not included in the list",
            ));
        }
        Ok(())
    }
}

pub async fn index(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<Json<Vec<ListRow>>, ApiError> {
    let me = caller(&auth, "read:lists")?;
    let lists = sqlx::query_as(
        "SELECT id, title, replies_policy, exclusive FROM lists WHERE account_id = $1 ORDER BY id",
    )
    .bind(me)
    .fetch_all(state.db.reader())
    .await?;
    Ok(Json(lists))
}

pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    Params { value: p, .. }: Params<ListParams>,
) -> Result<Json<ListRow>, ApiError> {
    let me = caller(&auth, "write:lists")?;
    if p.title.is_none() {
        return Err(ApiError::validation("Title", "can't be blank"));
    }
    p.check()?;
    let list = sqlx::query_as(
        "INSERT INTO lists (account_id, title, replies_policy, exclusive) \
         VALUES ($1, $2, coalesce($3, 'list'), coalesce($4, false)) \
         RETURNING id, title, replies_policy, exclusive",
    )
    .bind(me)
    .bind(p.title)
    .bind(p.replies_policy)
    .bind(p.exclusive)
    .fetch_one(state.db.primary())
    .await?;
    Ok(Json(list))
}

pub async fn show(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<ListRow>, ApiError> {
    let me = caller(&auth, "read:lists")?;
    owned_list(state.db.reader(), &id, me).await.map(Json)
}

pub async fn update(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Params { value: p, .. }: Params<ListParams>,
) -> Result<Json<ListRow>, ApiError> {
    let me = caller(&auth, "write:lists")?;
    p.check()?;
    let exclusive = p.exclusive;
    let list: ListRow = sqlx::query_as(
        "UPDATE lists SET title = coalesce($3, title), \
                replies_policy = coalesce($4, replies_policy), \
                exclusive = coalesce($5, exclusive), updated_at = now() \
         WHERE id = $1 AND account_id = $2 \
         RETURNING id, title, replies_policy, exclusive",
    )
    .bind(parse_id(&id)?)
    .bind(me)
    .bind(p.title)
    .bind(p.replies_policy)
    .bind(p.exclusive)
    .fetch_optional(state.db.primary())
    .await?
    .ok_or(ApiError::NotFound)?;
    if exclusive.is_some() {
        crate::tasks::timeline::refill(&state, me).await;
    }
    Ok(Json(list))
}

pub async fn destroy(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let me = caller(&auth, "write:lists")?;
    let exclusive: bool = sqlx::query_scalar(
        "DELETE FROM lists WHERE id = $1 AND account_id = $2 RETURNING exclusive",
    )
    .bind(parse_id(&id)?)
    .bind(me)
    .fetch_optional(state.db.primary())
    .await?
    .ok_or(ApiError::NotFound)?;
    if exclusive {
        crate::tasks::timeline::refill(&state, me).await;
    }
    Ok(Json(json!({})))
}

#[derive(sqlx::FromRow)]
struct MemberRow {
    cursor: i64,
    #[sqlx(flatten)]
    account: AccountRow,
}

/// The list's accounts, in the order they were added, paged by membership.
pub async fn members(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    uri: Uri,
    Params { value: q, .. }: Params<PageQuery>,
) -> Result<Response, ApiError> {
    let me = caller(&auth, "read:lists")?;
    let list = owned_list(state.db.reader(), &id, me).await?;
    let page = q.page(ACCOUNTS_DEFAULT, ACCOUNTS_MAX)?;
    macro_rules! members_sql {
        ($order:literal) => {
            concat!(
                "SELECT la.id AS cursor, ",
                account_columns!(),
                " FROM list_accounts la JOIN accounts a ON a.id = la.account_id \
                  WHERE la.list_id = $1 AND a.suspended_at IS NULL \
                    AND ($2::bigint IS NULL OR la.id < $2) \
                    AND ($3::bigint IS NULL OR la.id > $3) \
                  ORDER BY la.id ",
                $order,
                " LIMIT $4"
            )
        };
    }
    let sql = if page.ascending() {
        members_sql!("ASC")
    } else {
        members_sql!("DESC")
    };
    let mut rows: Vec<MemberRow> = sqlx::query_as(sql)
        .bind(list.id)
        .bind(page.max_id)
        .bind(page.lower())
        .bind(page.limit)
        .fetch_all(state.db.reader())
        .await?;
    if page.ascending() {
        rows.reverse();
    }
    let cursors: Vec<i64> = rows.iter().map(|r| r.cursor).collect();
    let accounts: Vec<_> = rows
        .iter()
        .map(|r| account_json(&r.account, &state))
        .collect();
    Ok(paged(&state, &uri, &cursors, accounts))
}

#[derive(Debug, Default, Deserialize)]
pub struct MemberParams {
    #[serde(default, deserialize_with = "flex::list")]
    account_ids: Vec<String>,
}

impl MemberParams {
    /// A non-numeric id names no account: 404, as Mastodon's `Account.find`.
    fn ids(&self) -> Result<Vec<i64>, ApiError> {
        let mut ids = self
            .account_ids
            .iter()
            .map(|id| parse_id(id))
            .collect::<Result<Vec<_>, _>>()?;
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }
}

/// Adds followed accounts; any account not followed refuses the whole request (422), as
/// Mastodon does. Accounts already in the list are left as they are.
pub async fn add_members(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Params { value: p, .. }: Params<MemberParams>,
) -> Result<Json<Value>, ApiError> {
    let me = caller(&auth, "write:lists")?;
    let ids = p.ids()?;
    let mut tx = state.db.begin().await?;
    let list = owned_list(&mut *tx, &id, me).await?;
    let (existing,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM accounts WHERE id = ANY($1) AND suspended_at IS NULL")
            .bind(&ids)
            .fetch_one(&mut *tx)
            .await?;
    if existing != ids.len() as i64 {
        return Err(ApiError::NotFound);
    }
    // The follows are read FOR SHARE so that an unfollow cannot slip in before the insert
    // (the cascade from `follows` would then have nothing to remove).
    let follows: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT target_account_id, id FROM follows \
         WHERE account_id = $1 AND target_account_id = ANY($2) FOR SHARE",
    )
    .bind(me)
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await?;
    if follows.len() != ids.len() {
        return Err(ApiError::validation(
            "Account",
            "follow relationship missing",
        ));
    }
    let (accounts, follow_ids): (Vec<i64>, Vec<i64>) = follows.into_iter().unzip();
    sqlx::query(
        "INSERT INTO list_accounts (list_id, account_id, follow_id) \
         SELECT $1, a, f FROM unnest($2::bigint[], $3::bigint[]) AS u(a, f) \
         ON CONFLICT (list_id, account_id) DO NOTHING",
    )
    .bind(list.id)
    .bind(&accounts)
    .bind(&follow_ids)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    if list.exclusive {
        crate::tasks::timeline::refill(&state, me).await;
    }
    Ok(Json(json!({})))
}

pub async fn remove_members(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Params { value: p, .. }: Params<MemberParams>,
) -> Result<Json<Value>, ApiError> {
    let me = caller(&auth, "write:lists")?;
    let ids = p.ids()?;
    let list = owned_list(state.db.primary(), &id, me).await?;
    sqlx::query("DELETE FROM list_accounts WHERE list_id = $1 AND account_id = ANY($2)")
        .bind(list.id)
        .bind(&ids)
        .execute(state.db.primary())
        .await?;
    if list.exclusive {
        crate::tasks::timeline::refill(&state, me).await;
    }
    Ok(Json(json!({})))
}

/// The caller's lists that hold account `id`.
pub async fn lists_of_account(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Vec<ListRow>>, ApiError> {
    let me = caller(&auth, "read:lists")?;
    let account = parse_id(&id)?;
    let (exists,): (bool,) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM accounts WHERE id = $1 AND suspended_at IS NULL)",
    )
    .bind(account)
    .fetch_one(state.db.reader())
    .await?;
    if !exists {
        return Err(ApiError::NotFound);
    }
    let lists = sqlx::query_as(
        "SELECT l.id, l.title, l.replies_policy, l.exclusive FROM lists l \
         WHERE l.account_id = $1 AND EXISTS (SELECT 1 FROM list_accounts la \
               WHERE la.list_id = l.id AND la.account_id = $2) \
         ORDER BY l.id",
    )
    .bind(me)
    .bind(account)
    .fetch_all(state.db.reader())
    .await?;
    Ok(Json(lists))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(title: Option<&str>, policy: Option<&str>) -> ListParams {
        ListParams {
            title: title.map(String::from),
            replies_policy: policy.map(String::from),
            exclusive: None,
        }
    }

    #[test]
    fn titles_and_policies_are_checked() {
        assert!(params(Some("friends"), Some("followed")).check().is_ok());
        assert!(params(None, None).check().is_ok());
        assert!(params(Some(" "), None).check().is_err());
        assert!(params(Some(&"x".repeat(100)), None).check().is_ok());
        assert!(params(Some(&"x".repeat(101)), None).check().is_err());
        assert!(params(None, Some("everyone")).check().is_err());
    }
}
