//! Recording a direct status into the conversations of its local participants (Mastodon's
//! `AccountConversation.add_status`) and rendering a conversation for its owner.

use serde::Serialize;
use tracing::warn;

use crate::api::entities::status::{Status, load_statuses_from};
use crate::api::entities::{Account, load_accounts};
use crate::events::{self, Event, channel};
use crate::state::AppState;

/// Mastodon's `Conversation` entity.
#[derive(Clone, Debug, Serialize)]
pub struct Conversation {
    pub id: String,
    pub unread: bool,
    /// The other participants; the owner alone when they wrote only to themselves.
    pub accounts: Vec<Account>,
    pub last_status: Option<Status>,
}

/// A conversation row as rendering needs it. `shown_status_id` is the newest of its
/// statuses that still exists (deleted ones stay in `status_ids` until then).
#[derive(Debug, sqlx::FromRow)]
pub struct Row {
    pub id: i64,
    pub account_id: i64,
    pub participant_account_ids: Vec<i64>,
    pub unread: bool,
    pub last_status_id: i64,
    pub shown_status_id: Option<i64>,
}

/// SQL: the columns of [`Row`] from `account_conversations c`.
macro_rules! row_columns {
    () => {
        "c.id, c.account_id, c.participant_account_ids, c.unread, c.last_status_id, \
         (SELECT max(cs.id) FROM statuses cs WHERE cs.id = ANY(c.status_ids)) AS shown_status_id"
    };
}
pub(super) use row_columns;

/// Renders `rows` for their owner (every row must belong to the same `owner`).
pub async fn render(
    state: &AppState,
    db: &sqlx::PgPool,
    owner: i64,
    rows: &[Row],
) -> Result<Vec<Conversation>, sqlx::Error> {
    let status_ids: Vec<i64> = rows.iter().filter_map(|r| r.shown_status_id).collect();
    let statuses = load_statuses_from(db, state, &status_ids, Some(owner)).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let mut accounts = load_accounts(db, &row.participant_account_ids, state).await?;
        if accounts.is_empty() {
            accounts = load_accounts(db, &[owner], state).await?;
        }
        let last_status = row.shown_status_id.and_then(|id| {
            let id = id.to_string();
            statuses.iter().find(|s| s.id == id).cloned()
        });
        out.push(Conversation {
            id: row.id.to_string(),
            unread: row.unread,
            accounts,
            last_status,
        });
    }
    Ok(out)
}

/// The root of the thread `status_id` belongs to: the conversation's key. A deleted
/// ancestor cuts the chain (its replies' `in_reply_to_id` becomes NULL), as it cuts the
/// thread everywhere else.
async fn thread_root(state: &AppState, status_id: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "WITH RECURSIVE up(id, parent, depth) AS ( \
             SELECT id, in_reply_to_id, 0 FROM statuses WHERE id = $1 \
             UNION ALL \
             SELECT p.id, p.in_reply_to_id, up.depth + 1 FROM up JOIN statuses p ON p.id = up.parent \
             WHERE up.depth < 10000) \
         SELECT id FROM up ORDER BY depth DESC LIMIT 1",
    )
    .bind(status_id)
    .fetch_optional(state.db.primary())
    .await
    .map(|root| root.unwrap_or(status_id))
}

/// Adds direct status `status_id` to the conversation of each local participant (its author
/// and the accounts it mentions, except those blocking the author), and sends each of them
/// a `conversation` event. Safe to run again: a status is added once, and a retry does not
/// turn a conversation the owner has read back to unread.
pub async fn record(state: &AppState, status_id: i64) -> Result<(), sqlx::Error> {
    let root = thread_root(state, status_id).await?;
    let rows: Vec<Row> = sqlx::query_as(concat!(
        "WITH s AS (SELECT id, account_id FROM statuses \
                    WHERE id = $1 AND visibility = 'direct' AND reblog_of_id IS NULL), \
              p AS (SELECT s.account_id AS author, ARRAY(SELECT x FROM ( \
                        SELECT s.account_id AS x UNION \
                        SELECT m.account_id FROM mentions m WHERE m.status_id = s.id) q \
                    ORDER BY x) AS ids FROM s), \
              up AS ( \
         INSERT INTO account_conversations AS c (account_id, conversation_id, \
             participant_account_ids, status_ids, last_status_id, unread) \
         SELECT u.account_id, $2, \
                ARRAY(SELECT x FROM unnest(p.ids) AS x WHERE x <> u.account_id ORDER BY x), \
                ARRAY[$1::bigint], $1, u.account_id <> p.author \
         FROM p JOIN users u ON u.account_id = ANY(p.ids) \
         WHERE NOT EXISTS (SELECT 1 FROM blocks b WHERE b.account_id = u.account_id \
                           AND b.target_account_id = p.author) \
         ON CONFLICT (account_id, conversation_id, participant_account_ids) DO UPDATE SET \
             status_ids = CASE WHEN $1 = ANY(c.status_ids) THEN c.status_ids \
                               ELSE c.status_ids || $1::bigint END, \
             last_status_id = greatest(c.last_status_id, $1), \
             unread = CASE WHEN $1 = ANY(c.status_ids) THEN c.unread ELSE excluded.unread END \
         RETURNING c.*) \
         SELECT ",
        "c.id, c.account_id, c.participant_account_ids, c.unread, c.last_status_id, \
         (SELECT max(x) FROM unnest(c.status_ids) AS x) AS shown_status_id \
         FROM up c"
    ))
    .bind(status_id)
    .bind(root)
    .fetch_all(state.db.primary())
    .await?;
    for row in rows {
        // Mastodon sends nothing for a conversation with oneself.
        if row.participant_account_ids.is_empty() {
            continue;
        }
        let owner = row.account_id;
        let Some(conversation) = render(state, state.db.primary(), owner, &[row])
            .await?
            .pop()
        else {
            continue;
        };
        let event = Event::conversation(&conversation);
        if let Err(e) = events::publish(state, &channel::direct(owner), &event).await {
            warn!(error = %e, "cannot publish a conversation event");
        }
    }
    Ok(())
}
