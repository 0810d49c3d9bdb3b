//! Timelines: the public (federated and local) and hashtag timelines, read from PostgreSQL,
//! and the home timeline, read from a Redis feed that posting fills (see `feed`).

pub(crate) mod feed;
mod home;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;

use super::statuses::paged;
use crate::api::ApiError;
use crate::api::entities::status::load_statuses;
use crate::api::pagination::PageQuery;
use crate::api::params::{Params, flex};
use crate::auth::MaybeAuth;
use crate::state::AppState;

const STATUSES_DEFAULT: i64 = 20;
const STATUSES_MAX: i64 = 40;
/// Mastodon's `TagFeed` takes at most this many names in each of any/all/none.
const TAGS_MAX: usize = 4;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/timelines/public", get(public))
        .route("/api/v1/timelines/tag/{hashtag}", get(tag))
        .route("/api/v1/timelines/home", get(home::home))
}

/// Mastodon's `authorize_if_got_token! :read, :'read:statuses'`: anonymous callers are
/// welcome (Mastodon's default), a token must carry the scope.
fn viewer(auth: &MaybeAuth) -> Result<Option<i64>, ApiError> {
    match &auth.0 {
        Some(auth) => {
            auth.require("read:statuses")?;
            Ok(auth.user.as_ref().map(|u| u.account_id))
        }
        None => Ok(None),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct PublicQuery {
    #[serde(flatten)]
    page: PageQuery,
    #[serde(default, deserialize_with = "flex::bool")]
    local: bool,
    #[serde(default, deserialize_with = "flex::bool")]
    remote: bool,
    #[serde(default, deserialize_with = "flex::bool")]
    only_media: bool,
    #[serde(default, deserialize_with = "flex::list")]
    any: Vec<String>,
    #[serde(default, deserialize_with = "flex::list")]
    all: Vec<String>,
    #[serde(default, deserialize_with = "flex::list")]
    none: Vec<String>,
}

/// Public, original statuses, newest first. `$1` max_id, `$2` lower bound, `$3` limit, `$4`
/// viewer, `$5` local, `$6` remote, `$7` only_media, `$8` the names one of which must be
/// tagged (NULL: no tag filter), `$9` names each of which must be tagged, `$10` names none
/// of which may be. A signed-in viewer does not see accounts they block or mute, nor those
/// blocking them, nor accounts of domains they block, nor statuses outside the languages they
/// chose (those without a language always show), nor accounts silenced by the instance's
/// domain blocks unless they follow them, as in Mastodon.
///
/// Who may see a public status is written out rather than taken from `status_visible!`:
/// for public statuses it comes down to an author not suspended (the joined `a`) who does
/// not block the viewer, and the general form (a `coalesce` over every visibility, an
/// accounts lookup the planner hashes whole at each call) made PostgreSQL misjudge how
/// many rows pass, choose a plan costly enough to JIT-compile, and spend 0.1 to 2 s per
/// page on 1M statuses instead of under 1 ms. `all` is "no wanted name missing" for the
/// same reason (a count compared to a cardinality is estimated as rare).
macro_rules! public_sql {
    ($order:literal) => {
        concat!(
            "SELECT s.id FROM statuses s JOIN accounts a ON a.id = s.account_id \
             WHERE s.visibility = 'public' AND s.reblog_of_id IS NULL \
               AND a.suspended_at IS NULL \
               AND (s.account_id = $4::bigint OR NOT EXISTS (SELECT 1 FROM blocks vb \
                    WHERE vb.account_id = s.account_id AND vb.target_account_id = $4)) \
               AND (NOT $5 OR a.domain IS NULL) AND (NOT $6 OR a.domain IS NOT NULL) \
               AND (NOT $7 OR cardinality(s.ordered_media_attachment_ids) > 0) \
               AND NOT EXISTS (SELECT 1 FROM blocks b WHERE b.account_id = $4 \
                               AND b.target_account_id = s.account_id) \
               AND NOT EXISTS (SELECT 1 FROM mutes m WHERE m.account_id = $4 \
                               AND m.target_account_id = s.account_id \
                               AND (m.expires_at IS NULL OR m.expires_at > now())) \
               AND NOT EXISTS (SELECT 1 FROM account_domain_blocks d WHERE d.account_id = $4 \
                               AND d.domain = a.domain) \
               AND (a.silenced_at IS NULL OR EXISTS (SELECT 1 FROM follows f \
                    WHERE f.account_id = $4 AND f.target_account_id = a.id)) \
               AND (s.language IS NULL OR s.language = ANY(coalesce( \
                    (SELECT u.chosen_languages FROM users u WHERE u.account_id = $4), \
                    ARRAY[s.language]))) \
               AND ($8::text[] IS NULL OR EXISTS (SELECT 1 FROM statuses_tags st \
                    JOIN tags t ON t.id = st.tag_id \
                    WHERE st.status_id = s.id AND lower(t.name) = ANY($8))) \
               AND NOT EXISTS (SELECT 1 FROM unnest($9::text[]) AS w(name) \
                    WHERE NOT EXISTS (SELECT 1 FROM statuses_tags st JOIN tags t ON t.id = st.tag_id \
                         WHERE st.status_id = s.id AND lower(t.name) = w.name)) \
               AND NOT EXISTS (SELECT 1 FROM statuses_tags st JOIN tags t ON t.id = st.tag_id \
                    WHERE st.status_id = s.id AND lower(t.name) = ANY($10)) \
               AND ($1::bigint IS NULL OR s.id < $1) AND ($2::bigint IS NULL OR s.id > $2) \
             ORDER BY s.id ",
            $order,
            " LIMIT $3"
        )
    };
}

/// Tag names as stored for comparison: without `#`, lower-cased, at most [`TAGS_MAX`].
fn tag_names(names: &[String]) -> Vec<String> {
    names
        .iter()
        .map(|n| n.trim().trim_start_matches('#').to_lowercase())
        .filter(|n| !n.is_empty())
        .take(TAGS_MAX)
        .collect()
}

async fn public_page(
    state: &AppState,
    viewer: Option<i64>,
    q: &PublicQuery,
    tags: (Option<Vec<String>>, Vec<String>, Vec<String>),
    uri: &Uri,
) -> Result<Response, ApiError> {
    let page = q.page.page(STATUSES_DEFAULT, STATUSES_MAX)?;
    let sql = if page.ascending() {
        public_sql!("ASC")
    } else {
        public_sql!("DESC")
    };
    let mut ids: Vec<i64> = sqlx::query_scalar(sql)
        .bind(page.max_id)
        .bind(page.lower())
        .bind(page.limit)
        .bind(viewer)
        .bind(q.local)
        .bind(q.remote)
        .bind(q.only_media)
        .bind(tags.0)
        .bind(tags.1)
        .bind(tags.2)
        .fetch_all(state.db.reader())
        .await?;
    if page.ascending() {
        ids.reverse();
    }
    let statuses = load_statuses(state, &ids, viewer).await?;
    let statuses = crate::api::filters::matching::drop_hidden(statuses, "public");
    Ok(paged(state, uri, &ids, statuses))
}

pub async fn public(
    State(state): State<AppState>,
    auth: MaybeAuth,
    uri: Uri,
    Params { value: q, .. }: Params<PublicQuery>,
) -> Result<Response, ApiError> {
    let viewer = viewer(&auth)?;
    public_page(&state, viewer, &q, (None, Vec::new(), Vec::new()), &uri).await
}

/// Statuses tagged with `hashtag` or any of `any[]`, with every one of `all[]` and none of
/// `none[]` (Mastodon's `TagFeed`).
pub async fn tag(
    State(state): State<AppState>,
    auth: MaybeAuth,
    Path(hashtag): Path<String>,
    uri: Uri,
    Params { value: q, .. }: Params<PublicQuery>,
) -> Result<Response, ApiError> {
    let viewer = viewer(&auth)?;
    let mut any = tag_names(std::slice::from_ref(&hashtag));
    if any.is_empty() {
        return Err(ApiError::NotFound);
    }
    any.extend(tag_names(&q.any));
    let tags = (Some(any), tag_names(&q.all), tag_names(&q.none));
    public_page(&state, viewer, &q, tags, &uri).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_names_are_compared_without_hash_or_case() {
        let names: Vec<String> = ["#Rust", " cats ", "#", "a", "b", "c"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(tag_names(&names), ["rust", "cats", "a", "b"]);
    }
}
