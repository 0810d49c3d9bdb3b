//! Writing a status's poll, inside the transaction that writes the status.

use sqlx::PgConnection;

use super::params::NewPoll;
use crate::api::ApiError;

/// Attaches `poll` to the new status `status_id` of `account_id`.
pub async fn insert(
    conn: &mut PgConnection,
    status_id: i64,
    account_id: i64,
    poll: &NewPoll,
) -> Result<(), ApiError> {
    sqlx::query(
        "INSERT INTO polls (status_id, account_id, options, multiple, hide_totals, expires_at) \
         VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))",
    )
    .bind(status_id)
    .bind(account_id)
    .bind(&poll.options)
    .bind(poll.multiple)
    .bind(poll.hide_totals)
    .bind(poll.expires_in as f64)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct Current {
    id: i64,
    options: Vec<String>,
    multiple: bool,
    hide_totals: bool,
}

/// An edit of status `status_id`, as Mastodon's `UpdateStatusService#update_poll!`: no
/// poll given removes the poll; new options or a switch between single and multiple choice
/// discard the votes (they were cast for another question); any change starts the poll
/// anew for `expires_in`. Whether the poll changed.
pub async fn apply_edit(
    conn: &mut PgConnection,
    status_id: i64,
    account_id: i64,
    poll: Option<&NewPoll>,
) -> Result<bool, ApiError> {
    let current: Option<Current> = sqlx::query_as(
        "SELECT id, options, multiple, hide_totals FROM polls WHERE status_id = $1 FOR UPDATE",
    )
    .bind(status_id)
    .fetch_optional(&mut *conn)
    .await?;
    match (current, poll) {
        (None, None) => Ok(false),
        (Some(current), None) => {
            sqlx::query("DELETE FROM polls WHERE id = $1")
                .bind(current.id)
                .execute(&mut *conn)
                .await?;
            Ok(true)
        }
        (None, Some(poll)) => {
            insert(conn, status_id, account_id, poll).await?;
            Ok(true)
        }
        (Some(current), Some(poll)) => {
            let new_question = current.options != poll.options || current.multiple != poll.multiple;
            if !new_question && current.hide_totals == poll.hide_totals {
                return Ok(false);
            }
            // A restarted poll will end again: its earlier "ended" notifications go.
            sqlx::query("DELETE FROM notifications WHERE poll_id = $1")
                .bind(current.id)
                .execute(&mut *conn)
                .await?;
            if new_question {
                sqlx::query("DELETE FROM poll_votes WHERE poll_id = $1")
                    .bind(current.id)
                    .execute(&mut *conn)
                    .await?;
            }
            sqlx::query(
                "UPDATE polls SET options = $2, multiple = $3, hide_totals = $4, \
                     expires_at = now() + make_interval(secs => $5), \
                     ended_notified_at = NULL, updated_at = now() \
                 WHERE id = $1",
            )
            .bind(current.id)
            .bind(&poll.options)
            .bind(poll.multiple)
            .bind(poll.hide_totals)
            .bind(poll.expires_in as f64)
            .execute(&mut *conn)
            .await?;
            Ok(true)
        }
    }
}
