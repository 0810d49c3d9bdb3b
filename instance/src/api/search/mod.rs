//! `GET /api/v2/search` (accounts, statuses, hashtags), and hashtags: `/api/v1/tags/:name`
//! with follow and unfollow, `/api/v1/followed_tags`.
//!
//! Accounts are found as `/api/v1/accounts/search` finds them (shared code), hashtags by
//! prefix, statuses through a [`backend::StatusIndex`] (PostgreSQL full-text search; the
//! OpenSearch backend slots in there). Which kinds a query searches follows Mastodon's
//! `SearchService`: `#tag` searches no accounts, `user@domain` no hashtags, and statuses are
//! searched for signed-in users only. With `resolve`, the instance's own URLs and accounts
//! are resolved locally; other servers' accounts (`user@domain`, actor URLs) through
//! WebFinger and a fetch of the actor. `/api/v1/search` is gone in
//! Mastodon 4 and is not served.

mod backend;
mod opensearch;
mod query;
mod tags;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use self::backend::{StatusIndex, StatusSearch};
use self::query::StatusQuery;
use self::tags::Tag;
use crate::api::ApiError;
use crate::api::accounts::{search_accounts, split_acct};
use crate::api::entities::account::account_columns;
use crate::api::entities::status::{Status, load_statuses};
use crate::api::entities::{Account, AccountRow, account_json};
use crate::api::params::{Params, flex};
use crate::auth::MaybeAuth;
use crate::state::AppState;

const RESULTS_DEFAULT: i64 = 20;
const RESULTS_MAX: i64 = 40;
/// Bounds the work of one query (Mastodon has no limit; its search engine has one).
const QUERY_MAX: usize = 500;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v2/search", get(search))
        .route("/api/v1/tags/{name}", get(tags::show))
        .route("/api/v1/tags/{name}/follow", post(tags::follow))
        .route("/api/v1/tags/{name}/unfollow", post(tags::unfollow))
        .route("/api/v1/followed_tags", get(tags::followed))
}

/// A whole number that may be negative (which is refused with Mastodon's message).
fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    use serde::de::Error;
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::Number(n) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| D::Error::custom(format!("{n} is not a whole number"))),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) => s
            .parse()
            .map(Some)
            .map_err(|_| D::Error::custom(format!("{s:?} is not a whole number"))),
        other => Err(D::Error::custom(format!("{other} is not a number"))),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct SearchParams {
    #[serde(default)]
    q: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default, deserialize_with = "flex::bool")]
    resolve: bool,
    #[serde(default, deserialize_with = "flex::bool")]
    following: bool,
    #[serde(default)]
    account_id: Option<String>,
    /// Tags are not reviewed here: accepted, changes nothing.
    #[serde(default, deserialize_with = "flex::bool")]
    #[allow(dead_code)]
    exclude_unreviewed: bool,
    #[serde(default, deserialize_with = "opt_i64")]
    limit: Option<i64>,
    #[serde(default, deserialize_with = "opt_i64")]
    offset: Option<i64>,
    #[serde(default)]
    max_id: Option<String>,
    #[serde(default)]
    min_id: Option<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct Results {
    accounts: Vec<Account>,
    statuses: Vec<Status>,
    hashtags: Vec<Tag>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Accounts,
    Statuses,
    Hashtags,
}

fn kind(value: Option<&str>) -> Result<Option<Kind>, ApiError> {
    match value {
        None | Some("") => Ok(None),
        Some("accounts") => Ok(Some(Kind::Accounts)),
        Some("statuses") => Ok(Some(Kind::Statuses)),
        Some("hashtags") => Ok(Some(Kind::Hashtags)),
        Some(_) => Err(ApiError::validation(
            "type",
            "must be one of accounts, statuses or hashtags",
        )),
    }
}

fn id(name: &str, value: &Option<String>) -> Result<Option<i64>, ApiError> {
    match value.as_deref() {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| ApiError::validation(name, "is not an ID")),
    }
}

pub async fn search(
    State(state): State<AppState>,
    auth: MaybeAuth,
    Params { value: p, .. }: Params<SearchParams>,
) -> Result<Response, ApiError> {
    let viewer = match &auth.0 {
        Some(auth) => {
            auth.require("read:search")?;
            auth.user.as_ref().map(|u| u.account_id)
        }
        None => None,
    };
    let q = p.q.as_deref().map(str::trim).unwrap_or_default();
    if q.is_empty() {
        return Err(ApiError::BadRequest(
            "param is missing or the value is empty: q".into(),
        ));
    }
    if q.chars().count() > QUERY_MAX {
        return Err(ApiError::validation(
            "q",
            &format!("is too long (maximum is {QUERY_MAX} characters)"),
        ));
    }
    if viewer.is_none() && p.offset.is_some() {
        return Ok(unauthorized(
            "Search queries pagination is not supported without authentication",
        ));
    }
    if viewer.is_none() && p.resolve {
        return Ok(unauthorized(
            "Search queries that resolve remote resources are not supported without authentication",
        ));
    }
    if p.limit.is_some_and(|l| l < 0) || p.offset.is_some_and(|o| o < 0) {
        return Err(ApiError::BadRequest(
            "Pagination values for `offset` and `limit` must be positive".into(),
        ));
    }
    let kind = kind(p.kind.as_deref())?;
    let limit = p.limit.map_or(RESULTS_DEFAULT, |l| l.min(RESULTS_MAX));
    // As in Mastodon: an offset pages one kind of result, never the mixed answer.
    let offset = if kind.is_some() {
        p.offset.unwrap_or(0)
    } else {
        0
    };
    let wants = |k: Kind| kind.is_none_or(|asked| asked == k);
    let mut results = Results::default();
    if limit == 0 {
        return Ok(Json(results).into_response());
    }

    if p.resolve && (q.starts_with("https://") || q.starts_with("http://")) {
        if offset == 0 {
            resolve_url(&state, q, viewer, &wants, &mut results).await?;
        }
        return Ok(Json(results).into_response());
    }

    if wants(Kind::Accounts) && !q.starts_with('#') && !(q.contains('@') && q.contains(' ')) {
        let rows = search_accounts(&state, viewer, q, p.following, limit, offset).await?;
        results.accounts = rows.iter().map(|r| account_json(r, &state)).collect();
        if p.resolve && offset == 0 && results.accounts.is_empty() {
            results.accounts.extend(resolve_acct(&state, q).await?);
        }
    }
    if let Some(viewer) = viewer.filter(|_| wants(Kind::Statuses)) {
        let query = StatusQuery::parse(q);
        let one_word = !query.text.contains(' ');
        let handle_or_tag = query.text.starts_with('#') || query.text.contains('@');
        if !(one_word && handle_or_tag) {
            let ids = statuses(&state, viewer, query, &p, limit, offset).await?;
            results.statuses = load_statuses(&state, &ids, Some(viewer)).await?;
        }
    }
    if wants(Kind::Hashtags) && !q.contains('@') {
        results.hashtags = tags::search(&state, viewer, q, limit, offset).await?;
    }
    Ok(Json(results).into_response())
}

/// Mastodon's 401 for what anonymous callers may not do: its own message, no OAuth code.
fn unauthorized(message: &str) -> Response {
    let body = serde_json::json!({ "error": message });
    (axum::http::StatusCode::UNAUTHORIZED, Json(body)).into_response()
}

/// The statuses search, once `from:` and `account_id` are known accounts.
async fn statuses(
    state: &AppState,
    viewer: i64,
    query: StatusQuery,
    p: &SearchParams,
    limit: i64,
    offset: i64,
) -> Result<Vec<i64>, ApiError> {
    let account_id = id("account_id", &p.account_id)?;
    let from = match query.from.as_deref() {
        None => None,
        Some("me") => Some(viewer),
        Some(acct) => match local_account(state, acct).await? {
            Some(row) => Some(row.id),
            // Nobody by that name: nothing they wrote.
            None => return Ok(Vec::new()),
        },
    };
    let account_id = match (account_id, from) {
        (Some(a), Some(f)) if a != f => return Ok(Vec::new()),
        (a, f) => a.or(f),
    };
    let search = StatusSearch {
        query,
        viewer,
        account_id,
        max_id: id("max_id", &p.max_id)?,
        min_id: id("min_id", &p.min_id)?,
        limit,
        offset,
    };
    backend::statuses(state).search(&search).await
}

/// A local, unsuspended account by `user` or `@user@our.domain`.
async fn local_account(state: &AppState, acct: &str) -> Result<Option<AccountRow>, ApiError> {
    let (username, domain) = split_acct(acct, &state.config.domain);
    if domain.is_some() || username.is_empty() {
        return Ok(None);
    }
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        account_columns!(),
        " FROM accounts a WHERE lower(a.username) = lower($1) AND a.domain IS NULL \
          AND a.suspended_at IS NULL"
    ))
    .bind(username)
    .fetch_optional(state.db.reader())
    .await?)
}

/// What one of the instance's own URLs names: a profile (`/@user`, `/users/user`) or a
/// status (`/@user/ID`, `/users/user/statuses/ID`).
#[derive(Debug, PartialEq, Eq)]
enum Resource {
    Account(String),
    Status(String, i64),
}

fn parse_local_url(q: &str, domain: &str) -> Option<Resource> {
    let url = url::Url::parse(q).ok()?;
    if url.host_str()? != domain {
        return None;
    }
    let segments: Vec<&str> = url.path_segments()?.filter(|s| !s.is_empty()).collect();
    let at = |s: &str| s.strip_prefix('@').map(str::to_string);
    match segments.as_slice() {
        [user] => at(user).map(Resource::Account),
        ["users", user] => Some(Resource::Account(user.to_string())),
        [user, id] => Some(Resource::Status(at(user)?, id.parse().ok()?)),
        ["users", user, "statuses", id] => {
            Some(Resource::Status(user.to_string(), id.parse().ok()?))
        }
        _ => None,
    }
}

async fn resolve_url(
    state: &AppState,
    q: &str,
    viewer: Option<i64>,
    wants: &impl Fn(Kind) -> bool,
    results: &mut Results,
) -> Result<(), ApiError> {
    match parse_local_url(q, &state.config.domain) {
        Some(Resource::Account(user)) if wants(Kind::Accounts) => {
            if let Some(row) = local_account(state, &user).await? {
                results.accounts = vec![account_json(&row, state)];
            }
        }
        Some(Resource::Status(user, id)) if wants(Kind::Statuses) => {
            let statuses = load_statuses(state, &[id], viewer).await?;
            // The URL must name the status's author too.
            results.statuses = statuses
                .into_iter()
                .filter(|s| s.account.username.eq_ignore_ascii_case(&user))
                .collect();
        }
        None if wants(Kind::Accounts) => {
            if let Some(id) = crate::federation::resolve::account_by_url(state, q).await? {
                results.accounts.extend(account_by_id(state, id).await?);
            }
        }
        _ => {}
    }
    Ok(())
}

/// `user@domain` (or `@user@domain`) of another server, found through WebFinger.
async fn resolve_acct(state: &AppState, q: &str) -> Result<Option<Account>, ApiError> {
    let (username, domain) = split_acct(q, &state.config.domain);
    let Some(domain) = domain.filter(|_| !username.is_empty() && !q.contains(' ')) else {
        return Ok(None);
    };
    match crate::federation::resolve::account_by_acct(state, username, &domain).await? {
        Some(id) => account_by_id(state, id).await,
        None => Ok(None),
    }
}

async fn account_by_id(state: &AppState, id: i64) -> Result<Option<Account>, ApiError> {
    let row: Option<AccountRow> = sqlx::query_as(concat!(
        "SELECT ",
        account_columns!(),
        " FROM accounts a WHERE a.id = $1 AND a.suspended_at IS NULL"
    ))
    .bind(id)
    .fetch_optional(state.db.primary())
    .await?;
    Ok(row.map(|r| account_json(&r, state)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_urls_name_profiles_and_statuses() {
        let d = "social.example";
        let cases = [
            (
                "https://social.example/@alice",
                Some(Resource::Account("alice".into())),
            ),
            (
                "https://social.example/users/alice/",
                Some(Resource::Account("alice".into())),
            ),
            (
                "https://social.example/@alice/123",
                Some(Resource::Status("alice".into(), 123)),
            ),
            (
                "https://social.example/users/alice/statuses/9",
                Some(Resource::Status("alice".into(), 9)),
            ),
            ("https://other.example/@alice", None),
            ("https://social.example/@alice/abc", None),
            ("https://social.example/about", None),
            ("not a url", None),
        ];
        for (q, expected) in cases {
            assert_eq!(parse_local_url(q, d), expected, "{q}");
        }
    }

    #[test]
    fn types_are_checked() {
        assert_eq!(kind(Some("statuses")).unwrap(), Some(Kind::Statuses));
        assert_eq!(kind(None).unwrap(), None);
        assert!(kind(Some("posts")).is_err());
    }
}
