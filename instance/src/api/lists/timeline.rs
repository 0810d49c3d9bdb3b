//! `GET /api/v1/timelines/list/:id`: the statuses and reblogs of the list's accounts, newest
//! first, straight from PostgreSQL (see the module note on why there is no feed).

use axum::extract::{Path, State};
use axum::http::Uri;
use axum::response::Response;

use super::{caller, owned_list};
use crate::api::ApiError;
use crate::api::entities::status::{load_statuses, status_visible};
use crate::api::pagination::PageQuery;
use crate::api::params::Params;
use crate::api::statuses::paged;
use crate::auth::Auth;
use crate::state::AppState;

const STATUSES_DEFAULT: i64 = 20;
const STATUSES_MAX: i64 = 40;

/// `$1` list, `$2` viewer (its owner), `$3` max_id, `$4` lower bound, `$5` limit. Visibility,
/// mutes and blocks are filtered here rather than after the page is cut, so that a page is
/// never short while older statuses remain. Replies follow Mastodon's `FeedManager`: a reply
/// to the owner or to oneself always shows, others as the list's `replies_policy` says.
macro_rules! list_sql {
    ($order:literal) => {
        concat!(
            "SELECT s.id FROM lists l \
               JOIN list_accounts la ON la.list_id = l.id \
               JOIN statuses s ON s.account_id = la.account_id \
               LEFT JOIN statuses o ON o.id = s.reblog_of_id \
             WHERE l.id = $1 AND ",
            status_visible!("s", "$2::bigint"),
            " AND (o.id IS NULL OR ",
            status_visible!("o", "$2::bigint"),
            ") AND NOT EXISTS (SELECT 1 FROM mutes m WHERE m.account_id = $2 \
                      AND m.target_account_id IN (s.account_id, o.account_id) \
                      AND (m.expires_at IS NULL OR m.expires_at > now())) \
               AND NOT EXISTS (SELECT 1 FROM blocks b \
                      WHERE (b.account_id = $2 AND b.target_account_id IN (s.account_id, o.account_id)) \
                         OR (b.target_account_id = $2 AND b.account_id IN (s.account_id, o.account_id))) \
               AND (s.in_reply_to_account_id IS NULL \
                    OR s.in_reply_to_account_id IN (s.account_id, $2) \
                    OR (l.replies_policy = 'followed' AND EXISTS (SELECT 1 FROM follows f \
                          WHERE f.account_id = $2 AND f.target_account_id = s.in_reply_to_account_id)) \
                    OR (l.replies_policy = 'list' AND EXISTS (SELECT 1 FROM list_accounts r \
                          WHERE r.list_id = l.id AND r.account_id = s.in_reply_to_account_id))) \
               AND ($3::bigint IS NULL OR s.id < $3) AND ($4::bigint IS NULL OR s.id > $4) \
             ORDER BY s.id ",
            $order,
            " LIMIT $5"
        )
    };
}

pub async fn list_timeline(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    uri: Uri,
    Params { value: q, .. }: Params<PageQuery>,
) -> Result<Response, ApiError> {
    let me = caller(&auth, "read:lists")?;
    let list = owned_list(state.db.reader(), &id, me).await?;
    let page = q.page(STATUSES_DEFAULT, STATUSES_MAX)?;
    let sql = if page.ascending() {
        list_sql!("ASC")
    } else {
        list_sql!("DESC")
    };
    let mut ids: Vec<i64> = sqlx::query_scalar(sql)
        .bind(list.id)
        .bind(me)
        .bind(page.max_id)
        .bind(page.lower())
        .bind(page.limit)
        .fetch_all(state.db.reader())
        .await?;
    if page.ascending() {
        ids.reverse();
    }
    let statuses = load_statuses(&state, &ids, Some(me)).await?;
    Ok(paged(&state, &uri, &ids, statuses))
}
