//! Reading accounts: by id, by `acct`, by search, and the caller's relationships to them.
//!
//! Suspended accounts are not shown at all (404, left out of lists and searches). Mastodon
//! instead returns them with `suspended: true` and their profile emptied; until moderation
//! exists here, hiding them is the simpler safe choice.

use std::collections::HashSet;

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;

use super::{parse_id, require_if_token, visible_account};
use crate::api::ApiError;
use crate::api::entities::account::account_columns;
use crate::api::entities::{Account, AccountRow, Relationship, account_json, relationships};
use crate::api::params::{Params, flex};
use crate::auth::{Auth, MaybeAuth};
use crate::state::AppState;

const SEARCH_DEFAULT: i64 = 40;
const SEARCH_MAX: i64 = 80;
/// Bounds the query and the work per request; a client asks about one page of accounts.
const RELATIONSHIPS_MAX: usize = 200;
const SEARCH_QUERY_MAX: usize = 200;

pub async fn show(
    State(state): State<AppState>,
    auth: MaybeAuth,
    Path(id): Path<String>,
) -> Result<Json<Account>, ApiError> {
    require_if_token(&auth, "read:accounts")?;
    let row = visible_account(state.db.reader(), parse_id(&id)?).await?;
    Ok(Json(account_json(&row, &state)))
}

#[derive(Debug, Deserialize)]
pub struct LookupQuery {
    #[serde(default)]
    acct: Option<String>,
}

/// `user` or `user@domain` (the instance's own domain meaning local), with or without `@`.
pub fn split_acct<'a>(acct: &'a str, local_domain: &str) -> (&'a str, Option<String>) {
    let acct = acct.trim().trim_start_matches('@');
    match acct.split_once('@') {
        Some((user, domain)) => {
            let domain = domain.trim_end_matches('.').to_lowercase();
            if domain == local_domain {
                (user, None)
            } else {
                (user, Some(domain))
            }
        }
        None => (acct, None),
    }
}

pub async fn lookup(
    State(state): State<AppState>,
    auth: MaybeAuth,
    Params { value: q, .. }: Params<LookupQuery>,
) -> Result<Json<Account>, ApiError> {
    require_if_token(&auth, "read:accounts")?;
    let acct = q.acct.unwrap_or_default();
    let (username, domain) = split_acct(&acct, &state.config.domain);
    if username.is_empty() {
        return Err(ApiError::NotFound);
    }
    // A remote account unknown here is looked up on its server (Mastodon's
    // `ResolveAccountService`); a known one is answered from the database.
    let remote_id = match &domain {
        Some(domain) => crate::federation::resolve::account_by_acct(&state, username, domain)
            .await?
            .ok_or(ApiError::NotFound)?,
        None => 0,
    };
    let row: Option<AccountRow> = sqlx::query_as(concat!(
        "SELECT ",
        account_columns!(),
        " FROM accounts a WHERE (CASE WHEN $2 THEN a.id = $3 \
                                 ELSE lower(a.username) = lower($1) AND a.domain IS NULL END) \
          AND a.suspended_at IS NULL"
    ))
    .bind(username)
    .bind(domain.is_some())
    .bind(remote_id)
    .fetch_optional(state.db.primary())
    .await?;
    let row = row.ok_or(ApiError::NotFound)?;
    Ok(Json(account_json(&row, &state)))
}

#[derive(Debug, Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    q: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_u64")]
    limit: Option<u64>,
    #[serde(default, deserialize_with = "flex::opt_u64")]
    offset: Option<u64>,
    #[serde(default, deserialize_with = "flex::bool")]
    following: bool,
}

/// `q` as a LIKE prefix pattern, its wildcards escaped.
pub(in crate::api) fn like_prefix(q: &str) -> String {
    let mut out = String::with_capacity(q.len() + 1);
    for c in q.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// `GET /api/v1/accounts/search`: see [`search_accounts`].
pub async fn search(
    State(state): State<AppState>,
    auth: Auth,
    Params { value: q, .. }: Params<SearchQuery>,
) -> Result<Json<Vec<Account>>, ApiError> {
    auth.require("read:accounts")?;
    let me = auth.user.as_ref().map(|u| u.account_id);
    let Some(text) = q.q else {
        return Err(ApiError::BadRequest(
            "param is missing or the value is empty: q".into(),
        ));
    };
    if text.chars().count() > SEARCH_QUERY_MAX {
        return Err(ApiError::validation(
            "q",
            &format!("is too long (maximum is {SEARCH_QUERY_MAX} characters)"),
        ));
    }
    let limit = match q.limit {
        None | Some(0) => SEARCH_DEFAULT,
        Some(n) => i64::try_from(n).unwrap_or(SEARCH_MAX).min(SEARCH_MAX),
    };
    let offset = i64::try_from(q.offset.unwrap_or(0)).unwrap_or(i64::MAX);
    let rows = search_accounts(&state, me, &text, q.following, limit, offset).await?;
    Ok(Json(rows.iter().map(|r| account_json(r, &state)).collect()))
}

/// The accounts `viewer` finds with `text` (also `/api/v2/search`): local accounts whose
/// username or display name (or a word of it) starts with it, the exact username first;
/// with `following`, only accounts the viewer follows. Remote accounts join the search with
/// federation (`resolve`).
pub(in crate::api) async fn search_accounts(
    state: &AppState,
    viewer: Option<i64>,
    text: &str,
    following: bool,
    limit: i64,
    offset: i64,
) -> Result<Vec<AccountRow>, ApiError> {
    let (username, domain) = split_acct(text, &state.config.domain);
    let needle = username.trim().to_lowercase();
    if needle.is_empty() || domain.is_some() {
        return Ok(Vec::new());
    }
    let pattern = like_prefix(&needle);
    let rows: Vec<AccountRow> = sqlx::query_as(concat!(
        "SELECT ",
        account_columns!(),
        " FROM accounts a \
          WHERE a.domain IS NULL AND a.suspended_at IS NULL \
            AND (lower(a.username) LIKE $1 \
                 OR lower(a.display_name) LIKE $1 OR lower(a.display_name) LIKE '% ' || $1) \
            AND (NOT $3 OR EXISTS (SELECT 1 FROM follows f \
                                   WHERE f.account_id = $4 AND f.target_account_id = a.id)) \
            AND NOT EXISTS (SELECT 1 FROM blocks b \
                            WHERE (b.account_id = $4 AND b.target_account_id = a.id) \
                               OR (b.account_id = a.id AND b.target_account_id = $4)) \
          ORDER BY lower(a.username) = $2 DESC, length(a.username), lower(a.username) \
          LIMIT $5 OFFSET $6"
    ))
    .bind(&pattern)
    .bind(&needle)
    .bind(following)
    .bind(viewer)
    .bind(limit)
    .bind(offset)
    .fetch_all(state.db.reader())
    .await?;
    Ok(rows)
}

/// `id[]=1&id[]=2` (or `id=1`): read from the raw query, as clients spell the key several ways.
pub async fn relationships_of(
    State(state): State<AppState>,
    auth: Auth,
    uri: axum::http::Uri,
) -> Result<Json<Vec<Relationship>>, ApiError> {
    auth.require("read:follows")?;
    let me = auth.user()?.account_id;
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(uri.query().unwrap_or_default())
        .map_err(|e| ApiError::BadRequest(format!("malformed query: {e}")))?;
    let mut seen = HashSet::new();
    let ids: Vec<i64> = pairs
        .iter()
        .filter(|(k, _)| k == "id" || k == "id[]" || (k.starts_with("id[") && k.ends_with(']')))
        .filter_map(|(_, v)| v.parse::<i64>().ok())
        .filter(|id| seen.insert(*id))
        .collect();
    if ids.len() > RELATIONSHIPS_MAX {
        return Err(ApiError::validation(
            "id",
            &format!("has too many entries (maximum is {RELATIONSHIPS_MAX})"),
        ));
    }
    // The primary: a client asks right after following, and must see its own change.
    Ok(Json(relationships(state.db.primary(), me, &ids).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accts_are_local_unless_another_domain_is_named() {
        let cases = [
            ("alice", ("alice", None)),
            ("@alice", ("alice", None)),
            ("alice@social.example", ("alice", None)),
            ("@alice@Social.Example.", ("alice", None)),
            ("bob@other.example", ("bob", Some("other.example"))),
            ("", ("", None)),
        ];
        for (input, (user, domain)) in cases {
            let (u, d) = split_acct(input, "social.example");
            assert_eq!((u, d.as_deref()), (user, domain), "{input}");
        }
    }

    #[test]
    fn search_patterns_escape_wildcards() {
        assert_eq!(like_prefix("al"), "al%");
        assert_eq!(like_prefix("a_%\\"), "a\\_\\%\\\\%");
    }
}
