//! Polls that end: their voters and author are notified, as Mastodon's
//! `PollExpirationNotifyWorker`. A job is scheduled at a poll's end when its status is
//! posted or edited, so the notification comes on time; a sweep every minute catches the
//! polls whose job was never queued (Redis unreachable at the time). Notifying is
//! idempotent (each poll is claimed by one statement), so the two may meet.

use std::time::Duration;

use serde_json::json;
use sqlx::types::chrono::{DateTime, Utc};
use tracing::warn;

use crate::jobs::{Queue, Registry};
use crate::state::AppState;

pub const NOTIFY_ENDED: &str = "polls.notify_ended";

const SWEEP_EVERY: Duration = Duration::from_secs(60);

pub fn register(r: &mut Registry) {
    r.register(NOTIFY_ENDED, 3, |state, _| async move {
        crate::api::polls::notify_ended(&state).await;
        Ok(())
    });
    r.periodic(NOTIFY_ENDED, SWEEP_EVERY);
}

/// Schedules the end of the poll of status `status_id`, if it has one still running; call
/// it after the status's transaction committed. A failure is logged: the sweep covers it.
pub async fn schedule(state: &AppState, status_id: i64) {
    let ends: Result<Option<DateTime<Utc>>, sqlx::Error> = sqlx::query_scalar(
        "SELECT expires_at FROM polls WHERE status_id = $1 AND ended_notified_at IS NULL",
    )
    .bind(status_id)
    .fetch_optional(state.db.primary())
    .await
    .map(Option::flatten);
    let at = match ends {
        Ok(Some(at)) => at,
        Ok(None) => return,
        Err(e) => {
            warn!(error = %e, status = status_id, "cannot read a poll's end; the sweep will notify");
            return;
        }
    };
    let args = json!({ "status_id": status_id });
    if let Err(e) = crate::jobs::enqueue_at(state, Queue::Default, NOTIFY_ENDED, args, at).await {
        warn!(error = %e, status = status_id, "cannot schedule a poll's end; the sweep will notify");
    }
}
