//! Where statuses are searched. PostgreSQL's full-text search now; an OpenSearch backend
//! (`FEDI_SEARCH_URL`, issue 4) implements the same trait and is chosen in [`statuses`].
//!
//! What is searched (Mastodon searches only what a user interacted with unless its
//! full-text search is enabled, then public statuses of accounts that opted in): public
//! statuses, plus any status the viewer may see that they wrote, are mentioned in, or
//! favourited, bookmarked or reblogged. Unlisted and followers-only statuses of others are
//! left out until the viewer interacts with them: their authors kept them out of discovery.
//! The one visibility rule (`status_visible!`) applies on top, and blocked or muted authors
//! are left out as in Mastodon's search.

use sqlx::types::chrono::{DateTime, Utc};

use super::query::{Scope, StatusQuery};
use crate::api::ApiError;
use crate::api::entities::status::status_visible;
use crate::state::AppState;

/// A statuses search, resolved: `from:` is an account id by now.
#[derive(Debug, Clone)]
pub struct StatusSearch {
    pub query: StatusQuery,
    pub viewer: i64,
    /// `account_id`, or the account of `from:`.
    pub account_id: Option<i64>,
    pub max_id: Option<i64>,
    pub min_id: Option<i64>,
    pub limit: i64,
    pub offset: i64,
}

pub trait StatusIndex {
    /// Ids of matching statuses, newest first.
    fn search(
        &self,
        search: &StatusSearch,
    ) -> impl Future<Output = Result<Vec<i64>, ApiError>> + Send;
}

/// The index in use: OpenSearch when `FEDI_SEARCH_URL` is set, else PostgreSQL.
pub fn statuses(state: &AppState) -> impl StatusIndex + '_ {
    match &state.config.search {
        Some(config) => Backend::OpenSearch(super::opensearch::OpenSearch::new(state, config)),
        None => Backend::Postgres(Postgres(state)),
    }
}

pub enum Backend<'a> {
    Postgres(Postgres<'a>),
    OpenSearch(super::opensearch::OpenSearch<'a>),
}

impl StatusIndex for Backend<'_> {
    async fn search(&self, s: &StatusSearch) -> Result<Vec<i64>, ApiError> {
        match self {
            Backend::Postgres(p) => p.search(s).await,
            Backend::OpenSearch(o) => o.search(s).await,
        }
    }
}

pub struct Postgres<'a>(pub(super) &'a AppState);

impl StatusIndex for Postgres<'_> {
    async fn search(&self, s: &StatusSearch) -> Result<Vec<i64>, ApiError> {
        filtered(self.0, s, None).await
    }
}

/// The PostgreSQL search; with `candidates` (what OpenSearch matched), only among those
/// and without the text condition, which OpenSearch applied: every visibility rule is
/// still checked here.
pub(super) async fn filtered(
    state: &AppState,
    s: &StatusSearch,
    candidates: Option<&[i64]>,
) -> Result<Vec<i64>, ApiError> {
    let q = &s.query;
    let text = if candidates.is_some() {
        ""
    } else {
        q.text.as_str()
    };
    let (library, public_only) = match q.scope {
        Scope::All => (false, false),
        Scope::Library => (true, false),
        Scope::Public => (false, true),
    };
    let before: Option<DateTime<Utc>> = q.before;
    let ids: Vec<i64> = sqlx::query_scalar(concat!(
        "SELECT s.id FROM statuses s \
             WHERE s.reblog_of_id IS NULL \
               AND ($1 = '' OR status_search_document(s.spoiler_text, s.text, s.content_html) \
                               @@ websearch_to_tsquery('simple', $1)) \
               AND ",
        status_visible!("s", "$2::bigint"),
        " AND ((NOT $3 AND s.visibility = 'public') \
                    OR (NOT $4 AND (s.account_id = $2 \
                        OR EXISTS (SELECT 1 FROM mentions m \
                                   WHERE m.status_id = s.id AND m.account_id = $2) \
                        OR EXISTS (SELECT 1 FROM favourites f \
                                   WHERE f.status_id = s.id AND f.account_id = $2) \
                        OR EXISTS (SELECT 1 FROM bookmarks b \
                                   WHERE b.status_id = s.id AND b.account_id = $2) \
                        OR EXISTS (SELECT 1 FROM statuses r \
                                   WHERE r.reblog_of_id = s.id AND r.account_id = $2)))) \
               AND NOT EXISTS (SELECT 1 FROM blocks bl WHERE bl.account_id = $2 \
                               AND bl.target_account_id = s.account_id) \
               AND NOT EXISTS (SELECT 1 FROM mutes mu WHERE mu.account_id = $2 \
                               AND mu.target_account_id = s.account_id \
                               AND (mu.expires_at IS NULL OR mu.expires_at > now())) \
               AND ($5::bigint IS NULL OR s.account_id = $5) \
               AND ($6::bigint IS NULL OR s.id < $6) AND ($7::bigint IS NULL OR s.id > $7) \
               AND ($8::boolean IS NULL \
                    OR (cardinality(s.ordered_media_attachment_ids) > 0) = $8) \
               AND ($9::boolean IS NULL OR (s.in_reply_to_id IS NOT NULL) = $9) \
               AND ($10::boolean IS NULL OR s.sensitive = $10) \
               AND ($11::text IS NULL OR lower(s.language) = $11) \
               AND ($12::timestamptz IS NULL OR s.created_at < $12) \
               AND ($13::timestamptz IS NULL OR s.created_at >= $13) \
               AND ($14::boolean IS NULL OR EXISTS (SELECT 1 FROM polls p \
                                                    WHERE p.status_id = s.id) = $14) \
               AND ($17::bigint[] IS NULL OR s.id = ANY($17)) \
             ORDER BY s.id DESC LIMIT $15 OFFSET $16"
    ))
    .bind(text)
    .bind(s.viewer)
    .bind(library)
    .bind(public_only)
    .bind(s.account_id)
    .bind(s.max_id)
    .bind(s.min_id)
    .bind(q.has_media)
    .bind(q.is_reply)
    .bind(q.is_sensitive)
    .bind(&q.language)
    .bind(before)
    .bind(q.after)
    .bind(q.has_poll)
    .bind(s.limit)
    .bind(s.offset)
    .bind(candidates)
    .fetch_all(state.db.reader())
    .await?;
    Ok(ids)
}
