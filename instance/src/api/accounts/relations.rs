//! Follows, follow requests, blocks and mutes: the actions, and the lists that show them.
//!
//! Following a remote account records a follow request, sent as a `Follow` activity; its
//! server's `Accept` turns it into a follow.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::http::header::LINK;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;

use super::{parse_id, require_if_token, visible_account};
use crate::api::ApiError;
use crate::api::entities::account::account_columns;
use crate::api::entities::{AccountRow, Relationship, account_json, relationships};
use crate::api::notifications::{Cause, notify};
use crate::api::pagination::{Page, PageQuery, link_header};
use crate::api::params::{Params, flex};
use crate::api::timelines::feed;
use crate::auth::{Auth, MaybeAuth};
use crate::federation::delivery::{IncomingFollow, Outgoing};
use crate::state::AppState;
use crate::tasks::timeline::Relation;

const ACCOUNTS_DEFAULT: i64 = 40;
const ACCOUNTS_MAX: i64 = 80;
const LANGUAGES_MAX: usize = 100;
/// Ten years: longer is "indefinitely", which is what omitting the duration means.
const MUTE_DURATION_MAX: u64 = 10 * 365 * 24 * 3600;

async fn relationship(
    db: impl sqlx::PgExecutor<'_>,
    me: i64,
    target: i64,
) -> Result<Json<Relationship>, ApiError> {
    relationships(db, me, &[target])
        .await?
        .pop()
        .map(Json)
        .ok_or(ApiError::NotFound)
}

/// Serialises changes to the relation of two accounts (a follow racing a block), whoever
/// starts them; released at commit. Keyed on the unordered pair.
async fn lock_pair(tx: &mut sqlx::PgTransaction<'_>, a: i64, b: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtextextended( \
             'fedi:relation:' || least($1, $2) || ':' || greatest($1, $2), 0))",
    )
    .bind(a)
    .bind(b)
    .execute(&mut **tx)
    .await
    .map(drop)
}

#[derive(Debug, Default, Deserialize)]
pub struct FollowParams {
    #[serde(default, deserialize_with = "flex::opt_bool")]
    reblogs: Option<bool>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    notify: Option<bool>,
    #[serde(default)]
    languages: Option<Value>,
}

/// `None`: leave as is; `Some(None)`: all languages; `Some(Some(list))`: only these.
fn parse_languages(value: Option<Value>) -> Result<Option<Option<Vec<String>>>, ApiError> {
    let Some(value) = value else { return Ok(None) };
    let list = flex::list(value).map_err(|e| ApiError::validation("languages", &e.to_string()))?;
    let list: Vec<String> = list.into_iter().filter(|l| !l.is_empty()).collect();
    if list.len() > LANGUAGES_MAX {
        return Err(ApiError::validation("languages", "has too many entries"));
    }
    if list
        .iter()
        .any(|l| !(2..=3).contains(&l.len()) || !l.bytes().all(|b| b.is_ascii_lowercase()))
    {
        return Err(ApiError::validation("languages", "must be ISO 639 codes"));
    }
    Ok(Some((!list.is_empty()).then_some(list)))
}

pub async fn follow(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Params { value: p, .. }: Params<FollowParams>,
) -> Result<Json<Relationship>, ApiError> {
    auth.require("write:follows")?;
    let me = auth.user()?.account_id;
    let target = visible_account(state.db.primary(), parse_id(&id)?).await?;
    // Mastodon answers "not found" to following oneself.
    if target.id == me {
        return Err(ApiError::NotFound);
    }
    let languages = parse_languages(p.languages)?;
    let mut tx = state.db.begin().await?;
    lock_pair(&mut tx, me, target.id).await?;
    let (blocked, following): (bool, bool) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM blocks WHERE (account_id = $1 AND target_account_id = $2) \
                                             OR (account_id = $2 AND target_account_id = $1)), \
                EXISTS (SELECT 1 FROM follows WHERE account_id = $1 AND target_account_id = $2)",
    )
    .bind(me)
    .bind(target.id)
    .fetch_one(&mut *tx)
    .await?;
    if blocked {
        return Err(ApiError::Forbidden);
    }
    // Already following: the call changes the options only. Otherwise a locked account (and
    // any remote one, whose server decides) gets a request, others a follow at once.
    let sql = if following {
        "UPDATE follows SET show_reblogs = coalesce($3, show_reblogs), \
             notify = coalesce($4, notify), \
             languages = CASE WHEN $5 THEN $6 ELSE languages END \
         WHERE account_id = $1 AND target_account_id = $2"
    } else if target.locked || target.domain.is_some() {
        "INSERT INTO follow_requests \
             (account_id, target_account_id, show_reblogs, notify, languages) \
         VALUES ($1, $2, coalesce($3, true), coalesce($4, false), $6) \
         ON CONFLICT (account_id, target_account_id) DO UPDATE SET \
             show_reblogs = coalesce($3, follow_requests.show_reblogs), \
             notify = coalesce($4, follow_requests.notify), \
             languages = CASE WHEN $5 THEN $6 ELSE follow_requests.languages END"
    } else {
        "INSERT INTO follows (account_id, target_account_id, show_reblogs, notify, languages) \
         VALUES ($1, $2, coalesce($3, true), coalesce($4, false), $6) \
         ON CONFLICT (account_id, target_account_id) DO NOTHING"
    };
    sqlx::query(sql)
        .bind(me)
        .bind(target.id)
        .bind(p.reblogs)
        .bind(p.notify)
        .bind(languages.is_some())
        .bind(languages.flatten())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    feed::invalidate(&state, me).await;
    if !following && target.domain.is_some() {
        let follow = Outgoing::Follow {
            account_id: me,
            target_id: target.id,
            undo: false,
        };
        crate::federation::delivery::send(&state, follow).await;
    }
    if !following {
        notify(
            &state,
            Cause::Follow {
                follower: me,
                target: target.id,
            },
        )
        .await;
    }
    relationship(state.db.primary(), me, target.id).await
}

pub async fn unfollow(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Relationship>, ApiError> {
    auth.require("write:follows")?;
    let me = auth.user()?.account_id;
    let target = visible_account(state.db.primary(), parse_id(&id)?).await?;
    sqlx::query(
        "WITH f AS (DELETE FROM follows WHERE account_id = $1 AND target_account_id = $2) \
         DELETE FROM follow_requests WHERE account_id = $1 AND target_account_id = $2",
    )
    .bind(me)
    .bind(target.id)
    .execute(state.db.primary())
    .await?;
    crate::tasks::timeline::enqueue_relation(&state, Relation::Unfollow, me, target.id).await;
    if target.domain.is_some() {
        let undo = Outgoing::Follow {
            account_id: me,
            target_id: target.id,
            undo: true,
        };
        crate::federation::delivery::send(&state, undo).await;
    }
    relationship(state.db.primary(), me, target.id).await
}

/// Blocking also ends every follow and follow request between the two, both ways.
pub async fn block(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Relationship>, ApiError> {
    auth.require("write:blocks")?;
    let me = auth.user()?.account_id;
    let target = visible_account(state.db.primary(), parse_id(&id)?).await?;
    if target.id == me {
        return Err(ApiError::Forbidden);
    }
    let mut tx = state.db.begin().await?;
    lock_pair(&mut tx, me, target.id).await?;
    // The follows and requests that end, each way (`mine`: mine of them), with the id of
    // the remote's Follow for its Reject.
    let ended: Vec<(bool, Option<String>)> = sqlx::query_as(
        "WITH f AS (DELETE FROM follows WHERE (account_id = $1 AND target_account_id = $2) \
                                          OR (account_id = $2 AND target_account_id = $1) \
                    RETURNING account_id = $1 AS mine, uri), \
              r AS (DELETE FROM follow_requests \
                    WHERE (account_id = $1 AND target_account_id = $2) \
                       OR (account_id = $2 AND target_account_id = $1) \
                    RETURNING account_id = $1 AS mine, uri), \
              b AS (INSERT INTO blocks (account_id, target_account_id) VALUES ($1, $2) \
                    ON CONFLICT (account_id, target_account_id) DO NOTHING) \
         SELECT mine, uri FROM f UNION ALL SELECT mine, uri FROM r",
    )
    .bind(me)
    .bind(target.id)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    crate::tasks::timeline::enqueue_relation(&state, Relation::Block, me, target.id).await;
    if target.domain.is_some() {
        // As Mastodon's BlockService: the follows end explicitly (Undo of ours, Reject of
        // theirs) before the Block, since not every server ends them on a Block, and a
        // follow left standing there would keep our posts flowing to the blocked account.
        for (mine, uri) in ended {
            if mine {
                let undo = Outgoing::Follow {
                    account_id: me,
                    target_id: target.id,
                    undo: true,
                };
                crate::federation::delivery::send(&state, undo).await;
            } else if let Some(uri) = uri {
                let follow = IncomingFollow {
                    follower_id: target.id,
                    target_id: me,
                    uri,
                };
                crate::federation::delivery::reject_follow(&state, &follow).await;
            }
        }
        let block = Outgoing::Block {
            account_id: me,
            target_id: target.id,
            undo: false,
        };
        crate::federation::delivery::send(&state, block).await;
    }
    relationship(state.db.primary(), me, target.id).await
}

pub async fn unblock(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Relationship>, ApiError> {
    auth.require("write:blocks")?;
    let me = auth.user()?.account_id;
    let target = visible_account(state.db.primary(), parse_id(&id)?).await?;
    sqlx::query("DELETE FROM blocks WHERE account_id = $1 AND target_account_id = $2")
        .bind(me)
        .bind(target.id)
        .execute(state.db.primary())
        .await?;
    if target.domain.is_some() {
        let undo = Outgoing::Block {
            account_id: me,
            target_id: target.id,
            undo: true,
        };
        crate::federation::delivery::send(&state, undo).await;
    }
    relationship(state.db.primary(), me, target.id).await
}

#[derive(Debug, Default, Deserialize)]
pub struct MuteParams {
    /// Also hide notifications from them (default true, as in Mastodon).
    #[serde(default, deserialize_with = "flex::opt_bool")]
    notifications: Option<bool>,
    /// Seconds; 0 or absent: indefinitely.
    #[serde(default, deserialize_with = "flex::opt_u64")]
    duration: Option<u64>,
}

pub async fn mute(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Params { value: p, .. }: Params<MuteParams>,
) -> Result<Json<Relationship>, ApiError> {
    auth.require("write:mutes")?;
    let me = auth.user()?.account_id;
    let target = visible_account(state.db.primary(), parse_id(&id)?).await?;
    if target.id == me {
        return Err(ApiError::Forbidden);
    }
    let duration = p.duration.unwrap_or(0);
    if duration > MUTE_DURATION_MAX {
        return Err(ApiError::validation(
            "duration",
            &format!("must be at most {MUTE_DURATION_MAX} seconds"),
        ));
    }
    sqlx::query(
        "INSERT INTO mutes (account_id, target_account_id, hide_notifications, expires_at) \
         VALUES ($1, $2, $3, \
                 CASE WHEN $4 > 0 THEN now() + make_interval(secs => $4) END) \
         ON CONFLICT (account_id, target_account_id) DO UPDATE SET \
             hide_notifications = EXCLUDED.hide_notifications, \
             expires_at = EXCLUDED.expires_at, created_at = now()",
    )
    .bind(me)
    .bind(target.id)
    .bind(p.notifications.unwrap_or(true))
    .bind(duration as f64)
    .execute(state.db.primary())
    .await?;
    crate::tasks::timeline::enqueue_relation(&state, Relation::Mute, me, target.id).await;
    relationship(state.db.primary(), me, target.id).await
}

pub async fn unmute(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Relationship>, ApiError> {
    auth.require("write:mutes")?;
    let me = auth.user()?.account_id;
    let target = visible_account(state.db.primary(), parse_id(&id)?).await?;
    sqlx::query("DELETE FROM mutes WHERE account_id = $1 AND target_account_id = $2")
        .bind(me)
        .bind(target.id)
        .execute(state.db.primary())
        .await?;
    relationship(state.db.primary(), me, target.id).await
}

/// Accepts the follow request of account `id` to the caller.
pub async fn authorize(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Relationship>, ApiError> {
    auth.require("write:follows")?;
    let me = auth.user()?.account_id;
    let requester = parse_id(&id)?;
    let mut tx = state.db.begin().await?;
    lock_pair(&mut tx, me, requester).await?;
    // show_reblogs, notify, languages, and the Follow's id for a remote requester.
    type Request = (bool, bool, Option<Vec<String>>, Option<String>);
    let request: Option<Request> = sqlx::query_as(
        "DELETE FROM follow_requests WHERE account_id = $1 AND target_account_id = $2 \
         RETURNING show_reblogs, notify, languages, uri",
    )
    .bind(requester)
    .bind(me)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((show_reblogs, notify, languages, uri)) = request else {
        return Err(ApiError::NotFound);
    };
    sqlx::query(
        "INSERT INTO follows (account_id, target_account_id, show_reblogs, notify, languages, uri) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (account_id, target_account_id) DO NOTHING",
    )
    .bind(requester)
    .bind(me)
    .bind(show_reblogs)
    .bind(notify)
    .bind(languages)
    .bind(&uri)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    feed::invalidate(&state, requester).await;
    // A remote requester's server learns of it by an Accept of its Follow.
    if let Some(uri) = uri {
        let follow = IncomingFollow {
            follower_id: requester,
            target_id: me,
            uri,
        };
        crate::federation::delivery::accept_follow(&state, &follow).await;
    }
    relationship(state.db.primary(), me, requester).await
}

pub async fn reject(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Relationship>, ApiError> {
    auth.require("write:follows")?;
    let me = auth.user()?.account_id;
    let requester = parse_id(&id)?;
    let deleted: Option<Option<String>> = sqlx::query_scalar(
        "DELETE FROM follow_requests WHERE account_id = $1 AND target_account_id = $2 \
         RETURNING uri",
    )
    .bind(requester)
    .bind(me)
    .fetch_optional(state.db.primary())
    .await?;
    let Some(uri) = deleted else {
        return Err(ApiError::NotFound);
    };
    if let Some(uri) = uri {
        let follow = IncomingFollow {
            follower_id: requester,
            target_id: me,
            uri,
        };
        crate::federation::delivery::reject_follow(&state, &follow).await;
    }
    relationship(state.db.primary(), me, requester).await
}

/// The account lists, each paged by the id of its relation row (as Mastodon does: a list
/// in the order things happened, whatever the accounts' own ids).
#[derive(Clone, Copy, Debug)]
enum List {
    Followers,
    Following,
    FollowRequests,
    Blocks,
    Mutes,
}

/// One query per list and direction, as literals: `$1` the owner, `$2` max_id, `$3` the
/// lower bound, `$4` the limit.
macro_rules! paged {
    ($from:literal, $shown:literal, $owner:literal, $extra:literal) => {
        (
            paged!(@one $from, $shown, $owner, $extra, "DESC"),
            paged!(@one $from, $shown, $owner, $extra, "ASC"),
        )
    };
    (@one $from:literal, $shown:literal, $owner:literal, $extra:literal, $order:literal) => {
        concat!(
            "SELECT r.id AS cursor, ",
            account_columns!(),
            " FROM ", $from, " r JOIN accounts a ON a.id = r.", $shown,
            " WHERE r.", $owner, " = $1 AND a.suspended_at IS NULL", $extra,
            " AND ($2::bigint IS NULL OR r.id < $2) AND ($3::bigint IS NULL OR r.id > $3)",
            " ORDER BY r.id ", $order, " LIMIT $4"
        )
    };
}

impl List {
    /// (newest first, oldest first)
    fn sql(self) -> (&'static str, &'static str) {
        match self {
            List::Followers => paged!("follows", "account_id", "target_account_id", ""),
            List::Following => paged!("follows", "target_account_id", "account_id", ""),
            List::FollowRequests => {
                paged!("follow_requests", "account_id", "target_account_id", "")
            }
            List::Blocks => paged!("blocks", "target_account_id", "account_id", ""),
            List::Mutes => paged!(
                "mutes",
                "target_account_id",
                "account_id",
                " AND (r.expires_at IS NULL OR r.expires_at > now())"
            ),
        }
    }
}

#[derive(sqlx::FromRow)]
struct PagedRow {
    cursor: i64,
    #[sqlx(flatten)]
    account: AccountRow,
}

/// One page of `list` for `owner`, with its `Link` header.
async fn page(
    state: &AppState,
    list: List,
    owner: i64,
    query: &PageQuery,
    uri: &Uri,
) -> Result<Response, ApiError> {
    let page: Page = query.page(ACCOUNTS_DEFAULT, ACCOUNTS_MAX)?;
    let (newest_first, oldest_first) = list.sql();
    let sql = if page.ascending() {
        oldest_first
    } else {
        newest_first
    };
    let mut rows: Vec<PagedRow> = sqlx::query_as(sql)
        .bind(owner)
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
        .map(|r| account_json(&r.account, state))
        .collect();
    let mut response = Json(accounts).into_response();
    // A token given in the query stays out of the links: they end up in logs and histories.
    let keep: Vec<(String, String)> =
        serde_urlencoded::from_str::<Vec<(String, String)>>(uri.query().unwrap_or_default())
            .unwrap_or_default()
            .into_iter()
            .filter(|(k, _)| k != "access_token")
            .collect();
    let url = format!("{}{}", state.base_url(), uri.path());
    if let Some(link) = link_header(&url, &keep, &cursors) {
        response.headers_mut().insert(LINK, link);
    }
    Ok(response)
}

/// Whether `target` blocks the viewer: then its lists look empty to them, as in Mastodon.
async fn hidden_from(state: &AppState, target: i64, viewer: Option<i64>) -> Result<bool, ApiError> {
    let Some(viewer) = viewer else {
        return Ok(false);
    };
    let (blocked,): (bool,) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM blocks WHERE account_id = $1 AND target_account_id = $2)",
    )
    .bind(target)
    .bind(viewer)
    .fetch_one(state.db.reader())
    .await?;
    Ok(blocked)
}

async fn follow_list(
    state: AppState,
    auth: MaybeAuth,
    id: String,
    query: PageQuery,
    uri: Uri,
    list: List,
) -> Result<Response, ApiError> {
    require_if_token(&auth, "read:accounts")?;
    let target = visible_account(state.db.reader(), parse_id(&id)?).await?;
    let viewer = auth
        .0
        .as_ref()
        .and_then(|a| a.user.as_ref())
        .map(|u| u.account_id);
    if hidden_from(&state, target.id, viewer).await? {
        return Ok(Json(Vec::<()>::new()).into_response());
    }
    page(&state, list, target.id, &query, &uri).await
}

pub async fn followers(
    State(state): State<AppState>,
    auth: MaybeAuth,
    Path(id): Path<String>,
    uri: Uri,
    Params { value, .. }: Params<PageQuery>,
) -> Result<Response, ApiError> {
    follow_list(state, auth, id, value, uri, List::Followers).await
}

pub async fn following(
    State(state): State<AppState>,
    auth: MaybeAuth,
    Path(id): Path<String>,
    uri: Uri,
    Params { value, .. }: Params<PageQuery>,
) -> Result<Response, ApiError> {
    follow_list(state, auth, id, value, uri, List::Following).await
}

pub async fn follow_requests(
    State(state): State<AppState>,
    auth: Auth,
    uri: Uri,
    Params { value, .. }: Params<PageQuery>,
) -> Result<Response, ApiError> {
    auth.require("read:follows")?;
    let me = auth.user()?.account_id;
    page(&state, List::FollowRequests, me, &value, &uri).await
}

pub async fn blocks(
    State(state): State<AppState>,
    auth: Auth,
    uri: Uri,
    Params { value, .. }: Params<PageQuery>,
) -> Result<Response, ApiError> {
    auth.require("read:blocks")?;
    let me = auth.user()?.account_id;
    page(&state, List::Blocks, me, &value, &uri).await
}

pub async fn mutes(
    State(state): State<AppState>,
    auth: Auth,
    uri: Uri,
    Params { value, .. }: Params<PageQuery>,
) -> Result<Response, ApiError> {
    auth.require("read:mutes")?;
    let me = auth.user()?.account_id;
    page(&state, List::Mutes, me, &value, &uri).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn languages_are_codes_or_all() {
        assert_eq!(parse_languages(None).unwrap(), None);
        assert_eq!(parse_languages(Some(json!([]))).unwrap(), Some(None));
        assert_eq!(
            parse_languages(Some(json!(["de", "en"]))).unwrap(),
            Some(Some(vec!["de".to_string(), "en".to_string()]))
        );
        assert_eq!(
            parse_languages(Some(json!("fr"))).unwrap(),
            Some(Some(vec!["fr".to_string()]))
        );
        assert!(parse_languages(Some(json!(["english"]))).is_err());
    }

    #[test]
    fn every_list_pages_by_its_own_rows() {
        for list in [
            List::Followers,
            List::Following,
            List::FollowRequests,
            List::Blocks,
            List::Mutes,
        ] {
            let (desc, asc) = list.sql();
            assert!(desc.ends_with("ORDER BY r.id DESC LIMIT $4"), "{list:?}");
            assert!(asc.ends_with("ORDER BY r.id ASC LIMIT $4"), "{list:?}");
        }
    }
}
