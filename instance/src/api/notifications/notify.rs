//! Creating notifications: what causes which, who gets them, and the push to the streamer.
//!
//! Each cause is one `INSERT ... SELECT` whose candidate rows go through the same filter
//! (Mastodon's `NotifyService`): only local users get notifications, never about their own
//! actions (except that their poll ended), never from accounts they block or mute with
//! notifications, never about a status they may not see, never from an account the
//! instance's domain blocks silenced unless they follow it. Duplicates are absorbed by the
//! unique indexes of the table, so a repeated action notifies once.
//!
//! Notifying is best effort, as on Mastodon where a job does it: the action that caused it
//! has already succeeded, so a failure is logged and never reaches the caller.

use std::collections::BTreeMap;

use tracing::warn;

use crate::api::entities::notification::{NotificationRow, notifications_json};
use crate::api::entities::status::status_visible;
use crate::events::{self, Event, channel};
use crate::state::AppState;

/// What happened.
#[derive(Clone, Debug)]
pub enum Cause {
    /// `follower` now follows `target`, or asked to (a locked account).
    Follow { follower: i64, target: i64 },
    /// `account` favourited `status`.
    Favourite { account: i64, status: i64 },
    /// `reblog` (a reblog row) was just made.
    Reblog { reblog: i64 },
    /// `status` was posted: its mentions, and followers who asked to be told.
    Posted { status: i64 },
    /// `status` was edited: new mentions, and those who boosted it.
    Edited { status: i64 },
    /// The polls `polls` ended: their voters and authors.
    PollsEnded { polls: Vec<i64> },
}

/// The insert shared by every cause. `$with` are extra top-level CTEs (data-modifying ones
/// must be at the top); `$candidates` selects (recipient, actor, type, status_id,
/// reblog_id, favourite_id, follow_id, follow_request_id, poll_id).
macro_rules! insert {
    ($with:literal, $candidates:literal) => {
        concat!(
            "WITH ",
            $with,
            "c (account_id, from_account_id, type, status_id, reblog_id, favourite_id, \
                 follow_id, follow_request_id, poll_id) AS (",
            $candidates,
            ") INSERT INTO notifications AS n (account_id, from_account_id, type, status_id, \
                 reblog_id, favourite_id, follow_id, follow_request_id, poll_id) \
             SELECT c.account_id, c.from_account_id, c.type, c.status_id, c.reblog_id, \
                    c.favourite_id, c.follow_id, c.follow_request_id, c.poll_id \
             FROM c JOIN accounts r ON r.id = c.account_id \
             JOIN accounts f ON f.id = c.from_account_id \
             WHERE r.domain IS NULL AND r.suspended_at IS NULL AND f.suspended_at IS NULL \
               AND (f.silenced_at IS NULL OR EXISTS (SELECT 1 FROM follows fo \
                    WHERE fo.account_id = c.account_id AND fo.target_account_id = f.id)) \
               AND EXISTS (SELECT 1 FROM users u WHERE u.account_id = r.id) \
               AND (c.account_id <> c.from_account_id OR c.type = 'poll') \
               AND NOT EXISTS (SELECT 1 FROM blocks b WHERE b.account_id = c.account_id \
                               AND b.target_account_id = c.from_account_id) \
               AND NOT EXISTS (SELECT 1 FROM mutes m WHERE m.account_id = c.account_id \
                               AND m.target_account_id = c.from_account_id \
                               AND m.hide_notifications \
                               AND (m.expires_at IS NULL OR m.expires_at > now())) \
               AND (c.status_id IS NULL OR EXISTS (SELECT 1 FROM statuses s \
                    WHERE s.id = c.status_id AND ",
            status_visible!("s", "c.account_id"),
            ")) ON CONFLICT DO NOTHING \
             RETURNING n.id, n.account_id, n.from_account_id, n.type, n.status_id, n.created_at"
        )
    };
}

/// Records the notifications `cause` leads to and pushes them to the streamer.
pub async fn notify(state: &AppState, cause: Cause) {
    match record(state, &cause).await {
        Ok((rows, mails)) => {
            for id in mails {
                crate::tasks::mail::enqueue(state, id).await;
            }
            publish(state, rows).await
        }
        Err(e) => warn!(error = %e, ?cause, "cannot record notifications"),
    }
}

/// The notifications and the e-mails about them (`tasks::mail::notifications`), in one
/// transaction: a mail exists exactly for a notification that does.
async fn record(
    state: &AppState,
    cause: &Cause,
) -> Result<(Vec<NotificationRow>, Vec<i64>), sqlx::Error> {
    let mut tx = state.db.begin().await?;
    let rows = insert_for(&mut tx, cause).await?;
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let mails = crate::tasks::mail::notifications::queue(&mut tx, state, &ids).await?;
    tx.commit().await?;
    Ok((rows, mails))
}

async fn insert_for(
    db: &mut sqlx::PgConnection,
    cause: &Cause,
) -> Result<Vec<NotificationRow>, sqlx::Error> {
    match cause {
        Cause::Follow { follower, target } => {
            sqlx::query_as(insert!(
                "",
                "SELECT f.target_account_id, f.account_id, 'follow', NULL::bigint, \
                        NULL::bigint, NULL::bigint, f.id, NULL::bigint, NULL::bigint \
                 FROM follows f WHERE f.account_id = $1 AND f.target_account_id = $2 \
                 UNION ALL \
                 SELECT r.target_account_id, r.account_id, 'follow_request', NULL, NULL, \
                        NULL, NULL, r.id, NULL \
                 FROM follow_requests r WHERE r.account_id = $1 AND r.target_account_id = $2"
            ))
            .bind(follower)
            .bind(target)
            .fetch_all(&mut *db)
            .await
        }
        Cause::Favourite { account, status } => {
            sqlx::query_as(insert!(
                "",
                "SELECT s.account_id, fav.account_id, 'favourite', s.id, NULL::bigint, \
                        fav.id, NULL::bigint, NULL::bigint, NULL::bigint \
                 FROM favourites fav JOIN statuses s ON s.id = fav.status_id \
                 WHERE fav.account_id = $1 AND fav.status_id = $2"
            ))
            .bind(account)
            .bind(status)
            .fetch_all(&mut *db)
            .await
        }
        Cause::Reblog { reblog } => {
            sqlx::query_as(insert!(
                "",
                "SELECT o.account_id, rb.account_id, 'reblog', o.id, rb.id, NULL::bigint, \
                        NULL::bigint, NULL::bigint, NULL::bigint \
                 FROM statuses rb JOIN statuses o ON o.id = rb.reblog_of_id WHERE rb.id = $1"
            ))
            .bind(reblog)
            .fetch_all(&mut *db)
            .await
        }
        Cause::Posted { status } => {
            // Mastodon's FeedInsertWorker: followers with `notify` hear of the author's own
            // statuses that reach their home feed (no boosts, no replies to others).
            sqlx::query_as(insert!(
                "",
                "SELECT m.account_id, s.account_id, 'mention', s.id, NULL::bigint, \
                        NULL::bigint, NULL::bigint, NULL::bigint, NULL::bigint \
                 FROM mentions m JOIN statuses s ON s.id = m.status_id \
                 WHERE s.id = $1 AND s.reblog_of_id IS NULL \
                 UNION ALL \
                 SELECT fo.account_id, s.account_id, 'status', s.id, NULL, NULL, NULL, NULL, \
                        NULL \
                 FROM statuses s JOIN follows fo ON fo.target_account_id = s.account_id \
                 WHERE s.id = $1 AND fo.notify AND s.reblog_of_id IS NULL \
                   AND s.visibility <> 'direct' \
                   AND (s.in_reply_to_id IS NULL OR s.in_reply_to_account_id = s.account_id)"
            ))
            .bind(status)
            .fetch_all(&mut *db)
            .await
        }
        Cause::Edited { status } => {
            sqlx::query_as(insert!(
                "",
                "SELECT m.account_id, s.account_id, 'mention', s.id, NULL::bigint, \
                        NULL::bigint, NULL::bigint, NULL::bigint, NULL::bigint \
                 FROM mentions m JOIN statuses s ON s.id = m.status_id \
                 WHERE s.id = $1 AND s.reblog_of_id IS NULL \
                 UNION ALL \
                 SELECT rb.account_id, s.account_id, 'update', s.id, NULL, NULL, NULL, NULL, \
                        NULL \
                 FROM statuses s JOIN statuses rb ON rb.reblog_of_id = s.id WHERE s.id = $1"
            ))
            .bind(status)
            .fetch_all(&mut *db)
            .await
        }
        Cause::PollsEnded { polls } => {
            // Marking the polls and notifying is one statement: a poll is never marked
            // without its notifications, nor notified twice.
            sqlx::query_as(insert!(
                "ended AS (UPDATE polls SET ended_notified_at = now() \
                           WHERE id = ANY($1) AND ended_notified_at IS NULL \
                           RETURNING id, status_id, account_id), ",
                "SELECT DISTINCT v.account_id, e.account_id, 'poll', e.status_id, \
                        NULL::bigint, NULL::bigint, NULL::bigint, NULL::bigint, e.id \
                 FROM ended e JOIN poll_votes v ON v.poll_id = e.id \
                 UNION \
                 SELECT e.account_id, e.account_id, 'poll', e.status_id, NULL, NULL, NULL, \
                        NULL, e.id \
                 FROM ended e"
            ))
            .bind(polls)
            .fetch_all(&mut *db)
            .await
        }
    }
}

/// Pushes each new notification to its recipient's stream, as the recipient sees it.
async fn publish(state: &AppState, rows: Vec<NotificationRow>) {
    let mut by_recipient: BTreeMap<i64, Vec<NotificationRow>> = BTreeMap::new();
    for row in rows {
        by_recipient.entry(row.account_id).or_default().push(row);
    }
    for (recipient, rows) in by_recipient {
        let entities = match notifications_json(state.db.primary(), state, &rows).await {
            Ok(entities) => entities,
            Err(e) => {
                warn!(error = %e, "cannot build notifications to publish");
                continue;
            }
        };
        for entity in entities {
            let event = Event::notification(&entity);
            if let Err(e) = events::publish(state, &channel::notifications(recipient), &event).await
            {
                warn!(error = %e, "cannot publish a notification");
            }
        }
    }
}
