//! The documents, as PostgreSQL renders them: the same text the PostgreSQL search reads
//! (`status_search_document`: spoiler, then the source or, for remote statuses, the HTML
//! without its tags). Reblogs carry no text of their own and are not indexed.

use serde_json::Value;
use sqlx::PgExecutor;

use super::mappings::Kind;

const STATUSES: &str = "SELECT s.id, jsonb_build_object( \
       'id', s.id, 'account_id', s.account_id, \
       'text', s.spoiler_text || ' ' || CASE WHEN s.text = '' \
               THEN regexp_replace(s.content_html, '<[^>]*>', ' ', 'g') ELSE s.text END, \
       'language', lower(s.language), 'visibility', s.visibility, 'created_at', s.created_at, \
       'has_media', cardinality(s.ordered_media_attachment_ids) > 0, \
       'has_poll', EXISTS (SELECT 1 FROM polls p WHERE p.status_id = s.id), \
       'is_reply', s.in_reply_to_id IS NOT NULL, 'sensitive', s.sensitive) \
     FROM statuses s \
     WHERE s.reblog_of_id IS NULL AND s.id > $1 AND ($2::bigint IS NULL OR s.id = $2) \
     ORDER BY s.id LIMIT $3";

// Suspended accounts are left out: they are not found in PostgreSQL either.
const ACCOUNTS: &str = "SELECT a.id, jsonb_build_object( \
       'id', a.id, \
       'acct', a.username || coalesce('@' || a.domain, ''), \
       'display_name', a.display_name, \
       'note', regexp_replace(a.note, '<[^>]*>', ' ', 'g'), \
       'discoverable', a.discoverable) \
     FROM accounts a \
     WHERE a.suspended_at IS NULL AND a.id > $1 AND ($2::bigint IS NULL OR a.id = $2) \
     ORDER BY a.id LIMIT $3";

/// Up to `limit` documents with ids above `after`, in id order.
pub async fn batch<'c>(
    db: impl PgExecutor<'c>,
    kind: Kind,
    after: i64,
    limit: i64,
) -> sqlx::Result<Vec<(i64, Value)>> {
    query(db, kind, after, None, limit).await
}

/// The document of row `id`, or `None` when it should not be in the index (gone,
/// a reblog, a suspended account).
pub async fn one<'c>(db: impl PgExecutor<'c>, kind: Kind, id: i64) -> sqlx::Result<Option<Value>> {
    Ok(query(db, kind, i64::MIN, Some(id), 1)
        .await?
        .pop()
        .map(|(_, doc)| doc))
}

async fn query<'c>(
    db: impl PgExecutor<'c>,
    kind: Kind,
    after: i64,
    only: Option<i64>,
    limit: i64,
) -> sqlx::Result<Vec<(i64, Value)>> {
    let sql = match kind {
        Kind::Statuses => STATUSES,
        Kind::Accounts => ACCOUNTS,
    };
    sqlx::query_as(sql)
        .bind(after)
        .bind(only)
        .bind(limit)
        .fetch_all(db)
        .await
}
